package eval

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotDir returns where a test writes figures: a temporary directory, or
// $EVAL_PLOT_DIR when set, to keep the figures for looking at.
func plotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("EVAL_PLOT_DIR"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func pixels(l vg.Length) int { return int(l/vg.Inch*pngDPI + 0.5) }

// checkFigure verifies stem.png decodes at the expected size and stem.svg
// is well-formed and contains every string in want.
func checkFigure(t *testing.T, stem string, w, h vg.Length, want ...string) {
	t.Helper()
	raw, err := os.ReadFile(stem + ".png")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s.png: missing PNG signature", stem)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s.png: %v", stem, err)
	}
	if b := img.Bounds(); b.Dx() != pixels(w) || b.Dy() != pixels(h) {
		t.Errorf("%s.png: %dx%d px; want %dx%d", stem, b.Dx(), b.Dy(), pixels(w), pixels(h))
	}

	svg, err := os.ReadFile(stem + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<?xml")) && !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("%s.svg: does not start with <?xml or <svg: %.40q", stem, svg)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s.svg: not well-formed XML: %v", stem, err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text.Write(cd)
		}
	}
	for _, s := range want {
		if !strings.Contains(text.String(), s) {
			t.Errorf("%s.svg: text %q not found", stem, s)
		}
	}
}

// checkDir fails if dir holds anything but the named entries, which is how
// the tests catch leftover temporary files.
func checkDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q; want %q", dir, got, names)
	}
}

var testClasses = []string{"BENIGN", "DoS Hulk", "PortScan", "DDoS", "Web Attack – Brute Force", "Bot & Infiltration"}

func TestPlotLearningCurve(t *testing.T) {
	dir := plotDir(t)
	var steps []int
	var loss []float64
	for i := 0; i <= 200; i++ {
		steps = append(steps, i*50)
		loss = append(loss, 1.6*math.Exp(-float64(i)/60)+0.25+0.05*math.Sin(float64(i)))
	}
	loss[17] = math.NaN() // a diverged step is skipped, not fatal
	var vsteps []int
	var acc, ci []float64
	for i := 0; i <= 20; i++ {
		vsteps = append(vsteps, i*500)
		acc = append(acc, 0.9-0.5*math.Exp(-float64(i)/5))
		ci = append(ci, 0.04-0.001*float64(i))
	}

	stem := filepath.Join(dir, "curve")
	if err := PlotLearningCurve(stem, "ProtoNet 5-way 5-shot", steps, loss, vsteps, acc, ci); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "ProtoNet 5-way 5-shot", "meta-train loss", "meta-val accuracy")
	checkDir(t, dir, "curve.png", "curve.svg")

	// Validation-free runs and single evaluations still plot.
	if err := PlotLearningCurve(filepath.Join(dir, "noval"), "no val", steps, loss, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, filepath.Join(dir, "noval"), figW, figH, "meta-train loss")
	if err := PlotLearningCurve(filepath.Join(dir, "oneval"), "one val", nil, nil, []int{100}, []float64{0.7}, []float64{0.05}); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, filepath.Join(dir, "oneval"), figW, figH, "meta-val accuracy")
}

func TestPlotEpochLoss(t *testing.T) {
	dir := plotDir(t)
	stem := filepath.Join(dir, "curve")
	if err := PlotEpochLoss(stem, "supervised", []int{1, 2, 3}, []float64{0.4, 0.2, 0.1}); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "supervised", "epoch", "training loss")
	svg, err := os.ReadFile(stem + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(svg), "meta-") || strings.Contains(string(svg), ">step<") {
		t.Errorf("%s.svg names meta-training or steps", stem)
	}
}

func TestPlotLearningCurveErrors(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "curve")
	nan := math.NaN()
	cases := []struct {
		name, want string
		steps      []int
		loss       []float64
		vsteps     []int
		acc, ci    []float64
	}{
		{"empty", "both empty", nil, nil, nil, nil, nil},
		{"loss length", "trainLoss", []int{1, 2}, []float64{1}, nil, nil, nil},
		{"val length", "valAcc", nil, nil, []int{1}, []float64{0.5, 0.6}, nil},
		{"ci length", "valCI", nil, nil, []int{1}, []float64{0.5}, []float64{0.1, 0.1}},
		{"negative ci", "valCI", nil, nil, []int{1}, []float64{0.5}, []float64{-0.1}},
		{"nan loss", "trainLoss", []int{1, 2}, []float64{nan, nan}, nil, nil, nil},
		{"nan acc", "valAcc", []int{1}, []float64{1}, []int{1}, []float64{nan}, nil},
	}
	for _, c := range cases {
		err := PlotLearningCurve(stem, "t", c.steps, c.loss, c.vsteps, c.acc, c.ci)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one naming %q", c.name, err, c.want)
		}
	}
	checkDir(t, dir)
}

func TestPlotPerClassF1(t *testing.T) {
	dir := plotDir(t)
	f1 := []float64{0.99, 0.93, 0.87, 0.95, 0.41, math.NaN()}
	ci := []float64{0.005, 0.02, 0.03, 0.02, 0.12, math.NaN()}
	stem := filepath.Join(dir, "f1")
	if err := PlotPerClassF1(stem, "Per-class F1, CIC-IDS2017", testClasses, f1, ci); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "Per-class F1", "Web Attack – Brute Force", "Bot & Infiltration", "0.41", "n/a")

	// Many classes make the figure taller rather than cramming the bars.
	var many []string
	var vals []float64
	for i := range 30 {
		many = append(many, "class "+string(rune('A'+i%26))+strings.Repeat("x", i%5))
		vals = append(vals, float64(i)/30)
	}
	stem = filepath.Join(dir, "f1many")
	if err := PlotPerClassF1(stem, "many", many, vals, nil); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, 2*vg.Centimeter+30*5.5*vg.Millimeter, "class A")
	checkDir(t, dir, "f1.png", "f1.svg", "f1many.png", "f1many.svg")
}

func TestPlotPerClassF1Errors(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "f1")
	nan := math.NaN()
	cases := []struct {
		name, want string
		classes    []string
		f1, ci     []float64
	}{
		{"no classes", "classes", nil, nil, nil},
		{"f1 length", "f1", []string{"a", "b"}, []float64{0.5}, nil},
		{"ci length", "ci", []string{"a"}, []float64{0.5}, []float64{0.1, 0.2}},
		{"negative ci", "ci[0]", []string{"a"}, []float64{0.5}, []float64{-1}},
		{"out of range", "f1[1]", []string{"a", "b"}, []float64{0.5, 1.5}, nil},
		{"all nan", "f1", []string{"a", "b"}, []float64{nan, nan}, nil},
	}
	for _, c := range cases {
		err := PlotPerClassF1(stem, "t", c.classes, c.f1, c.ci)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one naming %q", c.name, err, c.want)
		}
	}
	checkDir(t, dir)
}

func testConfusion() *Confusion {
	c := NewConfusion(len(testClasses))
	rows := [][]int64{
		{9500, 120, 30, 5, 40, 12},
		{80, 4100, 0, 20, 0, 0},
		{15, 0, 3200, 0, 2, 0},
		{3, 10, 0, 2800, 0, 0},
		{60, 0, 4, 0, 45, 0},
		{0, 0, 0, 0, 0, 0}, // a class absent from the test split
	}
	for t, r := range rows {
		copy(c.Counts[t*c.N:], r)
	}
	return c
}

func TestPlotConfusion(t *testing.T) {
	dir := plotDir(t)
	c := testConfusion()
	const w, h = 16 * vg.Centimeter, 14 * vg.Centimeter
	stem := filepath.Join(dir, "counts")
	if err := PlotConfusion(stem, "Confusion (counts)", testClasses, c, false); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, w, h, "Confusion (counts)", "PortScan", "9500", "true class", "predicted class")

	stem = filepath.Join(dir, "norm")
	if err := PlotConfusion(stem, "Confusion (row %)", testClasses, c, true); err != nil {
		t.Fatal(err)
	}
	// 45 of 109 web attacks were caught; the empty row is marked, not 0%.
	checkFigure(t, stem, w, h, "Confusion (row %)", "41.3%", "–")

	// Many classes: annotations shrink and column labels rotate.
	big := NewConfusion(15)
	names := make([]string, 15)
	for i := range names {
		names[i] = "attack family " + string(rune('A'+i))
		for j := 0; j < 15; j++ {
			big.Counts[i*15+j] = int64((i*7 + j*3) % 11)
		}
		big.Counts[i*15+i] = 123456
	}
	stem = filepath.Join(dir, "big")
	if err := PlotConfusion(stem, "15 classes", names, big, false); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, w, h, "attack family O", "123k")
	checkDir(t, dir, "counts.png", "counts.svg", "norm.png", "norm.svg", "big.png", "big.svg")
}

func TestPlotConfusionErrors(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "cm")
	neg := NewConfusion(2)
	neg.Counts[1] = -1
	short := &Confusion{N: 2, Counts: make([]int64, 3)}
	cases := []struct {
		name, want string
		classes    []string
		c          *Confusion
	}{
		{"nil", "c is nil", []string{"a"}, nil},
		{"no classes", "no classes", nil, NewConfusion(0)},
		{"name count", "classes", []string{"a"}, NewConfusion(2)},
		{"short counts", "counts", []string{"a", "b"}, short},
		{"negative", "c.Counts[1]", []string{"a", "b"}, neg},
		{"empty", "no samples", []string{"a", "b"}, NewConfusion(2)},
	}
	for _, c := range cases {
		for _, norm := range []bool{false, true} {
			err := PlotConfusion(stem, "t", c.classes, c.c, norm)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s (normalise %v): err = %v; want one naming %q", c.name, norm, err, c.want)
			}
		}
	}
	checkDir(t, dir)
}

func TestPlotBars(t *testing.T) {
	dir := plotDir(t)
	groups := []string{"1-shot", "5-shot", "10-shot", "20-shot"}
	series := []BarSeries{
		{Name: "ProtoNet", Values: []float64{0.71, 0.84, 0.88, 0.90}, CI: []float64{0.03, 0.02, 0.015, 0.01}},
		{Name: "MAML", Values: []float64{0.65, 0.80, 0.86, 0.89}, CI: []float64{0.04, 0.03, 0.02, 0.02}},
		{Name: "fine-tune baseline", Values: []float64{0.52, 0.70, math.NaN(), 0.85}},
	}
	stem := filepath.Join(dir, "bars")
	if err := PlotBars(stem, "Accuracy by shot", "accuracy", groups, series); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "Accuracy by shot", "10-shot", "fine-tune baseline", "accuracy")

	// Negative values and long group names (rotated labels).
	long := []string{"no perturbation", "FGSM ε=0.01", "FGSM ε=0.05", "PGD ε=0.01", "PGD ε=0.05", "feature dropout 20%"}
	stem = filepath.Join(dir, "robust")
	if err := PlotBars(stem, "Robustness", "Δ accuracy", long, []BarSeries{
		{Name: "ProtoNet", Values: []float64{0, -0.02, -0.08, -0.05, -0.19, -0.03}},
		{Name: "MAML", Values: []float64{0, -0.03, -0.12, -0.07, -0.25, -0.01}, CI: []float64{0, 0.01, 0.02, 0.02, 0.03, 0.01}},
	}); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "feature dropout 20%", "Δ accuracy")
	checkDir(t, dir, "bars.png", "bars.svg", "robust.png", "robust.svg")
}

// A report's row label holds a run name of up to 255 characters: rotated
// whole, it took the figure's height and left no room for the bars.
func TestPlotBarsElidesLongGroupNames(t *testing.T) {
	dir := plotDir(t)
	long := "protonet (" + strings.Repeat("grid-h64-lr0.001-", 14) + "end)"
	groups := []string{long, "maml", long + "2"}
	stem := filepath.Join(dir, "bars")
	if err := PlotBars(stem, "t", "accuracy %", groups, []BarSeries{{Values: []float64{90, 50, 80}}}); err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "protonet (grid", "…", "-end)", "-end)2", "maml")
	svg, err := os.ReadFile(stem + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(svg, []byte(long)) {
		t.Errorf("%s.svg: the whole %d-character name is drawn", stem, len(long))
	}
	// The tallest bar (90 on an axis to 90) spans most of the data area,
	// which must keep a good part of the figure.
	var tallest float64
	for _, m := range regexp.MustCompile(`<path d="M[\d.]+,([\d.]+)L[\d.]+,[\d.]+L[\d.]+,([\d.]+)L[^"]*" style="fill:#0072B2"`).FindAllSubmatch(svg, -1) {
		y0, _ := strconv.ParseFloat(string(m[1]), 64)
		y1, _ := strconv.ParseFloat(string(m[2]), 64)
		tallest = math.Max(tallest, math.Abs(y1-y0))
	}
	if h := figH.Points(); tallest < 0.4*h {
		t.Errorf("tallest bar %.1f pt high in a %.1f pt figure; want at least 40%%", tallest, h)
	}
}

// A run name of up to 255 characters goes into every per-run plot's title:
// drawn on one line, centred, it lost both ends, run name and all.
func TestLongTitlesStayInside(t *testing.T) {
	dir := plotDir(t)
	title := strings.Repeat("a_very_long_run_name_", 8) + "x-5shot: per-class F1 on meta-test"
	c := testConfusion()
	bars := []BarSeries{{Name: "1-shot", Values: []float64{0.5, 0.6}}, {Name: "5-shot", Values: []float64{0.7, 0.8}}}
	roc := []ROCCurve{{Name: "seed 1", FPR: []float64{0, 0.5, 1}, TPR: []float64{0, 0.8, 1}, AUC: 0.65}}
	for _, f := range []struct {
		name string
		w    vg.Length
		plot func(stem string) error
	}{
		{"curve", figW, func(stem string) error {
			return PlotLearningCurve(stem, title, []int{1, 2}, []float64{0.5, 0.4}, []int{2}, []float64{0.8}, nil)
		}},
		{"f1", figW, func(stem string) error { return PlotPerClassF1(stem, title, testClasses, make([]float64, 6), nil) }},
		{"confusion", 16 * vg.Centimeter, func(stem string) error { return PlotConfusion(stem, title, testClasses, c, true) }},
		{"bars", figW, func(stem string) error { return PlotBars(stem, title, "accuracy", []string{"protonet", "maml"}, bars) }},
		{"roc", figW, func(stem string) error { return PlotROC(stem, title, roc) }},
	} {
		stem := filepath.Join(dir, f.name)
		if err := f.plot(stem); err != nil {
			t.Fatal(err)
		}
		svg, err := os.ReadFile(stem + ".svg")
		if err != nil {
			t.Fatal(err)
		}
		sty := draw.TextStyle{Font: font.From(sansFont, 11), Handler: plot.DefaultTextHandler}
		var shown string
		var lines []string
		for _, m := range regexp.MustCompile(`<text x="([-\d.]+)"[^>]*font-size:11px">([^<]*)</text>`).FindAllSubmatch(svg, -1) {
			x, _ := strconv.ParseFloat(string(m[1]), 64)
			line := string(m[2])
			if w := sty.Width(line).Points(); x < 0 || x+w > f.w.Points() {
				t.Errorf("%s: title line %q spans %.1f to %.1f pt of a %.1f pt figure", f.name, line, x, x+w, f.w.Points())
			}
			shown += line
			lines = append(lines, line)
		}
		// Every character of it, on however many lines.
		if strings.ReplaceAll(shown, " ", "") != strings.ReplaceAll(title, " ", "") {
			t.Errorf("%s: title shows %q", f.name, shown)
		}
		// The name is broken between its parts, not inside one: every
		// line of it but the last ends at an underscore.
		for _, line := range lines[:len(lines)-1] {
			if !strings.HasSuffix(line, "_") && !strings.Contains(line, " ") {
				t.Errorf("%s: title line %q breaks a part of the name (lines %q)", f.name, line, lines)
			}
		}
	}
}

func TestElideKeepsNamesApart(t *testing.T) {
	sty := draw.TextStyle{Font: font.From(sansFont, 9), Handler: plot.DefaultTextHandler}
	limit := 3 * vg.Centimeter
	a := strings.Repeat("x", 60) + "A" + strings.Repeat("y", 60)
	b := strings.Repeat("x", 60) + "B" + strings.Repeat("y", 60)
	c := "c" + strings.Repeat("z", 100)
	got := elide(sty, []string{a, b, c, "short"}, limit)
	// a and b differ only in the middle the ellipsis would take.
	if got[0] != a || got[1] != b || got[3] != "short" {
		t.Errorf("elide kept %q; want the names that would read alike whole", got)
	}
	if !strings.HasPrefix(got[2], "c") || !strings.Contains(got[2], "…") || sty.Width(got[2]) > limit {
		t.Errorf("elide(%q) = %q (%.1f pt); want it within %.1f pt", c, got[2], sty.Width(got[2]).Points(), limit.Points())
	}
}

func TestPlotBarsErrors(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "bars")
	nan := math.NaN()
	g := []string{"a", "b"}
	cases := []struct {
		name, want string
		groups     []string
		series     []BarSeries
	}{
		{"no groups", "groups", nil, []BarSeries{{Values: nil}}},
		{"no series", "series", g, nil},
		{"length", `series[1] ("m")`, g, []BarSeries{{Name: "p", Values: []float64{1, 2}}, {Name: "m", Values: []float64{1}}}},
		{"ci length", "CI", g, []BarSeries{{Values: []float64{1, 2}, CI: []float64{1}}}},
		{"negative ci", "CI[1]", g, []BarSeries{{Values: []float64{1, 2}, CI: []float64{1, -1}}}},
		{"inf", "Values[0]", g, []BarSeries{{Values: []float64{math.Inf(1), 2}}}},
		{"all nan", "no finite", g, []BarSeries{{Values: []float64{nan, nan}}}},
	}
	for _, c := range cases {
		err := PlotBars(stem, "t", "y", c.groups, c.series)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one naming %q", c.name, err, c.want)
		}
	}
	checkDir(t, dir)
}

func TestPlotROC(t *testing.T) {
	dir := plotDir(t)
	curve := func(k float64) (fpr, tpr []float64) {
		for i := 0; i <= 50; i++ {
			x := float64(i) / 50
			fpr = append(fpr, x)
			tpr = append(tpr, math.Pow(x, 1/k))
		}
		return
	}
	f1, t1 := curve(8)
	f2, t2 := curve(3)
	// Reversed order must still draw a monotone curve.
	slices.Reverse(f2)
	slices.Reverse(t2)
	stem := filepath.Join(dir, "roc")
	err := PlotROC(stem, "BENIGN vs attack", []ROCCurve{
		{Name: "ProtoNet", FPR: f1, TPR: t1, AUC: 8.0 / 9},
		{Name: "MAML", FPR: f2, TPR: t2, AUC: 0.75},
		{Name: "random", FPR: []float64{0, 1}, TPR: []float64{0, 1}, AUC: math.NaN()},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFigure(t, stem, figW, figH, "BENIGN vs attack", "ProtoNet (AUC 0.89)", "MAML (AUC 0.75)", "random", "false positive rate")
	checkDir(t, dir, "roc.png", "roc.svg")
}

func TestPlotROCErrors(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "roc")
	cases := []struct {
		name, want string
		curves     []ROCCurve
	}{
		{"none", "curves is empty", nil},
		{"length", `curves[0] ("a")`, []ROCCurve{{Name: "a", FPR: []float64{0, 1}, TPR: []float64{0}}}},
		{"one point", "at least 2", []ROCCurve{{FPR: []float64{0}, TPR: []float64{0}}}},
		{"range", "point 1", []ROCCurve{{FPR: []float64{0, 1.5}, TPR: []float64{0, 1}}}},
		{"nan", `curves[1] ("b") point 0`, []ROCCurve{
			{FPR: []float64{0, 1}, TPR: []float64{0, 1}},
			{Name: "b", FPR: []float64{math.NaN(), 1}, TPR: []float64{0, 1}},
		}},
	}
	for _, c := range cases {
		err := PlotROC(stem, "t", c.curves)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one naming %q", c.name, err, c.want)
		}
	}
	checkDir(t, dir)
}

// A failed write must leave neither temporary files nor a changed target.
func TestPlotWriteFailure(t *testing.T) {
	dir := t.TempDir()
	stem := filepath.Join(dir, "roc")
	// A directory where the SVG should go makes the final rename fail.
	if err := os.Mkdir(stem+".svg", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stem+".svg", "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	curves := []ROCCurve{{Name: "a", FPR: []float64{0, 0.2, 1}, TPR: []float64{0, 0.8, 1}, AUC: 0.8}}
	if err := PlotROC(stem, "t", curves); err == nil {
		t.Fatal("PlotROC succeeded with a directory in the way")
	}
	for _, n := range listNames(t, dir) {
		if strings.HasSuffix(n, ".tmp") {
			t.Errorf("temporary file %s left behind", n)
		}
	}

	// A parent path that is a file cannot be created.
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PlotROC(filepath.Join(file, "sub", "roc"), "t", curves); err == nil {
		t.Fatal("PlotROC succeeded under a regular file")
	}
	if err := PlotROC("", "t", curves); err == nil {
		t.Fatal("PlotROC accepted an empty stem")
	}

	// Missing directories are created, and the files are world-readable.
	stem = filepath.Join(dir, "new", "deeper", "roc")
	if err := PlotROC(stem, "t", curves); err != nil {
		t.Fatal(err)
	}
	checkDir(t, filepath.Dir(stem), "roc.png", "roc.svg")
	fi, err := os.Stat(stem + ".png")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o044 != 0o044 {
		t.Errorf("roc.png mode %v; want group/other readable", fi.Mode().Perm())
	}
}

func listNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestDenseTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []string // labels that must appear
	}{
		{-0.28, 0, []string{"0.00", "-0.05", "-0.25"}},
		{0, 7.5, []string{"0.00", "2.50", "5.00"}}, // already dense enough
		{0, 0.28, []string{"0.00", "0.05", "0.25"}},
		{-0.27, 2.4, []string{"0.0", "1.0", "2.0"}},
		{0, 1, []string{"0.0", "0.5", "1.0"}},
	} {
		var got []string
		for _, tk := range (denseTicks{}).Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if len(got) < 3 {
			t.Errorf("[%v,%v]: only %q labelled", c.lo, c.hi, got)
		}
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("[%v,%v]: labels %q lack %q", c.lo, c.hi, got, w)
			}
		}
	}
}

// A curve of one loss point (a supervised run of one epoch) still shows it:
// some pixels of the loss series' colour.
func TestPlotLearningCurveSingleLossPoint(t *testing.T) {
	stem := filepath.Join(t.TempDir(), "lc")
	if err := PlotLearningCurve(stem, "t", []int{5}, []float64{0.3}, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(stem + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	want := color.RGBAModel.Convert(seriesColor(0)).(color.RGBA)
	n := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			if c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA); c == want {
				n++
			}
		}
	}
	if n == 0 {
		t.Error("the single loss point is not drawn")
	}
}

func TestCellTextKeepsNearlyPerfectRowsApart(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{1, "100%"}, {2499.0 / 2500, ">99.9%"}, {0.5, "50.0%"}, {0.0004, "<0.1%"}, {0, "0"}} {
		if got := cellText(0, c.v, true); got != c.want {
			t.Errorf("cellText(%g) = %q, want %q", c.v, got, c.want)
		}
	}
}
