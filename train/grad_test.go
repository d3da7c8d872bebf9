package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// tiny is the gradient-check shape: small enough for finite differences.
var tiny = Shape{Ways: 3, Shots: 2, Queries: 2, MetaBatch: 2, Dim: 4}

func tinyBatch(t testing.TB, s Shape, n int, seed uint64) datasets.Batch {
	t.Helper()
	syn, err := NewSynthetic(8, s.Dim, s.Dim, 1, 1, seed)
	if err != nil {
		t.Fatal(err)
	}
	var b datasets.Batch
	for i := 0; i < n; i++ {
		ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
		if err := syn.Fill(ep, 0, syn.Classes()); err != nil {
			t.Fatal(err)
		}
		b = append(b, ep)
	}
	return b
}

func tinyConfig(algo, act string, inner int) Config {
	c := DefaultConfig(algo)
	c.Hidden = []int{5}
	c.Activation = act
	c.InnerSteps = inner
	c.InnerLR = 0.3 // large, so second-order terms matter
	c.Float64 = true
	c.PretrainClasses = 8
	c.InitSeed = 7
	return c
}

func mustNew(t testing.TB, c Config, s Shape) Learner {
	t.Helper()
	l, err := New(c, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fdGrad is the central finite-difference gradient of f at p.
func fdGrad(p []float64, f func([]float64) float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(p))
	q := append([]float64(nil), p...)
	for i := range p {
		q[i] = p[i] + h
		fp := f(q)
		q[i] = p[i] - h
		fm := f(q)
		q[i] = p[i]
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

func relErr(a, b []float64) float64 {
	var d, na, nb float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return math.Sqrt(d) / math.Max(math.Sqrt(math.Max(na, nb)), 1e-300)
}

// metaLoss evaluates the learner's loss for b at parameters p.
func metaLoss(t testing.TB, e engine, b datasets.Batch) func([]float64) float64 {
	g := make([]float64, e.numParams())
	return func(p []float64) float64 {
		e.setParams(p)
		loss, err := e.metaGrad(b, g)
		if err != nil {
			t.Fatal(err)
		}
		return loss
	}
}

// checkMetaGradFD compares e's meta-gradient of b with central finite
// differences of its loss, and returns the gradient.
func checkMetaGradFD(t *testing.T, e engine, b datasets.Batch) []float64 {
	t.Helper()
	p := make([]float64, e.numParams())
	e.getParams(p)
	g := make([]float64, len(p))
	if _, err := e.metaGrad(b, g); err != nil {
		t.Fatal(err)
	}
	fd := fdGrad(p, metaLoss(t, e, b))
	if r := relErr(g, fd); r > 1e-5 || math.IsNaN(r) {
		t.Fatalf("relative error %.3g between analytic and finite-difference meta-gradient\nanalytic %v\nfd       %v", r, g[:min(8, len(g))], fd[:min(8, len(fd))])
	}
	return g
}

func TestMetaGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		algo, act, dist string
		inner           int
		deep            bool
	}{
		{"maml", "tanh", "", 3, true},
		{"metasgd", "sigmoid", "", 2, true},
		{"anil", "relu", "", 2, true},
		{"protonet", "tanh", "euclidean", 1, true},
		{"protonet", "relu", "euclidean", 1, false},
		{"protonet", "tanh", "cosine", 1, false},
		{"maml", "tanh", "", 1, false},
		{"maml", "tanh", "", 3, false},
		{"maml", "relu", "", 1, false},
		{"maml", "relu", "", 3, false},
		{"maml", "sigmoid", "", 3, false},
		{"maml", "leaky_relu", "", 2, false},
		{"anil", "tanh", "", 1, false},
		{"anil", "tanh", "", 3, false},
		{"metasgd", "tanh", "", 1, false},
		{"metasgd", "relu", "", 3, false},
		{"finetune", "tanh", "", 1, false},
		{"finetune", "relu", "", 1, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s/K%d/deep=%v", c.algo, c.act, c.dist, c.inner, c.deep), func(t *testing.T) {
			cfg := tinyConfig(c.algo, c.act, c.inner)
			if c.deep {
				cfg.Hidden = []int{5, 4}
			}
			if c.dist != "" {
				cfg.Distance = c.dist
			}
			checkMetaGradFD(t, mustNew(t, cfg, tiny).(engine), tinyBatch(t, tiny, 2, 3))
		})
	}
}

// taskLoss is the mean cross-entropy of the MLP with weights w on (x, y),
// computed with the forward pass only.
func taskLoss(m *mlp, ways int, w []float64, x []float32, y []int32) float64 {
	ps := newPass[float64](m, len(y))
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	forward(m, w, xs, ps, newScratch[float64](m, len(y), false))
	n := len(y) * ways
	return softmaxCE(ps.out(), y, len(y), ways, make([]float64, n), make([]float64, n))
}

// fdAdapt runs k inner SGD steps with finite-difference gradients.
func fdAdapt(m *mlp, ways int, w []float64, lr float64, k int, x []float32, y []int32) []float64 {
	rates := make([]float64, len(w))
	for i := range rates {
		rates[i] = lr
	}
	return fdAdaptRates(m, ways, w, rates, k, x, y)
}

// fdAdaptRates is fdAdapt with a learning rate per parameter.
func fdAdaptRates(m *mlp, ways int, w, rates []float64, k int, x []float32, y []int32) []float64 {
	w = append([]float64(nil), w...)
	for range k {
		g := fdGrad(w, func(p []float64) float64 { return taskLoss(m, ways, p, x, y) })
		for i := range w {
			w[i] -= rates[i] * g[i]
		}
	}
	return w
}

// textbookRates are the inner learning rates the learner's definition
// gives each parameter: InnerLR everywhere (maml, fomaml, reptile), on the
// head's weights and bias only (anil), or the learned rates that follow θ in
// the parameter vector (metasgd).
func textbookRates(l *gbml[float64]) []float64 {
	cfg, n := l.Config(), l.m.nParam
	rates := make([]float64, n)
	switch cfg.Algo {
	case "metasgd":
		copy(rates, l.params[n:2*n])
	case "anil":
		for i := l.m.layers[len(l.m.layers)-1].w; i < n; i++ {
			rates[i] = cfg.InnerLR
		}
	default:
		for i := range rates {
			rates[i] = cfg.InnerLR
		}
	}
	return rates
}

// logSoftmaxRef is the log-softmax of one row of logits, written out.
func logSoftmaxRef(l []float64) []float64 {
	var sum float64
	for _, v := range l {
		sum += math.Exp(v)
	}
	out := make([]float64, len(l))
	for j, v := range l {
		out[j] = v - math.Log(sum)
	}
	return out
}

// checkScores compares Predict's scores with the log-softmax of logits
// [rows, C] computed from the definition.
func checkScores(t *testing.T, what string, got []float32, logits []float64, C int) {
	t.Helper()
	for r := 0; r*C < len(logits); r++ {
		for j, v := range logSoftmaxRef(logits[r*C : r*C+C]) {
			if d := math.Abs(float64(got[r*C+j]) - v); d > 1e-5*(1+math.Abs(v)) {
				t.Fatalf("%s: score[%d,%d] = %g, the definition gives %g", what, r, j, got[r*C+j], v)
			}
		}
	}
}

// TestGBMLFollowsTheDefinitions rebuilds each gradient-based learner's inner
// loop from its definition, with finite-difference gradients: the training
// loss is the mean over tasks of the query loss after InnerSteps support
// steps at the learner's per-parameter rates (Reptile: the loss on support
// and query before adapting), and Predict scores the queries after
// TestInnerSteps (not InnerSteps) such steps. With the finite-difference
// check of the meta-gradient against that loss, this pins the meta-gradient
// to the textbook objective. Meta-SGD's rates are drawn apart first, so that
// a rate applied to the wrong parameter shows.
func TestGBMLFollowsTheDefinitions(t *testing.T) {
	for _, algo := range []string{"maml", "fomaml", "reptile", "anil", "metasgd"} {
		t.Run(algo, func(t *testing.T) {
			cfg := tinyConfig(algo, "tanh", 2)
			cfg.Hidden = []int{5, 4}
			cfg.TestInnerSteps = 3
			l := mustNew(t, cfg, tiny).(*gbml[float64])
			n := l.m.nParam
			if algo == "metasgd" {
				p := make([]float64, l.numParams())
				l.getParams(p)
				rng := rand.New(rand.NewPCG(3, 4))
				for i := n; i < 2*n; i++ {
					p[i] = 0.05 + 0.5*rng.Float64()
				}
				l.setParams(p)
			}
			b := tinyBatch(t, tiny, 2, 17)
			theta := append([]float64(nil), l.params[:n]...)
			rates := textbookRates(l)
			var want float64
			for _, ep := range b {
				if algo == "reptile" {
					x := append(append([]float32(nil), ep.SupportX...), ep.QueryX...)
					y := append(append([]int32(nil), ep.SupportY...), ep.QueryY...)
					want += taskLoss(l.m, tiny.Ways, theta, x, y)
					continue
				}
				wK := fdAdaptRates(l.m, tiny.Ways, theta, rates, cfg.InnerSteps, ep.SupportX, ep.SupportY)
				want += taskLoss(l.m, tiny.Ways, wK, ep.QueryX, ep.QueryY)
			}
			want /= float64(len(b))
			got, err := l.metaGrad(b, make([]float64, l.numParams()))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-want) > 1e-8*(1+want) {
				t.Errorf("training loss %.12g, the definition gives %.12g", got, want)
			}
			if algo == "metasgd" {
				checkMetaGradFD(t, l, b)
			}
			nq := tiny.Ways * tiny.Queries
			for i, ep := range b {
				labels, scores := make([]int32, nq), make([]float32, nq*tiny.Ways)
				if err := l.Predict(ep, labels, scores); err != nil {
					t.Fatal(err)
				}
				w := fdAdaptRates(l.m, tiny.Ways, theta, rates, cfg.TestInnerSteps, ep.SupportX, ep.SupportY)
				ps := newPass[float64](l.m, nq)
				forward(l.m, w, convert(make([]float64, len(ep.QueryX)), ep.QueryX), ps, newScratch[float64](l.m, nq, false))
				checkScores(t, fmt.Sprintf("episode %d", i), scores, ps.out(), tiny.Ways)
			}
		})
	}
}

// TestFinetuneFollowsTheDefinition rebuilds the fine-tuning baseline's
// Predict from its definition: the encoder (the hidden layers of the
// pre-trained network) is frozen, a zero-initialised linear head is fitted
// to the support embeddings by FinetuneSteps steps of full-batch gradient
// descent at FinetuneLR on the mean cross-entropy (finite-difference
// gradients here), and the queries are scored by the head's log-softmax.
func TestFinetuneFollowsTheDefinition(t *testing.T) {
	for _, hidden := range [][]int{{5}, {5, 4}} {
		cfg := tinyConfig("finetune", "tanh", 1)
		cfg.Hidden = hidden
		cfg.FinetuneSteps = 7
		cfg.FinetuneLR = 0.7
		l := mustNew(t, cfg, tiny).(*finetune[float64])
		ep := tinyBatch(t, tiny, 1, 19)[0]
		ns, nq, C := tiny.Ways*tiny.Shots, tiny.Ways*tiny.Queries, tiny.Ways
		act, _ := parseActivation(cfg.Activation)
		enc := newMLP(tiny.Dim, hidden, 0, act)
		h := hidden[len(hidden)-1]
		embed := func(x []float32, rows int) []float64 {
			ps := newPass[float64](enc, rows)
			forward(enc, l.params[:enc.nParam], convert(make([]float64, len(x)), x), ps, newScratch[float64](enc, rows, false))
			return append([]float64(nil), ps.out()...)
		}
		es, eq := embed(ep.SupportX, ns), embed(ep.QueryX, nq)
		// The head: weights [h, C] row-major, then the bias [C].
		logits := func(hw, e []float64) []float64 {
			out := make([]float64, len(e)/h*C)
			for r := range len(e) / h {
				for c := range C {
					v := hw[h*C+c]
					for j := range h {
						v += e[r*h+j] * hw[j*C+c]
					}
					out[r*C+c] = v
				}
			}
			return out
		}
		supportLoss := func(hw []float64) float64 {
			lg := logits(hw, es)
			var loss float64
			for r, y := range ep.SupportY {
				loss -= logSoftmaxRef(lg[r*C : r*C+C])[y]
			}
			return loss / float64(ns)
		}
		hw := make([]float64, h*C+C)
		for range cfg.FinetuneSteps {
			g := fdGrad(hw, supportLoss)
			for i := range hw {
				hw[i] -= cfg.FinetuneLR * g[i]
			}
		}
		labels, scores := make([]int32, nq), make([]float32, nq*C)
		if err := l.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		checkScores(t, fmt.Sprintf("hidden %v", hidden), scores, logits(hw, eq), C)
	}
}

func TestFOMAMLIsQueryGradientAtAdaptedWeights(t *testing.T) {
	for _, k := range []int{1, 3} {
		cfg := tinyConfig("fomaml", "tanh", k)
		l := mustNew(t, cfg, tiny).(*gbml[float64])
		b := tinyBatch(t, tiny, 1, 5)
		ep := b[0]
		g := make([]float64, l.numParams())
		if _, err := l.metaGrad(b, g); err != nil {
			t.Fatal(err)
		}
		wK := fdAdapt(l.m, tiny.Ways, l.params, cfg.InnerLR, k, ep.SupportX, ep.SupportY)
		want := fdGrad(wK, func(p []float64) float64 { return taskLoss(l.m, tiny.Ways, p, ep.QueryX, ep.QueryY) })
		if r := relErr(g, want); r > 1e-5 {
			t.Errorf("K=%d: FOMAML gradient differs from the query gradient at the adapted weights by %.3g", k, r)
		}
	}
}

func TestReptileDirection(t *testing.T) {
	for _, k := range []int{1, 3} {
		cfg := tinyConfig("reptile", "tanh", k)
		l := mustNew(t, cfg, tiny).(*gbml[float64])
		b := tinyBatch(t, tiny, 1, 9)
		ep := b[0]
		g := make([]float64, l.numParams())
		if _, err := l.metaGrad(b, g); err != nil {
			t.Fatal(err)
		}
		x := append(append([]float32(nil), ep.SupportX...), ep.QueryX...)
		y := append(append([]int32(nil), ep.SupportY...), ep.QueryY...)
		wK := fdAdapt(l.m, tiny.Ways, l.params, cfg.InnerLR, k, x, y)
		want := make([]float64, len(wK))
		for i := range want {
			want[i] = l.params[i] - wK[i]
		}
		if r := relErr(g, want); r > 1e-5 {
			t.Errorf("K=%d: Reptile direction differs from θ-θ_K by %.3g", k, r)
		}
	}
}

func TestMetaBatchGradientIsMeanOfTasks(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "finetune"} {
		t.Run(algo, func(t *testing.T) {
			e := mustNew(t, tinyConfig(algo, "tanh", 2), tiny).(engine)
			b := tinyBatch(t, tiny, 2, 11)
			n := e.numParams()
			gb, g0, g1 := make([]float64, n), make([]float64, n), make([]float64, n)
			lb, _ := e.metaGrad(b, gb)
			l0, _ := e.metaGrad(b[:1], g0)
			l1, _ := e.metaGrad(b[1:], g1)
			mean := make([]float64, n)
			for i := range mean {
				mean[i] = (g0[i] + g1[i]) / 2
			}
			if r := relErr(gb, mean); r > 1e-12 {
				t.Errorf("batch gradient differs from the mean of per-task gradients by %.3g", r)
			}
			if math.Abs(lb-(l0+l1)/2) > 1e-12 {
				t.Errorf("batch loss %g, mean of task losses %g", lb, (l0+l1)/2)
			}
		})
	}
}

func TestProtoNetLogitsMatchPerClassLoop(t *testing.T) {
	for _, dist := range []string{"euclidean", "cosine"} {
		cfg := tinyConfig("protonet", "relu", 1)
		cfg.Distance = dist
		s := Shape{Ways: 4, Shots: 3, Queries: 2, MetaBatch: 1, Dim: 6}
		l := mustNew(t, cfg, s).(*protoNet[float64])
		ep := tinyBatch(t, s, 1, 13)[0]
		nq := s.Ways * s.Queries
		labels, scores := make([]int32, nq), make([]float32, nq*s.Ways)
		if err := l.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		got := append([]float64(nil), l.st.logits...)
		embed := func(x []float32) []float64 {
			ps := newPass[float64](l.m, 1)
			forward(l.m, l.params, []float64{float64(x[0]), float64(x[1]), float64(x[2]), float64(x[3]), float64(x[4]), float64(x[5])}, ps, newScratch[float64](l.m, 1, false))
			return append([]float64(nil), ps.out()...)
		}
		h := l.h
		for q := 0; q < nq; q++ {
			e := embed(ep.QueryX[q*s.Dim:])
			for w := 0; w < s.Ways; w++ {
				proto := make([]float64, h)
				cnt := 0
				for i, y := range ep.SupportY {
					if int(y) == w {
						for j, v := range embed(ep.SupportX[i*s.Dim:]) {
							proto[j] += v
						}
						cnt++
					}
				}
				var want, dot, ne, np float64
				for j := range proto {
					proto[j] /= float64(cnt)
					want -= (e[j] - proto[j]) * (e[j] - proto[j])
					dot += e[j] * proto[j]
					ne += e[j] * e[j]
					np += proto[j] * proto[j]
				}
				if dist == "cosine" {
					want = cfg.CosineScale * dot / (math.Sqrt(ne+cosEps) * math.Sqrt(np+cosEps))
				}
				if d := math.Abs(got[q*s.Ways+w] - want); d > 1e-10*(1+math.Abs(want)) {
					t.Fatalf("%s: logit[%d,%d] = %g, per-class loop gives %g", dist, q, w, got[q*s.Ways+w], want)
				}
			}
		}
	}
}

// TestRowsOnlyRefused: a learner that reads features refuses episodes that
// carry row numbers only, naming why, for every use of an episode.
func TestRowsOnlyRefused(t *testing.T) {
	s := Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2, Dim: 6}
	for _, algo := range []string{"protonet", "maml"} {
		l := mustNew(t, DefaultConfig(algo), s)
		b := tinyBatch(t, s, 2, 3)
		b[1].RowsOnly = true
		const want = "row numbers only"
		if _, err := l.MetaStep(b); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s MetaStep: %v, want an error with %q", algo, err, want)
		}
		nq := s.Ways * s.Queries
		if err := l.Predict(b[1], make([]int32, nq), make([]float32, nq*s.Ways)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s Predict: %v, want an error with %q", algo, err, want)
		}
		if _, err := l.(InputGradienter).QueryInputGrad(b[1], make([]float32, nq*s.Dim)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s QueryInputGrad: %v, want an error with %q", algo, err, want)
		}
		b[1].RowsOnly = false
		if _, err := l.MetaStep(b); err != nil {
			t.Errorf("%s MetaStep on the same batch with features: %v", algo, err)
		}
	}
}

// A confident row's top way keeps a log-probability below 0 that orders
// rows by confidence (-log1p of the others' odds), where mx - (mx + log(sum))
// would round every row more than about 37 nats ahead to 0, a tie; the
// other ways' scores stay those of the definition.
func TestLogSoftmaxKeepsConfidentRowsApart(t *testing.T) {
	logits := []float64{50, 10, 60, 10, 3, 1} // top way ahead by 40, 50 and 2 nats
	scores, labels := make([]float32, 6), make([]int32, 3)
	logSoftmax(logits, 3, 2, scores, labels)
	for r, want := range []float64{-math.Exp(-40), -math.Exp(-50), -math.Log1p(math.Exp(-2))} {
		if got := float64(scores[2*r]); labels[r] != 0 || math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Errorf("row %d: top score %g (label %d), want %g (label 0)", r, got, labels[r], want)
		}
	}
	if !(scores[0] < scores[2] && scores[2] < 0) {
		t.Errorf("top scores %g (40 nats ahead) and %g (50 ahead): want the first lower, both below 0", scores[0], scores[2])
	}
	for r, want := range []float64{-40, -50} {
		if got := float64(scores[2*r+1]); got != want {
			t.Errorf("row %d: other way's score %g, want %g", r, got, want)
		}
	}
	checkScores(t, "logSoftmax", scores, logits, 2)
}
