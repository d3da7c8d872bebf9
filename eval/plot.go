package eval

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Every figure is written twice from the same drawing code: a PNG for quick
// viewing and an SVG for papers.
const (
	figW   = 16 * vg.Centimeter
	figH   = 10 * vg.Centimeter
	pngDPI = 150
)

// BarSeries is one set of bars in PlotBars: Values[g] is drawn in group g,
// with an error bar of half-width CI[g] when CI is non-nil. NaN values are
// left out (e.g. a learner that was not run at some shot count).
type BarSeries struct {
	Name       string
	Values, CI []float64
}

// ROCCurve is one curve for PlotROC. Points are joined in order of
// increasing FPR (ties by TPR), which is the order of any valid ROC curve.
// A NaN AUC is left out of the legend.
type ROCCurve struct {
	Name     string
	FPR, TPR []float64
	AUC      float64
}

// Okabe–Ito colours: distinguishable with common colour-vision deficiencies.
// Yellow comes last because it is hard to see on white.
var seriesColors = []color.Color{
	color.RGBA{0x00, 0x72, 0xB2, 0xFF}, // blue
	color.RGBA{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	color.RGBA{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	color.RGBA{0xE6, 0x9F, 0x00, 0xFF}, // orange
	color.RGBA{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	color.RGBA{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	color.RGBA{0x00, 0x00, 0x00, 0xFF}, // black
	color.RGBA{0xF0, 0xE4, 0x42, 0xFF}, // yellow
}

// Dash patterns distinguish series once the colours run out.
var seriesDashes = [][]vg.Length{
	nil,
	{vg.Points(6), vg.Points(3)},
	{vg.Points(2), vg.Points(2)},
	{vg.Points(6), vg.Points(2), vg.Points(2), vg.Points(2)},
}

func seriesColor(i int) color.Color { return seriesColors[i%len(seriesColors)] }

func seriesDash(i int) []vg.Length {
	return seriesDashes[(i/len(seriesColors))%len(seriesDashes)]
}

var (
	errColor  = color.RGBA{0x33, 0x33, 0x33, 0xFF}
	gridColor = color.Gray{0xDD}
	sansFont  = font.Font{Typeface: "Liberation", Variant: "Sans"}
)

// sans switches every text element of p to a sans-serif face at sizes that
// stay legible when the 16 cm figure is shrunk to a column width.
func sans(p *plot.Plot) {
	p.Title.TextStyle.Font = font.From(sansFont, 11)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sansFont, 10)
		a.Tick.Label.Font = font.From(sansFont, 9)
	}
	p.Legend.TextStyle.Font = font.From(sansFont, 9)
}

// newPlot returns a plot with the package's common styling.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	sans(p)
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	return p
}

// grid returns light grid lines; either direction may be switched off.
func grid(vertical, horizontal bool) *plotter.Grid {
	g := plotter.NewGrid()
	sty := draw.LineStyle{Color: gridColor, Width: vg.Points(0.5)}
	g.Vertical, g.Horizontal = sty, sty
	if !vertical {
		g.Vertical.Color = nil
	}
	if !horizontal {
		g.Horizontal.Color = nil
	}
	return g
}

// categoryTicks puts names at the given positions on a without tick marks,
// rotating the labels when the widest would not fit in spacing (and then
// eliding the middle of any wider than maxTickLabel); it returns the labels
// shown and whether it rotated them.
func categoryTicks(a *plot.Axis, names []string, pos []float64, spacing vg.Length) ([]string, bool) {
	var widest vg.Length
	for _, n := range names {
		widest = max(widest, a.Tick.Label.Width(n))
	}
	rotated := widest > 0.9*spacing
	if rotated {
		a.Tick.Label.Rotation = math.Pi / 4
		a.Tick.Label.XAlign = draw.XRight
		// Hang the text from its top-right corner so no part of it
		// rises into the data area.
		a.Tick.Label.YAlign = draw.YTop
		names = elide(a.Tick.Label, names, maxTickLabel)
	}
	ticks := make([]plot.Tick, len(names))
	for i, n := range names {
		ticks[i] = plot.Tick{Value: pos[i], Label: n}
	}
	a.Tick.Marker = plot.ConstantTicks(ticks)
	a.Tick.Length = 0
	return names, rotated
}

// maxTickLabel is the widest a rotated category label may be: at 45° it
// then takes under 4 cm of the figure's height, and the rest of a 10 cm
// figure is left to the data. A report's row labels hold run names of up to
// 255 characters, which would otherwise push the data area off the figure.
const maxTickLabel = 5.5 * vg.Centimeter

// elide shortens each name wider than limit to its start and end around
// "…". Names that would then read the same are kept whole: a wide label is
// better than two that cannot be told apart.
func elide(sty draw.TextStyle, names []string, limit vg.Length) []string {
	out := make([]string, len(names))
	from := map[string]string{} // a shortened label and the name it came from
	clash := map[string]bool{}
	for i, n := range names {
		out[i] = elideOne(sty, n, limit)
		if f, ok := from[out[i]]; ok && f != n {
			clash[out[i]] = true
		}
		from[out[i]] = n
	}
	for i, s := range out {
		if clash[s] {
			out[i] = names[i]
		}
	}
	return out
}

// elideOne keeps as many of name's runes, half from each end, as fit in
// limit with the ellipsis between them.
func elideOne(sty draw.TextStyle, name string, limit vg.Length) string {
	if sty.Width(name) <= limit {
		return name
	}
	r := []rune(name)
	for keep := len(r) - 1; keep > 0; keep-- {
		s := string(r[:(keep+1)/2]) + "…" + string(r[len(r)-keep/2:])
		if sty.Width(s) <= limit {
			return s
		}
	}
	return "…"
}

// unitTicks labels 0, 0.2, …, 1 regardless of how far the axis extends,
// so room left for annotations beyond 1 carries no misleading tick.
func unitTicks() plot.Ticker {
	var ts []plot.Tick
	for i := 0; i <= 10; i++ {
		v := float64(i) / 10
		t := plot.Tick{Value: v}
		if i%2 == 0 {
			t.Label = fmt.Sprintf("%.1f", v)
		}
		ts = append(ts, t)
	}
	return plot.ConstantTicks(ts)
}

// denseTicks is plot.DefaultTicks, except that when it would label fewer
// than four values (common on short axes) the minor ticks get labels too.
type denseTicks struct{}

func (denseTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	labelled := 0
	for _, t := range ts {
		if !t.IsMinor() {
			labelled++
		}
	}
	if labelled >= 4 || len(ts) < 2 {
		return ts
	}
	step := math.Inf(1)
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Value - ts[i-1].Value; d > 0 {
			step = math.Min(step, d)
		}
	}
	// The fewest decimals that show every tick exactly, e.g. 2.5 needs one.
	prec := 0
	for ; prec < 10; prec++ {
		scale := math.Pow(10, float64(prec))
		exact := true
		for _, t := range ts {
			if math.Abs(math.Round(t.Value*scale)/scale-t.Value) > step*1e-6 {
				exact = false
				break
			}
		}
		if exact {
			break
		}
	}
	for i := range ts {
		v := ts[i].Value
		if math.Abs(v) < step/2 {
			v = 0 // avoid "-0.00"
		}
		ts[i].Label = strconv.FormatFloat(v, 'f', prec, 64)
	}
	return ts
}

// legendStrip sets a column on the right of dc aside for l and returns the
// rest of the canvas for the plot, and a function that draws l there,
// starting top below the upper edge (called once the plot's title, which
// the legend stays below, is laid out). The strip is capped so long names
// cannot squeeze the data area away.
func legendStrip(dc draw.Canvas, l plot.Legend) (draw.Canvas, func(top vg.Length)) {
	l.Top, l.Left = true, true
	l.Padding = vg.Points(3)
	w := l.Rectangle(dc).Size().X + vg.Points(10)
	w = min(w, 0.45*dc.Size().X)
	drawLegend := func(top vg.Length) {
		l.Draw(draw.Crop(dc, dc.Size().X-w+vg.Points(4), 0, 0, -top))
	}
	return draw.Crop(dc, 0, -w, 0, 0), drawLegend
}

// fitTitle breaks p's title into lines no wider than width: between words
// where it can, and inside a word (a long run name) where it must, after
// one of its '_', '-', '.' or '+' if one is near the line's end. A title
// wider than its figure would lose both ends.
func fitTitle(p *plot.Plot, width vg.Length) {
	sty := p.Title.TextStyle
	if sty.Width(p.Title.Text) <= width {
		return
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(p.Title.Text) {
		if line != "" && sty.Width(line+" "+word) <= width {
			line += " " + word
			continue
		}
		if line != "" {
			lines = append(lines, line)
		}
		r := []rune(word)
		for len(r) > 1 && sty.Width(string(r)) > width {
			n := len(r) - 1
			for n > 1 && sty.Width(string(r[:n])) > width {
				n--
			}
			// After a separator of a run name, where one falls in the
			// line's second half, so that its parts stay whole.
			if i := lastSeparator(r[:n]); i >= n/2 {
				n = i + 1
			}
			lines = append(lines, string(r[:n]))
			r = r[n:]
		}
		line = string(r)
	}
	p.Title.Text = strings.Join(append(lines, line), "\n")
}

// lastSeparator is the index of the last '_', '-', '.' or '+' in r, -1
// when there is none.
func lastSeparator(r []rune) int {
	for i := len(r) - 1; i >= 0; i-- {
		if strings.ContainsRune("_-.+", r[i]) {
			return i
		}
	}
	return -1
}

func fillBackground(dc draw.Canvas) {
	dc.FillPolygon(color.White, []vg.Point{
		dc.Min, {X: dc.Max.X, Y: dc.Min.Y}, dc.Max, {X: dc.Min.X, Y: dc.Max.Y},
	})
}

// bars draws rectangles centred on category positions, with optional
// symmetric error bars. Widths are in data units, which keeps grouped bars
// touching-but-separate at any figure size, unlike plotter.BarChart whose
// width is a fixed length.
type bars struct {
	pos, val, err []float64 // err may be nil; NaN val draws nothing
	half          float64   // half the bar thickness, in data units
	horizontal    bool
	fill          color.Color
}

func (b *bars) point(trX, trY func(float64) vg.Length, pos, v float64) vg.Point {
	if b.horizontal {
		return vg.Point{X: trX(v), Y: trY(pos)}
	}
	return vg.Point{X: trX(pos), Y: trY(v)}
}

func (b *bars) errAt(i int) float64 {
	if b.err == nil || math.IsNaN(b.err[i]) {
		return 0
	}
	return b.err[i]
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	at := func(pos, v float64) vg.Point { return b.point(trX, trY, pos, v) }
	for i, v := range b.val {
		if math.IsNaN(v) {
			continue
		}
		lo, hi := b.pos[i]-b.half, b.pos[i]+b.half
		c.FillPolygon(b.fill, c.ClipPolygonXY([]vg.Point{at(lo, 0), at(hi, 0), at(hi, v), at(lo, v)}))
	}
	// Error bars go on top of all fills so a neighbouring bar cannot hide them.
	sty := draw.LineStyle{Color: errColor, Width: vg.Points(0.8)}
	capHalf := b.half * 0.5
	for i, v := range b.val {
		e := b.errAt(i)
		if math.IsNaN(v) || e <= 0 {
			continue
		}
		x := b.pos[i]
		c.StrokeLines(sty, c.ClipLinesXY(
			[]vg.Point{at(x, v-e), at(x, v+e)},
			[]vg.Point{at(x-capHalf, v-e), at(x+capHalf, v-e)},
			[]vg.Point{at(x-capHalf, v+e), at(x+capHalf, v+e)},
		)...)
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	cmin, cmax := math.Inf(1), math.Inf(-1)
	vmin, vmax := 0.0, 0.0
	for i, v := range b.val {
		if math.IsNaN(v) {
			continue
		}
		e := b.errAt(i)
		cmin, cmax = math.Min(cmin, b.pos[i]-b.half), math.Max(cmax, b.pos[i]+b.half)
		vmin, vmax = math.Min(vmin, v-e), math.Max(vmax, v+e)
	}
	if b.horizontal {
		return vmin, vmax, cmin, cmax
	}
	return cmin, cmax, vmin, vmax
}

func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.fill, []vg.Point{
		c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y},
	})
}

// writeFigure renders the figure once per format and writes stem.png and
// stem.svg. Both are rendered in memory first and then written to temporary
// files in the destination directory and renamed into place, so readers
// never see a partial file and a failure leaves no temporary behind.
// render is called once per canvas so each format gets fresh plot state.
func writeFigure(stem string, w, h vg.Length, render func(draw.Canvas) error) error {
	if stem == "" {
		return errors.New("eval: plot: empty path stem")
	}
	pngData, svgData, err := renderFigure(w, h, render)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(stem), 0o755); err != nil {
		return fmt.Errorf("eval: plot: %w", err)
	}
	return WriteFilesAtomic([]string{stem + ".png", stem + ".svg"}, [][]byte{pngData, svgData})
}

func renderFigure(w, h vg.Length, render func(draw.Canvas) error) (pngData, svgData []byte, err error) {
	// gonum/plot reports some impossible layouts by panicking; callers of
	// this package get an error instead.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("eval: plot: rendering failed: %v", r)
		}
	}()
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI))
	if err := render(draw.New(img)); err != nil {
		return nil, nil, err
	}
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, fmt.Errorf("eval: plot: encoding PNG: %w", err)
	}
	sv := vgsvg.New(w, h)
	if err := render(draw.New(sv)); err != nil {
		return nil, nil, err
	}
	var sb bytes.Buffer
	if _, err := sv.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("eval: plot: encoding SVG: %w", err)
	}
	return pb.Bytes(), sb.Bytes(), nil
}

// WriteFilesAtomic writes every file to a temporary sibling before renaming
// any, so a reader never sees half a file and a write error leaves all
// destinations untouched.
func WriteFilesAtomic(paths []string, data [][]byte) (err error) {
	tmps := make([]string, 0, len(paths))
	defer func() {
		if err != nil {
			for _, t := range tmps {
				os.Remove(t) // already renamed ones are gone; that error is expected
			}
		}
	}()
	for i, path := range paths {
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
		if err != nil {
			return fmt.Errorf("eval: write: %w", err)
		}
		tmps = append(tmps, f.Name())
		_, werr := f.Write(data[i])
		if werr == nil {
			werr = f.Chmod(0o644) // CreateTemp makes files private
		}
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("eval: write %s: %w", path, werr)
		}
	}
	for i, path := range paths {
		if err := os.Rename(tmps[i], path); err != nil {
			return fmt.Errorf("eval: write: %w", err)
		}
	}
	return nil
}

// finiteCount reports how many of xs are finite.
func finiteCount(xs []float64) int {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			n++
		}
	}
	return n
}

// checkCI validates an optional half-width slice against its values.
func checkCI(fn, name string, ci []float64, want int, wantName string) error {
	if ci == nil {
		return nil
	}
	if len(ci) != want {
		return fmt.Errorf("eval: %s: %s has %d values but %s has %d", fn, name, len(ci), wantName, want)
	}
	for i, v := range ci {
		if v < 0 || math.IsInf(v, 0) {
			return fmt.Errorf("eval: %s: %s[%d] = %v; want a finite non-negative half-width", fn, name, i, v)
		}
	}
	return nil
}

// PlotLearningCurve draws meta-training loss (top panel) and meta-validation
// accuracy with its confidence band (bottom panel) against the training
// step, sharing the step axis, and writes stem.png and stem.svg. valCI holds
// interval half-widths and may be nil. Either series may be empty, in which
// case only the other panel is drawn. Non-finite losses (a diverged step)
// and NaN accuracies are skipped.
func PlotLearningCurve(stem, title string, steps []int, trainLoss []float64, valSteps []int, valAcc []float64, valCI []float64) error {
	return learningCurve("PlotLearningCurve", "step", "meta-train loss", stem, title, steps, trainLoss, valSteps, valAcc, valCI)
}

// PlotEpochLoss draws a supervised classifier's training loss against the
// epoch, and writes stem.png and stem.svg: its steps are epochs, and it has
// no meta-training nor validation for the axes to name.
func PlotEpochLoss(stem, title string, epochs []int, loss []float64) error {
	return learningCurve("PlotEpochLoss", "epoch", "training loss", stem, title, epochs, loss, nil, nil, nil)
}

// learningCurve is PlotLearningCurve with the step axis and the loss named
// xlabel and lossLabel; fn names the caller in errors.
func learningCurve(fn, xlabel, lossLabel, stem, title string, steps []int, trainLoss []float64, valSteps []int, valAcc []float64, valCI []float64) error {
	if len(steps) != len(trainLoss) {
		return fmt.Errorf("eval: %s: steps has %d values but trainLoss has %d", fn, len(steps), len(trainLoss))
	}
	if len(valSteps) != len(valAcc) {
		return fmt.Errorf("eval: %s: valSteps has %d values but valAcc has %d", fn, len(valSteps), len(valAcc))
	}
	if err := checkCI(fn, "valCI", valCI, len(valAcc), "valAcc"); err != nil {
		return err
	}
	if len(trainLoss) == 0 && len(valAcc) == 0 {
		return fmt.Errorf("eval: %s: trainLoss and valAcc are both empty", fn)
	}
	if len(trainLoss) > 0 && finiteCount(trainLoss) == 0 {
		return fmt.Errorf("eval: %s: trainLoss has no finite values", fn)
	}
	if len(valAcc) > 0 && finiteCount(valAcc) == 0 {
		return fmt.Errorf("eval: %s: valAcc has no finite values", fn)
	}

	loss := stepSeries(steps, trainLoss, nil)
	acc := stepSeries(valSteps, valAcc, valCI)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, s := range [][]stepPoint{loss, acc} {
		for _, pt := range s {
			xmin, xmax = math.Min(xmin, pt.x), math.Max(xmax, pt.x)
		}
	}

	return writeFigure(stem, figW, figH, func(dc draw.Canvas) error {
		var panels []*plot.Plot
		if len(loss) > 0 {
			p := newPlot("", xlabel, lossLabel)
			xy := make(plotter.XYs, len(loss))
			for i, pt := range loss {
				xy[i] = plotter.XY{X: pt.x, Y: pt.y}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return fmt.Errorf("eval: %s: %w", fn, err)
			}
			l.Color = seriesColor(0)
			l.Width = vg.Points(1.2)
			p.Add(grid(true, true), l)
			if len(xy) == 1 {
				// A line through one point draws nothing: mark the point.
				sc, err := plotter.NewScatter(xy)
				if err != nil {
					return fmt.Errorf("eval: %s: %w", fn, err)
				}
				sc.Color = seriesColor(0)
				sc.Shape = draw.CircleGlyph{}
				p.Add(sc)
			}
			panels = append(panels, p)
		}
		if len(acc) > 0 {
			p := newPlot("", xlabel, "meta-val accuracy")
			// Accuracy rises from the left, so the top-left corner is free.
			p.Legend.Top = true
			p.Legend.Left = true
			p.Legend.XOffs = vg.Points(6)
			p.Legend.Padding = vg.Points(2)
			if err := addAccuracy(p, acc, valCI != nil); err != nil {
				return fmt.Errorf("eval: %s: %w", fn, err)
			}
			panels = append(panels, p)
		}
		for i, p := range panels {
			p.Y.Tick.Marker = denseTicks{}
			p.X.Min, p.X.Max = xmin, xmax
			if i < len(panels)-1 {
				// The lower panel's step label serves both.
				p.X.Label.Text = ""
			}
		}
		panels[0].Title.Text = title

		fillBackground(dc)
		rows := make([][]*plot.Plot, len(panels))
		for i, p := range panels {
			rows[i] = []*plot.Plot{p}
		}
		pad := vg.Points(4)
		fitTitle(panels[0], dc.Size().X-pad-vg.Points(10))
		canvases := plot.Align(rows, draw.Tiles{
			Rows: len(panels), Cols: 1,
			PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: vg.Points(10),
			PadY: vg.Points(8),
		}, dc)
		for i, p := range panels {
			p.Draw(canvases[i][0])
		}
		return nil
	})
}

type stepPoint struct{ x, y, ci float64 }

// stepSeries drops non-finite values and sorts by step so lines do not
// double back when logs from resumed runs arrive out of order.
func stepSeries(steps []int, ys, ci []float64) []stepPoint {
	out := make([]stepPoint, 0, len(ys))
	for i, y := range ys {
		if math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		pt := stepPoint{x: float64(steps[i]), y: y}
		if ci != nil && !math.IsNaN(ci[i]) {
			pt.ci = ci[i]
		}
		out = append(out, pt)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].x < out[b].x })
	return out
}

type xyErrs struct {
	plotter.XYs
	plotter.YErrors
}

func addAccuracy(p *plot.Plot, acc []stepPoint, withCI bool) error {
	xy := make(plotter.XYs, len(acc))
	for i, pt := range acc {
		xy[i] = plotter.XY{X: pt.x, Y: pt.y}
	}
	p.Add(grid(true, true))
	var ciThumb plot.Thumbnailer
	if withCI && len(acc) >= 2 {
		band := make(plotter.XYs, 0, 2*len(acc))
		for _, pt := range acc {
			band = append(band, plotter.XY{X: pt.x, Y: pt.y + pt.ci})
		}
		for i := len(acc) - 1; i >= 0; i-- {
			band = append(band, plotter.XY{X: acc[i].x, Y: acc[i].y - acc[i].ci})
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return err
		}
		poly.Color = color.NRGBA{0xD5, 0x5E, 0x00, 0x48}
		poly.LineStyle.Width = 0
		p.Add(poly)
		ciThumb = poly
	} else if withCI {
		// A band needs two points; a single evaluation gets an error bar.
		eb, err := plotter.NewYErrorBars(xyErrs{xy, plotter.YErrors{{Low: acc[0].ci, High: acc[0].ci}}})
		if err != nil {
			return err
		}
		eb.Color = seriesColor(1)
		p.Add(eb)
	}
	l, s, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	l.Color = seriesColor(1)
	l.Width = vg.Points(1.2)
	s.Color = seriesColor(1)
	s.Shape = draw.CircleGlyph{}
	s.Radius = vg.Points(2)
	p.Add(l, s)
	p.Legend.Add("accuracy", l, s)
	if ciThumb != nil {
		p.Legend.Add("confidence interval", ciThumb)
	}
	return nil
}

// PlotPerClassF1 draws one horizontal bar per class (first class on top)
// with its F1 score printed at the end of the bar, and error bars of
// half-width ci[k] when ci is non-nil. Horizontal bars keep long attack
// names readable. A NaN score is shown as "n/a" with no bar.
func PlotPerClassF1(stem, title string, classes []string, f1 []float64, ci []float64) error {
	const fn = "PlotPerClassF1"
	if len(classes) == 0 {
		return fmt.Errorf("eval: %s: classes is empty", fn)
	}
	if len(f1) != len(classes) {
		return fmt.Errorf("eval: %s: f1 has %d values but classes has %d", fn, len(f1), len(classes))
	}
	if err := checkCI(fn, "ci", ci, len(f1), "f1"); err != nil {
		return err
	}
	if finiteCount(f1) == 0 {
		return fmt.Errorf("eval: %s: f1 has no finite values", fn)
	}
	for i, v := range f1 {
		if math.IsInf(v, 0) || v < 0 || v > 1 {
			return fmt.Errorf("eval: %s: f1[%d] = %v is outside [0,1]", fn, i, v)
		}
	}

	n := len(classes)
	// Grow the figure with the class count so bars stay at least ~5 mm.
	h := max(figH, 2*vg.Centimeter+vg.Length(n)*5.5*vg.Millimeter)
	return writeFigure(stem, figW, h, func(dc draw.Canvas) error {
		p := newPlot(title, "F1", "")
		pos := make([]float64, n)
		for i := range pos {
			pos[i] = float64(n - 1 - i)
		}
		b := &bars{pos: pos, val: f1, err: ci, half: 0.35, horizontal: true, fill: seriesColor(0)}
		labels := plotter.XYLabels{XYs: make(plotter.XYs, n), Labels: make([]string, n)}
		for i, v := range f1 {
			x := 0.0
			labels.Labels[i] = "n/a"
			if !math.IsNaN(v) {
				x = v + b.errAt(i)
				labels.Labels[i] = fmt.Sprintf("%.2f", v)
			}
			labels.XYs[i] = plotter.XY{X: x, Y: pos[i]}
		}
		lab, err := plotter.NewLabels(labels)
		if err != nil {
			return fmt.Errorf("eval: %s: %w", fn, err)
		}
		for i := range lab.TextStyle {
			lab.TextStyle[i].Font = font.From(sansFont, 8)
			lab.TextStyle[i].YAlign = draw.YCenter
		}
		lab.Offset = vg.Point{X: vg.Points(3)}
		p.Add(grid(true, false), b, lab)
		p.X.Min, p.X.Max = 0, 1.12 // room for the value labels
		p.X.Tick.Marker = unitTicks()
		p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4
		p.Y.Padding = 0
		categoryTicks(&p.Y, classes, pos, figH)
		fillBackground(dc)
		dc = draw.Crop(dc, vg.Points(4), -vg.Points(10), vg.Points(4), -vg.Points(4))
		fitTitle(p, dc.Size().X)
		p.Draw(dc)
		return nil
	})
}

// PlotConfusion draws c as a heat map with true classes as rows (first
// class on top) and predicted classes as columns, each cell annotated with
// its count, or with its share of the row when normalise is true (rows
// without samples are then shown as "–").
func PlotConfusion(stem, title string, classes []string, c *Confusion, normalise bool) error {
	const fn = "PlotConfusion"
	if c == nil {
		return fmt.Errorf("eval: %s: c is nil", fn)
	}
	if c.N == 0 || len(classes) == 0 {
		return fmt.Errorf("eval: %s: no classes", fn)
	}
	if c.N != len(classes) {
		return fmt.Errorf("eval: %s: c has %d classes but classes has %d names", fn, c.N, len(classes))
	}
	if len(c.Counts) != c.N*c.N {
		return fmt.Errorf("eval: %s: c has %d counts; want %d for %d classes", fn, len(c.Counts), c.N*c.N, c.N)
	}
	for i, v := range c.Counts {
		if v < 0 {
			return fmt.Errorf("eval: %s: c.Counts[%d] = %d is negative", fn, i, v)
		}
	}
	if c.Total() == 0 {
		return fmt.Errorf("eval: %s: c holds no samples", fn)
	}

	n := c.N
	g := confusionGrid{n: n, z: make([]float64, n*n)}
	var zmax float64
	for t := 0; t < n; t++ {
		support := c.Support(t)
		for q := 0; q < n; q++ {
			v := float64(c.Counts[t*n+q])
			if normalise {
				if support == 0 {
					v = math.NaN()
				} else {
					v /= float64(support)
				}
			}
			g.z[t*n+q] = v
			if !math.IsNaN(v) {
				zmax = math.Max(zmax, v)
			}
		}
	}
	if normalise {
		zmax = 1
	}

	const w, h = 16 * vg.Centimeter, 14 * vg.Centimeter
	// Approximate cell size, used to size annotations and decide whether
	// column labels must be rotated.
	cell := (h - 4*vg.Centimeter) / vg.Length(n)
	return writeFigure(stem, w, h, func(dc draw.Canvas) error {
		p := newPlot(title, "predicted class", "true class")
		hm := plotter.NewHeatMap(g, blues)
		hm.Min, hm.Max = 0, zmax
		hm.NaN = color.Gray{0xEE}

		fontSize := vg.Length(math.Max(5, math.Min(10, cell.Points()*0.27)))
		labels := plotter.XYLabels{XYs: make(plotter.XYs, 0, n*n)}
		for t := 0; t < n; t++ {
			for q := 0; q < n; q++ {
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(q), Y: float64(n - 1 - t)})
				labels.Labels = append(labels.Labels, cellText(c.Counts[t*n+q], g.z[t*n+q], normalise))
			}
		}
		lab, err := plotter.NewLabels(labels)
		if err != nil {
			return fmt.Errorf("eval: %s: %w", fn, err)
		}
		for i := range lab.TextStyle {
			v := g.z[i]
			sty := &lab.TextStyle[i]
			sty.Font = font.From(sansFont, fontSize)
			sty.XAlign, sty.YAlign = draw.XCenter, draw.YCenter
			switch {
			case math.IsNaN(v) || v == 0:
				sty.Color = color.Gray{0x99} // zeros recede so errors stand out
			case v/zmax > 0.55:
				sty.Color = color.White
			default:
				sty.Color = color.Black
			}
		}
		p.Add(hm, lab)
		p.X.Padding, p.Y.Padding = 0, 0
		pos := make([]float64, n)
		rowNames := make([]string, n)
		for i := range pos {
			pos[i] = float64(i)
			rowNames[i] = classes[n-1-i]
		}
		categoryTicks(&p.X, classes, pos, cell)
		categoryTicks(&p.Y, rowNames, pos, h)
		fillBackground(dc)
		dc = draw.Crop(dc, vg.Points(4), -vg.Points(10), vg.Points(4), -vg.Points(4))
		fitTitle(p, dc.Size().X) // centred, it stays inside when dc narrows
		// Keep cells square: narrow the canvas until the data area is.
		da := p.DataCanvas(dc)
		if extra := da.Size().X - da.Size().Y; extra > 0 {
			dc = draw.Crop(dc, extra/2, -extra/2, 0, 0)
		}
		p.Draw(dc)
		return nil
	})
}

func cellText(count int64, v float64, normalise bool) string {
	if !normalise {
		return compactCount(count)
	}
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case v == 1:
		return "100%"
	case v < 0.001:
		return "<0.1%"
	case v > 0.999:
		return ">99.9%" // rounding would show it as a perfect row
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// compactCount keeps large counts within a cell: 123456 -> "123k".
func compactCount(v int64) string {
	switch {
	case v >= 10_000_000:
		return fmt.Sprintf("%.0fM", float64(v)/1e6)
	case v >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(v)/1e6)
	case v >= 100_000:
		return fmt.Sprintf("%.0fk", float64(v)/1e3)
	case v >= 10_000:
		return fmt.Sprintf("%.1fk", float64(v)/1e3)
	}
	return fmt.Sprint(v)
}

// confusionGrid exposes a row-major matrix to HeatMap with the first true
// class at the top: HeatMap puts row 0 at the bottom.
type confusionGrid struct {
	n int
	z []float64
}

func (g confusionGrid) Dims() (c, r int)   { return g.n, g.n }
func (g confusionGrid) Z(c, r int) float64 { return g.z[(g.n-1-r)*g.n+c] }
func (g confusionGrid) X(c int) float64    { return float64(c) }
func (g confusionGrid) Y(r int) float64    { return float64(r) }

// rampPalette is a precomputed colour ramp for HeatMap.
type rampPalette []color.Color

func (p rampPalette) Colors() []color.Color { return p }

// blues interpolates ColorBrewer's sequential Blues, white to dark blue, so
// cell darkness reads directly as magnitude.
var blues = func() rampPalette {
	stops := []color.RGBA{
		{0xF7, 0xFB, 0xFF, 0xFF}, {0xDE, 0xEB, 0xF7, 0xFF}, {0xC6, 0xDB, 0xEF, 0xFF},
		{0x9E, 0xCA, 0xE1, 0xFF}, {0x6B, 0xAE, 0xD6, 0xFF}, {0x42, 0x92, 0xC6, 0xFF},
		{0x21, 0x71, 0xB5, 0xFF}, {0x08, 0x51, 0x9C, 0xFF}, {0x08, 0x30, 0x6B, 0xFF},
	}
	const n = 129
	out := make(rampPalette, n)
	for i := range out {
		f := float64(i) / (n - 1) * float64(len(stops)-1)
		k := min(int(f), len(stops)-2)
		t := f - float64(k)
		a, b := stops[k], stops[k+1]
		mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + t*(float64(y)-float64(x)))) }
		out[i] = color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xFF}
	}
	return out
}()

// PlotBars draws grouped bars: one group per entry of groups along the x
// axis and, within each group, one bar per series with its CI as an error
// bar. Series names go in a legend to the right of the plot. Values may be
// negative (e.g. accuracy deltas); NaN values leave a gap.
func PlotBars(stem, title, ylabel string, groups []string, series []BarSeries) error {
	const fn = "PlotBars"
	if len(groups) == 0 {
		return fmt.Errorf("eval: %s: groups is empty", fn)
	}
	if len(series) == 0 {
		return fmt.Errorf("eval: %s: series is empty", fn)
	}
	finite, negative := 0, false
	for i, s := range series {
		name := fmt.Sprintf("series[%d] (%q)", i, s.Name)
		if len(s.Values) != len(groups) {
			return fmt.Errorf("eval: %s: %s has %d values but groups has %d", fn, name, len(s.Values), len(groups))
		}
		for j, v := range s.Values {
			if math.IsInf(v, 0) {
				return fmt.Errorf("eval: %s: %s.Values[%d] is infinite", fn, name, j)
			}
		}
		if err := checkCI(fn, name+".CI", s.CI, len(s.Values), "Values"); err != nil {
			return err
		}
		finite += finiteCount(s.Values)
		for _, v := range s.Values {
			negative = negative || v < 0
		}
	}
	if finite == 0 {
		return fmt.Errorf("eval: %s: series hold no finite values", fn)
	}

	const groupWidth = 0.8 // leaves a gap between groups
	barW := groupWidth / float64(len(series))
	// Many groups get a wider figure (at least 0.7 cm per group), so that
	// bars stay bars and rotated labels do not crowd.
	width := max(figW, vg.Length(len(groups))*0.7*vg.Centimeter+4*vg.Centimeter)
	return writeFigure(stem, width, figH, func(dc draw.Canvas) error {
		p := newPlot(title, "", ylabel)
		p.Y.Tick.Marker = denseTicks{}
		p.Add(grid(false, true))
		leg := plot.NewLegend()
		leg.TextStyle.Font = font.From(sansFont, 9)
		for si, s := range series {
			pos := make([]float64, len(groups))
			for g := range pos {
				pos[g] = float64(g) - groupWidth/2 + (float64(si)+0.5)*barW
			}
			b := &bars{pos: pos, val: s.Values, err: s.CI, half: 0.45 * barW, fill: seriesColor(si)}
			p.Add(b)
			name := s.Name
			if name == "" {
				name = fmt.Sprintf("series %d", si+1)
			}
			leg.Add(name, b)
		}
		if negative {
			// With bars hanging below zero the x axis no longer marks the
			// baseline, so draw it.
			zero, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 0}, {X: float64(len(groups)) - 0.5, Y: 0}})
			if err != nil {
				return fmt.Errorf("eval: %s: %w", fn, err)
			}
			zero.Color = color.Gray{0x55}
			zero.Width = vg.Points(0.8)
			p.Add(zero)
		}
		pos := make([]float64, len(groups))
		for g := range pos {
			pos[g] = float64(g)
		}
		p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
		p.X.Padding = 0
		fillBackground(dc)
		dc = draw.Crop(dc, vg.Points(4), -vg.Points(4), vg.Points(4), -vg.Points(4))
		var drawLegend func(vg.Length)
		if len(series) > 1 || series[0].Name != "" {
			dc, drawLegend = legendStrip(dc, leg)
		}
		spacing := (dc.Size().X - 2*vg.Centimeter) / vg.Length(len(groups))
		if shown, rotated := categoryTicks(&p.X, groups, pos, spacing); rotated {
			// A rotated label reaches left of its group by width·cos 45°;
			// what runs past the y axis's room (about 1.6 cm) becomes a
			// left margin instead of running off the figure.
			var pad vg.Length
			for i, g := range shown {
				over := p.X.Tick.Label.Width(g)*math.Sqrt2/2 - 1.6*vg.Centimeter - (vg.Length(i)+0.5)*spacing
				pad = max(pad, over+0.2*vg.Centimeter)
			}
			dc = draw.Crop(dc, pad, 0, 0, 0)
		}
		fitTitle(p, dc.Size().X)
		if drawLegend != nil {
			drawLegend(titleHeight(p))
		}
		p.Draw(dc)
		return nil
	})
}

// titleHeight is how far a legend strip must start below the top edge to
// line up with the plot's data area rather than its title.
func titleHeight(p *plot.Plot) vg.Length {
	if p.Title.Text == "" {
		return 0
	}
	return p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding
}

// PlotROC draws ROC curves with the chance diagonal, labelling each curve
// "name (AUC 0.93)" in a legend to the right of the plot.
func PlotROC(stem, title string, curves []ROCCurve) error {
	const fn = "PlotROC"
	if len(curves) == 0 {
		return fmt.Errorf("eval: %s: curves is empty", fn)
	}
	sorted := make([]plotter.XYs, len(curves))
	for i, cv := range curves {
		name := fmt.Sprintf("curves[%d] (%q)", i, cv.Name)
		if len(cv.FPR) != len(cv.TPR) {
			return fmt.Errorf("eval: %s: %s has %d FPR values but %d TPR values", fn, name, len(cv.FPR), len(cv.TPR))
		}
		if len(cv.FPR) < 2 {
			return fmt.Errorf("eval: %s: %s needs at least 2 points, has %d", fn, name, len(cv.FPR))
		}
		xy := make(plotter.XYs, len(cv.FPR))
		for j := range cv.FPR {
			x, y := cv.FPR[j], cv.TPR[j]
			if !(x >= 0 && x <= 1) || !(y >= 0 && y <= 1) {
				return fmt.Errorf("eval: %s: %s point %d (FPR %v, TPR %v) is outside [0,1]", fn, name, j, x, y)
			}
			xy[j] = plotter.XY{X: x, Y: y}
		}
		sort.SliceStable(xy, func(a, b int) bool {
			if xy[a].X != xy[b].X {
				return xy[a].X < xy[b].X
			}
			return xy[a].Y < xy[b].Y
		})
		sorted[i] = xy
	}

	return writeFigure(stem, figW, figH, func(dc draw.Canvas) error {
		p := newPlot(title, "false positive rate", "true positive rate")
		p.Add(grid(true, true))
		diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
		if err != nil {
			return fmt.Errorf("eval: %s: %w", fn, err)
		}
		diag.Color = color.Gray{0x99}
		diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(diag)
		leg := plot.NewLegend()
		leg.TextStyle.Font = font.From(sansFont, 9)
		leg.ThumbnailWidth = vg.Points(24)
		for i, cv := range curves {
			l, err := plotter.NewLine(sorted[i])
			if err != nil {
				return fmt.Errorf("eval: %s: %w", fn, err)
			}
			l.Color = seriesColor(i)
			l.Dashes = seriesDash(i)
			l.Width = vg.Points(1.4)
			p.Add(l)
			leg.Add(rocLabel(cv, i), l)
		}
		leg.Add("chance", diag)
		p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
		p.X.Tick.Marker, p.Y.Tick.Marker = unitTicks(), unitTicks()
		fillBackground(dc)
		dc = draw.Crop(dc, vg.Points(4), -vg.Points(4), vg.Points(4), -vg.Points(4))
		dc, drawLegend := legendStrip(dc, leg)
		fitTitle(p, dc.Size().X)
		drawLegend(titleHeight(p))
		p.Draw(dc)
		return nil
	})
}

func rocLabel(cv ROCCurve, i int) string {
	name := strings.TrimSpace(cv.Name)
	if name == "" {
		name = fmt.Sprintf("curve %d", i+1)
	}
	if math.IsNaN(cv.AUC) || math.IsInf(cv.AUC, 0) {
		return name
	}
	return fmt.Sprintf("%s (AUC %.2f)", name, cv.AUC)
}
