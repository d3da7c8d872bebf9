package train

import (
	"fmt"
	"hash"
	"hash/fnv"
	"reflect"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/metaids/metaids/kernels"
)

// The gorgonia engine builds the same models as the fused engine (same MLP,
// parameter layout, initialisation, losses and optimiser) as gorgonia
// expression graphs and differentiates them symbolically, MAML's
// gradient-through-gradient included. It is the autodiff reference the
// hand-written passes are checked against, and a selectable engine.
//
// Each learner builds its graphs once for its Shape and re-runs them: inputs
// are graph nodes whose values are tensors backed by the learner's own
// buffers (parameters, episode data), so a run only refills those buffers,
// and results are copied out by Read statements into buffers of its own.
//
// A graph holds one episode and is re-run for each episode of a meta-batch,
// with the mean taken outside. MetaStep accepts 1..MetaBatch episodes, which
// a graph with MetaBatch input sets could only serve by padding and masking;
// the graph, in particular MAML's unrolled second-order part, stays the size
// of one task; and the per-episode sum is the fused engine's order too.

// NewGraph builds cfg.Algo for episodes of the given shape on the gorgonia
// engine. It validates like New; be supplies the outer optimiser's float32
// kernels (nil means the plain-Go CPU backend). Checkpoints are the fused
// engine's format: Load restores one as a fused learner, LoadCheckpoint on a
// NewGraph learner into this engine.
func NewGraph(cfg Config, shape Shape, be kernels.Backend) (l Learner, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	switch cfg.Algo {
	case "protonet", "maml", "fomaml":
	default:
		return nil, fmt.Errorf("the gorgonia engine implements protonet, maml and fomaml; use the fused engine for %s", cfg.Algo)
	}
	if be == nil {
		be = kernels.NewCPU()
	}
	cfg.Hidden = append([]int(nil), cfg.Hidden...)
	// Graph construction reports shape and type errors by panicking (G.Must).
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("building the %s graph: %v", cfg.Algo, r)
		}
	}()
	if cfg.Algo == "protonet" {
		if cfg.Float64 {
			return buildGraphProto[float64](cfg, shape, be), nil
		}
		return buildGraphProto[float32](cfg, shape, be), nil
	}
	if cfg.Float64 {
		return buildGraphGBML[float64](cfg, shape, be), nil
	}
	return buildGraphGBML[float32](cfg, shape, be), nil
}

// gbuild builds one expression graph over buffers of type T.
type gbuild[T Float] struct {
	g      *G.ExprGraph
	dt     tensor.Dtype
	m      *mlp
	inputs G.Nodes
	reads  G.Nodes         // Read statements: the program's outputs
	ones   map[int]*G.Node // [rows,1] columns of ones, per row count
	consts map[float64]*G.Node
}

func newGBuild[T Float](m *mlp) *gbuild[T] {
	b := &gbuild[T]{g: G.NewGraph(), dt: tensor.Float32, m: m, ones: map[int]*G.Node{}, consts: map[float64]*G.Node{}}
	if dtypeOf[T]() == "float64" {
		b.dt = tensor.Float64
	}
	return b
}

// matrix is an input node [r,c] whose value is backed by buf, so writing buf
// changes what the next run sees.
func (b *gbuild[T]) matrix(name string, buf []T, r, c int) *G.Node {
	v := tensor.New(tensor.WithShape(r, c), tensor.WithBacking(buf[:r*c]))
	n := G.NewMatrix(b.g, b.dt, G.WithShape(r, c), G.WithName(name), G.WithValue(v))
	b.inputs = append(b.inputs, n)
	return n
}

// params returns input nodes over p in the MLP's layout: per layer the
// weights [in,out] and the bias as a row [1,out].
func (b *gbuild[T]) params(name string, p []T) []*G.Node {
	var th []*G.Node
	for i, l := range b.m.layers {
		th = append(th,
			b.matrix(fmt.Sprintf("%s.w%d", name, i), p[l.w:l.b], l.in, l.out),
			b.matrix(fmt.Sprintf("%s.b%d", name, i), p[l.b:l.b+l.out], 1, l.out))
	}
	return th
}

// graphParamSlice is the part of a flat parameter vector p behind the i-th node
// of gbuild.params.
func graphParamSlice[T Float](m *mlp, i int, p []T) []T {
	ly := m.layers[i/2]
	if i%2 == 0 {
		return p[ly.w:ly.b]
	}
	return p[ly.b : ly.b+ly.out]
}

// c is a scalar constant.
func (b *gbuild[T]) c(v float64) *G.Node {
	if n, ok := b.consts[v]; ok {
		return n
	}
	n := G.NewConstant(any(T(v)), G.In(b.g))
	b.consts[v] = n
	return n
}

// onesCol is a [rows,1] input of ones: the bias is added as ones·b, an outer
// product, which differentiates (twice) like any product.
func (b *gbuild[T]) onesCol(rows int) *G.Node {
	if n, ok := b.ones[rows]; ok {
		return n
	}
	buf := make([]T, rows)
	for i := range buf {
		buf[i] = 1
	}
	n := b.matrix(fmt.Sprintf("ones%d", rows), buf, rows, 1)
	b.ones[rows] = n
	return n
}

// forward is the MLP with parameters th on x [rows,dim].
func (b *gbuild[T]) forward(th []*G.Node, x *G.Node, rows int) *G.Node {
	in := x
	for i, l := range b.m.layers {
		z := G.Must(G.Mul(in, th[2*i]))
		z = G.Must(G.Add(z, G.Must(G.Mul(b.onesCol(rows), th[2*i+1]))))
		if l.act {
			z = b.activate(z)
		}
		in = z
	}
	return in
}

// activate applies the hidden nonlinearity. The piecewise-linear ones are
// z⊙s with s a 0/1 (or slope/1) mask from a comparison, which the graph
// treats as a constant: the derivative is s and the second derivative 0,
// exact away from the kinks, and at z = 0 the masks follow the fused engine
// (ReLU: z > 0; leaky: z >= 0). G.Rectify takes another convention at 0,
// and exact zeros are common (a unit whose inputs are all dead ReLUs sees
// its bias, zero at initialisation).
func (b *gbuild[T]) activate(z *G.Node) *G.Node {
	switch b.m.act {
	case actReLU:
		return G.Must(G.HadamardProd(z, G.Must(G.Gt(z, b.c(0), true))))
	case actLeakyReLU:
		s := G.Must(G.Gte(z, b.c(0), true))
		// s + slope·(1−s) is exactly 1 or slope.
		f := G.Must(G.Add(s, G.Must(G.Mul(b.c(leakySlope), G.Must(G.Sub(b.c(1), s))))))
		return G.Must(G.HadamardProd(z, f))
	case actTanh:
		return G.Must(G.Tanh(z))
	case actSigmoid:
		return G.Must(G.Sigmoid(z))
	}
	panic(fmt.Sprintf("activation %d", b.m.act))
}

// crossEntropy is the mean cross-entropy of logits [rows,C] against one-hot
// labels y [rows,C]. G.SoftMax cannot be differentiated twice, so the loss is
// written out: with m the row maximum as a constant shift,
// CE = Σ_r log Σ_j exp(z_rj − m_r) − Σ_rj y_rj (z_rj − m_r), over rows. The
// shift cancels exactly, so treating it as a constant changes no derivative.
func (b *gbuild[T]) crossEntropy(logits, y *G.Node, rows int) *G.Node {
	s := G.Must(G.Sub(logits, G.Must(G.ApplyOp(graphRowMaxOp{}, logits))))
	lse := G.Must(G.Log(G.Must(G.Sum(G.Must(G.Exp(s)), 1))))
	picked := G.Must(G.Sum(G.Must(G.HadamardProd(y, s))))
	return G.Must(G.Div(G.Must(G.Sub(G.Must(G.Sum(lse)), picked)), b.c(float64(rows))))
}

// grad returns the gradient nodes of the scalar cost with respect to wrt,
// which may be intermediate nodes (MAML's adapted weights).
//
// gorgonia's Backpropagate caches each node's derivative on the node and,
// in a later call, reuses that cached derivative and stops there instead of
// differentiating again. Differentiating a cost that contains an earlier
// gradient (gradient through gradient) then silently gives wrong results,
// so the caches are cleared before every call.
func (b *gbuild[T]) grad(cost *G.Node, wrt []*G.Node) []*G.Node {
	graphClearDerivs(b.g)
	gs, err := G.Backpropagate(G.Nodes{cost}, G.Nodes{b.c(1)}, wrt)
	if err != nil {
		panic(err)
	}
	return gs
}

// graphClearDerivs forgets the derivatives Backpropagate cached on g's
// nodes. The cache is the unexported field deriv; derivOf is left alone, as
// the compiler reads it to keep gradient values live.
func graphClearDerivs(g *G.ExprGraph) {
	f, ok := reflect.TypeFor[G.Node]().FieldByName("deriv")
	if !ok || f.Type != reflect.TypeFor[*G.Node]() {
		panic("gorgonia's Node has no deriv *Node field (the engine is written against gorgonia v0.9.18)")
	}
	for _, n := range g.AllNodes() {
		*(**G.Node)(unsafe.Add(unsafe.Pointer(n), f.Offset)) = nil
	}
}

// read copies n's value into buf at every run.
func (b *gbuild[T]) read(n *G.Node, buf []T) {
	s := n.Shape()
	v := new(G.Value)
	*v = tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(buf[:s.TotalSize()]))
	b.reads = append(b.reads, G.Read(n, v))
}

// readScalar returns where n's value is copied at every run.
func (b *gbuild[T]) readScalar(n *G.Node) *graphScalar[T] {
	o := &graphScalar[T]{}
	if b.dt == tensor.Float64 {
		o.v = G.NewF64(0)
	} else {
		o.v = G.NewF32(0)
	}
	b.reads = append(b.reads, G.Read(n, &o.v))
	return o
}

// graphScalar receives a scalar result.
type graphScalar[T Float] struct{ v G.Value }

func (o *graphScalar[T]) get() float64 {
	switch v := o.v.(type) {
	case *G.F64:
		return float64(*v)
	case *G.F32:
		return float64(*v)
	}
	panic(fmt.Sprintf("scalar read into %T", o.v))
}

// gprog is a compiled graph: only what the Read statements need.
type gprog struct {
	vm G.VM
}

func (b *gbuild[T]) compile() *gprog {
	prog, locs, err := G.CompileFunction(b.g, b.inputs, b.reads)
	if err != nil {
		panic(err)
	}
	return &gprog{vm: G.NewTapeMachine(b.g, G.WithPrecompiled(prog, locs))}
}

func (p *gprog) run() error {
	p.vm.Reset()
	return p.vm.RunAll()
}

// graphRowMaxOp maps [n,C] to [n,C] holding each row's maximum. It is not
// differentiable, which makes it the constant shift of a log-sum-exp.
type graphRowMaxOp struct{}

func (graphRowMaxOp) Arity() int { return 1 }
func (graphRowMaxOp) Type() hm.Type {
	a := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(a, a)
}
func (graphRowMaxOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok || len(s) != 2 {
		return nil, fmt.Errorf("rowmax of %v, want a matrix", in[0])
	}
	return s.Clone(), nil
}
func (graphRowMaxOp) ReturnsPtr() bool      { return false }
func (graphRowMaxOp) CallsExtern() bool     { return false }
func (graphRowMaxOp) OverwritesInput() int  { return -1 }
func (graphRowMaxOp) WriteHash(h hash.Hash) { h.Write([]byte("rowmax")) }
func (op graphRowMaxOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (graphRowMaxOp) String() string       { return "RowMax" }
func (graphRowMaxOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (graphRowMaxOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("rowmax is not differentiable")
}

func (graphRowMaxOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(tensor.Tensor)
	if !ok || t.Dims() != 2 {
		return nil, fmt.Errorf("rowmax of %T, want a matrix", in[0])
	}
	if v, ok := t.(tensor.View); ok && v.IsView() {
		t = v.Materialize()
	}
	s := t.Shape()
	switch d := t.Data().(type) {
	case []float64:
		return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(graphRowMax(d, s[0], s[1]))), nil
	case []float32:
		return tensor.New(tensor.WithShape(s.Clone()...), tensor.WithBacking(graphRowMax(d, s[0], s[1]))), nil
	}
	return nil, fmt.Errorf("rowmax of %v", t.Dtype())
}

func graphRowMax[T Float](x []T, rows, cols int) []T {
	out := make([]T, rows*cols)
	for r := 0; r < rows; r++ {
		row := x[r*cols : r*cols+cols]
		mx := row[0]
		for _, v := range row[1:] {
			mx = max(mx, v)
		}
		o := out[r*cols : r*cols+cols]
		for j := range o {
			o[j] = mx
		}
	}
	return out
}

// graphOneHot writes labels y as rows of a [len(y),C] one-hot matrix.
func graphOneHot[T Float](dst []T, y []int32, C int) {
	clear(dst[:len(y)*C])
	for r, c := range y {
		dst[r*C+int(c)] = 1
	}
}
