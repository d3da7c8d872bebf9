package train

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

var allAlgos = []string{"protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "finetune", "nearest-centroid"}

func smallConfig(algo string) Config {
	c := DefaultConfig(algo)
	c.Hidden = []int{16}
	c.InnerSteps = 2
	c.TestInnerSteps = 3
	c.PretrainClasses = 8
	c.FinetuneSteps = 10
	return c
}

var small = Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2, Dim: 8}

func TestDeterministicTraining(t *testing.T) {
	for _, algo := range allAlgos {
		t.Run(algo, func(t *testing.T) {
			run := func(seed uint64) []float64 {
				c := smallConfig(algo)
				c.InitSeed = seed
				c.Optimizer.ClipNorm = 1
				c.Optimizer.WeightDecay = 1e-4
				l := mustNew(t, c, small)
				for i := 0; i < 10; i++ {
					if _, err := l.MetaStep(tinyBatch(t, small, 2, uint64(i))); err != nil {
						t.Fatal(err)
					}
				}
				e := l.(engine)
				p := make([]float64, e.numParams())
				e.getParams(p)
				return p
			}
			a, b := run(3), run(3)
			for i := range a {
				if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
					t.Fatalf("parameter %d differs between identical runs: %g vs %g", i, a[i], b[i])
				}
			}
			if c := run(4); len(c) > 0 && slices.Equal(a, c) {
				t.Fatal("different seeds gave identical parameters")
			}
		})
	}
}

func TestSteadyStateMetaStepDoesNotAllocate(t *testing.T) {
	for _, algo := range allAlgos {
		t.Run(algo, func(t *testing.T) {
			l := mustNew(t, smallConfig(algo), small)
			b := tinyBatch(t, small, 2, 1)
			if _, err := l.MetaStep(b); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(20, func() { l.MetaStep(b) }); n != 0 {
				t.Errorf("MetaStep allocates %.1f times per step", n)
			}
			labels, scores := make([]int32, small.Ways*small.Queries), make([]float32, small.Ways*small.Ways*small.Queries)
			if n := testing.AllocsPerRun(20, func() { l.Predict(b[0], labels, scores) }); n != 0 {
				t.Errorf("Predict allocates %.1f times per call", n)
			}
		})
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, algo := range allAlgos {
		for _, f64 := range []bool{false, true} {
			c := smallConfig(algo)
			c.Float64 = f64
			l := mustNew(t, c, small)
			for i := 0; i < 3; i++ {
				if _, err := l.MetaStep(tinyBatch(t, small, 2, uint64(i))); err != nil {
					t.Fatal(err)
				}
			}
			var buf bytes.Buffer
			extra := map[string][]byte{"encoder": []byte("enc-blob"), "spec": []byte(`{"a":1}`)}
			if err := l.SaveCheckpoint(&buf, extra); err != nil {
				t.Fatal(err)
			}
			raw := buf.Bytes()
			l2, got, err := Load(bytes.NewReader(raw), nil)
			if err != nil {
				t.Fatalf("%s: %v", algo, err)
			}
			if string(got["encoder"]) != "enc-blob" || string(got["spec"]) != `{"a":1}` || len(got) != 2 {
				t.Errorf("%s: extra blobs came back as %q", algo, got)
			}
			if l2.Steps() != 3 {
				t.Errorf("%s: restored step count %d, want 3", algo, l2.Steps())
			}
			ep := tinyBatch(t, small, 1, 99)[0]
			nq := small.Ways * small.Queries
			la, sa := make([]int32, nq), make([]float32, nq*small.Ways)
			lb, sb := make([]int32, nq), make([]float32, nq*small.Ways)
			l.Predict(ep, la, sa)
			l2.Predict(ep, lb, sb)
			if !slices.Equal(la, lb) || !slices.Equal(sa, sb) {
				t.Errorf("%s float64=%v: predictions differ after reload", algo, f64)
			}
			// The optimiser state came back too: one more step matches.
			b := tinyBatch(t, small, 2, 50)
			l.MetaStep(b)
			l2.MetaStep(b)
			pa, pb := make([]float64, l.(engine).numParams()), make([]float64, l.(engine).numParams())
			l.(engine).getParams(pa)
			l2.(engine).getParams(pb)
			if !slices.Equal(pa, pb) {
				t.Errorf("%s float64=%v: parameters differ one step after reload", algo, f64)
			}
			// Into an existing learner, and corrupted.
			l3 := mustNew(t, c, small)
			if _, err := l3.LoadCheckpoint(bytes.NewReader(raw)); err != nil {
				t.Errorf("%s: LoadCheckpoint: %v", algo, err)
			}
			bad := bytes.Clone(raw)
			bad[len(bad)/2] ^= 1
			if _, err := l3.LoadCheckpoint(bytes.NewReader(bad)); !errors.Is(err, ErrCheckpoint) {
				t.Errorf("%s: corrupted checkpoint gave %v", algo, err)
			}
			if _, err := l3.LoadCheckpoint(bytes.NewReader(raw[:len(raw)-9])); !errors.Is(err, ErrCheckpoint) {
				t.Errorf("%s: truncated checkpoint gave %v", algo, err)
			}
		}
	}
	// A checkpoint of another structure is refused.
	var buf bytes.Buffer
	mustNew(t, smallConfig("maml"), small).SaveCheckpoint(&buf, nil)
	c := smallConfig("maml")
	c.Hidden = []int{8}
	if _, err := mustNew(t, c, small).LoadCheckpoint(&buf); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("loading into a different structure gave %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"Algo", func(c *Config) { c.Algo = "nope" }},
		{"Hidden", func(c *Config) { c.Hidden = nil }},
		{"Hidden", func(c *Config) { c.Hidden = []int{4, 0} }},
		{"Activation", func(c *Config) { c.Activation = "gelu2" }},
		{"Distance", func(c *Config) { c.Distance = "manhattan" }},
		{"InnerSteps", func(c *Config) { c.InnerSteps = 0 }},
		{"TestInnerSteps", func(c *Config) { c.TestInnerSteps = -1 }},
		{"InnerLR", func(c *Config) { c.InnerLR = math.NaN() }},
		{"InnerLR", func(c *Config) { c.InnerLR = math.Inf(1) }},
		{"CosineScale", func(c *Config) { c.CosineScale = math.Inf(1) }},
		{"FinetuneLR", func(c *Config) { c.FinetuneLR = math.Inf(1) }},
		{"Optimizer.Name", func(c *Config) { c.Optimizer.Name = "rmsprop" }},
		{"Optimizer.LR", func(c *Config) { c.Optimizer.LR = 0 }},
		{"Optimizer.Beta2", func(c *Config) { c.Optimizer.Beta2 = 1 }},
		{"Optimizer.Beta1", func(c *Config) { c.Optimizer.Beta1 = 0.99999999 }}, // 1 in float32
		{"Optimizer.ClipNorm", func(c *Config) { c.Optimizer.ClipNorm = -1 }},
		{"PretrainClasses", func(c *Config) { c.Algo = "finetune"; c.PretrainClasses = 0 }},
	}
	for _, tc := range cases {
		c := DefaultConfig("maml")
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming the field", tc.field, err)
		}
	}
	if err := DefaultConfig("maml").Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if _, err := New(DefaultConfig("maml"), Shape{Ways: 1, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 3}, nil); err == nil {
		t.Error("1-way shape accepted")
	}
}

func TestBadInputIsAnError(t *testing.T) {
	for _, algo := range allAlgos {
		l := mustNew(t, smallConfig(algo), small)
		if _, err := l.MetaStep(nil); !errors.Is(err, ErrShape) {
			t.Errorf("%s: empty batch gave %v", algo, err)
		}
		if _, err := l.MetaStep(tinyBatch(t, small, 3, 1)); !errors.Is(err, ErrShape) {
			t.Errorf("%s: oversized batch gave %v", algo, err)
		}
		ep := datasets.NewEpisode(small.Ways, small.Shots+1, small.Queries, small.Dim)
		if _, err := l.MetaStep(datasets.Batch{ep}); !errors.Is(err, ErrShape) {
			t.Errorf("%s: wrong shape gave %v", algo, err)
		}
		b := tinyBatch(t, small, 1, 1)
		b[0].QueryY[0] = 7
		if _, err := l.MetaStep(b); !errors.Is(err, ErrShape) {
			t.Errorf("%s: bad label gave %v", algo, err)
		}
		if err := l.Predict(b[0], nil, nil); err == nil {
			t.Errorf("%s: Predict with no output buffers succeeded", algo)
		}
	}
}

// TestAsmMatchesGo trains float32 learners with and without the assembly
// kernels: they must agree to rounding.
func TestAsmMatchesGo(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels on this machine")
	}
	s := Shape{Ways: 5, Shots: 5, Queries: 5, MetaBatch: 2, Dim: 37}
	for _, algo := range []string{"protonet", "maml"} {
		c := DefaultConfig(algo)
		c.Hidden = []int{48, 32}
		c.InnerSteps = 2
		b := tinyBatch(t, s, 2, 4)
		grad := func() []float64 {
			e := mustNew(t, c, s).(engine)
			g := make([]float64, e.numParams())
			if _, err := e.metaGrad(b, g); err != nil {
				t.Fatal(err)
			}
			return g
		}
		ga := grad()
		useAsm = false
		gg := grad()
		useAsm = true
		if r := relErr(ga, gg); r > 1e-4 {
			t.Errorf("%s: assembly and Go meta-gradients differ by %.3g", algo, r)
		}
	}
}
