package train

import (
	"math/rand/v2"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

func init() {
	Register("protonet", newProtoNet)
	Register("nearest-centroid", newNearestCentroid)
}

// protoNet is a prototypical network: the MLP embeds support and query rows,
// prototypes are the per-way support means, and logits are negative squared
// Euclidean distances (or scaled cosine similarities) to the prototypes.
// A meta-batch runs through the encoder as one stacked matrix, so each layer
// is one larger product rather than one per episode.
type protoNet[T Float] struct {
	base[T]
	m      *mlp
	h      int
	x      []T // stacked inputs [MetaBatch*(ns+nq), Dim]
	ps     *pass[T]
	sc     *scratch[T]
	dout   []T
	st     *protoState[T]
	cosine bool
	scale  T
}

func newProtoNet(cfg Config, s Shape, be kernels.Backend) (Learner, error) {
	if cfg.Float64 {
		return buildProtoNet[float64](cfg, s, be)
	}
	return buildProtoNet[float32](cfg, s, be)
}

func buildProtoNet[T Float](cfg Config, s Shape, be kernels.Backend) (*protoNet[T], error) {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(s.Dim, cfg.Hidden, 0, act)
	l := &protoNet[T]{m: m, h: m.outDim(), cosine: cfg.Distance == "cosine", scale: T(cfg.CosineScale)}
	l.init("protonet", cfg, s, be, m.nParam)
	initParams(m, l.params, cfg.InitSeed)
	rows := s.MetaBatch * s.Ways * (s.Shots + s.Queries)
	l.x = make([]T, rows*s.Dim)
	l.ps = newPass[T](m, rows)
	l.sc = newScratch[T](m, rows, false)
	l.dout = make([]T, rows*l.h)
	l.st = newProtoState[T](s.Ways, s.Ways*s.Queries, l.h)
	l.grads = l.metaGrads
	return l, nil
}

// initParams draws the initial weights into p from seed.
func initParams[T Float](m *mlp, p []T, seed uint64) {
	tmp := make([]float64, m.nParam)
	m.init(tmp, rand.New(rand.NewPCG(seed, 0x6d657461696473)))
	for i, v := range tmp {
		p[i] = T(v)
	}
}

// stack copies the episodes' support then query rows, episode by episode,
// into x.
func stack[T Float](x []T, b datasets.Batch) []T {
	n := 0
	for _, ep := range b {
		for _, src := range [][]float32{ep.SupportX, ep.QueryX} {
			convert(x[n:n+len(src)], src)
			n += len(src)
		}
	}
	return x[:n]
}

func (l *protoNet[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	s := l.shape
	ns, nq, h := s.Ways*s.Shots, s.Ways*s.Queries, l.h
	per := ns + nq
	x := stack(l.x, b)
	l.ps.rows = len(b) * per
	forward(l.m, l.params, x, l.ps, l.sc)
	out := l.ps.out()
	dout := l.dout[:len(b)*per*h]
	clear(dout)
	var loss float64
	for i, ep := range b {
		o := i * per * h
		loss += protoLoss(l.st, out[o:o+ns*h], out[o+ns*h:o+per*h], ep.SupportY, ep.QueryY, s.Ways, h, l.cosine, l.scale,
			dout[o:o+ns*h], dout[o+ns*h:o+per*h])
	}
	// The meta-loss is the mean over episodes.
	inv := 1 / T(len(b))
	for i := range dout {
		dout[i] *= inv
	}
	loss /= float64(len(b))
	if l.aux != nil {
		// The heads read the embeddings just computed for every row.
		n, err := l.aux.labels(b)
		if err != nil {
			return 0, err
		}
		loss += l.aux.lossGrad(out[:n*h], n, l.params, g, dout)
	}
	backward(l.m, l.params, x, l.ps, l.sc, dout, g)
	return loss, nil
}

func (l *protoNet[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	ns, nq, h := s.Ways*s.Shots, s.Ways*s.Queries, l.h
	x := stack(l.x, datasets.Batch{ep})
	l.ps.rows = ns + nq
	forward(l.m, l.params, x, l.ps, l.sc)
	out := l.ps.out()
	protoLoss(l.st, out[:ns*h], out[ns*h:(ns+nq)*h], ep.SupportY, ep.QueryY, s.Ways, h, l.cosine, l.scale, nil, nil)
	logSoftmax(l.st.logits, nq, s.Ways, scores, labels)
	return nil
}

// nearestCentroid classifies query rows by the nearest per-way mean of the
// raw (encoded) support features. It learns nothing: the floor every
// learner must beat.
type nearestCentroid struct {
	base[float32]
	st     *protoState[float32]
	cosine bool
}

func newNearestCentroid(cfg Config, s Shape, be kernels.Backend) (Learner, error) {
	l := &nearestCentroid{st: newProtoState[float32](s.Ways, s.Ways*s.Queries, s.Dim), cosine: cfg.Distance == "cosine"}
	l.init("nearest-centroid", cfg, s, be, 0)
	l.grads = func(b datasets.Batch, _ []float32) (float64, error) {
		var loss float64
		for _, ep := range b {
			loss += protoLoss(l.st, ep.SupportX, ep.QueryX, ep.SupportY, ep.QueryY, s.Ways, s.Dim, l.cosine, float32(cfg.CosineScale), nil, nil)
		}
		return loss / float64(len(b)), nil
	}
	return l, nil
}

func (l *nearestCentroid) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	protoLoss(l.st, ep.SupportX, ep.QueryX, ep.SupportY, ep.QueryY, s.Ways, s.Dim, l.cosine, float32(l.cfg.CosineScale), nil, nil)
	logSoftmax(l.st.logits, s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}
