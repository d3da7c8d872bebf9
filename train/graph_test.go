package train

import (
	"bytes"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func mustGraph(t testing.TB, c Config, s Shape) Learner {
	t.Helper()
	l, err := NewGraph(c, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type graphCase struct {
	algo, act, dist string
	inner           int
	deep            bool
}

func (c graphCase) String() string {
	s := fmt.Sprintf("%s/%s/K%d", c.algo, c.act, c.inner)
	if c.dist != "" {
		s += "/" + c.dist
	}
	if c.deep {
		s += "/deep"
	}
	return s
}

func (c graphCase) config() Config {
	cfg := tinyConfig(c.algo, c.act, c.inner)
	if c.dist != "" {
		cfg.Distance = c.dist
	}
	if c.deep {
		cfg.Hidden = []int{5, 4}
	}
	cfg.TestInnerSteps = 3
	return cfg
}

// graphCases cover every model feature of the engine: both distances, all
// activations, one and several inner steps, one and two hidden layers.
var graphCases = []graphCase{
	{algo: "protonet", act: "tanh", dist: "euclidean", inner: 1},
	{algo: "protonet", act: "relu", dist: "euclidean", inner: 1},
	{algo: "protonet", act: "sigmoid", dist: "cosine", inner: 1},
	{algo: "protonet", act: "leaky_relu", dist: "euclidean", inner: 1, deep: true},
	{algo: "maml", act: "tanh", inner: 1},
	{algo: "maml", act: "tanh", inner: 3},
	{algo: "maml", act: "relu", inner: 1},
	{algo: "maml", act: "relu", inner: 3},
	{algo: "maml", act: "sigmoid", inner: 2},
	{algo: "maml", act: "leaky_relu", inner: 2},
	{algo: "maml", act: "tanh", inner: 2, deep: true},
	{algo: "fomaml", act: "tanh", inner: 1},
	{algo: "fomaml", act: "tanh", inner: 3},
	{algo: "fomaml", act: "relu", inner: 2, deep: true},
}

// TestGraphMetaGradientFiniteDifferences checks the gorgonia meta-gradient
// against central differences: of the meta-loss for ProtoNet and MAML, and
// for FOMAML of the query loss at weights adapted with finite-difference
// gradients (FOMAML's update is not the meta-loss gradient).
func TestGraphMetaGradientFiniteDifferences(t *testing.T) {
	for _, c := range graphCases {
		if c.act != "tanh" && c.act != "relu" {
			continue // the fused comparison covers the rest
		}
		t.Run(c.String(), func(t *testing.T) {
			cfg := c.config()
			e := mustGraph(t, cfg, tiny).(engine)
			b := tinyBatch(t, tiny, 2, 3)
			p := make([]float64, e.numParams())
			e.getParams(p)
			g := make([]float64, len(p))
			if _, err := e.metaGrad(b, g); err != nil {
				t.Fatal(err)
			}
			var want []float64
			if c.algo == "fomaml" {
				m := e.(*graphGBML[float64]).m
				want = make([]float64, len(p))
				for _, ep := range b {
					wK := fdAdapt(m, tiny.Ways, p, cfg.InnerLR, cfg.InnerSteps, ep.SupportX, ep.SupportY)
					gq := fdGrad(wK, func(w []float64) float64 { return taskLoss(m, tiny.Ways, w, ep.QueryX, ep.QueryY) })
					for i, v := range gq {
						want[i] += v / float64(len(b))
					}
				}
			} else {
				want = fdGrad(p, metaLoss(t, e, b))
			}
			if r := relErr(g, want); r > 1e-5 || math.IsNaN(r) {
				t.Fatalf("relative error %.3g between gorgonia and finite-difference meta-gradient\ngraph %v\nfd    %v", r, g[:min(8, len(g))], want[:min(8, len(want))])
			}
		})
	}
}

// TestGraphMatchesFused is the cross-check of the two engines: same config,
// same batch, same initial parameters, same meta-gradient and loss.
func TestGraphMatchesFused(t *testing.T) {
	for _, c := range graphCases {
		t.Run(c.String(), func(t *testing.T) {
			cfg := c.config()
			ge, fe := mustGraph(t, cfg, tiny).(engine), mustNew(t, cfg, tiny).(engine)
			n := fe.numParams()
			if ge.numParams() != n {
				t.Fatalf("%d parameters in the graph engine, %d in the fused one", ge.numParams(), n)
			}
			pg, pf := make([]float64, n), make([]float64, n)
			ge.getParams(pg)
			fe.getParams(pf)
			if !slices.Equal(pg, pf) {
				t.Fatal("the engines start from different parameters")
			}
			for _, size := range []int{2, 1} {
				b := tinyBatch(t, tiny, size, 5)
				gg, gf := make([]float64, n), make([]float64, n)
				lg, err := ge.metaGrad(b, gg)
				if err != nil {
					t.Fatal(err)
				}
				lf, err := fe.metaGrad(b, gf)
				if err != nil {
					t.Fatal(err)
				}
				if r := relErr(gg, gf); r > 1e-10 || math.IsNaN(r) {
					t.Errorf("batch of %d: meta-gradients differ by %.3g\ngraph %v\nfused %v", size, r, gg[:6], gf[:6])
				}
				if math.Abs(lg-lf) > 1e-12*(1+math.Abs(lf)) {
					t.Errorf("batch of %d: loss %.17g, fused %.17g", size, lg, lf)
				}
			}
		})
	}
}

// TestGraphMatchesFusedFloat32 runs the float32 path of both engines.
func TestGraphMatchesFusedFloat32(t *testing.T) {
	s := Shape{Ways: 4, Shots: 3, Queries: 3, MetaBatch: 2, Dim: 10}
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		cfg := smallConfig(algo)
		ge, fe := mustGraph(t, cfg, s).(engine), mustNew(t, cfg, s).(engine)
		b := tinyBatch(t, s, 2, 8)
		gg, gf := make([]float64, fe.numParams()), make([]float64, fe.numParams())
		lg, err := ge.metaGrad(b, gg)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := fe.metaGrad(b, gf)
		if err != nil {
			t.Fatal(err)
		}
		if r := relErr(gg, gf); r > 1e-4 || math.IsNaN(r) {
			t.Errorf("%s: float32 meta-gradients differ by %.3g", algo, r)
		}
		if math.Abs(lg-lf) > 1e-5*(1+math.Abs(lf)) {
			t.Errorf("%s: float32 loss %g, fused %g", algo, lg, lf)
		}
	}
}

// graphTrainBoth takes steps MetaSteps in both engines on the same batches.
func graphTrainBoth(t *testing.T, cfg Config, s Shape, steps int) (Learner, Learner) {
	t.Helper()
	lg, lf := mustGraph(t, cfg, s), mustNew(t, cfg, s)
	for i := range steps {
		b := tinyBatch(t, s, 1+i%s.MetaBatch, uint64(20+i))
		a, err := lg.MetaStep(b)
		if err != nil {
			t.Fatal(err)
		}
		f, err := lf.MetaStep(b)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(a-f) > 1e-9*(1+math.Abs(f)) {
			t.Fatalf("step %d: loss %.17g, fused %.17g", i, a, f)
		}
	}
	return lg, lf
}

func graphParams(l Learner) []float64 {
	e := l.(engine)
	p := make([]float64, e.numParams())
	e.getParams(p)
	return p
}

func TestGraphMetaStepsMatchFused(t *testing.T) {
	for _, c := range graphCases {
		t.Run(c.String(), func(t *testing.T) {
			cfg := c.config()
			cfg.Optimizer.ClipNorm = 0.5
			cfg.Optimizer.WeightDecay = 1e-3
			cfg.Optimizer.LR = 0.05
			lg, lf := graphTrainBoth(t, cfg, tiny, 5)
			pg, pf := graphParams(lg), graphParams(lf)
			var d float64
			for i := range pf {
				d = max(d, math.Abs(pg[i]-pf[i]))
			}
			if d > 1e-9 {
				t.Errorf("parameters differ by up to %.3g after 5 steps", d)
			}
			if lg.Steps() != 5 {
				t.Errorf("Steps() = %d", lg.Steps())
			}
		})
	}
}

func TestGraphPredictMatchesFused(t *testing.T) {
	for _, c := range graphCases {
		t.Run(c.String(), func(t *testing.T) {
			for _, test := range []int{3, 0} {
				cfg := c.config()
				cfg.TestInnerSteps = test
				lg, lf := graphTrainBoth(t, cfg, tiny, 2)
				ep := tinyBatch(t, tiny, 1, 77)[0]
				nq := tiny.Ways * tiny.Queries
				la, sa := make([]int32, nq), make([]float32, nq*tiny.Ways)
				lb, sb := make([]int32, nq), make([]float32, nq*tiny.Ways)
				if err := lg.Predict(ep, la, sa); err != nil {
					t.Fatal(err)
				}
				if err := lf.Predict(ep, lb, sb); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(la, lb) {
					t.Errorf("TestInnerSteps %d: labels %v, fused %v", test, la, lb)
				}
				for i := range sa {
					if math.Abs(float64(sa[i])-float64(sb[i])) > 1e-9*(1+math.Abs(float64(sb[i]))) {
						t.Fatalf("TestInnerSteps %d: score %d is %g, fused %g", test, i, sa[i], sb[i])
					}
				}
				// Predict does not change the learner.
				if before := graphParams(lg); lg.Predict(ep, la, sa) != nil || !slices.Equal(before, graphParams(lg)) {
					t.Error("Predict changed the parameters")
				}
			}
		})
	}
}

// TestGraphHeapIsStable re-runs the graphs and checks that the live heap
// does not grow with the number of runs.
func TestGraphHeapIsStable(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		cfg := tinyConfig(algo, "relu", 2)
		l := mustGraph(t, cfg, tiny)
		b := tinyBatch(t, tiny, 2, 1)
		ep := b[0]
		nq := tiny.Ways * tiny.Queries
		labels, scores := make([]int32, nq), make([]float32, nq*tiny.Ways)
		heap := func(steps int) uint64 {
			for range steps {
				if _, err := l.MetaStep(b); err != nil {
					t.Fatal(err)
				}
				if err := l.Predict(ep, labels, scores); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		at20 := heap(20)
		at200 := heap(180)
		if at200 > at20+256<<10 {
			t.Errorf("%s: live heap grew from %d to %d bytes between 20 and 200 steps", algo, at20, at200)
		}
	}
}

// TestGraphCheckpoint: a gorgonia learner's checkpoint is the fused
// engine's format, so it loads into either engine.
func TestGraphCheckpoint(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		cfg := tinyConfig(algo, "tanh", 2)
		lg := mustGraph(t, cfg, tiny)
		for i := range 3 {
			if _, err := lg.MetaStep(tinyBatch(t, tiny, 2, uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := lg.SaveCheckpoint(&buf, map[string][]byte{"spec": []byte("s")}); err != nil {
			t.Fatal(err)
		}
		raw := buf.Bytes()
		lf, extra, err := Load(bytes.NewReader(raw), nil)
		if err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		if string(extra["spec"]) != "s" || lf.Steps() != 3 || !slices.Equal(graphParams(lf), graphParams(lg)) {
			t.Errorf("%s: the fused engine restored a different learner", algo)
		}
		lg2 := mustGraph(t, cfg, tiny)
		if _, err := lg2.LoadCheckpoint(bytes.NewReader(raw)); err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		// The optimiser state came back too: one more step agrees.
		b := tinyBatch(t, tiny, 2, 50)
		lg.MetaStep(b)
		lg2.MetaStep(b)
		if !slices.Equal(graphParams(lg), graphParams(lg2)) || lg2.Steps() != 4 {
			t.Errorf("%s: parameters differ one step after reloading", algo)
		}
	}
}

func TestNewGraphValidates(t *testing.T) {
	for _, algo := range []string{"reptile", "anil", "metasgd", "finetune", "nearest-centroid"} {
		_, err := NewGraph(smallConfig(algo), small, nil)
		if err == nil || !strings.Contains(err.Error(), "use the fused engine for "+algo) {
			t.Errorf("%s: NewGraph gave %v", algo, err)
		}
	}
	c := smallConfig("maml")
	c.InnerSteps = 0
	if _, err := NewGraph(c, small, nil); err == nil || !strings.Contains(err.Error(), "InnerSteps") {
		t.Errorf("invalid config gave %v", err)
	}
	if _, err := NewGraph(smallConfig("maml"), Shape{Ways: 1, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 3}, nil); err == nil {
		t.Error("1-way shape accepted")
	}
	l := mustGraph(t, smallConfig("protonet"), small)
	if _, err := l.MetaStep(tinyBatch(t, small, 3, 1)); err == nil {
		t.Error("oversized batch accepted")
	}
	if err := l.Predict(tinyBatch(t, small, 1, 1)[0], nil, nil); err == nil {
		t.Error("Predict with no output buffers succeeded")
	}
}

func benchGraph(b *testing.B, algo string, inner int) {
	for _, eng := range []string{"graph", "fused"} {
		for _, mb := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/mb%d", eng, mb), func(b *testing.B) {
				c := DefaultConfig(algo)
				c.InnerSteps = inner
				s := benchShape(mb)
				if eng == "graph" {
					c.Engine = "gorgonia"
				}
				benchSteps(b, c, s)
			})
		}
	}
}

// The speed-target shape (Dim 122, hidden 64, 5-way 5-shot 15-query),
// float32, with the fused engine alongside for comparison.
func BenchmarkGraphProtoNetMetaStep(b *testing.B) { benchGraph(b, "protonet", 1) }

func BenchmarkGraphMAMLMetaStep(b *testing.B) { benchGraph(b, "maml", 5) }
