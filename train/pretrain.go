package train

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/metaids/metaids/kernels"
)

// PretrainConfig specifies self-supervised pre-training of the encoder: an
// autoencoder whose encoder is the learners' MLP (same hidden widths and
// activation, so its weights drop into a learner) and whose decoder is one
// linear layer back to the input width, trained to reconstruct clean rows
// from corrupted ones.
type PretrainConfig struct {
	// Objective is "denoise" (Gaussian noise of std Noise added to every
	// input feature; loss on every feature) or "mask" (a fraction MaskRate of
	// each row's features set to 0; loss on the masked features only).
	Objective  string
	Noise      float64 // denoise: noise standard deviation, > 0
	MaskRate   float64 // mask: fraction of features masked per row, in (0,1)
	Hidden     []int   // encoder hidden widths, as Config.Hidden
	Activation string  // relu, leaky_relu, tanh or sigmoid
	Epochs     int     // passes over the rows, >= 1
	BatchSize  int     // rows per optimiser step, 1..MaxPretrainBatch
	Optimizer  OptimConfig
	Seed       uint64 // seeds the initialisation, the shuffles and the corruption
}

// MaxPretrainBatch bounds BatchSize, which sizes the working buffers.
const MaxPretrainBatch = 1 << 20

// DefaultPretrainConfig is a denoising autoencoder (noise std 0.1) with one
// hidden layer of 64 ReLU units, Adam at 1e-3, 10 epochs of 256-row batches.
// MaskRate is preset so that switching Objective to "mask" is enough.
func DefaultPretrainConfig() PretrainConfig {
	return PretrainConfig{
		Objective: "denoise", Noise: 0.1, MaskRate: 0.15,
		Hidden: []int{64}, Activation: "relu",
		Epochs: 10, BatchSize: 256,
		Optimizer: OptimConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Seed:      1,
	}
}

// Validate reports the first invalid field. Noise and MaskRate are range
// checked whatever the objective, so a typo in the unused one is not
// silently ignored.
func (c PretrainConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("pretrain config %s: %s", field, fmt.Sprintf(format, args...))
	}
	if c.Objective != "denoise" && c.Objective != "mask" {
		return bad("Objective", "%q, want denoise or mask", c.Objective)
	}
	if !(c.Noise >= 0) || math.IsInf(c.Noise, 0) {
		return bad("Noise", "%g, want finite and >= 0", c.Noise)
	}
	if c.Objective == "denoise" && c.Noise == 0 {
		return bad("Noise", "0, the denoise objective needs noise > 0")
	}
	if !(c.MaskRate >= 0 && c.MaskRate < 1) {
		return bad("MaskRate", "%g, want in [0,1)", c.MaskRate)
	}
	if c.Objective == "mask" && c.MaskRate == 0 {
		return bad("MaskRate", "0, the mask objective needs a rate in (0,1)")
	}
	if len(c.Hidden) == 0 {
		return bad("Hidden", "need at least one hidden layer (the encoder)")
	}
	if err := checkWidths(c.Hidden, bad); err != nil {
		return err
	}
	if _, err := parseActivation(c.Activation); err != nil {
		return bad("Activation", "%v", err)
	}
	if c.Epochs < 1 {
		return bad("Epochs", "%d, want >= 1", c.Epochs)
	}
	if c.BatchSize < 1 || c.BatchSize > MaxPretrainBatch {
		return bad("BatchSize", "%d, want 1..%d", c.BatchSize, MaxPretrainBatch)
	}
	return c.Optimizer.check(bad)
}

// Pretrained is a pre-trained encoder: the autoencoder's encoder parameters
// in the learners' layout (per hidden layer, weights [in,out] row-major then
// bias [out]) and what it was trained with.
type Pretrained struct {
	cfg    PretrainConfig
	dim    int
	ae     []float64 // the whole autoencoder; the encoder is the first encLen
	encLen int
	losses []float64
}

// EncoderParams returns a copy of the encoder's parameters, the prefix a
// learner with the same Dim, Hidden and Activation starts its parameter
// vector with.
func (p *Pretrained) EncoderParams() []float64 { return slices.Clone(p.ae[:p.encLen]) }

// Hidden, Activation and Dim describe the encoder.
func (p *Pretrained) Hidden() []int      { return slices.Clone(p.cfg.Hidden) }
func (p *Pretrained) Activation() string { return p.cfg.Activation }
func (p *Pretrained) Dim() int           { return p.dim }

// Losses are the mean training reconstruction losses of each epoch (on
// corrupted inputs, measured before each batch's step); FinalLoss is the
// last.
func (p *Pretrained) Losses() []float64  { return slices.Clone(p.losses) }
func (p *Pretrained) FinalLoss() float64 { return p.losses[len(p.losses)-1] }

// pretrainTarget is implemented by the learners whose parameter vector starts
// with the MLP encoder.
type pretrainTarget interface {
	// pretrainPrefixLen is the number of encoder parameters at the start of
	// the parameter vector.
	pretrainPrefixLen() int
	// writeParamPrefix overwrites the first len(src) parameters.
	writeParamPrefix(src []float64) error
}

// The encoder is the MLP body: newMLP lays out the hidden layers first and
// any head after them, so m.body counts exactly the encoder. Meta-SGD's
// learning rates follow the whole θ and so are past the prefix too.
func (l *protoNet[T]) pretrainPrefixLen() int   { return l.m.body }
func (l *gbml[T]) pretrainPrefixLen() int       { return l.m.body }
func (l *finetune[T]) pretrainPrefixLen() int   { return l.m.body }
func (l *graphProto[T]) pretrainPrefixLen() int { return l.m.body }
func (l *graphGBML[T]) pretrainPrefixLen() int  { return l.m.body }

func (l *base[T]) writeParamPrefix(src []float64) error {
	dst := l.params[:len(src)]
	for i, v := range src {
		dst[i] = T(v)
	}
	return nil
}

// InitLearner copies the pre-trained encoder into l, which must be built with
// the same input width, hidden widths and activation and not yet trained.
// The head (and Meta-SGD's learning rates) keep their initial values.
// nearest-centroid has no encoder and is refused.
func (p *Pretrained) InitLearner(l Learner) error {
	if l == nil {
		return fmt.Errorf("pretrain: InitLearner on a nil learner")
	}
	name := l.Name()
	e, ok := l.(pretrainTarget)
	if !ok {
		if name == "nearest-centroid" {
			return fmt.Errorf("pretrain: nearest-centroid has no encoder to initialise")
		}
		return fmt.Errorf("pretrain: learner %s has no MLP encoder to initialise", name)
	}
	cfg, s := l.Config(), l.Shape()
	if s.Dim != p.dim {
		return fmt.Errorf("pretrain: learner %s has input width (Dim) %d, the encoder was pre-trained on %d", name, s.Dim, p.dim)
	}
	if !slices.Equal(cfg.Hidden, p.cfg.Hidden) {
		return fmt.Errorf("pretrain: learner %s has hidden layers %v, the encoder has %v", name, cfg.Hidden, p.cfg.Hidden)
	}
	if cfg.Activation != p.cfg.Activation {
		return fmt.Errorf("pretrain: learner %s has activation %s, the encoder has %s", name, cfg.Activation, p.cfg.Activation)
	}
	if n := l.Steps(); n > 0 {
		// Its optimiser moments belong to the weights being replaced.
		return fmt.Errorf("pretrain: learner %s has taken %d meta-steps; initialise it before training", name, n)
	}
	if n := e.pretrainPrefixLen(); n != p.encLen {
		return fmt.Errorf("pretrain: learner %s has %d encoder parameters, the pre-trained encoder %d", name, n, p.encLen)
	}
	return e.writeParamPrefix(p.ae[:p.encLen])
}

// pretrainNoiseStream keeps the corruption's PCG stream apart from the
// shuffle's (shuffleStream) and the initialiser's.
const pretrainNoiseStream = 0x7072652d6e6f6973

// Pretrain trains the autoencoder on rows rows of x [rows*dim] (normal
// traffic only, by the caller's choice) for cfg.Epochs epochs of mini-batches
// and returns its encoder. The loss is the mean squared reconstruction error
// of the clean rows, over all features ("denoise") or the masked ones
// ("mask"). Everything random (initialisation, per-epoch shuffles, noise and
// masks) derives from cfg.Seed, so the result is deterministic; the encoder
// starts from the same weights as a learner with InitSeed = Seed. be supplies
// the float32 optimiser kernels (nil: the plain-Go CPU backend). progress, if
// not nil, gets the 1-based epoch and its mean training loss.
func Pretrain(ctx context.Context, cfg PretrainConfig, x []float32, rows, dim int, be kernels.Backend, progress func(epoch int, loss float64)) (*Pretrained, error) {
	return pretrain[float32](ctx, cfg, x, rows, dim, be, progress)
}

func pretrain[T Float](ctx context.Context, cfg PretrainConfig, x []float32, rows, dim int, be kernels.Backend, progress func(epoch int, loss float64)) (*Pretrained, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if dim < 1 {
		return nil, fmt.Errorf("pretrain: input width %d, want >= 1", dim)
	}
	if rows < 1 {
		return nil, fmt.Errorf("pretrain: %d rows, want >= 1", rows)
	}
	if rows > math.MaxInt32 {
		return nil, fmt.Errorf("pretrain: %d rows, at most %d supported", rows, math.MaxInt32)
	}
	if len(x) != rows*dim {
		return nil, fmt.Errorf("pretrain: %d features for %d rows of width %d, want %d", len(x), rows, dim, rows*dim)
	}
	for i, v := range x {
		if v-v != 0 {
			return nil, fmt.Errorf("pretrain: row %d feature %d is %g", i/dim, i%dim, v)
		}
	}
	if be == nil {
		be = kernels.NewCPU()
	}
	cfg.Hidden = slices.Clone(cfg.Hidden)
	B := min(cfg.BatchSize, rows)
	n := newAENet[T](cfg, dim, B, be)
	perm := make([]int32, rows)
	ssrc := rand.NewPCG(0, 0)
	srng := rand.New(ssrc)
	nb := (rows + B - 1) / B
	losses := make([]float64, 0, cfg.Epochs)
	for ep := range cfg.Epochs {
		shuffleRows(perm, ssrc, srng, cfg.Seed, ep)
		n.seedEpoch(cfg.Seed, ep)
		var sum float64
		for b := 0; b < nb; b++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			lo := b * B
			idx := perm[lo:min(lo+B, rows)]
			loss := n.batch(x, idx)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				// Checked before the step, so the parameters stay finite.
				return nil, &DivergedError{Stage: "pretrain", Loss: "reconstruction", Value: loss, Epoch: ep + 1, Batch: b + 1, Batches: nb, Optimizer: cfg.Optimizer}
			}
			if err := n.opt.step(n.params, n.grad); err != nil {
				return nil, fmt.Errorf("pretrain: %w", err)
			}
			sum += loss * float64(len(idx))
		}
		mean := sum / float64(rows)
		losses = append(losses, mean)
		if progress != nil {
			progress(ep+1, mean)
		}
	}
	p := &Pretrained{cfg: cfg, dim: dim, ae: make([]float64, len(n.params)), encLen: n.m.body, losses: losses}
	for i, v := range n.params {
		p.ae[i] = float64(v)
	}
	return p, nil
}

// aeNet is the autoencoder, its optimiser and its working buffers, sized once
// for rows rows so that batches do not allocate.
type aeNet[T Float] struct {
	m       *mlp // encoder layers, then the linear decoder as the head
	dim     int
	mask    bool
	k       int // masked features per row
	noise   float64
	params  []T
	grad    []T
	opt     optimizer[T]
	ps      *pass[T]
	sc      *scratch[T]
	xt, xin []T     // clean targets and corrupted inputs [rows,dim]
	dout    []T     // loss gradient w.r.t. the reconstruction
	midx    []int32 // masked feature indices [rows,k]
	fperm   []int32 // feature permutation the masks are drawn from
	src     *rand.PCG
	rng     *rand.Rand
}

func newAENet[T Float](cfg PretrainConfig, dim, rows int, be kernels.Backend) *aeNet[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(dim, cfg.Hidden, dim, act)
	n := &aeNet[T]{
		m: m, dim: dim, mask: cfg.Objective == "mask", noise: cfg.Noise,
		params: make([]T, m.nParam), grad: make([]T, m.nParam),
		opt: newOptimizer[T](cfg.Optimizer, m.nParam, be),
		ps:  newPass[T](m, rows), sc: newScratch[T](m, rows, false),
		xt: make([]T, rows*dim), xin: make([]T, rows*dim), dout: make([]T, rows*dim),
		src: rand.NewPCG(0, 0),
	}
	n.rng = rand.New(n.src)
	if n.mask {
		n.k = min(max(int(math.Round(cfg.MaskRate*float64(dim))), 1), dim)
		n.midx = make([]int32, rows*n.k)
		n.fperm = make([]int32, dim)
	}
	initParams(m, n.params, cfg.Seed)
	return n
}

// seedEpoch makes the corruption of epoch ep (0-based) depend only on
// (seed, ep).
func (n *aeNet[T]) seedEpoch(seed uint64, ep int) {
	n.src.Seed(seed, pretrainNoiseStream+uint64(ep))
	for i := range n.fperm {
		n.fperm[i] = int32(i)
	}
}

// batch gathers rows idx of x, corrupts them, and leaves the loss gradient in
// n.grad; it returns the loss.
func (n *aeNet[T]) batch(x []float32, idx []int32) float64 {
	d := n.dim
	for i, r := range idx {
		convert(n.xt[i*d:i*d+d], x[int(r)*d:int(r)*d+d])
	}
	n.corrupt(len(idx))
	return n.lossGrad(len(idx))
}

// corrupt writes the corrupted copy of the first rows targets into xin:
// Gaussian noise, or k distinct features per row (a partial Fisher-Yates
// shuffle of fperm, uniform whatever its current order) set to 0.
func (n *aeNet[T]) corrupt(rows int) {
	d := n.dim
	xt, xin := n.xt[:rows*d], n.xin[:rows*d]
	if !n.mask {
		for i, v := range xt {
			xin[i] = v + T(n.rng.NormFloat64()*n.noise)
		}
		return
	}
	copy(xin, xt)
	k := n.k
	for r := 0; r < rows; r++ {
		for i := 0; i < k; i++ {
			j := i + n.rng.IntN(d-i)
			n.fperm[i], n.fperm[j] = n.fperm[j], n.fperm[i]
			f := n.fperm[i]
			n.midx[r*k+i] = f
			xin[r*d+int(f)] = 0
		}
	}
}

// lossGrad reconstructs the first rows rows of xin and returns the mean
// squared error against xt (over the masked features for "mask"), writing its
// gradient with respect to the parameters into n.grad.
func (n *aeNet[T]) lossGrad(rows int) float64 {
	d := n.dim
	n.ps.rows = rows
	xin := n.xin[:rows*d]
	forward(n.m, n.params, xin, n.ps, n.sc)
	out, xt, dout := n.ps.out()[:rows*d], n.xt[:rows*d], n.dout[:rows*d]
	var loss float64
	if !n.mask {
		scale := T(2 / float64(rows*d))
		for i, v := range out {
			e := v - xt[i]
			loss += float64(e) * float64(e)
			dout[i] = scale * e
		}
		loss /= float64(rows * d)
	} else {
		k := n.k
		scale := T(2 / float64(rows*k))
		clear(dout)
		for r := 0; r < rows; r++ {
			for _, f := range n.midx[r*k : r*k+k] {
				i := r*d + int(f)
				e := out[i] - xt[i]
				loss += float64(e) * float64(e)
				dout[i] = scale * e
			}
		}
		loss /= float64(rows * k)
	}
	clear(n.grad)
	backward(n.m, n.params, xin, n.ps, n.sc, dout, n.grad)
	return loss
}
