package adversarial

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// The toy encoded layout: numeric columns [0,6) in [0,1], a constant
// column 6, and a 3-column one-hot block [7,10).
const (
	toyDim     = 10
	toyNumeric = 6
)

var toyShape = train.Shape{Ways: 3, Shots: 3, Queries: 5, MetaBatch: 4, Dim: toyDim}

func toySpace() Space {
	s := immutable(toyDim)
	for j := 0; j < toyNumeric; j++ {
		s.Mutable[j], s.Lo[j], s.Hi[j] = true, 0, 1
	}
	return s
}

// toyData draws episodes whose classes have random means in [0.2,0.8] on
// the numeric columns, with noise, clipped to [0,1]; the one-hot column is
// random.
type toyData struct {
	means [][]float64
	rng   *rand.Rand
}

func newToyData(classes int, seed uint64) *toyData {
	d := &toyData{rng: rand.New(rand.NewPCG(seed, 1))}
	for c := 0; c < classes; c++ {
		m := make([]float64, toyNumeric)
		for j := range m {
			m[j] = 0.2 + 0.6*d.rng.Float64()
		}
		d.means = append(d.means, m)
	}
	return d
}

func (d *toyData) episode(s train.Shape) *datasets.Episode {
	ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, toyDim)
	perm := d.rng.Perm(len(d.means))
	fill := func(x []float32, y []int32, per int) {
		for w := 0; w < s.Ways; w++ {
			ep.Classes[w] = perm[w]
			for i := 0; i < per; i++ {
				r := w*per + i
				y[r] = int32(w)
				row := x[r*toyDim : (r+1)*toyDim]
				for j := 0; j < toyNumeric; j++ {
					row[j] = float32(min(max(d.means[perm[w]][j]+0.12*d.rng.NormFloat64(), 0), 1))
				}
				row[toyNumeric+1+d.rng.IntN(3)] = 1
			}
		}
	}
	fill(ep.SupportX, ep.SupportY, s.Shots)
	fill(ep.QueryX, ep.QueryY, s.Queries)
	return ep
}

func (d *toyData) episodes(s train.Shape, n int) []*datasets.Episode {
	var out []*datasets.Episode
	for range n {
		out = append(out, d.episode(s))
	}
	return out
}

func cloneEpisode(ep *datasets.Episode) *datasets.Episode {
	c := *ep
	c.QueryX = append([]float32(nil), ep.QueryX...)
	return &c
}

// trainedProto meta-trains a small float32 protonet on toy data.
func trainedProto(t testing.TB, s train.Shape, hidden []int, steps int) train.Learner {
	t.Helper()
	cfg := train.DefaultConfig("protonet")
	cfg.Hidden = hidden
	cfg.Optimizer.LR = 1e-2
	l, err := train.New(cfg, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := newToyData(12, 7)
	for range steps {
		if _, err := l.MetaStep(data.episodes(s, s.MetaBatch)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

var trained = struct {
	l train.Learner
}{}

func toyLearner(t testing.TB) train.Learner {
	if trained.l == nil {
		trained.l = trainedProto(t, toyShape, []int{16}, 150)
	}
	return trained.l
}

// checkInSpace verifies x against the clean x0: immutable columns
// bit-identical, |δ| <= eps up to float32 rounding of x0±eps, and values in
// [min(Lo,x0), max(Hi,x0)] (so in [Lo,Hi] when x0 is).
func checkInSpace(t *testing.T, x, x0 []float32, eps float32, s Space) {
	t.Helper()
	d := s.Dim()
	for i, v := range x {
		j, c := i%d, x0[i]
		if !s.Mutable[j] {
			if math.Float32bits(v) != math.Float32bits(c) {
				t.Fatalf("immutable column %d changed from %g to %g", j, c, v)
			}
			continue
		}
		if math.IsNaN(float64(v)) {
			t.Fatalf("column %d is NaN", j)
		}
		tol := 1e-7 * (1 + math.Abs(float64(c)))
		if delta := math.Abs(float64(v) - float64(c)); delta > float64(eps)+tol {
			t.Fatalf("column %d moved by %g, budget %g", j, delta, eps)
		}
		lo, hi := min(s.Lo[j], c), max(s.Hi[j], c)
		if v < lo || v > hi {
			t.Fatalf("column %d = %g outside [%g, %g] (clean %g, range [%g, %g])", j, v, lo, hi, c, s.Lo[j], s.Hi[j])
		}
	}
}

// randomSpace has random ranges and mutability; clean values are mostly in
// range, some outside it.
func randomSpace(rng *rand.Rand, d int) Space {
	s := immutable(d)
	for j := range s.Mutable {
		s.Mutable[j] = rng.IntN(4) > 0
		s.Lo[j] = float32(rng.Float64()*2 - 1)
		s.Hi[j] = s.Lo[j] + float32(rng.Float64())
	}
	return s
}

func randomRows(rng *rand.Rand, s Space, rows int) []float32 {
	d := s.Dim()
	x := make([]float32, rows*d)
	for i := range x {
		j := i % d
		switch rng.IntN(10) {
		case 0:
			x[i] = s.Lo[j] - float32(rng.Float64())
		case 1:
			x[i] = s.Hi[j] + float32(rng.Float64())
		case 2:
			x[i] = s.Lo[j]
		case 3:
			x[i] = s.Hi[j]
		default:
			x[i] = s.Lo[j] + (s.Hi[j]-s.Lo[j])*rng.Float32()
		}
	}
	return x
}

// randGrad returns random gradients with some exact zeros.
type randGrad struct{ rng *rand.Rand }

func (r randGrad) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	for i := range gx {
		if r.rng.IntN(8) == 0 {
			gx[i] = 0
		} else {
			gx[i] = float32(r.rng.NormFloat64())
		}
	}
	return 0, nil
}

func TestFGSMStaysInSpace(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		d := 1 + rng.IntN(12)
		s := randomSpace(rng, d)
		rows := 1 + rng.IntN(5)
		x0 := randomRows(rng, s, rows)
		g := make([]float32, len(x0))
		randGrad{rng}.QueryInputGrad(nil, g)
		eps := float32(rng.Float64() * 0.6)
		x := append([]float32(nil), x0...)
		FGSM(x, g, eps, s)
		checkInSpace(t, x, x0, eps, s)
	}
}

func TestPGDStaysInSpace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	for trial := 0; trial < 100; trial++ {
		d := 1 + rng.IntN(12)
		s := randomSpace(rng, d)
		ep := datasets.NewEpisode(2, 1, 1+rng.IntN(3), d)
		ep.QueryX = randomRows(rng, s, len(ep.QueryY))
		x0 := append([]float32(nil), ep.QueryX...)
		eps := float32(rng.Float64() * 0.6)
		alpha := float32(rng.Float64() * 0.4)
		var start *rand.Rand
		if trial%2 == 0 {
			start = rng
		}
		if err := PGD(ctx, randGrad{rng}, ep, eps, alpha, 1+rng.IntN(8), s, start); err != nil {
			t.Fatal(err)
		}
		checkInSpace(t, ep.QueryX, x0, eps, s)
	}
	// And with a real model on encoded-like rows.
	l := toyLearner(t)
	data := newToyData(12, 11)
	s := toySpace()
	for i := 0; i < 10; i++ {
		ep := data.episode(toyShape)
		x0 := append([]float32(nil), ep.QueryX...)
		eps := []float32{0.01, 0.1, 0.5, 2}[i%4]
		if err := PGD(ctx, l.(train.InputGradienter), ep, eps, eps/3, 6, s, rand.New(rand.NewPCG(uint64(i), 0))); err != nil {
			t.Fatal(err)
		}
		checkInSpace(t, ep.QueryX, x0, eps, s)
		for k, v := range ep.QueryX {
			if s.Mutable[k%toyDim] && (v < 0 || v > 1) {
				t.Fatalf("numeric value %g left [0,1]", v)
			}
		}
	}
}

// sourceGrad fails when asked about an episode that still says its query
// rows are a pool's: a device-resident learner would read the clean rows.
type sourceGrad struct{}

func (sourceGrad) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	if ep.Source != nil {
		return 0, fmt.Errorf("gradient asked at perturbed rows of an episode whose Source is still set")
	}
	clear(gx)
	return 0, nil
}

func TestPGDClearsSource(t *testing.T) {
	s := toySpace()
	ep := datasets.NewEpisode(2, 1, 2, toyDim)
	for i := range ep.QueryX {
		ep.QueryX[i] = 0.5
	}
	ep.Source = make([]float32, 8*toyDim)
	if err := PGD(context.Background(), sourceGrad{}, ep, 0.1, 0.05, 2, s, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	if ep.Source != nil {
		t.Fatal("PGD left Source set on the rows it perturbed")
	}
}

// TestFGSMHandComputed uses nearest-centroid, whose Euclidean logits are
// linear in the query up to a term shared by all ways: for two ways the
// query-loss gradient of a way-0 row is 2·p₁·(P₁−P₀), so the FGSM step is
// eps·sign(P₁−P₀), and the mirror image for a way-1 row.
func TestFGSMHandComputed(t *testing.T) {
	cfg := train.DefaultConfig("nearest-centroid")
	cfg.Hidden = nil
	l, err := train.New(cfg, train.Shape{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep := datasets.NewEpisode(2, 1, 1, 4)
	copy(ep.SupportX, []float32{0.2, 0.2, 0.4, 1, 0.8, 0.1, 0.6, 0})
	ep.SupportY[0], ep.SupportY[1] = 0, 1
	copy(ep.QueryX, []float32{0.3, 0.05, 0.5, 1, 0.7, 0.5, 0.2, 0})
	ep.QueryY[0], ep.QueryY[1] = 0, 1
	s := Space{Lo: []float32{0, 0, 0, 0}, Hi: []float32{1, 1, 1, 1}, Mutable: []bool{true, true, true, false}}
	g := make([]float32, 8)
	if _, err := l.(train.InputGradienter).QueryInputGrad(ep, g); err != nil {
		t.Fatal(err)
	}
	const eps = float32(0.1)
	x := append([]float32(nil), ep.QueryX...)
	FGSM(x, g, eps, s)
	v := func(f float32) float32 { return f } // float32 arithmetic, as FGSM does it
	want := []float32{
		v(0.3) + eps, 0, v(0.5) + eps, 1, // sign(P₁−P₀) = (+,−,+,·); 0.05−0.1 clips at 0; column 3 is immutable
		v(0.7) - eps, v(0.5) + eps, v(0.2) - eps, 0, // sign(P₀−P₁) = (−,+,−,·)
	}
	for i := range want {
		if x[i] != want[i] {
			t.Fatalf("FGSM gave %v, want %v (gradient %v)", x, want, g)
		}
	}
}

func TestPGDOneStepWithoutStartIsFGSM(t *testing.T) {
	l := toyLearner(t)
	ig := l.(train.InputGradienter)
	data := newToyData(12, 13)
	s := toySpace()
	for i := 0; i < 5; i++ {
		ep := data.episode(toyShape)
		eps := float32(0.03 * float64(i+1))
		a := cloneEpisode(ep)
		if err := PGD(context.Background(), ig, a, eps, eps, 1, s, nil); err != nil {
			t.Fatal(err)
		}
		b := cloneEpisode(ep)
		g := make([]float32, len(b.QueryX))
		if _, err := ig.QueryInputGrad(b, g); err != nil {
			t.Fatal(err)
		}
		FGSM(b.QueryX, g, eps, s)
		for k := range a.QueryX {
			if math.Float32bits(a.QueryX[k]) != math.Float32bits(b.QueryX[k]) {
				t.Fatalf("eps %g: PGD and FGSM differ at %d: %g vs %g", eps, k, a.QueryX[k], b.QueryX[k])
			}
		}
	}
}

func TestAttacksDoNotDecreaseLoss(t *testing.T) {
	l := toyLearner(t)
	ig := l.(train.InputGradienter)
	data := newToyData(12, 17)
	s := toySpace()
	const eps, steps = float32(0.1), 10
	var clean, fgsm, pgd float64
	g := make([]float32, toyShape.Ways*toyShape.Queries*toyDim)
	loss := func(ep *datasets.Episode) float64 {
		v, err := ig.QueryInputGrad(ep, g)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	const n = 20
	for i := 0; i < n; i++ {
		ep := data.episode(toyShape)
		clean += loss(ep)
		a := cloneEpisode(ep)
		FGSM(a.QueryX, g, eps, s) // g is the clean gradient
		fgsm += loss(a)
		b := cloneEpisode(ep)
		if err := PGD(context.Background(), ig, b, eps, PGDStepScale*eps/steps, steps, s, rand.New(rand.NewPCG(uint64(i), 5))); err != nil {
			t.Fatal(err)
		}
		pgd += loss(b)
	}
	t.Logf("mean query loss: clean %.4f, FGSM %.4f, PGD %.4f", clean/n, fgsm/n, pgd/n)
	if fgsm < clean || pgd < clean {
		t.Errorf("attack lowered the loss: clean %g, FGSM %g, PGD %g", clean/n, fgsm/n, pgd/n)
	}
}

func TestRobustness(t *testing.T) {
	l := toyLearner(t)
	eps := newToyData(12, 19).episodes(toyShape, 12)
	snap := make([][]float32, len(eps))
	for i, ep := range eps {
		snap[i] = append([]float32(nil), ep.QueryX...)
	}
	budgets := []float32{0, 0.05, 0.2}
	res, err := Robustness(context.Background(), l, eps, budgets, Attacks, 5, toySpace())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(Attacks)*len(budgets) {
		t.Fatalf("%d results, want %d", len(res), len(Attacks)*len(budgets))
	}
	for i, ep := range eps {
		for k, v := range ep.QueryX {
			if v != snap[i][k] {
				t.Fatal("Robustness modified an episode")
			}
		}
	}
	// The clean score, computed directly.
	var acc, f1 []float64
	for _, ep := range eps {
		nq := len(ep.QueryY)
		labels, scores := make([]int32, nq), make([]float32, nq*ep.Ways)
		if err := l.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		c := eval.NewConfusion(ep.Ways)
		c.AddAll(ep.QueryY, labels)
		acc, f1 = append(acc, c.Accuracy()), append(f1, c.MacroF1())
	}
	want := Result{Accuracy: eval.MeanCI(acc), MacroF1: eval.MeanCI(f1)}
	for _, r := range res {
		t.Logf("%s eps %g: accuracy %s, macro-F1 %s", r.Attack, r.Eps, r.Accuracy.Format(100, 1), r.MacroF1.Format(100, 1))
		if r.Eps == 0 {
			if r.Accuracy != want.Accuracy || r.MacroF1 != want.MacroF1 {
				t.Errorf("%s at eps 0: %+v, clean is %+v", r.Attack, r, want)
			}
			continue
		}
		if r.Accuracy.Mean > want.Accuracy.Mean {
			t.Errorf("%s at eps %g: accuracy %g above clean %g", r.Attack, r.Eps, r.Accuracy.Mean, want.Accuracy.Mean)
		}
	}
	if want.Accuracy.Mean < 0.7 {
		t.Errorf("clean accuracy %g: the toy model did not train", want.Accuracy.Mean)
	}
	last := res[len(budgets)-1] // fgsm at the largest budget
	if last.Accuracy.Mean >= want.Accuracy.Mean {
		t.Errorf("FGSM at eps %g did not lower accuracy (%g)", last.Eps, last.Accuracy.Mean)
	}

	var buf bytes.Buffer
	if err := Table("robustness", res).Render(&buf, eval.Format("markdown")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "pgd") {
		t.Errorf("table lacks the PGD rows:\n%s", buf.String())
	}
	stem := filepath.Join(t.TempDir(), "robust")
	if err := Plot(stem, "robustness", res); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stem + ".png"); err != nil {
		t.Error(err)
	}
}

func TestRobustnessErrors(t *testing.T) {
	l := toyLearner(t)
	eps := newToyData(12, 23).episodes(toyShape, 1)
	ctx := context.Background()
	for _, c := range []struct {
		budgets []float32
		attacks []string
		steps   int
		s       Space
	}{
		{[]float32{0.1}, []string{"cw"}, 5, toySpace()},
		{[]float32{-0.1}, []string{"fgsm"}, 5, toySpace()},
		{[]float32{0.1}, []string{"pgd"}, 0, toySpace()},
		{[]float32{0.1}, []string{"fgsm"}, 5, Box(3, 0, 1)},
	} {
		if _, err := Robustness(ctx, l, eps, c.budgets, c.attacks, c.steps, c.s); err == nil {
			t.Errorf("%v %v steps %d dim %d: no error", c.budgets, c.attacks, c.steps, c.s.Dim())
		}
	}
	cfg := train.DefaultConfig("protonet")
	cfg.Engine = "gorgonia"
	g, err := train.New(cfg, toyShape, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Robustness(ctx, g, eps, []float32{0.1}, []string{"fgsm"}, 1, toySpace()); err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Errorf("gorgonia learner: got %v, want a not-implemented error", err)
	}
}

func TestAdversarialBatch(t *testing.T) {
	// Its own learner, since MetaStep changes it.
	l := trainedProto(t, toyShape, []int{16}, 50)
	ig := l.(train.InputGradienter)
	data := newToyData(12, 29)
	s := toySpace()
	b := datasets.Batch(data.episodes(toyShape, 3))
	clean := make([][]float32, len(b))
	for i, ep := range b {
		clean[i] = append([]float32(nil), ep.QueryX...)
		ep.Source = make([]float32, toyDim) // as if drawn from a pool
	}
	const eps, mix = float32(0.05), 0.4
	if err := AdversarialBatch(ig, b, eps, s, mix, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}
	nq := toyShape.Ways * toyShape.Queries
	want := int(math.Round(mix * float64(nq)))
	for i, ep := range b {
		checkInSpace(t, ep.QueryX, clean[i], eps, s)
		changed := 0
		for r := 0; r < nq; r++ {
			for j := 0; j < toyDim; j++ {
				if ep.QueryX[r*toyDim+j] != clean[i][r*toyDim+j] {
					changed++
					break
				}
			}
		}
		if changed == 0 || changed > want {
			t.Errorf("episode %d: %d rows changed, want %d", i, changed, want)
		}
		if ep.Source != nil {
			t.Errorf("episode %d: perturbed in place but still claims its pool's rows", i)
		}
	}
	if _, err := l.MetaStep(b); err != nil {
		t.Fatal(err)
	}
	b[0].RowsOnly = true
	if err := AdversarialBatch(ig, b, eps, s, 1, nil); err == nil || !strings.Contains(err.Error(), "row numbers only") {
		t.Errorf("a RowsOnly episode: %v", err)
	}
	b[0].RowsOnly = false
	if err := AdversarialBatch(ig, b, eps, s, 0.5, nil); err == nil {
		t.Error("partial mix without a random source accepted")
	}
	if err := AdversarialBatch(ig, b, eps, s, 1.5, nil); err == nil {
		t.Error("mix 1.5 accepted")
	}
	if err := AdversarialBatch(ig, b, eps, s, 1, nil); err != nil {
		t.Errorf("full mix: %v", err)
	}
}

func toyEncoder(scaling datasets.Scaling) *datasets.Encoder {
	e := &datasets.Encoder{Scaling: scaling, Log1p: true}
	for j := range e.Scale {
		e.Offset[j], e.Scale[j] = 0.5, 2
	}
	e.Scale[3] = 0 // a constant column
	e.Values = [3][]string{{"icmp", "tcp", "udp"}, {"http"}, {"SF", "S0"}}
	return e
}

func TestNewSpace(t *testing.T) {
	enc := toyEncoder(datasets.MinMax)
	s := NewSpace(enc)
	if s.Dim() != enc.Dim() || s.Validate() != nil {
		t.Fatalf("space of %d columns (%v), encoder has %d", s.Dim(), s.Validate(), enc.Dim())
	}
	for j := 0; j < s.Dim(); j++ {
		numeric := j < datasets.NumNumeric && j != 3
		if s.Mutable[j] != numeric {
			t.Errorf("column %d mutable %v, want %v", j, s.Mutable[j], numeric)
		}
		if numeric && (s.Lo[j] != 0 || s.Hi[j] != 1) {
			t.Errorf("column %d range [%g,%g], want [0,1]", j, s.Lo[j], s.Hi[j])
		}
	}
	z := NewSpace(toyEncoder(datasets.ZScore))
	if z.Lo[0] != -1 || z.Hi[0] != -1+ZScoreSpan || z.Mutable[3] {
		t.Errorf("z-score column 0 range [%g,%g], want [-1,%d]; constant column mutable %v", z.Lo[0], z.Hi[0], -1+ZScoreSpan, z.Mutable[3])
	}
	m := &datasets.Matrix{Rows: 2, Dim: enc.Dim(), X: make([]float32, 2*enc.Dim())}
	m.X[0], m.X[enc.Dim()] = -0.5, 3
	d, err := SpaceFromData(toyEncoder(datasets.ZScore), m)
	if err != nil {
		t.Fatal(err)
	}
	if d.Lo[0] != -0.5 || d.Hi[0] != 3 || d.Lo[1] != 0 || d.Hi[1] != 0 {
		t.Errorf("data ranges [%g,%g] and [%g,%g], want [-0.5,3] and [0,0]", d.Lo[0], d.Hi[0], d.Lo[1], d.Hi[1])
	}
	if _, err := SpaceFromData(enc, &datasets.Matrix{Rows: 1, Dim: 5, X: make([]float32, 5)}); err == nil {
		t.Error("matrix of the wrong width accepted")
	}
}

// BenchmarkPGD attacks a 5-way 5-shot 15-query episode of dimension 125
// with 10 PGD steps against a protonet with one hidden layer of 64.
func BenchmarkPGD(b *testing.B) {
	s := train.Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 1, Dim: 125}
	cfg := train.DefaultConfig("protonet")
	l, err := train.New(cfg, s, nil)
	if err != nil {
		b.Fatal(err)
	}
	syn, err := train.NewSynthetic(10, s.Dim, 20, 1, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
	if err := syn.Fill(ep, 0, 10); err != nil {
		b.Fatal(err)
	}
	clean := append([]float32(nil), ep.QueryX...)
	sp := Box(s.Dim, -10, 10)
	ig := l.(train.InputGradienter)
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		copy(ep.QueryX, clean)
		if err := PGD(ctx, ig, ep, 0.1, 0.025, 10, sp, rng); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "episodes/s")
}

// recordGrad returns a gradient of +1 everywhere and keeps a copy of the
// query rows it was asked about at each call.
type recordGrad struct{ seen [][]float32 }

func (r *recordGrad) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	r.seen = append(r.seen, append([]float32(nil), ep.QueryX...))
	for i := range gx {
		gx[i] = 1
	}
	return 0, nil
}

// TestRobustnessPGDSchedule checks the PGD that Robustness runs against its
// documented schedule (experiments/README.md): a random start inside the
// budget's ball, then steps of 2.5·eps/steps along the gradient's sign, each
// projected onto the ball (clean values at 0.5, so the space's [0,1] never
// binds).
func TestRobustnessPGDSchedule(t *testing.T) {
	const eps, steps = float32(0.04), 10
	alpha := 2.5 * eps / steps
	s := toySpace()
	ep := datasets.NewEpisode(2, 1, 2, toyDim)
	for i := range ep.QueryX {
		if s.Mutable[i%toyDim] {
			ep.QueryX[i] = 0.5
		}
	}
	clean := append([]float32(nil), ep.QueryX...)
	ig := &recordGrad{}
	if err := attack(context.Background(), ig, ep, "pgd", eps, steps, s, 3); err != nil {
		t.Fatal(err)
	}
	if len(ig.seen) != steps {
		t.Fatalf("%d gradient evaluations, want %d", len(ig.seen), steps)
	}
	moved := 0
	for i, v := range ig.seen[0] {
		if v != clean[i] {
			moved++
		}
	}
	checkInSpace(t, ig.seen[0], clean, eps, s)
	if want := len(ep.QueryY) * toyNumeric; moved != want {
		t.Errorf("the first gradient was taken at %d moved coordinates, want a random start in all %d", moved, want)
	}
	for k := 0; k < steps; k++ {
		next := ep.QueryX
		if k+1 < steps {
			next = ig.seen[k+1]
		}
		for i, v := range next {
			if !s.Mutable[i%toyDim] {
				continue
			}
			want := min(ig.seen[k][i]+alpha, clean[i]+eps)
			if math.Abs(float64(v-want)) > 1e-6 {
				t.Fatalf("step %d, value %d: %g, want min(%g + %g, %g + %g)", k+1, i, v, ig.seen[k][i], alpha, clean[i], eps)
			}
		}
	}
}
