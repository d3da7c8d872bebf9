package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/kernels"
)

// lowRank draws rows rows of dim features from a rank-r linear model plus a
// little noise, offset to sit around 0.5 like min-max scaled features.
func lowRank(rows, dim, r int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 17))
	u := make([]float64, r*dim)
	for i := range u {
		u[i] = rng.NormFloat64() * 0.3
	}
	x := make([]float32, rows*dim)
	z := make([]float64, r)
	for i := 0; i < rows; i++ {
		for j := range z {
			z[j] = rng.NormFloat64()
		}
		for f := 0; f < dim; f++ {
			v := 0.5 + 0.02*rng.NormFloat64()
			for j := range z {
				v += z[j] * u[j*dim+f]
			}
			x[i*dim+f] = float32(v)
		}
	}
	return x
}

func pretrainTestConfig(objective, act string, hidden ...int) PretrainConfig {
	c := DefaultPretrainConfig()
	c.Objective = objective
	c.Noise = 0.3
	c.MaskRate = 0.3
	c.Activation = act
	c.Hidden = hidden
	return c
}

func mustPretrain(t testing.TB, cfg PretrainConfig, x []float32, dim int) *Pretrained {
	t.Helper()
	p, err := Pretrain(context.Background(), cfg, x, len(x)/dim, dim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPretrainGradientFiniteDifferences checks both reconstruction losses'
// parameter gradients against central differences, the corruption held
// fixed, and checks the corruption and the loss value against their
// definitions.
func TestPretrainGradientFiniteDifferences(t *testing.T) {
	const dim, rows = 7, 6
	cases := []struct {
		act    string
		hidden []int
	}{{"tanh", []int{5, 4}}, {"sigmoid", []int{6}}, {"relu", []int{6}}, {"leaky_relu", []int{5, 3}}}
	for _, obj := range []string{"denoise", "mask"} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%s/%v", obj, c.act, c.hidden), func(t *testing.T) {
				cfg := pretrainTestConfig(obj, c.act, c.hidden...)
				n := newAENet[float64](cfg, dim, rows, nil)
				x := lowRank(rows, dim, 2, 5)
				idx := []int32{0, 1, 2, 3, 4, 5}
				for i, r := range idx {
					convert(n.xt[i*dim:i*dim+dim], x[int(r)*dim:int(r)*dim+dim])
				}
				n.seedEpoch(9, 0)
				n.corrupt(rows)
				checkCorruption(t, n, rows)

				loss := n.lossGrad(rows)
				if want := aeLossByDefinition(n, rows); math.Abs(loss-want) > 1e-12*want {
					t.Fatalf("loss %g, by definition %g", loss, want)
				}
				g := slices.Clone(n.grad)
				p := slices.Clone(n.params)
				fd := fdGrad(p, func(q []float64) float64 {
					copy(n.params, q)
					return n.lossGrad(rows)
				})
				if r := relErr(g, fd); r > 1e-5 || math.IsNaN(r) {
					t.Fatalf("relative error %.3g between analytic and finite-difference gradient\nanalytic %v\nfd       %v", r, g[:6], fd[:6])
				}
			})
		}
	}
}

// checkCorruption verifies that xin is xt with exactly k distinct features
// per row zeroed (mask) or with additive noise of about the configured std
// (denoise).
func checkCorruption(t *testing.T, n *aeNet[float64], rows int) {
	t.Helper()
	d := n.dim
	if n.mask {
		wantK := int(math.Round(0.3 * float64(d)))
		if n.k != wantK {
			t.Fatalf("%d masked features per row, want %d", n.k, wantK)
		}
		for r := 0; r < rows; r++ {
			m := n.midx[r*n.k : r*n.k+n.k]
			masked := map[int32]bool{}
			for _, f := range m {
				if f < 0 || int(f) >= d || masked[f] {
					t.Fatalf("row %d: masked features %v not distinct in [0,%d)", r, m, d)
				}
				masked[f] = true
			}
			for f := 0; f < d; f++ {
				want := n.xt[r*d+f]
				if masked[int32(f)] {
					want = 0
				}
				if n.xin[r*d+f] != want {
					t.Fatalf("row %d feature %d: input %g, want %g", r, f, n.xin[r*d+f], want)
				}
			}
		}
		return
	}
	var ss float64
	for i := range rows * d {
		e := n.xin[i] - n.xt[i]
		ss += e * e
	}
	if sd := math.Sqrt(ss / float64(rows*d)); sd < 0.15 || sd > 0.45 {
		t.Fatalf("noise std %g, configured 0.3", sd)
	}
}

// aeLossByDefinition recomputes the loss with a fresh forward pass: mean
// squared error over all features, or over the masked ones.
func aeLossByDefinition(n *aeNet[float64], rows int) float64 {
	d := n.dim
	ps := newPass[float64](n.m, rows)
	forward(n.m, n.params, n.xin[:rows*d], ps, newScratch[float64](n.m, rows, false))
	out := ps.out()
	var sum float64
	var cnt int
	for r := 0; r < rows; r++ {
		for f := 0; f < d; f++ {
			if n.mask && !slices.Contains(n.midx[r*n.k:r*n.k+n.k], int32(f)) {
				continue
			}
			e := out[r*d+f] - n.xt[r*d+f]
			sum += e * e
			cnt++
		}
	}
	return sum / float64(cnt)
}

// TestPretrainDeterministic: one seed gives bit-identical parameters and
// losses, another seed different ones; progress sees every epoch.
func TestPretrainDeterministic(t *testing.T) {
	const dim = 10
	x := lowRank(300, dim, 3, 1)
	for _, obj := range []string{"denoise", "mask"} {
		run := func(seed uint64) (*Pretrained, []float64) {
			cfg := pretrainTestConfig(obj, "relu", 8, 6)
			cfg.Seed, cfg.Epochs, cfg.BatchSize = seed, 3, 32
			cfg.Optimizer.ClipNorm = 1
			var seen []float64
			p, err := Pretrain(context.Background(), cfg, x, 300, dim, nil, func(ep int, loss float64) {
				if ep != len(seen)+1 {
					t.Errorf("progress epoch %d after %d calls", ep, len(seen))
				}
				seen = append(seen, loss)
			})
			if err != nil {
				t.Fatal(err)
			}
			return p, seen
		}
		a, seen := run(3)
		b, _ := run(3)
		pa, pb := a.EncoderParams(), b.EncoderParams()
		for i := range pa {
			if math.Float64bits(pa[i]) != math.Float64bits(pb[i]) {
				t.Fatalf("%s: parameter %d differs between identical runs: %g vs %g", obj, i, pa[i], pb[i])
			}
		}
		if !slices.Equal(a.ae, b.ae) || !slices.Equal(a.Losses(), b.Losses()) {
			t.Fatalf("%s: decoder or losses differ between identical runs", obj)
		}
		if !slices.Equal(seen, a.Losses()) || a.FinalLoss() != seen[len(seen)-1] {
			t.Errorf("%s: progress saw %v, Losses %v, FinalLoss %g", obj, seen, a.Losses(), a.FinalLoss())
		}
		if c, _ := run(4); slices.Equal(c.EncoderParams(), pa) {
			t.Errorf("%s: different seeds gave identical parameters", obj)
		}
	}
}

// TestPretrainLearns: on rank-3 data the reconstruction loss falls well
// below both its first epoch and the mean predictor's error.
func TestPretrainLearns(t *testing.T) {
	const rows, dim = 2000, 24
	x := lowRank(rows, dim, 3, 2)
	var variance float64 // mean per-feature variance: the mean predictor's MSE
	for f := 0; f < dim; f++ {
		var s, ss float64
		for r := 0; r < rows; r++ {
			v := float64(x[r*dim+f])
			s += v
			ss += v * v
		}
		m := s / rows
		variance += (ss/rows - m*m) / dim
	}
	for _, obj := range []string{"denoise", "mask"} {
		cfg := pretrainTestConfig(obj, "relu", 16)
		cfg.Noise = 0.1
		cfg.Epochs, cfg.BatchSize, cfg.Optimizer.LR = 20, 64, 3e-3
		p := mustPretrain(t, cfg, x, dim)
		l := p.Losses()
		t.Logf("%s: variance %.4g, losses %.4g", obj, variance, l)
		if !(p.FinalLoss() < 0.5*l[0]) || !(p.FinalLoss() < 0.2*variance) {
			t.Errorf("%s: final loss %.4g, first epoch %.4g, mean predictor %.4g", obj, p.FinalLoss(), l[0], variance)
		}
	}
}

// learnerMLP returns the layout a learner itself uses, so the checks below
// do not rely on the prefix length InitLearner is implemented with.
func learnerMLP(t *testing.T, l Learner) *mlp {
	switch v := l.(type) {
	case *protoNet[float32]:
		return v.m
	case *protoNet[float64]:
		return v.m
	case *gbml[float32]:
		return v.m
	case *gbml[float64]:
		return v.m
	case *finetune[float32]:
		return v.m
	case *finetune[float64]:
		return v.m
	case *graphProto[float32]:
		return v.m
	case *graphProto[float64]:
		return v.m
	case *graphGBML[float32]:
		return v.m
	case *graphGBML[float64]:
		return v.m
	}
	t.Fatalf("unexpected learner type %T", l)
	return nil
}

// hiddenOut is the last hidden layer's output of m with parameters w on x.
func hiddenOut(m *mlp, w []float64, x []float32, rows, nHidden int) []float64 {
	xs := make([]float64, len(x))
	for i, v := range x {
		xs[i] = float64(v)
	}
	ps := newPass[float64](m, rows)
	forward(m, w, xs, ps, newScratch[float64](m, rows, false))
	return slices.Clone(ps.a[nHidden-1][:rows*m.layers[nHidden-1].out])
}

// TestPretrainInitLearner: for every learner, after InitLearner the
// learner's own network computes the autoencoder's encoder output, and its
// other parameters (head, Meta-SGD's learning rates) are untouched;
// nearest-centroid is refused.
func TestPretrainInitLearner(t *testing.T) {
	hidden := []int{16, 12}
	x := lowRank(200, small.Dim, 3, 3)
	cfg := pretrainTestConfig("mask", "tanh", hidden...)
	cfg.Epochs, cfg.BatchSize = 2, 32
	p := mustPretrain(t, cfg, x, small.Dim)
	enc := p.EncoderParams()
	ae := newMLP(small.Dim, hidden, small.Dim, actTanh)
	want := hiddenOut(ae, p.ae, x[:10*small.Dim], 10, len(hidden))

	type build struct {
		algo, engine string
		f64          bool
	}
	var builds []build
	for _, algo := range allAlgos {
		for _, f64 := range []bool{false, true} {
			builds = append(builds, build{algo, "fused", f64})
		}
	}
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		builds = append(builds, build{algo, "gorgonia", false})
	}
	for _, b := range builds {
		t.Run(fmt.Sprintf("%s/%s/f64=%v", b.algo, b.engine, b.f64), func(t *testing.T) {
			c := smallConfig(b.algo)
			c.Hidden, c.Activation, c.Float64, c.Engine = hidden, "tanh", b.f64, b.engine
			c.InnerLR = 0.05
			l := mustNew(t, c, small)
			e := l.(engine)
			before := make([]float64, e.numParams())
			e.getParams(before)
			err := p.InitLearner(l)
			if b.algo == "nearest-centroid" {
				if err == nil || !strings.Contains(err.Error(), "no encoder") {
					t.Fatalf("nearest-centroid: InitLearner gave %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			after := make([]float64, e.numParams())
			e.getParams(after)
			n := len(enc)
			// Pretrain runs in float32, so float32 learners hold the values exactly.
			if !slices.Equal(after[:n], enc) {
				t.Fatal("the parameter prefix is not the pre-trained encoder")
			}
			if !slices.Equal(after[n:], before[n:]) {
				t.Fatal("parameters past the encoder changed")
			}
			if b.algo == "metasgd" {
				for i, v := range after[len(after)/2:] {
					if v != float64(float32(c.InnerLR)) && v != c.InnerLR {
						t.Fatalf("Meta-SGD learning rate %d is %g, want InnerLR %g", i, v, c.InnerLR)
					}
				}
			}
			got := hiddenOut(learnerMLP(t, l), after, x[:10*small.Dim], 10, len(hidden))
			if r := relErr(got, want); r > 1e-12 {
				t.Fatalf("learner's embedding differs from the autoencoder's encoder by %.3g", r)
			}
			// Learners that expose an Embed method agree too (to float32).
			if em, ok := l.(interface {
				Embed(x []float32, rows int, out []float32) error
			}); ok {
				out := make([]float32, len(want))
				if err := em.Embed(x[:10*small.Dim], 10, out); err != nil {
					t.Fatal(err)
				}
				o64 := make([]float64, len(out))
				for i, v := range out {
					o64[i] = float64(v)
				}
				if r := relErr(o64, want); r > 1e-5 {
					t.Fatalf("Embed differs from the autoencoder's encoder by %.3g", r)
				}
			}
			// It trains and predicts from there.
			if _, err := l.MetaStep(tinyBatch(t, small, 2, 1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPretrainInitLearnerMismatch: shape, activation and training-state
// mismatches are errors naming the difference, and leave the learner as it
// was.
func TestPretrainInitLearnerMismatch(t *testing.T) {
	x := lowRank(100, small.Dim, 2, 4)
	cfg := pretrainTestConfig("denoise", "relu", 16)
	cfg.Epochs = 1
	p := mustPretrain(t, cfg, x, small.Dim)
	if p.Dim() != small.Dim || !slices.Equal(p.Hidden(), []int{16}) || p.Activation() != "relu" {
		t.Fatalf("Pretrained describes dim %d hidden %v activation %s", p.Dim(), p.Hidden(), p.Activation())
	}
	trained := mustNew(t, smallConfig("maml"), small)
	if _, err := trained.MetaStep(tinyBatch(t, small, 1, 2)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, want string
		l          Learner
	}{
		{"dim", "Dim", mustNew(t, smallConfig("protonet"), Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2, Dim: 9})},
		{"width", "hidden", func() Learner { c := smallConfig("maml"); c.Hidden = []int{17}; return mustNew(t, c, small) }()},
		{"depth", "hidden", func() Learner { c := smallConfig("anil"); c.Hidden = []int{16, 16}; return mustNew(t, c, small) }()},
		{"activation", "activation", func() Learner { c := smallConfig("finetune"); c.Activation = "tanh"; return mustNew(t, c, small) }()},
		{"trained", "meta-steps", trained},
		{"nil", "nil", nil},
	}
	for _, tc := range cases {
		var before []float64
		if tc.l != nil {
			before = make([]float64, tc.l.(engine).numParams())
			tc.l.(engine).getParams(before)
		}
		err := p.InitLearner(tc.l)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: InitLearner gave %v, want an error mentioning %q", tc.name, err, tc.want)
			continue
		}
		if tc.l != nil {
			after := make([]float64, len(before))
			tc.l.(engine).getParams(after)
			if !slices.Equal(before, after) {
				t.Errorf("%s: a refused InitLearner changed the parameters", tc.name)
			}
		}
	}
}

func TestPretrainValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*PretrainConfig)
	}{
		{"Objective", func(c *PretrainConfig) { c.Objective = "contrastive" }},
		{"Noise", func(c *PretrainConfig) { c.Noise = 0 }},
		{"Noise", func(c *PretrainConfig) { c.Noise = math.NaN() }},
		{"Noise", func(c *PretrainConfig) { c.Objective = "mask"; c.Noise = math.Inf(1) }},
		{"MaskRate", func(c *PretrainConfig) { c.Objective = "mask"; c.MaskRate = 0 }},
		{"MaskRate", func(c *PretrainConfig) { c.Objective = "mask"; c.MaskRate = 1 }},
		{"MaskRate", func(c *PretrainConfig) { c.MaskRate = -0.1 }},
		{"Hidden", func(c *PretrainConfig) { c.Hidden = nil }},
		{"Hidden", func(c *PretrainConfig) { c.Hidden = []int{8, 0} }},
		{"Activation", func(c *PretrainConfig) { c.Activation = "gelu" }},
		{"Epochs", func(c *PretrainConfig) { c.Epochs = 0 }},
		{"BatchSize", func(c *PretrainConfig) { c.BatchSize = 0 }},
		{"BatchSize", func(c *PretrainConfig) { c.BatchSize = MaxPretrainBatch + 1 }},
		{"Optimizer.Name", func(c *PretrainConfig) { c.Optimizer.Name = "rmsprop" }},
		{"Optimizer.LR", func(c *PretrainConfig) { c.Optimizer.LR = -1 }},
	}
	for _, tc := range cases {
		c := DefaultPretrainConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming the field", tc.field, err)
		}
		if _, err := Pretrain(context.Background(), c, make([]float32, 8), 2, 4, nil, nil); err == nil {
			t.Errorf("%s: Pretrain accepted the invalid config", tc.field)
		}
	}
	for _, obj := range []string{"denoise", "mask"} {
		c := DefaultPretrainConfig()
		c.Objective = obj
		if err := c.Validate(); err != nil {
			t.Errorf("default config with objective %s: %v", obj, err)
		}
	}
}

func TestPretrainBadInput(t *testing.T) {
	cfg := pretrainTestConfig("denoise", "relu", 4)
	cfg.Epochs = 2
	ctx := context.Background()
	x := lowRank(10, 3, 1, 5)
	nan, inf := slices.Clone(x), slices.Clone(x)
	nan[7] = float32(math.NaN())
	inf[4] = float32(math.Inf(-1))
	cases := []struct {
		name, want string
		x          []float32
		rows, dim  int
	}{
		{"no rows", "rows", nil, 0, 3},
		{"negative rows", "rows", x, -1, 3},
		{"zero dim", "width", x, 10, 0},
		{"short x", "features", x[:29], 10, 3},
		{"nil x", "features", nil, 10, 3},
		{"NaN", "row 2 feature 1", nan, 10, 3},
		{"Inf", "row 1 feature 1", inf, 10, 3},
	}
	for _, tc := range cases {
		if _, err := Pretrain(ctx, cfg, tc.x, tc.rows, tc.dim, nil, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Pretrain gave %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Pretrain(cancelled, cfg, x, 10, 3, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context gave %v", err)
	}
	// A diverging run is an error naming the epoch, not a NaN encoder.
	div := cfg
	div.Optimizer = OptimConfig{Name: "sgd", LR: 1e30}
	div.BatchSize = 5
	var done int
	_, err := Pretrain(ctx, div, x, 10, 3, nil, func(int, float64) { done++ })
	if want := fmt.Sprintf("at epoch %d ", done+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("diverging run gave %v, want an error naming the epoch (%q)", err, want)
	}
}

// TestPretrainBatchDoesNotAllocate: a training batch (gather, corruption,
// forward, backward, optimiser step) allocates nothing, full or short.
func TestPretrainBatchDoesNotAllocate(t *testing.T) {
	const dim = 12
	x := lowRank(64, dim, 2, 6)
	idx := make([]int32, 16)
	for i := range idx {
		idx[i] = int32(3 * i)
	}
	for _, obj := range []string{"denoise", "mask"} {
		cfg := pretrainTestConfig(obj, "relu", 20)
		run := func(name string, step func(n int)) {
			for _, n := range []int{16, 5} {
				if a := testing.AllocsPerRun(20, func() { step(n) }); a != 0 {
					t.Errorf("%s %s: %.1f allocations per %d-row batch", obj, name, a, n)
				}
			}
		}
		n32 := newAENet[float32](cfg, dim, 16, kernels.NewCPU())
		n32.seedEpoch(1, 0)
		run("float32", func(n int) { n32.batch(x, idx[:n]); n32.opt.step(n32.params, n32.grad) })
		n64 := newAENet[float64](cfg, dim, 16, kernels.NewCPU())
		n64.seedEpoch(1, 0)
		run("float64", func(n int) { n64.batch(x, idx[:n]); n64.opt.step(n64.params, n64.grad) })
	}
}

// TestPretrainFloat64MatchesFloat32: the float32 run agrees with the float64
// one to rounding, so the gradient-checked path is the one that trains.
func TestPretrainFloat64MatchesFloat32(t *testing.T) {
	const dim = 9
	x := lowRank(120, dim, 2, 7)
	for _, obj := range []string{"denoise", "mask"} {
		cfg := pretrainTestConfig(obj, "tanh", 8)
		cfg.Epochs, cfg.BatchSize = 1, 40
		ctx := context.Background()
		a, err := pretrain[float32](ctx, cfg, x, 120, dim, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pretrain[float64](ctx, cfg, x, 120, dim, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := relErr(a.ae, b.ae); r > 1e-4 {
			t.Errorf("%s: float32 and float64 parameters differ by %.3g", obj, r)
		}
	}
}

// BenchmarkPretrainEpoch trains one epoch per iteration over data of the
// size of the normal records of encoded KDDTrain+ (67,343 rows of 125
// features), hidden 64, 256-row batches.
func BenchmarkPretrainEpoch(b *testing.B) {
	const rows, dim = 67343, 125
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*dim)
	for i := range x {
		x[i] = rng.Float32()
	}
	for _, obj := range []string{"denoise", "mask"} {
		b.Run(obj, func(b *testing.B) {
			cfg := DefaultPretrainConfig()
			cfg.Objective, cfg.Hidden, cfg.BatchSize, cfg.Epochs = obj, []int{64}, 256, 1
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Pretrain(context.Background(), cfg, x, rows, dim, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
