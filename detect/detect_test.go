package detect

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

func mustFit(t testing.TB, method Method, x []float32, rows, dim int, shrinkage float64) *NormalModel {
	t.Helper()
	m, err := Fit(method, x, rows, dim, shrinkage)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scores(t testing.TB, m *NormalModel, x []float32) []float64 {
	t.Helper()
	out := make([]float64, len(x)/m.Dim())
	if err := m.Score(x, len(out), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// corr is the hand example: four normal rows with mean (1,2) and deviations
// (2,1), (-2,-1), (0,1), (0,-1), so that
//
//	S = (1/4)·Σ d dᵀ = (1/4)·[[8,4],[4,4]] = [[2,1],[1,1]],  det S = 1,
//	S⁻¹ = [[1,-1],[-1,2]].
//
// The probes are the mean plus (2,2), along the correlation, and plus
// (2,-2), against it: the same Euclidean distance, 8, but Mahalanobis
//
//	(2,2)·S⁻¹·(2,2)ᵀ  = (2,2)·(0,2)ᵀ  = 4
//	(2,-2)·S⁻¹·(2,-2)ᵀ = (2,-2)·(4,-6)ᵀ = 20
//
// and the mean itself, 0.
var (
	corr       = []float32{3, 3, -1, 1, 1, 3, 1, 1}
	corrProbes = []float32{3, 4, 3, 0, 1, 2}
)

func TestEuclideanHandExample(t *testing.T) {
	m := mustFit(t, Euclidean, corr, 4, 2, 0)
	if mean := m.Mean(); mean[0] != 1 || mean[1] != 2 {
		t.Fatalf("mean %v, want [1 2]", mean)
	}
	got := scores(t, m, corrProbes)
	for i, want := range []float64{8, 8, 0} {
		if got[i] != want {
			t.Errorf("probe %d: score %g, want %g", i, got[i], want)
		}
	}
	if m.Shrinkage() != 0 || m.Method() != Euclidean || m.Rows() != 4 {
		t.Errorf("model reports shrinkage %g, method %s, rows %d", m.Shrinkage(), m.Method(), m.Rows())
	}
}

func TestMahalanobisHandExample(t *testing.T) {
	m := mustFit(t, Mahalanobis, corr, 4, 2, 0)
	got := scores(t, m, corrProbes)
	for i, want := range []float64{4, 20, 0} {
		if !near(got[i], want, 1e-12) {
			t.Errorf("probe %d: score %g, want %g", i, got[i], want)
		}
	}
}

// TestShrinkageHandExample: with λ = 1/2 and tr(S)/d = 3/2,
//
//	Σ_s = (1/2)·S + (3/4)·I = [[7/4, 1/2],[1/2, 5/4]],  det = 35/16 − 1/4 = 31/16,
//	Σ_s⁻¹ = (16/31)·[[5/4, −1/2],[−1/2, 7/4]],
//	(2,2):  (16/31)·(2,2)·(3/2, 5/2)ᵀ  = (16/31)·8  = 128/31,
//	(2,−2): (16/31)·(2,−2)·(7/2, −9/2)ᵀ = (16/31)·16 = 256/31.
//
// At λ = 1 Σ_s = (3/2)·I, so the score is the Euclidean one divided by
// tr(S)/d: 8/(3/2) = 16/3 for both probes.
func TestShrinkageHandExample(t *testing.T) {
	for _, c := range []struct {
		lambda float64
		want   []float64
	}{
		{0.5, []float64{128.0 / 31, 256.0 / 31, 0}},
		{1, []float64{16.0 / 3, 16.0 / 3, 0}},
	} {
		m := mustFit(t, Mahalanobis, corr, 4, 2, c.lambda)
		if m.Shrinkage() != c.lambda {
			t.Errorf("λ=%g: model reports %g", c.lambda, m.Shrinkage())
		}
		got := scores(t, m, corrProbes)
		for i, want := range c.want {
			if !near(got[i], want, 1e-12) {
				t.Errorf("λ=%g probe %d: score %g, want %g", c.lambda, i, got[i], want)
			}
		}
	}
}

// TestFullShrinkageIsScaledEuclidean checks λ = 1 on random data: Σ_s is
// (tr(S)/d)·I whatever S is.
func TestFullShrinkageIsScaledEuclidean(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const rows, dim = 50, 5
	x := make([]float32, rows*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * float64(1+i%dim))
	}
	// tr(S)/d, computed directly.
	var mean [dim]float64
	for i, v := range x {
		mean[i%dim] += float64(v) / rows
	}
	var tr float64
	for i, v := range x {
		d := float64(v) - mean[i%dim]
		tr += d * d / rows
	}
	scale := tr / dim
	e := scores(t, mustFit(t, Euclidean, x, rows, dim, 0), x[:10*dim])
	mh := scores(t, mustFit(t, Mahalanobis, x, rows, dim, 1), x[:10*dim])
	for i := range e {
		if !near(mh[i], e[i]/scale, 1e-10) {
			t.Errorf("row %d: λ=1 score %g, Euclidean/(tr/d) %g", i, mh[i], e[i]/scale)
		}
	}
}

// TestLedoitWolfHandExample: for corr (centred rows x_k: (2,1), (−2,−1),
// (0,1), (0,−1); n = 4, d = 2; S = [[2,1],[1,1]]; μ = tr(S)/d = 3/2):
//
//	δ = ‖S − μI‖²_F/d = ‖[[1/2,1],[1,−1/2]]‖²/2 = (1/4+1+1+1/4)/2 = 5/4
//	x_k x_kᵀ − S: [[2,1],[1,0]] for (±2,±1), [[−2,−1],[−1,0]] for (0,±1);
//	  each has ‖·‖²_F = 6, so Σ_k = 24
//	β = Σ_k/(d·n²) = 24/32 = 3/4
//	λ = min(β, δ)/δ = (3/4)/(5/4) = 3/5
func TestLedoitWolfHandExample(t *testing.T) {
	m := mustFit(t, Mahalanobis, corr, 4, 2, LedoitWolf)
	if !near(m.Shrinkage(), 0.6, 1e-12) {
		t.Errorf("Ledoit–Wolf λ = %g, want 3/5", m.Shrinkage())
	}
	// Scores are those of the explicit λ.
	want := scores(t, mustFit(t, Mahalanobis, corr, 4, 2, 0.6), corrProbes)
	got := scores(t, m, corrProbes)
	for i := range want {
		if !near(got[i], want[i], 1e-12) {
			t.Errorf("probe %d: %g with Ledoit–Wolf, %g with λ=0.6", i, got[i], want[i])
		}
	}
}

// refLedoitWolf is the Ledoit–Wolf intensity written step by step from its
// definition, with the per-sample form of β (Fit uses an expanded one).
func refLedoitWolf(x []float32, n, d int) float64 {
	// 1. Centre.
	mean := make([]float64, d)
	for i, v := range x {
		mean[i%d] += float64(v) / float64(n)
	}
	c := make([][]float64, n)
	for k := range c {
		c[k] = make([]float64, d)
		for j := range c[k] {
			c[k][j] = float64(x[k*d+j]) - mean[j]
		}
	}
	// 2. S = (1/n) Σ_k x_k x_kᵀ.
	s := make([][]float64, d)
	for i := range s {
		s[i] = make([]float64, d)
		for j := range s[i] {
			for k := 0; k < n; k++ {
				s[i][j] += c[k][i] * c[k][j] / float64(n)
			}
		}
	}
	// 3. μ = tr(S)/d.
	var mu float64
	for i := 0; i < d; i++ {
		mu += s[i][i] / float64(d)
	}
	// 4. δ = ‖S − μI‖²_F / d.
	var delta float64
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			v := s[i][j]
			if i == j {
				v -= mu
			}
			delta += v * v / float64(d)
		}
	}
	// 5. β = (1/(d n²)) Σ_k ‖x_k x_kᵀ − S‖²_F.
	var beta float64
	for k := 0; k < n; k++ {
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				v := c[k][i]*c[k][j] - s[i][j]
				beta += v * v
			}
		}
	}
	beta /= float64(d) * float64(n) * float64(n)
	// 6. λ = min(β, δ)/δ.
	return min(beta, delta) / delta
}

func TestLedoitWolfMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ n, d int }{{6, 3}, {5, 4}, {40, 3}, {700, 6}} {
		x := make([]float32, c.n*c.d)
		for i := range x {
			// Correlated columns of unequal scale.
			x[i] = float32(rng.NormFloat64() * float64(1+i%c.d))
			if i%c.d > 0 {
				x[i] += x[i-1] / 2
			}
		}
		want := refLedoitWolf(x, c.n, c.d)
		m := mustFit(t, Mahalanobis, x, c.n, c.d, LedoitWolf)
		if !near(m.Shrinkage(), want, 1e-9) {
			t.Errorf("n=%d d=%d: λ %g, reference %g", c.n, c.d, m.Shrinkage(), want)
		}
		if want <= 0 || want >= 1 {
			t.Errorf("n=%d d=%d: reference λ %g is not an interior case", c.n, c.d, want)
		}
	}
}

// TestLedoitWolfLimits: a nearly isotropic S with spread-out samples has
// β > δ, so λ clips to 1; an exactly isotropic S (δ = 0) needs no
// shrinkage, λ = 0.
func TestLedoitWolfLimits(t *testing.T) {
	// S = diag(1/2, 0.605): δ = 0.0525²·2/2 ≈ 0.00276; β = (1/8)·(Σ‖x‖⁴/4 −
	// ‖S‖²) = (1/8)·(1.23205 − 0.616025) ≈ 0.077 > δ.
	almostIso := []float32{1, 0, -1, 0, 0, 1.1, 0, -1.1}
	if m := mustFit(t, Mahalanobis, almostIso, 4, 2, LedoitWolf); m.Shrinkage() != 1 {
		t.Errorf("nearly isotropic: λ %g, want 1", m.Shrinkage())
	}
	iso := []float32{1, 0, -1, 0, 0, 1, 0, -1}
	if m := mustFit(t, Mahalanobis, iso, 4, 2, LedoitWolf); m.Shrinkage() != 0 {
		t.Errorf("isotropic: λ %g, want 0", m.Shrinkage())
	}
}

func TestFitErrors(t *testing.T) {
	line := []float32{0, 0, 1, 1, 2, 2} // rank-1 covariance
	for _, c := range []struct {
		name      string
		method    Method
		x         []float32
		rows, dim int
		shrink    float64
		wantInErr string
	}{
		{"unknown method", "cosine", corr, 4, 2, 0, "method"},
		{"one row", Euclidean, corr[:2], 1, 2, 0, "at least 2"},
		{"zero dim", Euclidean, nil, 2, 0, 0, "dim"},
		{"wrong length", Mahalanobis, corr[:7], 4, 2, 0, "values"},
		{"NaN input", Euclidean, []float32{0, 1, float32(math.NaN()), 2}, 2, 2, 0, "row 1, column 0"},
		{"Inf input", Mahalanobis, []float32{0, float32(math.Inf(1)), 1, 2}, 2, 2, 0.5, "row 0, column 1"},
		{"shrinkage above 1", Mahalanobis, corr, 4, 2, 1.5, "shrinkage"},
		{"NaN shrinkage", Mahalanobis, corr, 4, 2, math.NaN(), "shrinkage"},
		{"singular", Mahalanobis, line, 3, 2, 0, "more shrinkage"},
		{"tiny shrinkage", Mahalanobis, line, 3, 2, 1e-15, "more shrinkage"},
		{"no variance", Mahalanobis, []float32{1, 2, 1, 2, 1, 2}, 3, 2, 0.5, "do not vary"},
	} {
		_, err := Fit(c.method, c.x, c.rows, c.dim, c.shrink)
		if err == nil || !strings.Contains(err.Error(), c.wantInErr) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantInErr)
		}
	}
	if _, err := Fit(Mahalanobis, []float32{1, 2, 1, 2}, 2, 2, 0.5); !errors.Is(err, ErrNoVariance) {
		t.Errorf("constant data: error %v, want ErrNoVariance", err)
	}
	if _, err := Fit(Mahalanobis, line, 3, 2, 0); !errors.Is(err, ErrIllConditioned) {
		t.Errorf("singular data: error %v, want ErrIllConditioned", err)
	}
	// The same rank-1 data is fine with shrinkage.
	if _, err := Fit(Mahalanobis, line, 3, 2, 0.1); err != nil {
		t.Errorf("singular data with shrinkage 0.1: %v", err)
	}
}

func TestScoreErrors(t *testing.T) {
	m := mustFit(t, Mahalanobis, corr, 4, 2, 0.1)
	out := make([]float64, 2)
	for _, c := range []struct {
		name string
		x    []float32
		rows int
		out  []float64
	}{
		{"negative rows", nil, -1, nil},
		{"short input", make([]float32, 3), 2, out},
		{"short output", make([]float32, 4), 2, out[:1]},
		{"NaN input", []float32{0, 0, 0, float32(math.NaN())}, 2, out},
	} {
		if err := m.Score(c.x, c.rows, c.out); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if err := m.Score(nil, 0, nil); err != nil {
		t.Errorf("zero rows: %v", err)
	}
}

// normal10 are ten normal scores, shuffled; sorted they are 0.1 0.2 0.3
// 0.35 0.4 0.5 0.6 0.7 0.8 0.9.
var normal10 = []float64{0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.5, 0.3, 0.6, 0.7}

func alarms(s []float64, th float64) int {
	n := 0
	for _, v := range s {
		if v > th {
			n++
		}
	}
	return n
}

func TestThresholdAtFAR(t *testing.T) {
	// Sorted: 0.1 0.2 0.3 0.35 0.4 0.5 0.6 0.7 0.8 0.9.
	for _, c := range []struct {
		scores     []float64
		far, th    float64
		wantAlarms int
	}{
		{normal10, 0, 0.9, 0},
		{normal10, 0.1, 0.8, 1},
		{normal10, 0.25, 0.7, 2}, // 2.5 alarms allowed: 2
		{normal10, 0.29, 0.7, 2}, // 2.9: 2
		{normal10, 0.3, 0.6, 3},  // 0.3·10 rounds above 3: still 3
		{normal10, 0.99, 0.1, 9}, // everything but the smallest
		{[]float64{1, 1, 1, 2}, 0, 2, 0},
		{[]float64{1, 1, 1, 2}, 0.25, 1, 1},
		{[]float64{1, 1, 1, 2}, 0.5, 1, 1},  // ties: 2 allowed, only 1 possible
		{[]float64{1, 1, 1, 2}, 0.75, 1, 1}, // below 1 all 4 would alarm
	} {
		th, err := ThresholdAtFAR(c.scores, c.far)
		if err != nil {
			t.Fatal(err)
		}
		if th != c.th || alarms(c.scores, th) != c.wantAlarms {
			t.Errorf("%v at FAR %g: threshold %g (%d alarms), want %g (%d)", c.scores, c.far, th, alarms(c.scores, th), c.th, c.wantAlarms)
		}
	}
	// 29 of 100 alarms at FAR 0.29, although 0.29·100 < 29 in float64.
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i)
	}
	if th, _ := ThresholdAtFAR(hundred, 0.29); alarms(hundred, th) != 29 {
		t.Errorf("FAR 0.29 of 100: %d alarms, want 29", alarms(hundred, th))
	}
	for _, c := range []struct {
		scores []float64
		far    float64
	}{
		{nil, 0.1}, {normal10, -0.1}, {normal10, 1}, {normal10, math.NaN()}, {[]float64{1, math.NaN()}, 0.1},
	} {
		if _, err := ThresholdAtFAR(c.scores, c.far); err == nil {
			t.Errorf("%v at FAR %g: no error", c.scores, c.far)
		}
	}
}

func TestThresholdBestF1(t *testing.T) {
	// Flag = score > t. For the first case, thresholds and F1 = 2TP/(2TP+FP+FN):
	//   0.8: none                → 0
	//   0.7: {.8A}               → 2/5
	//   0.6: {.8A .7N}           → 2/6
	//   0.5: + .6A  TP2 FP1 FN2  → 4/7
	//   0.4: + .5A  TP3 FP1 FN1  → 6/8
	//   0.3: + .4N  TP3 FP2 FN1  → 6/9
	//   0.2: + .3A  TP4 FP2 FN0  → 8/10  (best)
	//   0.1: + .2N  TP4 FP3      → 8/11
	//   <0.1: all   TP4 FP4      → 8/12
	for _, c := range []struct {
		name   string
		scores []float64
		attack []bool
		th, f1 float64
	}{
		{"interior", []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8},
			[]bool{false, false, true, false, true, true, false, true}, 0.2, 0.8},
		// 3A 2N 1A: t=2 → 2/3, t=1 → 2/4, all → TP2 FP1: 4/5.
		{"flag all", []float64{1, 2, 3}, []bool{true, false, true}, math.Nextafter(1, math.Inf(-1)), 0.8},
		// 4A 3N 2N 1A: t=3 → TP1 FN1: 2/3; all → TP2 FP2: 4/6 = 2/3 too;
		// the larger threshold wins.
		{"tie", []float64{4, 3, 2, 1}, []bool{true, false, false, true}, 3, 2.0 / 3},
		// Tied scores cross together: {2A,2N} at t=1.
		{"tied scores", []float64{2, 2, 1}, []bool{true, false, false}, 1, 2.0 / 3},
		// No threshold flags -Inf: 2A 1N -InfA gives t=1 → 2/3, t=-Inf →
		// TP1 FP1 FN1: 2/4; flagging all three (4/5) cannot be had.
		{"minus infinity", []float64{math.Inf(-1), 1, 2}, []bool{true, false, true}, 1, 2.0 / 3},
	} {
		th, f1, err := ThresholdBestF1(c.scores, c.attack)
		if err != nil {
			t.Fatal(err)
		}
		if th != c.th || !near(f1, c.f1, 1e-15) {
			t.Errorf("%s: threshold %g F1 %g, want %g and %g", c.name, th, f1, c.th, c.f1)
		}
	}
	for _, c := range []struct {
		name   string
		scores []float64
		attack []bool
	}{
		{"empty", nil, nil},
		{"length mismatch", []float64{1, 2}, []bool{true}},
		{"no attacks", []float64{1, 2}, []bool{false, false}},
		{"NaN", []float64{1, math.NaN()}, []bool{true, false}},
	} {
		if _, _, err := ThresholdBestF1(c.scores, c.attack); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// TestEvaluateHandExample: 4 normal flows (0.1 0.2 0.3 0.6), neptune (0.9
// 0.7 0.25), satan (0.5 0.05), threshold 0.4.
//
//	flagged: normal 0.6; neptune 0.9 0.7; satan 0.5
//	DR = 3/5, FAR = 1/4, F1 = 2·3/(2·3 + 1 + 2) = 2/3
//	AUROC: pairs attack > normal: 0.9→4, 0.7→4, 0.25→2, 0.5→3, 0.05→0 = 13/20
//	neptune: DR 2/3, AUROC (4+4+2)/12 = 5/6; satan: DR 1/2, AUROC 3/8
func TestEvaluateHandExample(t *testing.T) {
	s := []float64{0.9, 0.1, 0.5, 0.2, 0.7, 0.3, 0.05, 0.6, 0.25}
	l := []string{"neptune", "normal", "satan", "normal", "neptune", "normal", "satan", "normal", "neptune"}
	r, err := Evaluate(s, l, "normal", 0.4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"AUROC", r.AUROC, 13.0 / 20},
		{"DR", r.DetectionRate, 3.0 / 5},
		{"FAR", r.FalseAlarmRate, 1.0 / 4},
		{"F1", r.F1, 2.0 / 3},
		{"threshold", r.Threshold, 0.4},
	} {
		if !near(c.got, c.want, 1e-15) {
			t.Errorf("%s %g, want %g", c.name, c.got, c.want)
		}
	}
	if r.Normal != 4 || r.Attacks != 5 {
		t.Errorf("%d normal and %d attack flows, want 4 and 5", r.Normal, r.Attacks)
	}
	want := []TypeResult{{"neptune", 3, 2.0 / 3, 5.0 / 6}, {"satan", 2, 1.0 / 2, 3.0 / 8}}
	if len(r.PerType) != len(want) {
		t.Fatalf("per type %+v, want %+v", r.PerType, want)
	}
	for i, w := range want {
		g := r.PerType[i]
		if g.Type != w.Type || g.N != w.N || !near(g.DetectionRate, w.DetectionRate, 1e-15) || !near(g.AUROC, w.AUROC, 1e-15) {
			t.Errorf("type %d: %+v, want %+v", i, g, w)
		}
	}
	// ROC: (0,0), one point per distinct score (9), ending at (1,1); the
	// point after the 3 largest scores (0.9 0.7 0.6) is FPR 1/4, TPR 2/5.
	if len(r.ROC.FPR) != 10 || len(r.ROC.TPR) != 10 {
		t.Fatalf("ROC has %d/%d points, want 10", len(r.ROC.FPR), len(r.ROC.TPR))
	}
	if r.ROC.FPR[0] != 0 || r.ROC.TPR[0] != 0 || r.ROC.FPR[9] != 1 || r.ROC.TPR[9] != 1 {
		t.Errorf("ROC ends (%g,%g) and (%g,%g)", r.ROC.FPR[0], r.ROC.TPR[0], r.ROC.FPR[9], r.ROC.TPR[9])
	}
	if r.ROC.FPR[3] != 0.25 || r.ROC.TPR[3] != 0.4 {
		t.Errorf("ROC point 3 (%g,%g), want (0.25,0.4)", r.ROC.FPR[3], r.ROC.TPR[3])
	}
}

func TestEvaluateErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		scores []float64
		labels []string
		th     float64
	}{
		{"empty", nil, nil, 0},
		{"length mismatch", []float64{1, 2}, []string{"normal"}, 0},
		{"no normal", []float64{1, 2}, []string{"a", "b"}, 0},
		{"no attacks", []float64{1, 2}, []string{"normal", "normal"}, 0},
		{"NaN score", []float64{1, math.NaN()}, []string{"normal", "a"}, 0},
		{"NaN threshold", []float64{1, 2}, []string{"normal", "a"}, math.NaN()},
	} {
		if _, err := Evaluate(c.scores, c.labels, "normal", c.th); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

// gaussian draws rows from mean + A·z with z standard normal: A lower
// triangular [dim*dim] row-major.
func gaussian(rng *rand.Rand, rows, dim int, a, mean []float64) []float32 {
	x := make([]float32, rows*dim)
	z := make([]float64, dim)
	for r := 0; r < rows; r++ {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for i := 0; i < dim; i++ {
			v := mean[i]
			for j := 0; j <= i; j++ {
				v += a[i*dim+j] * z[j]
			}
			x[r*dim+i] = float32(v)
		}
	}
	return x
}

// synthAUROC fits normal rows, then evaluates fresh normal rows against
// attacks shifted by each of shifts, and returns the report.
func synthAUROC(t *testing.T, method Method, shrink float64, a []float64, shifts [][]float64) *Report {
	t.Helper()
	const dim = 8
	rng := rand.New(rand.NewPCG(11, 12))
	zero := make([]float64, dim)
	m := mustFit(t, method, gaussian(rng, 2000, dim, a, zero), 2000, dim, shrink)
	x := gaussian(rng, 500, dim, a, zero)
	labels := make([]string, 500)
	for i := range labels {
		labels[i] = "normal"
	}
	for k, s := range shifts {
		x = append(x, gaussian(rng, 300, dim, a, s)...)
		for range 300 {
			labels = append(labels, "attack"+string(rune('A'+k)))
		}
	}
	sc := scores(t, m, x)
	th, err := ThresholdAtFAR(sc[:500], 0.05)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Evaluate(sc, labels, "normal", th)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestShiftedGaussians is the property check: attacks are the normal
// Gaussian shifted. With isotropic normal traffic both distances separate
// them; with strongly anisotropic, correlated normal traffic and shifts
// along its low-variance directions, only Mahalanobis does.
func TestShiftedGaussians(t *testing.T) {
	const dim = 8
	iso := make([]float64, dim*dim)
	for i := 0; i < dim; i++ {
		iso[i*dim+i] = 1
	}
	shift := func(v ...float64) []float64 { return append(v, make([]float64, dim-len(v))...) }
	isoShifts := [][]float64{shift(3, 3), shift(0, 0, 0, 0, -2.5, 2.5, 0, 0)}
	for _, method := range []Method{Euclidean, Mahalanobis} {
		r := synthAUROC(t, method, LedoitWolf, iso, isoShifts)
		for _, p := range r.PerType {
			if p.AUROC <= 0.9 {
				t.Errorf("isotropic, %s: %s AUROC %.3f, want > 0.9", method, p.Type, p.AUROC)
			}
		}
	}

	// Standard deviations from 10 down to 0.5, the first coordinate mixed
	// into every other (x_i = 3·z_0 + sd_i·z_i: correlation), and shifts of
	// 3 along low-variance coordinates: small next to the spread of the
	// large-variance ones in Euclidean distance, many standard deviations
	// in Mahalanobis distance.
	aniso := make([]float64, dim*dim)
	sd := []float64{10, 6, 4, 2, 1, 0.5, 0.5, 0.5}
	for i := 0; i < dim; i++ {
		aniso[i*dim+i] = sd[i]
		if i > 0 {
			aniso[i*dim] = 3
		}
	}
	anisoShifts := [][]float64{shift(0, 0, 0, 0, 0, 0, 3), shift(0, 0, 0, 0, 2, 2, 0, 2)}
	e := synthAUROC(t, Euclidean, 0, aniso, anisoShifts)
	for _, shrink := range []float64{0, 0.01, LedoitWolf} {
		m := synthAUROC(t, Mahalanobis, shrink, aniso, anisoShifts)
		for i, p := range m.PerType {
			if p.AUROC <= 0.9 || p.AUROC < e.PerType[i].AUROC+0.3 {
				t.Errorf("anisotropic, shrinkage %g, %s: Mahalanobis AUROC %.3f, Euclidean %.3f; want > 0.9 and 0.3 better",
					shrink, p.Type, p.AUROC, e.PerType[i].AUROC)
			}
		}
		if m.DetectionRate < e.DetectionRate+0.5 {
			t.Errorf("anisotropic, shrinkage %g: Mahalanobis detects %.3f at 5%% FAR, Euclidean %.3f", shrink, m.DetectionRate, e.DetectionRate)
		}
	}
}

// BenchmarkScoreMahalanobis scores 10,000 rows of width 64.
func BenchmarkScoreMahalanobis(b *testing.B) {
	const rows, dim = 10000, 64
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, rows*dim)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	m := mustFit(b, Mahalanobis, x[:2000*dim], 2000, dim, LedoitWolf)
	out := make([]float64, rows)
	n := 0
	for b.Loop() {
		if err := m.Score(x, rows, out); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(rows)*float64(n)/b.Elapsed().Seconds(), "rows/s")
}
