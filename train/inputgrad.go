package train

import (
	"fmt"

	"github.com/metaids/metaids/datasets"
)

// InputGradienter differentiates a learner's episode loss with respect to
// its query rows, for adversarial perturbations of the inputs.
//
// QueryInputGrad adapts to ep's support set exactly as Predict does, then
// writes into gx [Ways*Queries*Dim] the gradient of the mean query
// cross-entropy (the loss Predict's scores imply, against ep.QueryY) with
// respect to ep.QueryX, and returns that loss. The adaptation only depends
// on the support set, so it is not differentiated. The learner's parameters
// are not changed. Like Predict it uses the learner's working buffers, so it
// is not safe for concurrent use.
//
// Implemented for protonet (Euclidean and cosine), nearest-centroid, maml,
// fomaml, reptile, anil, metasgd (at the adapted weights) and finetune
// (through the fitted episode head and the frozen encoder), on the fused
// engine; other learners return an error.
type InputGradienter interface {
	QueryInputGrad(ep *datasets.Episode, gx []float32) (loss float64, err error)
}

// QueryInputGrad is the fallback for learners without input gradients.
func (l *base[T]) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	what := l.name
	if l.cfg.Engine != "" && l.cfg.Engine != "fused" {
		what += " on the " + l.cfg.Engine + " engine"
	}
	return 0, fmt.Errorf("input gradients are not implemented for %s", what)
}

func checkInputGradArgs(ep *datasets.Episode, s Shape, gx []float32) error {
	if err := checkEpisode(ep, s); err != nil {
		return fmt.Errorf("input gradient: %w", err)
	}
	if want := s.Ways * s.Queries * s.Dim; len(gx) != want {
		return fmt.Errorf("input gradient: gx has %d values, want %d", len(gx), want)
	}
	return nil
}

// rowsOf views rows [lo, lo+n) of a forward pass, so that only those rows
// are back-propagated (the layers act row by row).
func rowsOf[T Float](m *mlp, ps *pass[T], lo, n int) *pass[T] {
	sub := &pass[T]{rows: n}
	for i, l := range m.layers {
		a, b := lo*l.out, (lo+n)*l.out
		sub.z = append(sub.z, ps.z[i][a:b])
		sub.a = append(sub.a, ps.a[i][a:b])
		sub.dz = append(sub.dz, ps.dz[i][a:b])
	}
	return sub
}

// backwardInput back-propagates dout (the loss gradient with respect to the
// network output) to the network input, skipping the parameter gradients,
// and returns dX [rows, in], which lives in s.da until the scratch is used
// again.
func backwardInput[T Float](m *mlp, w []T, ps *pass[T], s *scratch[T], dout []T) []T {
	return backprop(m, w, nil, ps, s, dout, nil, true)
}

// storeGrad writes src into the float32 gradient dst.
func storeGrad[T Float](dst []float32, src []T) {
	if s, ok := any(src).([]float32); ok {
		copy(dst, s)
		return
	}
	for i, v := range src[:len(dst)] {
		dst[i] = float32(v)
	}
}

func (l *protoNet[T]) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	s := l.shape
	if err := checkInputGradArgs(ep, s, gx); err != nil {
		return 0, err
	}
	ns, nq, h := s.Ways*s.Shots, s.Ways*s.Queries, l.h
	x := stack(l.x, datasets.Batch{ep})
	l.ps.rows = ns + nq
	forward(l.m, l.params, x, l.ps, l.sc)
	out := l.ps.out()
	dout := l.dout[:(ns+nq)*h]
	clear(dout)
	loss := protoLoss(l.st, out[:ns*h], out[ns*h:(ns+nq)*h], ep.SupportY, ep.QueryY, s.Ways, h, l.cosine, l.scale,
		dout[:ns*h], dout[ns*h:])
	// Only the query path: the prototypes are fixed by the support set.
	dx := backwardInput(l.m, l.params, rowsOf(l.m, l.ps, ns, nq), l.sc, dout[ns*h:])
	storeGrad(gx, dx)
	return loss, nil
}

// QueryInputGrad computes in float64 (the model is the identity, so this is
// cheap) although Predict scores in float32.
func (l *nearestCentroid) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	s := l.shape
	if err := checkInputGradArgs(ep, s, gx); err != nil {
		return 0, err
	}
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	st := newProtoState[float64](s.Ways, nq, s.Dim)
	es := convert(make([]float64, ns*s.Dim), ep.SupportX)
	eq := convert(make([]float64, nq*s.Dim), ep.QueryX)
	des, deq := make([]float64, ns*s.Dim), make([]float64, nq*s.Dim)
	loss := protoLoss(st, es, eq, ep.SupportY, ep.QueryY, s.Ways, s.Dim, l.cosine, l.cfg.CosineScale, des, deq)
	storeGrad(gx, deq)
	return loss, nil
}

func (l *gbml[T]) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	s := l.shape
	if err := checkInputGradArgs(ep, s, gx); err != nil {
		return 0, err
	}
	// The same adaptation as Predict: support set only, TestInnerSteps.
	l.adaptAndScore(ep)
	w, nq := l.work[0], s.Ways*s.Queries
	loss := softmaxCE(w.qps.out(), ep.QueryY, nq, s.Ways, w.qprob, w.qdlg)
	storeGrad(gx, backwardInput(l.m, l.adapt, w.qps, w.sc, w.qdlg[:nq*s.Ways]))
	return loss, nil
}

func (l *finetune[T]) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	s := l.shape
	if err := checkInputGradArgs(ep, s, gx); err != nil {
		return 0, err
	}
	// The same head fit as Predict, on the frozen encoder's embeddings.
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	wenc := l.params[:l.enc.nParam]
	l.fitHead(ep)
	loss := softmaxCE(l.hps.out(), ep.QueryY, nq, s.Ways, l.hprob, l.hdlog)
	deq := backwardInput(l.head, l.hw, l.hps, l.hsc, l.hdlog[:nq*s.Ways])
	dx := backwardInput(l.enc, wenc, rowsOf(l.enc, l.eps, ns, nq), l.sc, deq)
	storeGrad(gx, dx)
	return loss, nil
}
