package train

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/cpu"
)

// sqDistOp maps X [Q,D] and Y [N,D] to their pairwise squared Euclidean
// distances [Q,N], D[q,n] = Σ_d (X[q,d]−Y[n,d])², as one graph node instead
// of a chain of products, norms and broadcasts. float32 runs on be, the
// learner's backend, so that a GPU backend serves the graph engine too;
// float64 runs on the plain-Go kernels, as the Backend is float32 only. A
// nil be means the plain-Go kernels for both.
//
// Its derivatives are sqDistGradOp nodes (symbolic mode) or DoDiff (the
// LispMachine's autodiff mode); those nodes have no derivative of their own.
//
// The op does not call out to gorgonia's extern machinery (BLAS, CUDA
// contexts): a GPU backend copies in and out within the call, so for
// gorgonia it is a synchronous host-memory op (CallsExtern is false).
type sqDistOp struct{ be kernels.Backend }

var (
	_ G.SDOp            = sqDistOp{}
	_ G.ADOp            = sqDistOp{}
	_ G.UsePreallocDoer = sqDistOp{}
	_ G.SDOp            = sqDistGradOp{}
	_ G.UsePreallocDoer = sqDistGradOp{}
)

// graphSqDist is the node sqDist(x, y).
func graphSqDist(be kernels.Backend, x, y *G.Node) (*G.Node, error) {
	return G.ApplyOp(sqDistOp{be: be}, x, y)
}

func (sqDistOp) Arity() int { return 2 }

// Type is Matrix a → Matrix a → Matrix a.
func (sqDistOp) Type() hm.Type {
	a := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(a, a, a)
}

func (sqDistOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := sqDistShapes("sqdist", in, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][0], s[1][0]}, nil
}

func (sqDistOp) ReturnsPtr() bool     { return false }
func (sqDistOp) CallsExtern() bool    { return false }
func (sqDistOp) OverwritesInput() int { return -1 }

// WriteHash leaves the backend out: it changes where the op runs, not what
// it computes.
func (sqDistOp) WriteHash(h hash.Hash) { h.Write([]byte("sqdist")) }
func (op sqDistOp) Hashcode() uint32   { return graphOpHash(op) }
func (sqDistOp) String() string        { return "SqDist" }

func (sqDistOp) DiffWRT(n int) []bool { return graphAllTrue(n) }

// SymDiff returns the gradient nodes for X and Y.
func (op sqDistOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("sqdist has 2 inputs, got %d", len(in))
	}
	gx, err := G.ApplyOp(sqDistGradOp{be: op.be, wrt: 0}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	gy, err := G.ApplyOp(sqDistGradOp{be: op.be, wrt: 1}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{gx, gy}, nil
}

// DoDiff accumulates the gradients into the inputs' derivative values, as
// gorgonia's autodiff expects.
func (op sqDistOp) DoDiff(_ G.ExecutionContext, in G.Nodes, out *G.Node) error {
	if len(in) != 2 {
		return fmt.Errorf("sqdist has 2 inputs, got %d", len(in))
	}
	gout, err := out.Grad()
	if err != nil {
		return err
	}
	gx, err := in[0].Grad()
	if err != nil {
		return err
	}
	gy, err := in[1].Grad()
	if err != nil {
		return err
	}
	switch dt, err := graphDtype(in[0].Value()); {
	case err != nil:
		return err
	case dt == tensor.Float32:
		return sqDistDoDiff[float32](op.be, in[0].Value(), in[1].Value(), gout, gx, gy)
	case dt == tensor.Float64:
		return sqDistDoDiff[float64](op.be, in[0].Value(), in[1].Value(), gout, gx, gy)
	default:
		return fmt.Errorf("sqdist of %v", dt)
	}
}

func sqDistDoDiff[T Float](be kernels.Backend, xv, yv, gv, gxv, gyv G.Value) error {
	x, Q, D, err := graphMat[T](xv, "X", false)
	if err != nil {
		return err
	}
	y, N, Dy, err := graphMat[T](yv, "Y", false)
	if err != nil {
		return err
	}
	gout, gq, gn, err := graphMat[T](gv, "the output's gradient", false)
	if err != nil {
		return err
	}
	gx, r1, c1, err := graphMat[T](gxv, "X's gradient", true)
	if err != nil {
		return err
	}
	gy, r2, c2, err := graphMat[T](gyv, "Y's gradient", true)
	if err != nil {
		return err
	}
	if Dy != D || gq != Q || gn != N || r1 != Q || c1 != D || r2 != N || c2 != D {
		return fmt.Errorf("sqdist gradient: X %dx%d, Y %dx%d, output gradient %dx%d, gradients %dx%d and %dx%d",
			Q, D, N, Dy, gq, gn, r1, c1, r2, c2)
	}
	pairwiseSqDistGrad(be, gx, gy, gout, x, y, Q, N, D)
	return nil
}

func (op sqDistOp) Do(in ...G.Value) (G.Value, error) { return op.do(nil, in) }

// UsePreallocDo writes into prealloc, which must be a dense [Q,N] matrix
// of the inputs' type; the tape machine falls back to Do on an error.
func (op sqDistOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("sqdist: no preallocated value")
	}
	return op.do(prealloc, in)
}

func (op sqDistOp) do(prealloc G.Value, in []G.Value) (_ G.Value, err error) {
	defer kernels.Catch(&err) // a failed device, as an error of the graph
	if len(in) != 2 {
		return nil, fmt.Errorf("sqdist has 2 inputs, got %d", len(in))
	}
	switch dt, err := graphDtype(in[0]); {
	case err != nil:
		return nil, err
	case dt == tensor.Float32:
		return sqDistDo[float32](op.be, prealloc, in[0], in[1])
	case dt == tensor.Float64:
		return sqDistDo[float64](op.be, prealloc, in[0], in[1])
	default:
		return nil, fmt.Errorf("sqdist of %v", dt)
	}
}

func sqDistDo[T Float](be kernels.Backend, prealloc, xv, yv G.Value) (G.Value, error) {
	x, Q, D, err := graphMat[T](xv, "X", false)
	if err != nil {
		return nil, err
	}
	y, N, Dy, err := graphMat[T](yv, "Y", false)
	if err != nil {
		return nil, err
	}
	if Dy != D {
		return nil, fmt.Errorf("sqdist of %dx%d and %dx%d: the column counts differ", Q, D, N, Dy)
	}
	out, dst, err := graphOut[T](prealloc, Q, N)
	if err != nil {
		return nil, err
	}
	if be != nil {
		if d, ok := any(dst).([]float32); ok {
			be.PairwiseSqDist(d, any(x).([]float32), any(y).([]float32), 1, Q, N, D)
			return out, nil
		}
	}
	cpu.PairwiseSqDist(dst, x, y, 1, Q, N, D)
	return out, nil
}

// sqDistGradOp is the gradient of Σ G⊙sqDist(X, Y) with respect to X
// (wrt 0, [Q,D]) or Y (wrt 1, [N,D]), from the inputs X, Y and G [Q,N].
// It is one op per input because a gorgonia node holds one value.
type sqDistGradOp struct {
	be  kernels.Backend
	wrt int
}

func (sqDistGradOp) Arity() int { return 3 }

// Type is Matrix a → Matrix a → Matrix a → Matrix a.
func (sqDistGradOp) Type() hm.Type {
	a := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(a, a, a, a)
}

func (op sqDistGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, err := sqDistShapes(op.String(), in, 3)
	if err != nil {
		return nil, err
	}
	if op.wrt != 0 && op.wrt != 1 {
		return nil, fmt.Errorf("%v: wrt %d", op, op.wrt)
	}
	return s[op.wrt].Clone(), nil
}

func (sqDistGradOp) ReturnsPtr() bool     { return false }
func (sqDistGradOp) CallsExtern() bool    { return false }
func (sqDistGradOp) OverwritesInput() int { return -1 }
func (op sqDistGradOp) WriteHash(h hash.Hash) {
	h.Write([]byte{'s', 'q', 'd', 'i', 's', 't', 'g', 'r', 'a', 'd', byte(op.wrt)})
}
func (op sqDistGradOp) Hashcode() uint32 { return graphOpHash(op) }
func (op sqDistGradOp) String() string {
	if op.wrt == 0 {
		return "SqDistGradX"
	}
	return "SqDistGradY"
}

// DiffWRT claims every input so that differentiating through this op
// reaches SymDiff and fails there, rather than being skipped as a constant
// and giving wrong second derivatives without a word.
func (sqDistGradOp) DiffWRT(n int) []bool { return graphAllTrue(n) }

// SymDiff fails: ProtoNet's meta-gradient needs first derivatives only, and
// MAML, whose meta-gradient differentiates a gradient, builds no sqdist.
func (op sqDistGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%v has no derivative (second derivatives of sqdist are not implemented)", op)
}

func (op sqDistGradOp) Do(in ...G.Value) (G.Value, error) { return op.do(nil, in) }

// UsePreallocDo overwrites prealloc, which must be a dense matrix of the
// result's shape and type.
func (op sqDistGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if prealloc == nil {
		return nil, fmt.Errorf("%v: no preallocated value", op)
	}
	return op.do(prealloc, in)
}

func (op sqDistGradOp) do(prealloc G.Value, in []G.Value) (_ G.Value, err error) {
	defer kernels.Catch(&err)
	if len(in) != 3 {
		return nil, fmt.Errorf("%v has 3 inputs, got %d", op, len(in))
	}
	switch dt, err := graphDtype(in[0]); {
	case err != nil:
		return nil, err
	case dt == tensor.Float32:
		return sqDistGradDo[float32](op, prealloc, in)
	case dt == tensor.Float64:
		return sqDistGradDo[float64](op, prealloc, in)
	default:
		return nil, fmt.Errorf("%v of %v", op, dt)
	}
}

func sqDistGradDo[T Float](op sqDistGradOp, prealloc G.Value, in []G.Value) (G.Value, error) {
	x, Q, D, err := graphMat[T](in[0], "X", false)
	if err != nil {
		return nil, err
	}
	y, N, Dy, err := graphMat[T](in[1], "Y", false)
	if err != nil {
		return nil, err
	}
	gout, gq, gn, err := graphMat[T](in[2], "the output's gradient", false)
	if err != nil {
		return nil, err
	}
	if Dy != D || gq != Q || gn != N {
		return nil, fmt.Errorf("%v: X %dx%d, Y %dx%d, output gradient %dx%d", op, Q, D, N, Dy, gq, gn)
	}
	var out G.Value
	var gx, gy []T
	switch op.wrt {
	case 0:
		out, gx, err = graphOut[T](prealloc, Q, D)
		clear(gx)
	case 1:
		out, gy, err = graphOut[T](prealloc, N, D)
		clear(gy)
	default:
		err = fmt.Errorf("%v: wrt %d", op, op.wrt)
	}
	if err != nil {
		return nil, err
	}
	pairwiseSqDistGrad(op.be, gx, gy, gout, x, y, Q, N, D)
	return out, nil
}

// pairwiseSqDistGrad accumulates the gradients into gx and gy (either may be
// nil) on be for float32, else on the plain-Go kernels.
func pairwiseSqDistGrad[T Float](be kernels.Backend, gx, gy, gout, x, y []T, Q, N, D int) {
	if be != nil {
		if g, ok := any(gout).([]float32); ok {
			// A nil []T must reach the backend as a nil []float32.
			gx32, _ := any(gx).([]float32)
			gy32, _ := any(gy).([]float32)
			be.PairwiseSqDistGrad(gx32, gy32, g, any(x).([]float32), any(y).([]float32), 1, Q, N, D)
			return
		}
	}
	cpu.PairwiseSqDistGrad(gx, gy, gout, x, y, 1, Q, N, D)
}

// sqDistShapes checks that the first two of n input shapes are matrices
// with the same column count and, for the gradient, that the third is
// [rows of the first, rows of the second].
func sqDistShapes(name string, in []G.DimSizer, n int) ([]tensor.Shape, error) {
	if len(in) != n {
		return nil, fmt.Errorf("%s has %d inputs, got %d", name, n, len(in))
	}
	s := make([]tensor.Shape, n)
	for i, d := range in {
		sh, ok := d.(tensor.Shape)
		if !ok || len(sh) != 2 {
			return nil, fmt.Errorf("%s: input %d is %v, want a matrix", name, i, d)
		}
		s[i] = sh
	}
	if s[0][1] != s[1][1] {
		return nil, fmt.Errorf("%s of %v and %v: the column counts differ", name, s[0], s[1])
	}
	if n == 3 && (s[2][0] != s[0][0] || s[2][1] != s[1][0]) {
		return nil, fmt.Errorf("%s: output gradient %v, want (%d, %d)", name, s[2], s[0][0], s[1][0])
	}
	return s, nil
}

func graphDtype(v G.Value) (tensor.Dtype, error) {
	if v == nil {
		return tensor.Dtype{}, fmt.Errorf("no value")
	}
	return v.Dtype(), nil
}

// graphMat returns v, a dense matrix of T, as its r×c row-major elements.
// A view that is not contiguous is copied unless the result is written to.
func graphMat[T Float](v G.Value, what string, write bool) (data []T, r, c int, err error) {
	d, ok := v.(*tensor.Dense)
	if !ok || d.Dims() != 2 {
		return nil, 0, 0, fmt.Errorf("%s is a %T, want a dense matrix", what, v)
	}
	if d.RequiresIterator() {
		if write {
			return nil, 0, 0, fmt.Errorf("%s is not contiguous", what)
		}
		d = d.Materialize().(*tensor.Dense)
	}
	s := d.Shape()
	data, ok = d.Data().([]T)
	if !ok || len(data) < s[0]*s[1] {
		return nil, 0, 0, fmt.Errorf("%s holds %v, want %d elements of %T", what, d.Dtype(), s[0]*s[1], T(0))
	}
	return data[:s[0]*s[1]], s[0], s[1], nil
}

// graphOut returns a new r×c matrix or, given one, prealloc after checking
// its type and shape, together with its elements.
func graphOut[T Float](prealloc G.Value, r, c int) (G.Value, []T, error) {
	if prealloc == nil {
		buf := make([]T, r*c)
		return tensor.New(tensor.WithShape(r, c), tensor.WithBacking(buf)), buf, nil
	}
	buf, pr, pc, err := graphMat[T](prealloc, "the preallocated value", true)
	if err != nil {
		return nil, nil, err
	}
	if pr != r || pc != c {
		return nil, nil, fmt.Errorf("the preallocated value is %dx%d, want %dx%d", pr, pc, r, c)
	}
	return prealloc, buf, nil
}

func graphAllTrue(n int) []bool {
	b := make([]bool, n)
	for i := range b {
		b[i] = true
	}
	return b
}

func graphOpHash(op G.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
