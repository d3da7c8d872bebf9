package train

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"
)

// embedAlgos are the learners with an MLP encoder.
var embedAlgos = []string{"protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "finetune"}

var embedShape = Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2, Dim: 8}

func embedConfig(algo string, float64s bool, act string, hidden ...int) Config {
	c := DefaultConfig(algo)
	c.Hidden = hidden
	c.Activation = act
	c.InnerSteps = 1
	c.TestInnerSteps = 1
	c.PretrainClasses = 8
	c.Float64 = float64s
	return c
}

// dyadic fills p with multiples of 1/den in [-1, 1]. With such weights and
// inputs every product and sum of a small network is exact in float32 and
// float64, so results cannot depend on summation order or kernels.
func dyadic(p []float64, den int, rng *rand.Rand) {
	for i := range p {
		p[i] = float64(rng.IntN(2*den+1)-den) / float64(den)
	}
}

func dyadicRows(rows, dim int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	p := make([]float64, rows*dim)
	dyadic(p, 8, rng)
	x := make([]float32, len(p))
	for i, v := range p {
		x[i] = float32(v)
	}
	return x
}

// plainEmbed is the encoder written out independently of mlp: each hidden
// layer is h = f(x·W + b) with W [in,out] row-major and then b [out] in the
// parameter vector, the layers one after another from the start.
func plainEmbed(p []float64, x []float32, rows, dim int, hidden []int, f func(float64) float64) []float64 {
	in := make([]float64, len(x))
	for i, v := range x {
		in[i] = float64(v)
	}
	off, width := 0, dim
	for _, out := range hidden {
		w, b := p[off:off+width*out], p[off+width*out:off+width*out+out]
		h := make([]float64, rows*out)
		for r := 0; r < rows; r++ {
			for j := 0; j < out; j++ {
				var z float64
				for k := 0; k < width; k++ {
					z += in[r*width+k] * w[k*out+j]
				}
				h[r*out+j] = f(z + b[j])
			}
		}
		off += width*out + out
		in, width = h, out
	}
	return in
}

func encoderParams(dim int, hidden []int) int {
	n, in := 0, dim
	for _, h := range hidden {
		n += in*h + h
		in = h
	}
	return n
}

func relu(z float64) float64 { return max(z, 0) }

func mustEmbed(t *testing.T, l Learner, x []float32, rows int) []float32 {
	t.Helper()
	e, ok := l.(Embedder)
	if !ok {
		t.Fatalf("%s does not implement Embedder", l.Name())
	}
	out := make([]float32, rows*e.EmbedDim())
	if err := e.Embed(x, rows, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEmbedMatchesPlainForward checks every encoder learner, in both
// precisions, against the written-out forward pass: exactly, with dyadic
// weights and inputs. The first hidden layer is wide enough for the blocked
// matrix kernel, the second narrow enough for the dot-product path.
func TestEmbedMatchesPlainForward(t *testing.T) {
	hidden := []int{18, 5}
	const rows = 7
	x := dyadicRows(rows, embedShape.Dim, 3)
	for _, algo := range embedAlgos {
		for _, f64 := range []bool{true, false} {
			name := algo + "/float32"
			if f64 {
				name = algo + "/float64"
			}
			t.Run(name, func(t *testing.T) {
				l := mustNew(t, embedConfig(algo, f64, "relu", hidden...), embedShape)
				if got := l.(Embedder).EmbedDim(); got != 5 {
					t.Fatalf("EmbedDim %d, want 5", got)
				}
				e := l.(engine)
				p := make([]float64, e.numParams())
				rng := rand.New(rand.NewPCG(5, 9))
				dyadic(p, 16, rng)
				e.setParams(p)
				want := plainEmbed(p, x, rows, embedShape.Dim, hidden, relu)
				got := mustEmbed(t, l, x, rows)
				for i := range want {
					if float64(got[i]) != want[i] {
						t.Fatalf("value %d: Embed %g, plain forward %g", i, got[i], want[i])
					}
				}
				// The head (and Meta-SGD's rates) past the encoder prefix
				// must not matter; new encoder weights must.
				nEnc := encoderParams(embedShape.Dim, hidden)
				for i := nEnc; i < len(p); i++ {
					p[i] = 3
				}
				e.setParams(p)
				if again := mustEmbed(t, l, x, rows); !equal32(again, got) {
					t.Fatal("changing the parameters past the encoder changed the embedding")
				}
				dyadic(p[:nEnc], 16, rng)
				e.setParams(p)
				want = plainEmbed(p, x, rows, embedShape.Dim, hidden, relu)
				got = mustEmbed(t, l, x, rows)
				for i := range want {
					if float64(got[i]) != want[i] {
						t.Fatalf("after new weights, value %d: Embed %g, plain forward %g", i, got[i], want[i])
					}
				}
			})
		}
	}
}

// TestEmbedSmoothActivation uses the learner's own initialisation and tanh,
// where results are only equal up to rounding.
func TestEmbedSmoothActivation(t *testing.T) {
	for _, algo := range []string{"protonet", "maml"} {
		l := mustNew(t, embedConfig(algo, true, "tanh", 6, 4), embedShape)
		e := l.(engine)
		p := make([]float64, e.numParams())
		e.getParams(p)
		x := dyadicRows(5, embedShape.Dim, 4)
		want := plainEmbed(p, x, 5, embedShape.Dim, []int{6, 4}, math.Tanh)
		got := mustEmbed(t, l, x, 5)
		for i := range want {
			// float32 output: half an ulp of float32 at most.
			if d := math.Abs(float64(got[i]) - want[i]); d > 1e-7*max(1, math.Abs(want[i])) {
				t.Fatalf("%s value %d: Embed %g, plain forward %g", algo, i, got[i], want[i])
			}
		}
	}
}

// TestEmbedGraphEngine checks that the gorgonia learners, which share the
// parameter layout, embed like the fused ones.
func TestEmbedGraphEngine(t *testing.T) {
	for _, algo := range []string{"protonet", "maml"} {
		c := embedConfig(algo, true, "relu", 6)
		fused, graph := mustNew(t, c, embedShape), mustGraph(t, c, embedShape)
		x := dyadicRows(4, embedShape.Dim, 6)
		if a, b := mustEmbed(t, fused, x, 4), mustEmbed(t, graph, x, 4); !equal32(a, b) {
			t.Fatalf("%s: graph engine embeds %v, fused %v", algo, b, a)
		}
	}
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestEmbedChunks embeds more rows than one chunk holds, ending in a partial
// chunk, and compares with embedding the rows one at a time.
func TestEmbedChunks(t *testing.T) {
	rows := 2*embedChunk + 37
	x := make([]float32, rows*embedShape.Dim)
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, c := range []Config{
		embedConfig("protonet", false, "relu", 32, 16),
		embedConfig("maml", true, "tanh", 7),
		embedConfig("finetune", false, "leaky_relu", 20),
	} {
		l := mustNew(t, c, embedShape)
		e := l.(Embedder)
		h := e.EmbedDim()
		all := mustEmbed(t, l, x, rows)
		one := make([]float32, h)
		for r := 0; r < rows; r++ {
			if err := e.Embed(x[r*embedShape.Dim:(r+1)*embedShape.Dim], 1, one); err != nil {
				t.Fatal(err)
			}
			// The float32 kernels block rows differently in a full chunk
			// and a single row, so allow float32 rounding there.
			for j, v := range one {
				w := all[r*h+j]
				if d := math.Abs(float64(v - w)); d > 1e-5*max(1, math.Abs(float64(w))) || (c.Float64 && v != w) {
					t.Fatalf("%s row %d value %d: %g in a chunk, %g alone", c.Algo, r, j, w, v)
				}
			}
		}
	}
}

func TestEmbedNearestCentroidIsIdentity(t *testing.T) {
	l := mustNew(t, embedConfig("nearest-centroid", false, "relu", 16), embedShape)
	if d := l.(Embedder).EmbedDim(); d != embedShape.Dim {
		t.Fatalf("EmbedDim %d, want the input width %d", d, embedShape.Dim)
	}
	x := dyadicRows(3, embedShape.Dim, 2)
	if got := mustEmbed(t, l, x, 3); !equal32(got, x) {
		t.Fatalf("embedding %v, want the input %v", got, x)
	}
}

func TestEmbedSteadyStateDoesNotAllocate(t *testing.T) {
	for _, f64 := range []bool{false, true} {
		l := mustNew(t, embedConfig("protonet", f64, "relu", 16), embedShape)
		e := l.(Embedder)
		rows := embedChunk + 3
		x := make([]float32, rows*embedShape.Dim)
		out := make([]float32, rows*e.EmbedDim())
		if err := e.Embed(x, rows, out); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(10, func() { e.Embed(x, rows, out) }); n != 0 {
			t.Errorf("float64=%v: Embed allocates %.1f times per call", f64, n)
		}
	}
}

func TestEmbedErrors(t *testing.T) {
	d := embedShape.Dim
	for _, algo := range []string{"protonet", "maml", "nearest-centroid"} {
		l := mustNew(t, embedConfig(algo, false, "relu", 4), embedShape)
		e := l.(Embedder)
		h := e.EmbedDim()
		for _, c := range []struct {
			name      string
			x         []float32
			rows      int
			out       []float32
			wantInErr string
		}{
			{"negative rows", nil, -1, nil, "rows"},
			{"short input", make([]float32, 2*d-1), 2, make([]float32, 2*h), "input"},
			{"long input", make([]float32, 3*d), 2, make([]float32, 2*h), "input"},
			{"short output", make([]float32, 2*d), 2, make([]float32, 2*h-1), "output"},
			{"long output", make([]float32, 2*d), 2, make([]float32, 3*h), "output"},
			{"huge rows", make([]float32, d), math.MaxInt/2 + 1, make([]float32, h), "input"},
		} {
			err := e.Embed(c.x, c.rows, c.out)
			if err == nil || !strings.Contains(err.Error(), c.wantInErr) {
				t.Errorf("%s, %s: error %v, want one about the %s", algo, c.name, err, c.wantInErr)
			}
		}
		if err := e.Embed(nil, 0, nil); err != nil {
			t.Errorf("%s: zero rows: %v", algo, err)
		}
	}
	// A learner without an encoder in its parameters refuses.
	var b base[float32]
	b.name, b.shape = "custom", embedShape
	if err := b.Embed(make([]float32, d), 1, make([]float32, 4)); err == nil || !strings.Contains(err.Error(), "no encoder") {
		t.Errorf("learner without an encoder: error %v", err)
	}
}

// TestEveryLearnerEmbeds guards against a registered learner that silently
// lacks an embedding.
func TestEveryLearnerEmbeds(t *testing.T) {
	for _, algo := range Names() {
		c := embedConfig(algo, false, "relu", 4)
		l, err := New(c, embedShape, nil)
		if err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		e, ok := l.(Embedder)
		if !ok || e.EmbedDim() == 0 {
			t.Errorf("%s has no embedding", algo)
		}
	}
}

// TestEmbedStateIsReleased checks that a learner's embedding buffers go
// when the learner does.
func TestEmbedStateIsReleased(t *testing.T) {
	k := func() weak.Pointer[base[float32]] {
		l := mustNew(t, embedConfig("protonet", false, "relu", 4), embedShape).(*protoNet[float32])
		mustEmbed(t, l, make([]float32, embedShape.Dim), 1)
		k := weak.Make(&l.base)
		if _, ok := embedStates.Load(k); !ok {
			t.Fatal("no embedding state after Embed")
		}
		return k
	}()
	for range 200 {
		runtime.GC()
		if _, ok := embedStates.Load(k); !ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the embedding state outlived its learner")
}
