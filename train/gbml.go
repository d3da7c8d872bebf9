package train

import (
	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

func init() {
	for _, name := range []string{"maml", "fomaml", "reptile", "anil", "metasgd"} {
		Register(name, newGBML)
	}
}

// gbml implements the gradient-based meta-learners, which share one inner
// loop θ_{k+1} = θ_k − α⊙∇L_support(θ_k) on an MLP with a linear head:
//
//   - maml: α = InnerLR everywhere; the meta-gradient is differentiated
//     through the inner loop (second order).
//   - fomaml: as maml but the meta-gradient is ∇L_query(θ_K).
//   - anil: α is InnerLR on the head and 0 on the encoder, second order.
//   - metasgd: α is a learned per-parameter vector (initialised to InnerLR),
//     stored after θ in the parameter vector; second order.
//   - reptile: the inner loop trains on support and query together and the
//     meta-"gradient" is θ − θ_K.
//
// The second-order meta-gradient is the backward sweep
// v_K = ∇L_query(θ_K), v_k = v_{k+1} − H_k(α⊙v_{k+1}), where H_k is the
// support-loss Hessian at θ_k. Each Hessian-vector product is computed
// exactly by the R-operator from the forward/backward pass stored for that
// inner step, so no graph is built or differentiated at run time.
type gbml[T Float] struct {
	base[T]
	m           *mlp
	nTheta      int
	firstOrder  bool
	learnLR     bool
	reptile     bool
	lr          []T // per-parameter inner learning rate (aliases params for metasgd)
	theta       [][]T
	gk          [][]T
	steps       []*pass[T]
	prob, dlog  [][]T
	qps         *pass[T]
	qprob, qdlg []T
	sc          *scratch[T]
	v, hv, w    []T
	rdlog       []T
	xs, xq, xt  []T // float64 conversion buffers / reptile training set
	yt          []int32
	adapt       []T // Predict's adapted parameters
	pgrad       []T
}

func newGBML(cfg Config, s Shape, be kernels.Backend) (Learner, error) {
	if cfg.Float64 {
		return buildGBML[float64](cfg, s, be), nil
	}
	return buildGBML[float32](cfg, s, be), nil
}

func buildGBML[T Float](cfg Config, s Shape, be kernels.Backend) *gbml[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(s.Dim, cfg.Hidden, s.Ways, act)
	l := &gbml[T]{m: m, nTheta: m.nParam}
	n := m.nParam
	switch cfg.Algo {
	case "fomaml":
		l.firstOrder = true
	case "reptile":
		l.reptile = true
	case "metasgd":
		l.learnLR = true
		n *= 2
	}
	l.init(cfg.Algo, cfg, s, be, n)
	initParams(m, l.params[:m.nParam], cfg.InitSeed)
	if l.learnLR {
		l.lr = l.params[m.nParam : 2*m.nParam]
		for i := range l.lr {
			l.lr[i] = T(cfg.InnerLR)
		}
	} else {
		l.lr = make([]T, m.nParam)
		start := 0
		if cfg.Algo == "anil" {
			start = m.body
		}
		for i := start; i < m.nParam; i++ {
			l.lr[i] = T(cfg.InnerLR)
		}
	}
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	rows := ns
	if l.reptile {
		rows = ns + nq
		l.xt = make([]T, rows*s.Dim)
		l.yt = make([]int32, rows)
	}
	K := cfg.InnerSteps
	l.theta = make([][]T, K+1)
	for k := 1; k <= K; k++ {
		l.theta[k] = make([]T, m.nParam)
	}
	for k := 0; k < K; k++ {
		l.gk = append(l.gk, make([]T, m.nParam))
		l.steps = append(l.steps, newPass[T](m, rows))
		l.prob = append(l.prob, make([]T, rows*s.Ways))
		l.dlog = append(l.dlog, make([]T, rows*s.Ways))
	}
	l.qps = newPass[T](m, max(nq, rows))
	l.qprob = make([]T, max(nq, rows)*s.Ways)
	l.qdlg = make([]T, max(nq, rows)*s.Ways)
	l.sc = newScratch[T](m, max(nq, rows), !l.firstOrder && !l.reptile)
	l.v = make([]T, m.nParam)
	l.hv = make([]T, m.nParam)
	l.w = make([]T, m.nParam)
	l.rdlog = make([]T, rows*s.Ways)
	l.adapt = make([]T, m.nParam)
	l.pgrad = make([]T, m.nParam)
	if dtypeOf[T]() != "float32" {
		l.xs = make([]T, ns*s.Dim)
		l.xq = make([]T, nq*s.Dim)
	}
	l.grads = l.metaGrads
	return l
}

func (l *gbml[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	var loss float64
	inv := 1 / T(len(b))
	for _, ep := range b {
		loss += l.task(ep, g, inv)
	}
	al, err := l.auxStep(b, g)
	return loss/float64(len(b)) + al, err
}

// trainSet returns the inner-loop data of ep: the support set, or for
// Reptile support and query stacked.
func (l *gbml[T]) trainSet(ep *datasets.Episode) ([]T, []int32) {
	if !l.reptile {
		return asT(l.xs, ep.SupportX), ep.SupportY
	}
	x := stack(l.xt, datasets.Batch{ep})
	n := copy(l.yt, ep.SupportY)
	copy(l.yt[n:], ep.QueryY)
	return x, l.yt
}

// innerStep evaluates the training loss at w on (x, y) with pass ps,
// writes its gradient into gw and returns the loss.
func (l *gbml[T]) innerStep(w, x []T, y []int32, ps *pass[T], prob, dlog, gw []T) float64 {
	ps.rows = len(y)
	forward(l.m, w, x, ps, l.sc)
	loss := softmaxCE(ps.out(), y, len(y), l.shape.Ways, prob, dlog)
	clear(gw)
	backward(l.m, w, x, ps, l.sc, dlog, gw)
	return loss
}

// task accumulates scale times ep's meta-gradient into g and returns its
// loss: the query loss after adaptation, or Reptile's loss before it.
func (l *gbml[T]) task(ep *datasets.Episode, g []T, scale T) float64 {
	K, nt := len(l.steps), l.nTheta
	x, y := l.trainSet(ep)
	l.theta[0] = l.params[:nt]
	var first float64
	for k := 0; k < K; k++ {
		th, next := l.theta[k], l.theta[k+1]
		loss := l.innerStep(th, x, y, l.steps[k], l.prob[k], l.dlog[k], l.gk[k])
		if k == 0 {
			first = loss
		}
		for i, gi := range l.gk[k] {
			next[i] = th[i] - l.lr[i]*gi
		}
	}
	thK := l.theta[K][:nt]
	if l.reptile {
		for i, p := range l.theta[0] {
			g[i] += scale * (p - thK[i])
		}
		return first
	}
	xq := asT(l.xq, ep.QueryX)
	loss := l.innerStep(thK, xq, ep.QueryY, l.qps, l.qprob, l.qdlg, l.v)
	v := l.v
	if !l.firstOrder {
		C := l.shape.Ways
		for k := K - 1; k >= 0; k-- {
			if l.learnLR {
				ga := g[nt:]
				for i, gi := range l.gk[k] {
					ga[i] -= scale * gi * v[i]
				}
			}
			for i, a := range l.lr {
				l.w[i] = a * v[i]
			}
			ps := l.steps[k]
			rForward(l.m, l.theta[k], l.w, x, ps, l.sc)
			rd := l.rdlog[:ps.rows*C]
			softmaxCERop(l.prob[k], l.sc.ra[len(l.m.layers)-1], rd, ps.rows, C)
			clear(l.hv)
			rBackward(l.m, l.theta[k], l.w, x, ps, l.sc, rd, l.hv)
			for i, h := range l.hv {
				v[i] -= h
			}
		}
	}
	for i, vi := range v {
		g[i] += scale * vi
	}
	return loss
}

func (l *gbml[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	l.adaptAndScore(ep)
	logSoftmax(l.qps.out(), s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}

// adaptAndScore adapts a copy of the parameters to the episode's support set
// (TestInnerSteps steps) into l.adapt and leaves the forward pass of the
// query rows at the adapted weights in l.qps.
func (l *gbml[T]) adaptAndScore(ep *datasets.Episode) {
	w := l.adapt
	copy(w, l.params[:l.nTheta])
	xs := asT(l.xs, ep.SupportX)
	ps := l.steps[0]
	for k := 0; k < l.cfg.TestInnerSteps; k++ {
		l.innerStep(w, xs, ep.SupportY, ps, l.prob[0], l.dlog[0], l.pgrad)
		for i, gi := range l.pgrad {
			w[i] -= l.lr[i] * gi
		}
	}
	l.qps.rows = l.shape.Ways * l.shape.Queries
	forward(l.m, w, asT(l.xq, ep.QueryX), l.qps, l.sc)
}
