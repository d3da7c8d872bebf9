package train

import (
	"fmt"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

func init() { Register("finetune", newFinetune) }

// finetune is the transfer-learning baseline: MetaStep is a supervised step
// on every row of the batch's episodes, labelled with their pool class
// (Episode.Classes), through the MLP and a PretrainClasses-way head. Predict
// freezes the encoder and fits a new zero-initialised Ways-way linear head
// on the support embeddings by FinetuneSteps of full-batch gradient descent.
type finetune[T Float] struct {
	base[T]
	m, enc, head *mlp
	x            []T
	y            []int32
	ps, eps      *pass[T]
	hps          *pass[T]
	sc, hsc      *scratch[T]
	prob, dlog   []T
	hw, hg       []T // the episode head's parameters and gradient
	hprob, hdlog []T
}

func newFinetune(cfg Config, s Shape, be kernels.Backend) (Learner, error) {
	if cfg.Float64 {
		return buildFinetune[float64](cfg, s, be), nil
	}
	return buildFinetune[float32](cfg, s, be), nil
}

func buildFinetune[T Float](cfg Config, s Shape, be kernels.Backend) *finetune[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(s.Dim, cfg.Hidden, cfg.PretrainClasses, act)
	// The encoder is the prefix of the parameter vector: the head comes last.
	enc := newMLP(s.Dim, cfg.Hidden, 0, act)
	head := newMLP(enc.outDim(), nil, s.Ways, act)
	l := &finetune[T]{m: m, enc: enc, head: head}
	l.init("finetune", cfg, s, be, m.nParam)
	initParams(m, l.params, cfg.InitSeed)
	per := s.Ways * (s.Shots + s.Queries)
	rows := s.MetaBatch * per
	l.x = make([]T, rows*s.Dim)
	l.y = make([]int32, rows)
	l.ps = newPass[T](m, rows)
	l.sc = newScratch[T](m, rows, false)
	l.prob = make([]T, rows*cfg.PretrainClasses)
	l.dlog = make([]T, rows*cfg.PretrainClasses)
	l.eps = newPass[T](enc, per)
	l.hps = newPass[T](head, per)
	l.hsc = newScratch[T](head, per, false)
	l.hw = make([]T, head.nParam)
	l.hg = make([]T, head.nParam)
	l.hprob = make([]T, per*s.Ways)
	l.hdlog = make([]T, per*s.Ways)
	l.grads = l.metaGrads
	return l
}

func (l *finetune[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	n := 0
	for i, ep := range b {
		for _, ys := range [][]int32{ep.SupportY, ep.QueryY} {
			for _, y := range ys {
				if int(y) >= len(ep.Classes) {
					return 0, fmt.Errorf("finetune: episode %d has %d classes for way %d: %w", i, len(ep.Classes), y, ErrShape)
				}
				c := ep.Classes[y]
				if c < 0 || c >= l.cfg.PretrainClasses {
					return 0, fmt.Errorf("finetune: episode %d: pool class %d outside [0,%d) (raise PretrainClasses)", i, c, l.cfg.PretrainClasses)
				}
				l.y[n] = int32(c)
				n++
			}
		}
	}
	x := stack(l.x, b)
	l.ps.rows = n
	forward(l.m, l.params, x, l.ps, l.sc)
	C := l.cfg.PretrainClasses
	loss := softmaxCE(l.ps.out(), l.y[:n], n, C, l.prob, l.dlog)
	backward(l.m, l.params, x, l.ps, l.sc, l.dlog[:n*C], g)
	al, err := l.auxStep(b, g)
	return loss + al, err
}

func (l *finetune[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	l.fitHead(ep)
	logSoftmax(l.hps.out(), s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}

// fitHead embeds the episode with the frozen encoder, fits a zero-initialised
// head on the support embeddings, and leaves the head's forward pass over
// the query embeddings in l.hps.
func (l *finetune[T]) fitHead(ep *datasets.Episode) {
	s := l.shape
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	x := stack(l.x, datasets.Batch{ep})
	l.eps.rows = ns + nq
	forward(l.enc, l.params[:l.enc.nParam], x, l.eps, l.sc)
	h := l.enc.outDim()
	emb := l.eps.out()
	es, eq := emb[:ns*h], emb[ns*h:(ns+nq)*h]
	clear(l.hw)
	lr := T(l.cfg.FinetuneLR)
	for k := 0; k < l.cfg.FinetuneSteps; k++ {
		l.hps.rows = ns
		forward(l.head, l.hw, es, l.hps, l.hsc)
		softmaxCE(l.hps.out(), ep.SupportY, ns, s.Ways, l.hprob, l.hdlog)
		clear(l.hg)
		backward(l.head, l.hw, es, l.hps, l.hsc, l.hdlog, l.hg)
		for i, gi := range l.hg {
			l.hw[i] -= lr * gi
		}
	}
	l.hps.rows = nq
	forward(l.head, l.hw, eq, l.hps, l.hsc)
}
