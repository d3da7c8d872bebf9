package train

import (
	G "gorgonia.org/gorgonia"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

// graphGBML is MAML or FOMAML on the gorgonia engine, with the model, inner
// loop and losses of gbml.
//
// MAML's meta graph unrolls the InnerSteps support-set SGD steps
// θ_{k+1} = θ_k − α∇L_s(θ_k) symbolically, each ∇L_s a gradient node of the
// graph, then differentiates the query loss at θ_K with respect to θ_0
// through all of them. FOMAML needs no graph through the inner loop: it
// re-runs a one-step graph (support loss and gradient at w) K times, updating
// w outside the graph, and a query one for the gradient at θ_K. Predict
// adapts with the same support graph, which also serves MAML.
type graphGBML[T Float] struct {
	base[T]
	m          *mlp
	meta       *gprog // maml: query loss at θ_K and its gradient w.r.t. θ_0
	sup, qry   *gprog // loss and gradient at w on the support / query set
	fwd        *gprog // query logits at w
	loss       *graphScalar[T]
	qryLoss    *graphScalar[T]
	xs, xq     []T
	ys, yq     []T // one-hot labels
	w          []T // adapted weights (FOMAML's θ_k, Predict's)
	gbuf       []T
	logits     []T
	lr         T
	firstOrder bool
}

func buildGraphGBML[T Float](cfg Config, s Shape, be kernels.Backend) *graphGBML[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(s.Dim, cfg.Hidden, s.Ways, act)
	l := &graphGBML[T]{m: m, firstOrder: cfg.Algo == "fomaml", lr: T(cfg.InnerLR)}
	l.init(cfg.Algo, cfg, s, be, m.nParam)
	initParams(m, l.params, cfg.InitSeed)
	ns, nq, C := s.Ways*s.Shots, s.Ways*s.Queries, s.Ways
	l.xs = make([]T, ns*s.Dim)
	l.xq = make([]T, nq*s.Dim)
	l.ys = make([]T, ns*C)
	l.yq = make([]T, nq*C)
	l.w = make([]T, m.nParam)
	l.gbuf = make([]T, m.nParam)
	l.logits = make([]T, nq*C)

	// step is the graph of the loss and its gradient at w on (x, y).
	step := func(x, y []T, rows int) (*gprog, *graphScalar[T]) {
		b := newGBuild[T](m)
		th := b.params("w", l.w)
		loss := b.crossEntropy(b.forward(th, b.matrix("x", x, rows, s.Dim), rows), b.matrix("y", y, rows, C), rows)
		out := b.readScalar(loss)
		for i, gn := range b.grad(loss, th) {
			b.read(gn, graphParamSlice(m, i, l.gbuf))
		}
		return b.compile(), out
	}
	l.sup, _ = step(l.xs, l.ys, ns)
	if l.firstOrder {
		l.qry, l.qryLoss = step(l.xq, l.yq, nq)
	} else {
		b := newGBuild[T](m)
		th0 := b.params("theta", l.params)
		xs, ys := b.matrix("xs", l.xs, ns, s.Dim), b.matrix("ys", l.ys, ns, C)
		th := th0
		for range cfg.InnerSteps {
			gs := b.grad(b.crossEntropy(b.forward(th, xs, ns), ys, ns), th)
			next := make([]*G.Node, len(th))
			for i := range th {
				next[i] = G.Must(G.Sub(th[i], G.Must(G.Mul(b.c(cfg.InnerLR), gs[i]))))
			}
			th = next
		}
		loss := b.crossEntropy(b.forward(th, b.matrix("xq", l.xq, nq, s.Dim), nq), b.matrix("yq", l.yq, nq, C), nq)
		l.loss = b.readScalar(loss)
		for i, gn := range b.grad(loss, th0) {
			b.read(gn, graphParamSlice(m, i, l.gbuf))
		}
		l.meta = b.compile()
	}
	b := newGBuild[T](m)
	b.read(b.forward(b.params("w", l.w), b.matrix("xq", l.xq, nq, s.Dim), nq), l.logits)
	l.fwd = b.compile()

	l.grads = l.metaGrads
	return l
}

// load writes ep into the input buffers.
func (l *graphGBML[T]) load(ep *datasets.Episode, labels bool) {
	convert(l.xs, ep.SupportX)
	convert(l.xq, ep.QueryX)
	graphOneHot(l.ys, ep.SupportY, l.shape.Ways)
	if labels {
		graphOneHot(l.yq, ep.QueryY, l.shape.Ways)
	}
}

// adapt runs k support-set SGD steps from the parameters into w.
func (l *graphGBML[T]) adapt(k int) error {
	copy(l.w, l.params)
	for range k {
		if err := l.sup.run(); err != nil {
			return err
		}
		for i, gi := range l.gbuf {
			l.w[i] -= l.lr * gi
		}
	}
	return nil
}

func (l *graphGBML[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	var loss float64
	inv := 1 / T(len(b))
	for _, ep := range b {
		l.load(ep, true)
		if l.firstOrder {
			if err := l.adapt(l.cfg.InnerSteps); err != nil {
				return 0, err
			}
			if err := l.qry.run(); err != nil {
				return 0, err
			}
			loss += l.qryLoss.get()
		} else {
			if err := l.meta.run(); err != nil {
				return 0, err
			}
			loss += l.loss.get()
		}
		for i, v := range l.gbuf {
			g[i] += inv * v
		}
	}
	return loss / float64(len(b)), nil
}

func (l *graphGBML[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	l.load(ep, false)
	if err := l.adapt(l.cfg.TestInnerSteps); err != nil {
		return err
	}
	if err := l.fwd.run(); err != nil {
		return err
	}
	logSoftmax(l.logits, s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}
