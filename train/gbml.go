package train

import (
	"sync"
	"sync/atomic"

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
	m          *mlp
	nTheta     int
	firstOrder bool
	learnLR    bool
	reptile    bool
	lr         []T             // per-parameter inner learning rate (aliases params for metasgd)
	work       []*gbmlWork[T]  // a worker's buffers each; Predict uses the first
	own        *gbmlShare[T]   // the share of a task when one worker runs them all
	shares     []*gbmlShare[T] // a share per task of the meta-batch, with several workers
	adapt      []T             // Predict's adapted parameters
	pgrad      []T
}

// gbmlWork holds the buffers of one task in flight: one per worker, so
// that the tasks of a meta-batch can adapt side by side (Config.Threads).
type gbmlWork[T Float] struct {
	theta       [][]T
	gk          [][]T // gk[k]: the support gradient at θ_k
	steps       []*pass[T]
	prob, dlog  [][]T
	qps         *pass[T]
	qprob, qdlg []T
	sc          *scratch[T]
	hv, w       []T
	rdlog       []T
	xs, xq, xt  []T // float64 conversion buffers / reptile training set
	yt          []int32
}

// gbmlShare is what task leaves of one task for addTo to add into the
// meta-batch's gradient, in task order.
type gbmlShare[T Float] struct {
	v    []T   // the meta-gradient in θ
	rate [][]T // Meta-SGD: per inner step, the term to subtract from the rates' gradient
	loss float64
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
	for range TaskWorkers(cfg, s) {
		l.work = append(l.work, l.newWork())
	}
	// One worker adds each task's share before the next, so one share
	// does, its rate terms written over the inner gradients they are
	// made of; several keep every task's until the last is done.
	l.own = &gbmlShare[T]{v: make([]T, m.nParam)}
	if l.learnLR {
		l.own.rate = l.work[0].gk
	}
	if len(l.work) > 1 {
		for range s.MetaBatch {
			sh := &gbmlShare[T]{v: make([]T, m.nParam)}
			if l.learnLR {
				for range cfg.InnerSteps {
					sh.rate = append(sh.rate, make([]T, m.nParam))
				}
			}
			l.shares = append(l.shares, sh)
		}
	}
	l.adapt = make([]T, m.nParam)
	l.pgrad = make([]T, m.nParam)
	l.grads = l.metaGrads
	return l
}

func (l *gbml[T]) taskThreads() int { return len(l.work) }

// keepsSteps reports whether the backward sweep needs every inner step's
// pass and weights (the second-order learners); first-order ones reuse one.
func (l *gbml[T]) keepsSteps() bool { return !l.firstOrder && !l.reptile }

func (l *gbml[T]) newWork() *gbmlWork[T] {
	m, s := l.m, l.shape
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	rows := ns
	w := &gbmlWork[T]{}
	if l.reptile {
		rows = ns + nq
		w.xt = make([]T, rows*s.Dim)
		w.yt = make([]int32, rows)
	}
	K := l.cfg.InnerSteps
	w.theta = make([][]T, K+1)
	for k := 0; k < K; k++ {
		if k == 0 || l.keepsSteps() {
			w.theta[k+1] = make([]T, m.nParam)
			w.gk = append(w.gk, make([]T, m.nParam))
			w.steps = append(w.steps, newPass[T](m, rows))
			w.prob = append(w.prob, make([]T, rows*s.Ways))
			w.dlog = append(w.dlog, make([]T, rows*s.Ways))
			continue
		}
		// Adapted in place: θ_{k+1} = θ_k − α⊙g_k reads only θ_k[i].
		w.theta[k+1] = w.theta[1]
		w.gk = append(w.gk, w.gk[0])
		w.steps = append(w.steps, w.steps[0])
		w.prob = append(w.prob, w.prob[0])
		w.dlog = append(w.dlog, w.dlog[0])
	}
	w.qps = newPass[T](m, max(nq, rows))
	w.qprob = make([]T, max(nq, rows)*s.Ways)
	w.qdlg = make([]T, max(nq, rows)*s.Ways)
	w.sc = newScratch[T](m, max(nq, rows), l.keepsSteps())
	w.hv = make([]T, m.nParam)
	w.w = make([]T, m.nParam)
	w.rdlog = make([]T, rows*s.Ways)
	if dtypeOf[T]() != "float32" {
		w.xs = make([]T, ns*s.Dim)
		w.xq = make([]T, nq*s.Dim)
	}
	return w
}

// metaGrads adds the tasks' shares of the meta-gradient into g in task
// order, so that g is the same to the last bit however many workers
// computed them. One worker adds each share as it is done; several take
// the next task as they become free (one may start late) and the shares
// are added once all are done.
func (l *gbml[T]) metaGrads(b datasets.Batch, g []T) (float64, error) {
	var loss float64
	inv := 1 / T(len(b))
	if len(l.work) == 1 || len(b) == 1 {
		for _, ep := range b {
			l.task(l.work[0], l.own, ep, inv)
			loss += l.own.loss
			l.addTo(l.own, g, inv)
		}
	} else {
		var next atomic.Int64
		run := func(w *gbmlWork[T]) {
			for t := int(next.Add(1) - 1); t < len(b); t = int(next.Add(1) - 1) {
				l.task(w, l.shares[t], b[t], inv)
			}
		}
		var wg sync.WaitGroup
		for _, w := range l.work[1:min(len(l.work), len(b))] {
			wg.Go(func() { run(w) })
		}
		run(l.work[0])
		wg.Wait()
		for _, sh := range l.shares[:len(b)] {
			loss += sh.loss
			l.addTo(sh, g, inv)
		}
	}
	al, err := l.auxStep(b, g)
	return loss/float64(len(b)) + al, err
}

// trainSet returns the inner-loop data of ep: the support set, or for
// Reptile support and query stacked.
func (l *gbml[T]) trainSet(w *gbmlWork[T], ep *datasets.Episode) ([]T, []int32) {
	if !l.reptile {
		return asT(w.xs, ep.SupportX), ep.SupportY
	}
	x := stack(w.xt, datasets.Batch{ep})
	n := copy(w.yt, ep.SupportY)
	copy(w.yt[n:], ep.QueryY)
	return x, w.yt
}

// innerStep evaluates the training loss at th on (x, y) with pass ps,
// writes its gradient into gw and returns the loss.
func (l *gbml[T]) innerStep(w *gbmlWork[T], th, x []T, y []int32, ps *pass[T], prob, dlog, gw []T) float64 {
	ps.rows = len(y)
	forward(l.m, th, x, ps, w.sc)
	loss := softmaxCE(ps.out(), y, len(y), l.shape.Ways, prob, dlog)
	clear(gw)
	backward(l.m, th, x, ps, w.sc, dlog, gw)
	return loss
}

// task computes ep's share of the meta-gradient into sh, with w's buffers,
// and its loss: the query loss after adaptation, or Reptile's loss before
// it. scale is the task's weight in the mean. It reads the learner's
// parameters and writes only w and sh.
func (l *gbml[T]) task(w *gbmlWork[T], sh *gbmlShare[T], ep *datasets.Episode, scale T) {
	K, nt := len(w.steps), l.nTheta
	x, y := l.trainSet(w, ep)
	w.theta[0] = l.params[:nt]
	for k := 0; k < K; k++ {
		th, next := w.theta[k], w.theta[k+1]
		loss := l.innerStep(w, th, x, y, w.steps[k], w.prob[k], w.dlog[k], w.gk[k])
		if k == 0 {
			sh.loss = loss
		}
		for i, gi := range w.gk[k] {
			next[i] = th[i] - l.lr[i]*gi
		}
	}
	thK := w.theta[K][:nt]
	v := sh.v
	if l.reptile {
		for i, p := range w.theta[0] {
			v[i] = p - thK[i]
		}
		return
	}
	xq := asT(w.xq, ep.QueryX)
	sh.loss = l.innerStep(w, thK, xq, ep.QueryY, w.qps, w.qprob, w.qdlg, v)
	if l.firstOrder {
		return
	}
	C := l.shape.Ways
	for k := K - 1; k >= 0; k-- {
		if l.learnLR {
			rate := sh.rate[k]
			for i, gi := range w.gk[k] {
				rate[i] = scale * gi * v[i]
			}
		}
		for i, a := range l.lr {
			w.w[i] = a * v[i]
		}
		ps := w.steps[k]
		rForward(l.m, w.theta[k], w.w, x, ps, w.sc)
		rd := w.rdlog[:ps.rows*C]
		softmaxCERop(w.prob[k], w.sc.ra[len(l.m.layers)-1], rd, ps.rows, C)
		clear(w.hv)
		rBackward(l.m, w.theta[k], w.w, x, ps, w.sc, rd, w.hv)
		for i, h := range w.hv {
			v[i] -= h
		}
	}
}

// addTo adds a task's share of the meta-gradient into g.
func (l *gbml[T]) addTo(sh *gbmlShare[T], g []T, scale T) {
	if l.learnLR {
		ga := g[l.nTheta:]
		for k := len(sh.rate) - 1; k >= 0; k-- {
			for i, t := range sh.rate[k] {
				ga[i] -= t
			}
		}
	}
	for i, vi := range sh.v {
		g[i] += scale * vi
	}
}

func (l *gbml[T]) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	s := l.shape
	if err := checkPredictArgs(ep, s, labels, scores); err != nil {
		return err
	}
	l.adaptAndScore(ep)
	logSoftmax(l.work[0].qps.out(), s.Ways*s.Queries, s.Ways, scores, labels)
	return nil
}

// adaptAndScore adapts a copy of the parameters to the episode's support set
// (TestInnerSteps steps) into l.adapt and leaves the forward pass of the
// query rows at the adapted weights in the first worker's qps.
func (l *gbml[T]) adaptAndScore(ep *datasets.Episode) {
	w, th := l.work[0], l.adapt
	copy(th, l.params[:l.nTheta])
	xs := asT(w.xs, ep.SupportX)
	for k := 0; k < l.cfg.TestInnerSteps; k++ {
		l.innerStep(w, th, xs, ep.SupportY, w.steps[0], w.prob[0], w.dlog[0], l.pgrad)
		for i, gi := range l.pgrad {
			th[i] -= l.lr[i] * gi
		}
	}
	w.qps.rows = l.shape.Ways * l.shape.Queries
	forward(l.m, th, asT(w.xq, ep.QueryX), w.qps, w.sc)
}
