package train

import (
	"math"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

// offsetEpisode is a 2-way 1-shot episode in two features: way 0 at (1,0),
// way 1 at (0,0), queries at (0.8,0) (way 0) and (0.2,0) (way 1).
func offsetEpisode() *datasets.Episode {
	ep := datasets.NewEpisode(2, 1, 1, 2)
	copy(ep.SupportX, []float32{1, 0, 0, 0})
	copy(ep.SupportY, []int32{0, 1})
	copy(ep.QueryX, []float32{0.8, 0, 0.2, 0})
	copy(ep.QueryY, []int32{0, 1})
	return ep
}

// Embeddings that share a large offset must not lose the Euclidean logits
// to cancellation in |e|²+|p|²−2e·p: the fused float32 engine has to stay as
// close to float64 as the gorgonia engine, which subtracts directly.
func TestEuclideanLogitsSurviveACommonOffset(t *testing.T) {
	s := Shape{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 2}
	ep := offsetEpisode()
	scores := func(engineName string, f64 bool, offset float64) ([]int32, []float32) {
		c := DefaultConfig("protonet")
		c.Hidden = []int{2}
		c.Engine = engineName
		c.Float64 = f64
		l := mustNew(t, c, s)
		// W = I, b = (offset, offset): every embedding is x + offset.
		l.(engine).setParams([]float64{1, 0, 0, 1, offset, offset})
		labels, sc := make([]int32, 2), make([]float32, 4)
		if err := l.Predict(ep, labels, sc); err != nil {
			t.Fatal(err)
		}
		return labels, sc
	}
	for _, offset := range []float64{100, 1000, 3000} {
		_, ref := scores("fused", true, offset)
		labels, got := scores("fused", false, offset)
		if labels[0] != 0 || labels[1] != 1 {
			t.Errorf("offset %g: float32 labels %v, want [0 1]", offset, labels)
		}
		for i := range got {
			if d := math.Abs(float64(got[i] - ref[i])); d > 1e-3 {
				t.Errorf("offset %g: float32 score %d is %g, float64 %g", offset, i, got[i], ref[i])
			}
		}
	}
}

// A non-finite weight behind a unit that is dead for every input still
// poisons the step (0·Inf is NaN), and every kernel must report it rather
// than some skipping the zero and training on with an Inf weight.
func TestNonFiniteWeightIsReportedByEveryKernel(t *testing.T) {
	s := Shape{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 2}
	b := tinyBatch(t, s, 1, 1)
	defer func(v bool) { useAsm = v }(useAsm)
	for _, f64 := range []bool{false, true} {
		for _, asm := range []bool{useAsm, false} {
			useAsm = asm
			c := DefaultConfig("protonet")
			c.Hidden = []int{16, 16}
			c.Float64 = f64
			e := mustNew(t, c, s).(engine)
			p := make([]float64, e.numParams())
			e.getParams(p)
			// Layer 0 is w [2,16] then b [16]; layer 1's w [16,16] starts at 48.
			p[32+3] = -1e6             // ReLU unit 3 of layer 0 never fires
			p[48+3*16+5] = math.Inf(1) // its weight into unit 5 of layer 1
			e.setParams(p)
			if _, err := e.(Learner).MetaStep(b); err == nil {
				t.Errorf("float64=%v asm=%v: a step through an infinite weight reported no error", f64, asm)
			}
		}
	}
}

// refOptimizerStep is textbook SGD / Adam (PyTorch's formulas) with L2 or
// decoupled weight decay and global-norm clipping, in float64.
func refOptimizerStep(cfg OptimConfig, p, g, m, v []float64, step int) {
	g = append([]float64(nil), g...)
	if cfg.ClipNorm > 0 {
		var ss float64
		for _, x := range g {
			ss += x * x
		}
		if n := math.Sqrt(ss); n > cfg.ClipNorm {
			for i := range g {
				g[i] *= cfg.ClipNorm / n
			}
		}
	}
	for i := range p {
		gi := g[i]
		if cfg.Name == "sgd" {
			p[i] -= cfg.LR * (gi + cfg.WeightDecay*p[i])
			continue
		}
		if cfg.Decoupled {
			p[i] *= 1 - cfg.LR*cfg.WeightDecay
		} else {
			gi += cfg.WeightDecay * p[i]
		}
		m[i] = cfg.Beta1*m[i] + (1-cfg.Beta1)*gi
		v[i] = cfg.Beta2*v[i] + (1-cfg.Beta2)*gi*gi
		mh := m[i] / (1 - math.Pow(cfg.Beta1, float64(step)))
		vh := v[i] / (1 - math.Pow(cfg.Beta2, float64(step)))
		p[i] -= cfg.LR * mh / (math.Sqrt(vh) + cfg.Eps)
	}
}

func TestOptimizerMatchesTextbook(t *testing.T) {
	cfgs := []OptimConfig{
		{Name: "adam", LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		{Name: "adam", LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1},
		{Name: "adam", LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true},
		{Name: "adam", LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, ClipNorm: 0.3},
		{Name: "adam", LR: 1e-2, Beta1: 0, Beta2: 0, Eps: 1e-3},
		{Name: "sgd", LR: 0.1, WeightDecay: 0.05, ClipNorm: 0.5},
		{Name: "sgd", LR: 0.1},
		// The gradients' norms are 1.8, 3.5, 3.7, 7.6 and 9.3: clipping
		// at 3.6 must leave the first two steps alone.
		{Name: "sgd", LR: 0.1, ClipNorm: 3.6},
		{Name: "adam", LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 3.6},
	}
	const n = 7
	for ci, cfg := range cfgs {
		want := make([]float64, n)
		for i := range want {
			want[i] = float64(i) - 3.2
		}
		p64 := append([]float64(nil), want...)
		p32 := make([]float32, n)
		for i := range p32 {
			p32[i] = float32(want[i])
		}
		m, v := make([]float64, n), make([]float64, n)
		o64 := newOptimizer[float64](cfg, n, kernels.NewCPU())
		o32 := newOptimizer[float32](cfg, n, kernels.NewCPU())
		for step := 1; step <= 5; step++ {
			g := make([]float64, n)
			g32 := make([]float32, n)
			for i := range g {
				g[i] = math.Sin(float64(i*step)) * float64(step)
				g32[i] = float32(g[i])
			}
			refOptimizerStep(cfg, want, g, m, v, step)
			o64.step(p64, append([]float64(nil), g...))
			o32.step(p32, g32)
		}
		for i := range want {
			if d := math.Abs(p64[i] - want[i]); d > 1e-12*(1+math.Abs(want[i])) {
				t.Errorf("config %d float64: p[%d] = %.12g, want %.12g", ci, i, p64[i], want[i])
			}
			if d := math.Abs(float64(p32[i]) - want[i]); d > 1e-5*(1+math.Abs(want[i])) {
				t.Errorf("config %d float32: p[%d] = %.8g, want %.8g", ci, i, p32[i], want[i])
			}
		}
	}
}

// MAML's second-order term must be there: its meta-gradient differs from
// first-order MAML's on the same batch and weights, on both engines.
func TestSecondOrderDiffersFromFirstOrder(t *testing.T) {
	b := tinyBatch(t, tiny, 2, 3)
	for _, eng := range []string{"fused", "gorgonia"} {
		grad := func(algo string) []float64 {
			c := tinyConfig(algo, "tanh", 1)
			c.Engine = eng
			e := mustNew(t, c, tiny).(engine)
			g := make([]float64, e.numParams())
			if _, err := e.metaGrad(b, g); err != nil {
				t.Fatal(err)
			}
			return g
		}
		if r := relErr(grad("maml"), grad("fomaml")); !(r > 1e-3) {
			t.Errorf("%s: maml and fomaml meta-gradients agree to %.3g", eng, r)
		}
	}
}
