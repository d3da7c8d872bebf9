package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

// graphProto is ProtoNet on the gorgonia engine: the model, logits and loss
// of protoNet, differentiated by gorgonia.
type graphProto[T Float] struct {
	base[T]
	m           *mlp
	train, pred *gprog
	loss        *graphScalar[T]
	x           []T // support then query rows [ns+nq, Dim]
	avg         []T // [Ways, ns]: prototype = avg · support embeddings
	yq          []T // one-hot query labels [nq, Ways]
	gbuf        []T // one episode's gradient
	logits      []T // [nq, Ways]
	count       []int
}

func buildGraphProto[T Float](cfg Config, s Shape, be kernels.Backend) *graphProto[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(s.Dim, cfg.Hidden, 0, act)
	l := &graphProto[T]{m: m}
	l.init("protonet", cfg, s, be, m.nParam)
	initParams(m, l.params, cfg.InitSeed)
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	l.x = make([]T, (ns+nq)*s.Dim)
	l.avg = make([]T, s.Ways*ns)
	l.yq = make([]T, nq*s.Ways)
	l.gbuf = make([]T, m.nParam)
	l.logits = make([]T, nq*s.Ways)
	l.count = make([]int, s.Ways)

	// Training: loss and its gradient.
	b := newGBuild[T](m)
	th := b.params("theta", l.params)
	logits := l.logitsGraph(b, th)
	loss := b.crossEntropy(logits, b.matrix("yq", l.yq, nq, s.Ways), nq)
	l.loss = b.readScalar(loss)
	for i, gn := range b.grad(loss, th) {
		b.read(gn, graphParamSlice(m, i, l.gbuf))
	}
	l.train = b.compile()

	// Prediction: logits only.
	b = newGBuild[T](m)
	b.read(l.logitsGraph(b, b.params("theta", l.params)), l.logits)
	l.pred = b.compile()

	l.grads = l.metaGrads
	return l
}

// logitsGraph embeds the stacked episode and returns the query logits: the
// negative squared Euclidean distances to the prototypes, one sqDistOp node
// on the learner's backend, or the scaled cosine similarities.
//
// The sqdist gradient nodes have no derivative of their own; ProtoNet's
// meta-gradient is a first derivative of the loss, so none is needed.
func (l *graphProto[T]) logitsGraph(b *gbuild[T], th []*G.Node) *G.Node {
	s := l.shape
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	e := b.forward(th, b.matrix("x", l.x, ns+nq, s.Dim), ns+nq)
	es := G.Must(G.Slice(e, G.S(0, ns)))
	eq := G.Must(G.Slice(e, G.S(ns, ns+nq)))
	p := G.Must(G.Mul(b.matrix("avg", l.avg, s.Ways, ns), es))
	if l.cfg.Distance != "cosine" {
		return G.Must(G.Neg(G.Must(graphSqDist(l.be, eq, p))))
	}
	dots := G.Must(G.Mul(eq, G.Must(G.Transpose(p))))
	qq := G.Must(G.Sum(G.Must(G.HadamardProd(eq, eq)), 1))
	pp := G.Must(G.Sum(G.Must(G.HadamardProd(p, p)), 1))
	col := func(v *G.Node, n int) *G.Node { return G.Must(G.Reshape(v, tensor.Shape{n, 1})) }
	row := func(v *G.Node, n int) *G.Node { return G.Must(G.Reshape(v, tensor.Shape{1, n})) }
	nqn := G.Must(G.Sqrt(G.Must(G.Add(qq, b.c(cosEps)))))
	npn := G.Must(G.Sqrt(G.Must(G.Add(pp, b.c(cosEps)))))
	den := G.Must(G.Mul(col(nqn, nq), row(npn, s.Ways)))
	return G.Must(G.Mul(b.c(l.cfg.CosineScale), G.Must(G.HadamardDiv(dots, den))))
}

// load writes ep's rows and its prototype averaging matrix into the inputs.
func (l *graphProto[T]) load(ep *datasets.Episode) {
	s := l.shape
	ns := s.Ways * s.Shots
	stack(l.x, datasets.Batch{ep})
	clear(l.avg)
	clear(l.count)
	for _, y := range ep.SupportY {
		l.count[y]++
	}
	for i, y := range ep.SupportY {
		l.avg[int(y)*ns+i] = 1 / T(l.count[y])
	}
}

func (l *graphProto[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	var loss float64
	inv := 1 / T(len(b))
	for _, ep := range b {
		l.load(ep)
		graphOneHot(l.yq, ep.QueryY, l.shape.Ways)
		if err := l.train.run(); err != nil {
			return 0, err
		}
		loss += l.loss.get()
		for i, v := range l.gbuf {
			g[i] += inv * v
		}
	}
	return loss / float64(len(b)), nil
}

func (l *graphProto[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	l.load(ep)
	if err := l.pred.run(); err != nil {
		return err
	}
	logSoftmax(l.logits, s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}
