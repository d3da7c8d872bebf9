package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// clfBlobs draws rows with uniformly random labels from classes isotropic
// unit-variance Gaussians whose mean coordinates have standard deviation sep.
func clfBlobs(rows, dim, classes int, sep float64, seed uint64) ([]float32, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	means := make([][]float64, classes)
	for c := range means {
		means[c] = make([]float64, dim)
		for j := range means[c] {
			means[c][j] = rng.NormFloat64() * sep
		}
	}
	x := make([]float32, rows*dim)
	y := make([]int32, rows)
	for r := range rows {
		c := rng.IntN(classes)
		y[r] = int32(c)
		for j := range dim {
			x[r*dim+j] = float32(means[c][j] + rng.NormFloat64())
		}
	}
	return x, y
}

func mustClassifier(t testing.TB, cfg ClassifierConfig, dim, classes int) *Classifier {
	t.Helper()
	c, err := NewClassifier(cfg, dim, classes, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func clfParams(c *Classifier) []float64 {
	switch n := c.net.(type) {
	case *clfNet[float32]:
		out := make([]float64, len(n.params))
		for i, v := range n.params {
			out[i] = float64(v)
		}
		return out
	case *clfNet[float64]:
		return slices.Clone(n.params)
	}
	panic("unknown classifier engine")
}

func TestClassifierGradientFiniteDifferences(t *testing.T) {
	const dim, classes = 4, 3
	// Imbalanced labels so that balanced weights differ from 1.
	y := []int32{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2}
	rows := len(y)
	x, _ := clfBlobs(rows, dim, classes, 1, 5)
	cases := []struct {
		name, act, weights string
		hidden             []int
	}{
		{"tanh/deep/none", "tanh", "none", []int{5, 4}},
		{"tanh/deep/balanced", "tanh", "balanced", []int{5, 4}},
		{"sigmoid/balanced", "sigmoid", "balanced", []int{6}},
		{"relu/balanced", "relu", "balanced", []int{6}},
		{"leaky_relu/none", "leaky_relu", "none", []int{6}},
		{"logistic/balanced", "tanh", "balanced", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultClassifierConfig()
			cfg.Hidden, cfg.Activation, cfg.ClassWeights = tc.hidden, tc.act, tc.weights
			cfg.Float64, cfg.BatchSize, cfg.InitSeed = true, rows, 7
			c := mustClassifier(t, cfg, dim, classes)
			n := c.net.(*clfNet[float64])
			w := classWeights(tc.weights, y, classes)
			if tc.weights == "balanced" {
				n.setWeights(w)
			}
			p := slices.Clone(n.params)
			loss, wsum := n.grads(x, y, nil)
			g := slices.Clone(n.grad)
			fd := fdGrad(p, func(q []float64) float64 {
				copy(n.params, q)
				l, _ := n.grads(x, y, nil)
				return l
			})
			copy(n.params, p)
			if r := relErr(g, fd); r > 1e-5 || math.IsNaN(r) {
				t.Fatalf("relative error %.3g between analytic and finite-difference gradient\nanalytic %v\nfd       %v", r, g[:6], fd[:6])
			}
			// The loss is the weighted mean of the per-row cross-entropies.
			var num, den float64
			for r := range rows {
				ce := taskLoss(n.m, classes, p, x[r*dim:r*dim+dim], y[r:r+1])
				num += w[y[r]] * ce
				den += w[y[r]]
			}
			if math.Abs(loss-num/den) > 1e-12 || math.Abs(wsum-den) > 1e-12 {
				t.Errorf("loss %g (weight %g), weighted mean of row losses %g (weight %g)", loss, wsum, num/den, den)
			}
		})
	}
}

func TestClassifierBalancedWeights(t *testing.T) {
	y := []int32{0, 0, 0, 0, 0, 0, 1, 1, 1, 2}
	got := classWeights("balanced", y, 4)
	want := []float64{1. / 3, 2. / 3, 2, 0} // 1/count over its mean 0.5; class 3 absent
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-15 {
			t.Fatalf("balanced weights %v, want %v", got, want)
		}
	}
	if got := classWeights("none", y, 3); !slices.Equal(got, []float64{1, 1, 1}) {
		t.Errorf("unweighted weights %v", got)
	}
}

func TestClassifierDeterministic(t *testing.T) {
	x, y := clfBlobs(203, 12, 4, 2, 3) // 203 rows: the last batch of 32 is short
	fit := func(seed uint64) []float64 {
		cfg := DefaultClassifierConfig()
		cfg.Hidden, cfg.Epochs, cfg.BatchSize, cfg.InitSeed, cfg.ClassWeights = []int{16}, 3, 32, seed, "balanced"
		c := mustClassifier(t, cfg, 12, 4)
		if err := c.Fit(context.Background(), x, y, 203, nil); err != nil {
			t.Fatal(err)
		}
		return clfParams(c)
	}
	a, b := fit(1), fit(1)
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			t.Fatalf("parameter %d differs between identical fits: %v vs %v", i, a[i], b[i])
		}
	}
	if slices.Equal(a, fit(2)) {
		t.Error("a different seed gave the same parameters")
	}
}

func TestClassifierShuffle(t *testing.T) {
	src := rand.NewPCG(0, 0)
	rng := rand.New(src)
	perm := func(seed uint64, epoch int) []int32 {
		p := make([]int32, 50)
		shuffleRows(p, src, rng, seed, epoch)
		return p
	}
	e0 := perm(1, 0)
	for i, v := range slices.Sorted(slices.Values(e0)) {
		if v != int32(i) {
			t.Fatalf("not a permutation: %v", e0)
		}
	}
	if slices.IsSorted(e0) {
		t.Error("rows not shuffled")
	}
	if !slices.Equal(e0, perm(1, 0)) {
		t.Error("the same seed and epoch gave different orders")
	}
	if slices.Equal(e0, perm(1, 1)) || slices.Equal(e0, perm(2, 0)) {
		t.Error("another epoch or seed gave the same order")
	}
}

func TestClassifierLearnsSeparable(t *testing.T) {
	const dim, classes = 10, 3
	x, y := clfBlobs(900, dim, classes, 1.5, 11)
	trX, trY, teX, teY := x[:600*dim], y[:600], x[600*dim:], y[600:]
	cfg := DefaultClassifierConfig()
	cfg.Hidden, cfg.Epochs, cfg.BatchSize, cfg.Optimizer.LR = []int{16}, 15, 32, 1e-2
	c := mustClassifier(t, cfg, dim, classes)
	var losses []float64
	err := c.Fit(context.Background(), trX, trY, 600, func(epoch int, loss float64) {
		if epoch != len(losses)+1 {
			t.Errorf("progress epoch %d, want %d", epoch, len(losses)+1)
		}
		losses = append(losses, loss)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(losses) != cfg.Epochs || !(losses[len(losses)-1] < losses[0]/2) {
		t.Errorf("epoch losses %v do not fall", losses)
	}
	acc := func(x []float32, y []int32) float64 {
		labels, probs := make([]int32, len(y)), make([]float32, len(y)*classes)
		if err := c.Predict(x, len(y), labels, probs); err != nil {
			t.Fatal(err)
		}
		right := 0
		for i, l := range labels {
			var s float64
			for _, p := range probs[i*classes : i*classes+classes] {
				s += float64(p)
			}
			if math.Abs(s-1) > 1e-5 || probs[i*classes+int(l)] < slices.Max(probs[i*classes:i*classes+classes]) {
				t.Fatalf("row %d: label %d with probabilities %v", i, l, probs[i*classes:i*classes+classes])
			}
			if l == y[i] {
				right++
			}
		}
		return float64(right) / float64(len(y))
	}
	if a := acc(trX, trY); a < 0.95 {
		t.Errorf("training accuracy %.3f, want > 0.95", a)
	}
	if a := acc(teX, teY); a < 0.95 {
		t.Errorf("held-out accuracy %.3f, want > 0.95", a)
	}
}

// Predict goes through the network in chunks; chunk boundaries must not
// change any row's result.
func TestClassifierPredictChunks(t *testing.T) {
	const dim, classes, rows = 7, 3, 2*predictChunk + 37
	x, _ := clfBlobs(rows, dim, classes, 2, 13)
	cfg := DefaultClassifierConfig()
	cfg.Hidden = []int{20}
	c := mustClassifier(t, cfg, dim, classes)
	labels, probs := make([]int32, rows), make([]float32, rows*classes)
	if err := c.Predict(x, rows, labels, probs); err != nil {
		t.Fatal(err)
	}
	one, p1 := make([]int32, 1), make([]float32, classes)
	for _, r := range []int{0, predictChunk - 1, predictChunk, 2 * predictChunk, rows - 1} {
		if err := c.Predict(x[r*dim:r*dim+dim], 1, one, p1); err != nil {
			t.Fatal(err)
		}
		if one[0] != labels[r] {
			t.Errorf("row %d: label %d alone, %d in bulk", r, one[0], labels[r])
		}
		for j := range p1 {
			if math.Abs(float64(p1[j]-probs[r*classes+j])) > 1e-6 {
				t.Errorf("row %d: probabilities %v alone, %v in bulk", r, p1, probs[r*classes:r*classes+classes])
			}
		}
	}
	if err := c.Predict(nil, 0, nil, nil); err != nil {
		t.Errorf("empty predict: %v", err)
	}
}

func TestClassifierBadInput(t *testing.T) {
	const dim, classes = 3, 3
	cfg := DefaultClassifierConfig()
	cfg.Hidden, cfg.BatchSize = []int{4}, 4
	c := mustClassifier(t, cfg, dim, classes)
	ctx := context.Background()
	x, y := clfBlobs(5, dim, classes, 1, 1)
	nan := slices.Clone(x)
	nan[7] = float32(math.NaN())
	fits := []struct {
		name string
		x    []float32
		y    []int32
		rows int
		want string
	}{
		{"zero rows", nil, nil, 0, "0 rows"},
		{"negative rows", x, y, -1, "rows"},
		{"label too large", x, []int32{0, 1, 3, 0, 1}, 5, "label 3 at row 2"},
		{"negative label", x, []int32{0, -1, 2, 0, 1}, 5, "label -1 at row 1"},
		{"short labels", x, y[:4], 5, "4 labels for 5 rows"},
		{"short features", x[:14], y, 5, "14 features"},
		{"NaN feature", nan, y, 5, "row 2 feature 1"},
	}
	for _, f := range fits {
		err := c.Fit(ctx, f.x, f.y, f.rows, nil)
		if err == nil || !strings.Contains(err.Error(), f.want) {
			t.Errorf("Fit with %s: error %v, want one mentioning %q", f.name, err, f.want)
		}
	}
	preds := []struct {
		name   string
		x      []float32
		rows   int
		labels []int32
		probs  []float32
		want   string
	}{
		{"short labels", x, 5, make([]int32, 4), nil, "4 labels"},
		{"short features", x[:12], 5, make([]int32, 5), nil, "12 features"},
		{"wrong probs", x, 5, make([]int32, 5), make([]float32, 14), "14 probabilities"},
		{"negative rows", x, -2, nil, nil, "rows"},
		{"NaN feature", nan, 5, make([]int32, 5), nil, "row 2 feature 1"},
	}
	for _, p := range preds {
		err := c.Predict(p.x, p.rows, p.labels, p.probs)
		if err == nil || !strings.Contains(err.Error(), p.want) {
			t.Errorf("Predict with %s: error %v, want one mentioning %q", p.name, err, p.want)
		}
	}

	configs := []struct {
		field string
		edit  func(*ClassifierConfig)
	}{
		{"Hidden", func(c *ClassifierConfig) { c.Hidden = []int{8, 0} }},
		{"Activation", func(c *ClassifierConfig) { c.Activation = "gelu" }},
		{"Epochs", func(c *ClassifierConfig) { c.Epochs = 0 }},
		{"BatchSize", func(c *ClassifierConfig) { c.BatchSize = 0 }},
		{"BatchSize", func(c *ClassifierConfig) { c.BatchSize = MaxClassifierBatch + 1 }},
		{"ClassWeights", func(c *ClassifierConfig) { c.ClassWeights = "inverse" }},
		{"Optimizer.Name", func(c *ClassifierConfig) { c.Optimizer.Name = "rmsprop" }},
		{"Optimizer.LR", func(c *ClassifierConfig) { c.Optimizer.LR = 0 }},
		{"Optimizer.LR", func(c *ClassifierConfig) { c.Optimizer.LR = math.NaN() }},
		{"Optimizer.LR", func(c *ClassifierConfig) { c.Optimizer.LR = math.Inf(1) }},
		{"Optimizer.ClipNorm", func(c *ClassifierConfig) { c.Optimizer.ClipNorm = math.Inf(1) }},
		{"Optimizer.Beta2", func(c *ClassifierConfig) { c.Optimizer.Beta2 = 1 }},
		{"Optimizer.Beta1", func(c *ClassifierConfig) { c.Optimizer.Beta1 = 0.99999999 }}, // 1 in float32
		{"Optimizer.Eps", func(c *ClassifierConfig) { c.Optimizer.Eps = 0 }},
		{"Optimizer.WeightDecay", func(c *ClassifierConfig) { c.Optimizer.WeightDecay = -1 }},
		{"Optimizer.ClipNorm", func(c *ClassifierConfig) { c.Optimizer.ClipNorm = -1 }},
		{"Optimizer.Decoupled", func(c *ClassifierConfig) { c.Optimizer = OptimConfig{Name: "sgd", LR: 0.1, Decoupled: true} }},
	}
	for _, tc := range configs {
		k := DefaultClassifierConfig()
		tc.edit(&k)
		err := k.Validate()
		if err == nil || !strings.Contains(err.Error(), "config "+tc.field+":") {
			t.Errorf("config with bad %s: error %v", tc.field, err)
		}
		if _, err := NewClassifier(k, dim, classes, nil); err == nil {
			t.Errorf("NewClassifier accepted a bad %s", tc.field)
		}
	}
	if err := DefaultClassifierConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if _, err := NewClassifier(DefaultClassifierConfig(), 0, 2, nil); err == nil {
		t.Error("input width 0 accepted")
	}
	if _, err := NewClassifier(DefaultClassifierConfig(), 4, 1, nil); err == nil {
		t.Error("one class accepted")
	}

	// A diverging step is an error naming the epoch and the remedy, and the
	// parameters it would have produced are not applied.
	k := DefaultClassifierConfig()
	k.Hidden, k.Epochs, k.BatchSize = []int{8}, 3, 2
	k.Optimizer = OptimConfig{Name: "sgd", LR: 1e30}
	d := mustClassifier(t, k, dim, classes)
	err := d.Fit(ctx, x, y, 5, nil)
	if err == nil || !strings.Contains(err.Error(), "epoch 1") || !strings.Contains(err.Error(), "Optimizer.LR") {
		t.Errorf("diverging fit: error %v, want one naming the epoch and the learning rate", err)
	}
	for _, v := range clfParams(d) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatal("non-finite parameter after a rejected step")
		}
	}

	// Cancellation: before the start, and from the progress callback.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Fit(cancelled, x, y, 5, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fit: %v", err)
	}
	k = DefaultClassifierConfig()
	k.Hidden, k.Epochs, k.BatchSize = []int{4}, 5, 2
	e := mustClassifier(t, k, dim, classes)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = e.Fit(cctx, x, y, 5, func(epoch int, _ float64) {
		if epoch == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || e.Epochs() != 2 {
		t.Errorf("fit cancelled after epoch 2: error %v, %d epochs done", err, e.Epochs())
	}
}

func TestClassifierSaveLoadRoundTrip(t *testing.T) {
	const dim, classes = 9, 4
	x, y := clfBlobs(150, dim, classes, 2, 17)
	for _, f64 := range []bool{false, true} {
		for _, opt := range []string{"adam", "sgd"} {
			cfg := DefaultClassifierConfig()
			cfg.Hidden, cfg.Epochs, cfg.BatchSize, cfg.ClassWeights, cfg.Float64 = []int{12, 8}, 1, 16, "balanced", f64
			if opt == "sgd" {
				cfg.Optimizer = OptimConfig{Name: "sgd", LR: 0.05}
			}
			ctx := context.Background()
			a := mustClassifier(t, cfg, dim, classes)
			if err := a.Fit(ctx, x, y, 150, nil); err != nil {
				t.Fatal(err)
			}
			extra := map[string][]byte{"encoder": []byte(`{"dim":9}`), "empty": {}, "spec": []byte("nsl-kdd")}
			var buf bytes.Buffer
			if err := a.Save(&buf, extra); err != nil {
				t.Fatal(err)
			}
			saved := bytes.Clone(buf.Bytes())
			b, got, err := LoadClassifier(bytes.NewReader(saved), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || string(got["encoder"]) != `{"dim":9}` || string(got["spec"]) != "nsl-kdd" || got["empty"] == nil || len(got["empty"]) != 0 {
				t.Errorf("extra blobs %q", got)
			}
			if b.Dim() != dim || b.Classes() != classes || b.Epochs() != 1 || !slices.Equal(b.Config().Hidden, cfg.Hidden) ||
				!slices.Equal(b.ClassWeights(), a.ClassWeights()) {
				t.Errorf("restored classifier: dim %d classes %d epochs %d config %+v weights %v", b.Dim(), b.Classes(), b.Epochs(), b.Config(), b.ClassWeights())
			}
			predict := func(c *Classifier) ([]int32, []float32) {
				l, p := make([]int32, 150), make([]float32, 150*classes)
				if err := c.Predict(x, 150, l, p); err != nil {
					t.Fatal(err)
				}
				return l, p
			}
			la, pa := predict(a)
			lb, pb := predict(b)
			if !slices.Equal(la, lb) || !slices.Equal(pa, pb) {
				t.Errorf("float64=%v %s: predictions differ after the round trip", f64, opt)
			}
			// Resuming from the checkpoint matches uninterrupted training
			// bit for bit (parameters, optimiser state, shuffle sequence).
			for _, c := range []*Classifier{a, b} {
				if err := c.Fit(ctx, x, y, 150, nil); err != nil {
					t.Fatal(err)
				}
			}
			pa2, pb2 := clfParams(a), clfParams(b)
			for i := range pa2 {
				if math.Float64bits(pa2[i]) != math.Float64bits(pb2[i]) {
					t.Fatalf("float64=%v %s: resumed training differs at parameter %d", f64, opt, i)
				}
			}

			for _, pos := range []int{0, len(clfMagic) + 2, len(clfMagic) + 20, len(saved) / 2, len(saved) - 30, len(saved) - 1} {
				bad := bytes.Clone(saved)
				bad[pos] ^= 0x10
				if _, _, err := LoadClassifier(bytes.NewReader(bad), nil); !errors.Is(err, ErrCheckpoint) {
					t.Errorf("byte %d flipped: error %v", pos, err)
				}
			}
			for _, n := range []int{0, 10, len(saved) / 2, len(saved) - 1} {
				if _, _, err := LoadClassifier(bytes.NewReader(saved[:n]), nil); !errors.Is(err, ErrCheckpoint) {
					t.Errorf("truncated to %d bytes: error %v", n, err)
				}
			}
		}
	}
	// A meta-learner checkpoint is recognised and refused.
	l := mustNew(t, tinyConfig("protonet", "relu", 1), tiny)
	var buf bytes.Buffer
	if err := l.SaveCheckpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadClassifier(&buf, nil); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "train.Load") {
		t.Errorf("meta-learner checkpoint: error %v", err)
	}
}

func TestClassifierBatchStepDoesNotAllocate(t *testing.T) {
	const dim, classes = 20, 5
	x, y := clfBlobs(100, dim, classes, 1, 19)
	for _, f64 := range []bool{false, true} {
		cfg := DefaultClassifierConfig()
		cfg.Hidden, cfg.BatchSize, cfg.ClassWeights, cfg.Float64 = []int{32}, 16, "balanced", f64
		c := mustClassifier(t, cfg, dim, classes)
		c.net.setWeights(classWeights("balanced", y, classes))
		idx := make([]int32, 16)
		for i := range idx {
			idx[i] = int32(5 * i)
		}
		for _, n := range []int{16, 5} { // a full and a short last batch
			allocs := testing.AllocsPerRun(20, func() {
				c.net.grads(x, y, idx[:n])
				c.net.apply()
			})
			if allocs != 0 {
				t.Errorf("float64=%v: %.1f allocations per %d-row training step", f64, allocs, n)
			}
		}
	}
	// Fit's allocations are its setup only: they do not grow with the
	// number of batches.
	cfg := DefaultClassifierConfig()
	cfg.Hidden, cfg.BatchSize, cfg.Epochs = []int{8}, 4, 1
	c := mustClassifier(t, cfg, dim, classes)
	fitAllocs := func(rows int) float64 {
		return testing.AllocsPerRun(3, func() {
			if err := c.Fit(context.Background(), x[:rows*dim], y[:rows], rows, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
	if small, large := fitAllocs(8), fitAllocs(100); large != small {
		t.Errorf("Fit allocates %.0f times for 2 batches, %.0f for 25", small, large)
	}
}

// BenchmarkClassifierEpoch trains one epoch per iteration on random data of
// the size of encoded KDDTrain+ (125,973 rows of 125 features, 5 classes).
func BenchmarkClassifierEpoch(b *testing.B) {
	const rows, dim, classes = 125973, 125, 5
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*dim)
	for i := range x {
		x[i] = rng.Float32()
	}
	y := make([]int32, rows)
	for i := range y {
		y[i] = int32(rng.IntN(classes))
	}
	cfg := DefaultClassifierConfig()
	cfg.Hidden, cfg.BatchSize, cfg.Epochs = []int{64}, 256, 1
	c := mustClassifier(b, cfg, dim, classes)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := c.Fit(context.Background(), x, y, rows, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*rows/b.Elapsed().Seconds(), "rows/s")
}
