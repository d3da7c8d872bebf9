package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/metaids/metaids/kernels"
)

// sqDistShapesToTest are (Q, N, D): none a multiple of 4, plus 1x1 and
// single rows and columns.
var sqDistShapesToTest = [][3]int{{1, 1, 1}, {3, 5, 7}, {13, 6, 9}, {1, 7, 3}, {5, 1, 11}, {2, 3, 1}}

func sqDistRand[T Float](r *rand.Rand, n int) []T {
	v := make([]T, n)
	for i := range v {
		v[i] = T(r.Float64()*4 - 2)
	}
	return v
}

// sqDistLoop is the reference: a plain loop accumulating in float64.
func sqDistLoop[T Float](x, y []T, Q, N, D int) []float64 {
	out := make([]float64, Q*N)
	for q := 0; q < Q; q++ {
		for n := 0; n < N; n++ {
			var s float64
			for d := 0; d < D; d++ {
				v := float64(x[q*D+d]) - float64(y[n*D+d])
				s += v * v
			}
			out[q*N+n] = s
		}
	}
	return out
}

func sqDistMatrix[T Float](data []T, r, c int) *tensor.Dense {
	return tensor.New(tensor.WithShape(r, c), tensor.WithBacking(data))
}

// countingBackend counts the distance kernels it forwards.
type countingBackend struct {
	kernels.Backend
	dist, grad atomic.Int64
}

func (c *countingBackend) PairwiseSqDist(dst, x, y []float32, B, Q, N, D int) {
	c.dist.Add(1)
	c.Backend.PairwiseSqDist(dst, x, y, B, Q, N, D)
}

func (c *countingBackend) PairwiseSqDistGrad(gx, gy, gout, x, y []float32, B, Q, N, D int) {
	c.grad.Add(1)
	c.Backend.PairwiseSqDistGrad(gx, gy, gout, x, y, B, Q, N, D)
}

func testSqDistForward[T Float](t *testing.T, tol float64) {
	r := rand.New(rand.NewPCG(1, 2))
	be := &countingBackend{Backend: kernels.NewCPU()}
	for _, s := range sqDistShapesToTest {
		Q, N, D := s[0], s[1], s[2]
		x, y := sqDistRand[T](r, Q*D), sqDistRand[T](r, N*D)
		want := sqDistLoop(x, y, Q, N, D)
		check := func(how string, v G.Value) {
			t.Helper()
			got, gr, gc, err := graphMat[T](v, "result", false)
			if err != nil {
				t.Fatalf("%v %s: %v", s, how, err)
			}
			if gr != Q || gc != N {
				t.Fatalf("%v %s: result is %dx%d", s, how, gr, gc)
			}
			for i, w := range want {
				if d := math.Abs(float64(got[i]) - w); d > tol*(1+w) {
					t.Fatalf("%v %s: element %d is %g, want %g", s, how, i, got[i], w)
				}
			}
		}
		op := sqDistOp{be: be}
		v, err := op.Do(sqDistMatrix(x, Q, D), sqDistMatrix(y, N, D))
		if err != nil {
			t.Fatal(err)
		}
		check("Do", v)

		pre := sqDistMatrix(make([]T, Q*N), Q, N)
		v, err = op.UsePreallocDo(pre, sqDistMatrix(x, Q, D), sqDistMatrix(y, N, D))
		if err != nil {
			t.Fatal(err)
		}
		if v != G.Value(pre) {
			t.Fatalf("%v: UsePreallocDo returned a new value", s)
		}
		check("UsePreallocDo", v)

		// Row slices of a larger matrix, as the ProtoNet graph passes (a
		// one-row slice is a vector, not a matrix).
		if Q < 2 {
			continue
		}
		big := append(append(sqDistRand[T](r, 2*D), x...), sqDistRand[T](r, 3*D)...)
		xv, err := sqDistMatrix(big, Q+5, D).Slice(G.S(2, 2+Q))
		if err != nil {
			t.Fatal(err)
		}
		v, err = sqDistOp{}.Do(xv, sqDistMatrix(y, N, D))
		if err != nil {
			t.Fatal(err)
		}
		check("on a view, no backend", v)
	}
	n := int64(2 * len(sqDistShapesToTest)) // Do and UsePreallocDo
	if got := be.dist.Load(); dtypeOf[T]() == "float32" && got != n {
		t.Errorf("float32: the backend ran %d distance kernels, want %d", got, n)
	} else if dtypeOf[T]() == "float64" && got != 0 {
		t.Errorf("float64: the float32 backend ran %d distance kernels", got)
	}
}

// TestSqDistOpForward checks Do and UsePreallocDo against a plain loop, and
// that float32 goes through the backend.
func TestSqDistOpForward(t *testing.T) {
	t.Run("float32", func(t *testing.T) { testSqDistForward[float32](t, 1e-5) })
	t.Run("float64", func(t *testing.T) { testSqDistForward[float64](t, 1e-13) })
}

// TestSqDistOpErrors: bad shapes and types are errors, not panics.
func TestSqDistOpErrors(t *testing.T) {
	op := sqDistOp{be: kernels.NewCPU()}
	if _, err := op.InferShape(tensor.Shape{3, 4}, tensor.Shape{2, 5}); err == nil {
		t.Error("InferShape accepted different column counts")
	}
	if _, err := op.InferShape(tensor.Shape{3, 4}, tensor.Shape{4}); err == nil {
		t.Error("InferShape accepted a vector")
	}
	if s, err := op.InferShape(tensor.Shape{3, 4}, tensor.Shape{2, 4}); err != nil || !s.Eq(tensor.Shape{3, 2}) {
		t.Errorf("InferShape gave %v, %v", s, err)
	}
	g := sqDistGradOp{wrt: 1}
	if s, err := g.InferShape(tensor.Shape{3, 4}, tensor.Shape{2, 4}, tensor.Shape{3, 2}); err != nil || !s.Eq(tensor.Shape{2, 4}) {
		t.Errorf("gradient InferShape gave %v, %v", s, err)
	}
	if _, err := g.InferShape(tensor.Shape{3, 4}, tensor.Shape{2, 4}, tensor.Shape{2, 3}); err == nil {
		t.Error("gradient InferShape accepted a transposed output gradient")
	}

	x := sqDistMatrix(make([]float64, 12), 3, 4)
	if _, err := op.Do(x, sqDistMatrix(make([]float64, 10), 2, 5)); err == nil {
		t.Error("Do accepted different column counts")
	}
	if _, err := op.Do(x, sqDistMatrix(make([]float32, 8), 2, 4)); err == nil {
		t.Error("Do accepted mixed types")
	}
	if _, err := op.Do(x); err == nil {
		t.Error("Do accepted one input")
	}
	if _, err := op.Do(tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(make([]int, 12))), tensor.New(tensor.WithShape(2, 4), tensor.WithBacking(make([]int, 8)))); err == nil {
		t.Error("Do accepted ints")
	}
	if _, err := op.UsePreallocDo(sqDistMatrix(make([]float64, 6), 2, 3), x, sqDistMatrix(make([]float64, 8), 2, 4)); err == nil {
		t.Error("UsePreallocDo wrote into a value of the wrong shape")
	}
	if _, err := g.Do(x, sqDistMatrix(make([]float64, 8), 2, 4), sqDistMatrix(make([]float64, 6), 2, 3)); err == nil {
		t.Error("the gradient's Do accepted a transposed output gradient")
	}

	// Building a graph with mismatched shapes reports an error.
	gr := G.NewGraph()
	a := G.NewMatrix(gr, tensor.Float64, G.WithShape(3, 4), G.WithName("a"))
	b := G.NewMatrix(gr, tensor.Float64, G.WithShape(2, 5), G.WithName("b"))
	if _, err := graphSqDist(nil, a, b); err == nil {
		t.Error("ApplyOp accepted different column counts")
	}
}

// sqDistGraph is cost = Σ W⊙sqDist(X, Y) with the gradient nodes of X and Y
// (Y is X when same), compiled for the tape machine.
type sqDistGraph struct {
	g          *G.ExprGraph
	x, y, cost *G.Node
	xbuf, ybuf []float64
	w          []float64
	Q, N, D    int
	same       bool
}

func newSqDistGraph(t *testing.T, Q, N, D int, same bool, seed uint64) *sqDistGraph {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	if same {
		N = Q
	}
	s := &sqDistGraph{g: G.NewGraph(), Q: Q, N: N, D: D, same: same}
	s.xbuf, s.ybuf = sqDistRand[float64](r, Q*D), sqDistRand[float64](r, N*D)
	s.w = sqDistRand[float64](r, Q*N)
	s.x = G.NewMatrix(s.g, tensor.Float64, G.WithShape(Q, D), G.WithName("X"), G.WithValue(sqDistMatrix(s.xbuf, Q, D)))
	s.y = s.x
	if !same {
		s.y = G.NewMatrix(s.g, tensor.Float64, G.WithShape(N, D), G.WithName("Y"), G.WithValue(sqDistMatrix(s.ybuf, N, D)))
	}
	w := G.NewMatrix(s.g, tensor.Float64, G.WithShape(Q, N), G.WithName("W"), G.WithValue(sqDistMatrix(s.w, Q, N)))
	s.cost = G.Must(G.Sum(G.Must(G.HadamardProd(w, G.Must(graphSqDist(nil, s.x, s.y))))))
	return s
}

// refCost is the reference cost Σ W⊙dist, by a plain loop.
func (s *sqDistGraph) refCost(x, y []float64) float64 {
	var c float64
	for i, d := range sqDistLoop(x, y, s.Q, s.N, s.D) {
		c += s.w[i] * d
	}
	return c
}

// yvals is Y's elements: X's when Y is X.
func (s *sqDistGraph) yvals() []float64 {
	if s.same {
		return s.xbuf
	}
	return s.ybuf
}

// fd returns the central-difference gradients of refCost for X and Y.
func (s *sqDistGraph) fd() (gx, gy []float64) {
	const h = 1e-5
	x := append([]float64(nil), s.xbuf...)
	y := append([]float64(nil), s.ybuf...)
	cost := func() float64 {
		if s.same {
			return s.refCost(x, x)
		}
		return s.refCost(x, y)
	}
	grad := func(v []float64) []float64 {
		g := make([]float64, len(v))
		for i := range v {
			o := v[i]
			v[i] = o + h
			p := cost()
			v[i] = o - h
			m := cost()
			v[i] = o
			g[i] = (p - m) / (2 * h)
		}
		return g
	}
	return grad(x), grad(y)
}

func sqDistValues(t *testing.T, v G.Value) []float64 {
	t.Helper()
	d, _, _, err := graphMat[float64](v, "gradient", false)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s *sqDistGraph) checkGrads(t *testing.T, how string, gx, gy []float64) {
	t.Helper()
	fx, fy := s.fd()
	if r := relErr(gx, fx); r > 1e-8 || math.IsNaN(r) {
		t.Errorf("%s: X gradient differs from finite differences by %.3g\ngot %v\nfd  %v", how, r, gx, fx)
	}
	if s.same {
		return
	}
	if r := relErr(gy, fy); r > 1e-8 || math.IsNaN(r) {
		t.Errorf("%s: Y gradient differs from finite differences by %.3g\ngot %v\nfd  %v", how, r, gy, fy)
	}
}

// TestSqDistOpGradient differentiates Σ W⊙sqDist(X, Y) symbolically (tape
// machine) and in autodiff mode (LispMachine) and compares both with
// central differences, X = Y included (two gradient paths into one node).
func TestSqDistOpGradient(t *testing.T) {
	cases := []struct {
		Q, N, D int
		same    bool
	}{{1, 1, 1, false}, {3, 5, 7, false}, {6, 2, 9, false}, {4, 4, 3, true}}
	for i, c := range cases {
		name := fmt.Sprintf("%dx%dx%d", c.Q, c.N, c.D)
		if c.same {
			name += "/same"
		}
		t.Run(name, func(t *testing.T) {
			// Symbolic: gradient nodes read out of a compiled program.
			s := newSqDistGraph(t, c.Q, c.N, c.D, c.same, uint64(i))
			wrt := G.Nodes{s.x}
			if !c.same {
				wrt = append(wrt, s.y)
			}
			gs, err := G.Backpropagate(G.Nodes{s.cost}, G.Nodes{G.NewConstant(1.0, G.In(s.g))}, wrt)
			if err != nil {
				t.Fatal(err)
			}
			outs := make([]*G.Value, len(gs))
			var reads G.Nodes
			for j, gn := range gs {
				outs[j] = new(G.Value)
				reads = append(reads, G.Read(gn, outs[j]))
			}
			var costV G.Value
			reads = append(reads, G.Read(s.cost, &costV))
			inputs := G.Nodes{s.x}
			if !c.same {
				inputs = append(inputs, s.y)
			}
			inputs = append(inputs, s.g.ByName("W")...)
			prog, locs, err := G.CompileFunction(s.g, inputs, reads)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(s.g, G.WithPrecompiled(prog, locs))
			defer vm.Close()
			for run := range 2 { // a re-run reuses the program
				vm.Reset()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				if got, want := float64(*costV.(*G.F64)), s.refCost(s.xbuf, s.yvals()); math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
					t.Fatalf("run %d: cost %g, want %g", run, got, want)
				}
				var gy []float64
				if !c.same {
					gy = sqDistValues(t, *outs[1])
				}
				s.checkGrads(t, fmt.Sprintf("symbolic, run %d", run), sqDistValues(t, *outs[0]), gy)
			}

			// A second derivative is an error, not a silent zero.
			graphClearDerivs(s.g)
			if _, err := G.Backpropagate(G.Nodes{G.Must(G.Sum(gs[0]))}, G.Nodes{G.NewConstant(1.0, G.In(s.g))}, G.Nodes{s.x}); err == nil || !strings.Contains(err.Error(), "no derivative") {
				t.Errorf("differentiating the gradient gave %v", err)
			}

			// Autodiff: DoDiff accumulates into the inputs' derivatives.
			s = newSqDistGraph(t, c.Q, c.N, c.D, c.same, uint64(i))
			m := G.NewLispMachine(s.g)
			defer m.Close()
			if err := m.RunAll(); err != nil {
				t.Fatal(err)
			}
			gxv, err := s.x.Grad()
			if err != nil {
				t.Fatal(err)
			}
			var gy []float64
			if !c.same {
				gyv, err := s.y.Grad()
				if err != nil {
					t.Fatal(err)
				}
				gy = sqDistValues(t, gyv)
			}
			s.checkGrads(t, "autodiff", sqDistValues(t, gxv), gy)
		})
	}
}

// TestGraphProtoNetUsesBackend: the float32 ProtoNet graph computes its
// distances and their gradients on the learner's backend; float64 does not
// touch it, and cosine builds no sqdist node.
func TestGraphProtoNetUsesBackend(t *testing.T) {
	b := tinyBatch(t, tiny, 2, 4)
	nq := tiny.Ways * tiny.Queries
	labels, scores := make([]int32, nq), make([]float32, nq*tiny.Ways)
	for _, c := range []struct {
		float64             bool
		dist                string
		wantDist, wantGrads int64
	}{
		// Per episode, one distance and the X and Y gradients; then one
		// distance for Predict.
		{false, "euclidean", 2 + 1, 2 * 2},
		{true, "euclidean", 0, 0},
		{false, "cosine", 0, 0},
	} {
		cfg := tinyConfig("protonet", "tanh", 1)
		cfg.Float64, cfg.Distance = c.float64, c.dist
		be := &countingBackend{Backend: kernels.NewCPU()}
		l, err := NewGraph(cfg, tiny, be)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.MetaStep(b); err != nil {
			t.Fatal(err)
		}
		if err := l.Predict(b[0], labels, scores); err != nil {
			t.Fatal(err)
		}
		if d, g := be.dist.Load(), be.grad.Load(); d != c.wantDist || g != c.wantGrads {
			t.Errorf("float64 %v, %s: %d distance and %d gradient kernels on the backend, want %d and %d",
				c.float64, c.dist, d, g, c.wantDist, c.wantGrads)
		}
	}
}
