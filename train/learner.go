package train

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/cpu"
)

// Learner is a meta-learner or baseline built for one episode shape.
type Learner interface {
	// Name is the registered algorithm name.
	Name() string
	// Config and Shape are what the learner was built with.
	Config() Config
	Shape() Shape
	// MetaStep takes one optimiser step on a meta-batch of 1..MetaBatch
	// episodes and returns the mean training loss before the step.
	MetaStep(b datasets.Batch) (float64, error)
	// Predict adapts to ep's support set (without changing the learner) and
	// writes, for each query row, the predicted way into labels
	// [Ways*Queries] and per-way log-probabilities into scores
	// [Ways*Queries*Ways] (higher = more likely).
	Predict(ep *datasets.Episode, labels []int32, scores []float32) error
	// Steps is the number of meta-steps taken (restored by checkpoints).
	Steps() int
	// SaveCheckpoint writes parameters, optimiser state, config, shape and
	// the caller's extra blobs (encoder, spec); LoadCheckpoint restores them
	// into a learner built with the same config and shape and returns the
	// blobs.
	SaveCheckpoint(w io.Writer, extra map[string][]byte) error
	LoadCheckpoint(r io.Reader) (map[string][]byte, error)
}

// BatchPredictor is a learner that classifies many episodes in one call:
// the device-resident ProtoNet, which runs them all in one pass. labels
// receives each episode's predicted ways, [len(b)*Ways*Queries].
type BatchPredictor interface {
	PredictBatch(b datasets.Batch, labels []int32) error
}

// PoolUser is a learner that can keep a pool's matrix on its device (the
// device-resident learners): episodes drawn from it (Episode.Source is x)
// then reach the device as row numbers, and the device reads their
// features there.
type PoolUser interface {
	UsePool(x []float32) error
}

// Pipeliner is a learner that can queue meta-steps without waiting for
// each one's loss (the device-resident learners): the host stages the next
// batch while the device runs the step before. QueueStep queues a step on
// b (which it has copied when it returns) and returns the losses of
// earlier steps that finished meanwhile; Drain waits for every queued step
// and returns the losses not returned yet. Losses come in step order, each
// once, in a slice valid until the next call; a loss that is not finite is
// an error naming its step. Every other method waits for the queued steps
// first, keeping their losses for the next QueueStep or Drain.
type Pipeliner interface {
	QueueStep(b datasets.Batch) ([]float64, error)
	Drain() ([]float64, error)
}

// Factory builds a learner; cfg and shape are already validated and be is
// never nil.
type Factory func(cfg Config, shape Shape, be kernels.Backend) (Learner, error)

var registry = struct {
	sync.Mutex
	m map[string]Factory
}{m: map[string]Factory{}}

// Register makes a learner available to New under name. It panics on an
// empty or duplicate name, as that is a programming error.
func Register(name string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if name == "" || f == nil {
		panic("train: Register with empty name or nil factory")
	}
	if _, dup := registry.m[name]; dup {
		panic("train: learner " + name + " registered twice")
	}
	registry.m[name] = f
}

// Names lists the registered learners, sorted.
func Names() []string {
	registry.Lock()
	defer registry.Unlock()
	var out []string
	for n := range registry.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookup(name string) (Factory, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.m[name]
	return f, ok
}

// New builds the learner cfg.Algo for episodes of the given shape. be
// supplies the bulk kernels for float32 (nil means the plain-Go CPU backend).
func New(cfg Config, shape Shape, be kernels.Backend) (Learner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	if err := checkMemory(cfg, shape); err != nil {
		return nil, err
	}
	if be == nil {
		be = kernels.NewCPU()
	}
	cfg.Hidden = append([]int(nil), cfg.Hidden...)
	if cfg.Engine == "gorgonia" {
		return NewGraph(cfg, shape, be)
	}
	f, _ := lookup(cfg.Algo)
	l, err := f(cfg, shape, be)
	if err != nil || deviceLearner == nil {
		return l, err
	}
	if dl, ok, err := deviceLearner(cfg, shape, be, l); err != nil {
		return nil, err
	} else if ok {
		return dl, nil
	}
	return l, nil
}

// deviceLearner is set by the cuda build (build tag metaids_cuda): it
// returns the device-resident twin of a fused learner when be is the GPU
// backend and the learner has one (ok false otherwise).
var deviceLearner func(cfg Config, shape Shape, be kernels.Backend, host Learner) (Learner, bool, error)

// deviceUnsupported is set by the cuda build: why cfg cannot run
// device-resident, or "".
var deviceUnsupported func(cfg Config) string

// HostReason says why a learner built for cfg on be runs on the host rather
// than device-resident: "" when be is not the GPU backend or the learner
// runs on the device.
func HostReason(cfg Config, be kernels.Backend) string {
	if be == nil || be.Name() != "cuda" || deviceUnsupported == nil {
		return ""
	}
	return deviceUnsupported(cfg)
}

// engine is the precision-independent view of a learner's parameters and
// meta-gradient that checkpoints and tests use.
type engine interface {
	numParams() int
	getParams(dst []float64)
	setParams(src []float64)
	// metaGrad writes the mean meta-gradient of the batch into g and returns
	// the mean loss, without changing the parameters.
	metaGrad(b datasets.Batch, g []float64) (float64, error)
}

// base is what every learner shares: the flat parameter vector, its
// gradient, the optimiser and the bookkeeping around MetaStep.
type base[T Float] struct {
	name  string
	cfg   Config
	shape Shape
	be    kernels.Backend

	params, grad []T
	opt          optimizer[T]
	steps        int

	// grads writes the mean meta-gradient of b into g (zeroed by the caller)
	// and returns the mean loss.
	grads func(b datasets.Batch, g []T) (float64, error)
	// aux are the multi-task heads (nil without them); their parameters
	// follow the learner's own in params.
	aux *auxHeads[T]
}

func (l *base[T]) Name() string   { return l.name }
func (l *base[T]) Config() Config { c := l.cfg; c.Hidden = append([]int(nil), c.Hidden...); return c }
func (l *base[T]) Shape() Shape   { return l.shape }
func (l *base[T]) Steps() int     { return l.steps }

// init sets up the learner's nParams parameters and, when cfg asks for
// them, the auxiliary heads after them.
func (l *base[T]) init(name string, cfg Config, shape Shape, be kernels.Backend, nParams int) {
	l.name, l.cfg, l.shape, l.be = name, cfg, shape, be
	if cfg.Aux.Enabled() {
		act, _ := parseActivation(cfg.Activation)
		enc := newMLP(shape.Dim, cfg.Hidden, 0, act)
		rows := shape.MetaBatch * shape.Ways * (shape.Shots + shape.Queries)
		l.aux = newAuxHeads[T](cfg.Aux, enc, nParams, rows)
		nParams += auxParamCount(cfg.Aux, enc.outDim())
	}
	l.params = make([]T, nParams)
	l.grad = make([]T, nParams)
	l.opt = newOptimizer[T](cfg.Optimizer, nParams, be)
	if l.aux != nil {
		l.aux.init(l.params, cfg.InitSeed)
	}
}

func (l *base[T]) MetaStep(b datasets.Batch) (float64, error) {
	if err := l.checkBatch(b); err != nil {
		return 0, err
	}
	clear(l.grad)
	loss, err := l.grads(b, l.grad)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, fmt.Errorf("%s step %d: loss is %g", l.name, l.steps+1, loss)
	}
	if len(l.params) > 0 {
		if err := l.opt.step(l.params, l.grad); err != nil {
			return loss, err
		}
	}
	l.steps++
	return loss, nil
}

func (l *base[T]) numParams() int { return len(l.params) }

func (l *base[T]) getParams(dst []float64) {
	for i, v := range l.params {
		dst[i] = float64(v)
	}
}

func (l *base[T]) setParams(src []float64) {
	for i := range l.params {
		l.params[i] = T(src[i])
	}
}

func (l *base[T]) metaGrad(b datasets.Batch, g []float64) (float64, error) {
	if err := l.checkBatch(b); err != nil {
		return 0, err
	}
	clear(l.grad)
	loss, err := l.grads(b, l.grad)
	for i, v := range l.grad {
		g[i] = float64(v)
	}
	return loss, err
}

func (l *base[T]) checkBatch(b datasets.Batch) error {
	if err := l.checkBatchLayout(b, false); err != nil {
		return err
	}
	for i, ep := range b {
		if err := checkLabels(ep, l.shape); err != nil {
			return fmt.Errorf("%s: episode %d: %w", l.name, i, err)
		}
	}
	return nil
}

// checkBatchLayout is checkBatch but for the labels, which a device learner
// checks once they are laid out side by side; with rowsOnly it takes
// episodes without features (gathered on the device).
func (l *base[T]) checkBatchLayout(b datasets.Batch, rowsOnly bool) error {
	if len(b) == 0 || len(b) > l.shape.MetaBatch {
		return fmt.Errorf("%s: meta-batch of %d episodes, want 1..%d: %w", l.name, len(b), l.shape.MetaBatch, ErrShape)
	}
	for i, ep := range b {
		err := checkEpisodeLayout(ep, l.shape)
		if err == nil && ep.RowsOnly && !rowsOnly {
			err = errRowsOnly
		}
		if err != nil {
			return fmt.Errorf("%s: episode %d: %w", l.name, i, err)
		}
	}
	return nil
}

var errRowsOnly = fmt.Errorf("episode carries row numbers only (a RowsOnly sampler's), and this learner reads features: %w", ErrShape)

// checkEpisode verifies that ep has the learner's shape, valid labels and
// features (not only row numbers).
func checkEpisode(ep *datasets.Episode, s Shape) error {
	if err := checkEpisodeLayout(ep, s); err != nil {
		return err
	}
	if ep.RowsOnly {
		return errRowsOnly
	}
	return checkLabels(ep, s)
}

// checkEpisodeLayout verifies that ep has the learner's shape.
func checkEpisodeLayout(ep *datasets.Episode, s Shape) error {
	if ep == nil {
		return fmt.Errorf("nil episode: %w", ErrShape)
	}
	if ep.Ways != s.Ways || ep.Shots != s.Shots || ep.Queries != s.Queries || ep.Dim != s.Dim {
		return fmt.Errorf("episode is %d-way %d-shot %d-query dim %d, learner is %d-way %d-shot %d-query dim %d: %w",
			ep.Ways, ep.Shots, ep.Queries, ep.Dim, s.Ways, s.Shots, s.Queries, s.Dim, ErrShape)
	}
	ns, nq := s.Ways*s.Shots, s.Ways*s.Queries
	if len(ep.SupportX) != ns*s.Dim || len(ep.SupportY) != ns || len(ep.QueryX) != nq*s.Dim || len(ep.QueryY) != nq {
		return fmt.Errorf("episode buffers have the wrong lengths: %w", ErrShape)
	}
	return nil
}

// checkLabels verifies that ep's labels are ways.
func checkLabels(ep *datasets.Episode, s Shape) error {
	for _, ys := range [][]int32{ep.SupportY, ep.QueryY} {
		if allIn(ys, int32(s.Ways)) {
			continue
		}
		for i, y := range ys {
			if y < 0 || int(y) >= s.Ways {
				return fmt.Errorf("label %d at row %d outside [0,%d): %w", y, i, s.Ways, ErrShape)
			}
		}
	}
	return nil
}

// allIn reports whether every value (a label, a row number) is in [0,n),
// without a branch per value: y | (n-1-y) is negative exactly when y is
// outside. Every meta-step checks every label of its batch (25,600 at
// meta-batch 256).
func allIn(ys []int32, n int32) bool {
	top := n - 1
	// Four independent chains, as the compiler does not unroll.
	var m0, m1, m2, m3 int32
	i := 0
	for ; i+4 <= len(ys); i += 4 {
		y := ys[i : i+4 : i+4]
		m0 |= y[0] | (top - y[0])
		m1 |= y[1] | (top - y[1])
		m2 |= y[2] | (top - y[2])
		m3 |= y[3] | (top - y[3])
	}
	for ; i < len(ys); i++ {
		m0 |= ys[i] | (top - ys[i])
	}
	return m0|m1|m2|m3 >= 0
}

func checkPredictArgs(ep *datasets.Episode, s Shape, labels []int32, scores []float32) error {
	if err := checkEpisode(ep, s); err != nil {
		return err
	}
	nq := s.Ways * s.Queries
	if len(labels) != nq || len(scores) != nq*s.Ways {
		return fmt.Errorf("predict: got %d labels and %d scores, want %d and %d", len(labels), len(scores), nq, nq*s.Ways)
	}
	return nil
}

// asT returns src as []T, converting into buf when T is not float32.
func asT[T Float](buf []T, src []float32) []T {
	if v, ok := any(src).([]T); ok {
		return v
	}
	return convert(buf, src)
}

// convert copies src into buf as []T.
func convert[T Float](buf []T, src []float32) []T {
	if b, ok := any(buf).([]float32); ok {
		copy(b, src)
		return buf[:len(src)]
	}
	buf = buf[:len(src)]
	for i, x := range src {
		buf[i] = T(x)
	}
	return buf
}

// optimizer is SGD or Adam with weight decay and global-norm clipping.
// float32 updates go through the backend; float64 through the generic CPU
// kernels.
type optimizer[T Float] struct {
	cfg  OptimConfig
	be   kernels.Backend
	m, v []T
	t    int
}

func newOptimizer[T Float](cfg OptimConfig, n int, be kernels.Backend) optimizer[T] {
	o := optimizer[T]{cfg: cfg, be: be}
	if cfg.Name == "adam" {
		o.m = make([]T, n)
		o.v = make([]T, n)
	}
	return o
}

func (o *optimizer[T]) step(p, g []T) (err error) {
	defer kernels.Catch(&err)
	if c := o.cfg.ClipNorm; c > 0 {
		var ss float64
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
		if n := math.Sqrt(ss); n > c {
			s := T(c / n)
			for i := range g {
				g[i] *= s
			}
		}
	}
	o.t++
	p32, is32 := any(p).([]float32)
	switch o.cfg.Name {
	case "sgd":
		if is32 {
			o.be.SGDStep(p32, any(g).([]float32), float32(o.cfg.LR), float32(o.cfg.WeightDecay))
		} else {
			cpu.SGD(p, g, T(o.cfg.LR), T(o.cfg.WeightDecay))
		}
	case "adam":
		if is32 {
			o.be.AdamStep(p32, any(g).([]float32), any(o.m).([]float32), any(o.v).([]float32), o.t, kernels.AdamParams{
				LR: float32(o.cfg.LR), Beta1: float32(o.cfg.Beta1), Beta2: float32(o.cfg.Beta2),
				Eps: float32(o.cfg.Eps), WeightDecay: float32(o.cfg.WeightDecay), Decoupled: o.cfg.Decoupled,
			})
		} else {
			cpu.Adam(p, g, o.m, o.v, o.t, T(o.cfg.LR), T(o.cfg.Beta1), T(o.cfg.Beta2), T(o.cfg.Eps), T(o.cfg.WeightDecay), o.cfg.Decoupled)
		}
	}
	return nil
}
