package train

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/metaids/metaids/kernels"
)

// ClassifierConfig specifies the supervised classifier: an MLP with a
// classes-way linear head trained by mini-batch softmax cross-entropy on a
// whole training file.
type ClassifierConfig struct {
	Hidden     []int  // hidden layer widths; empty gives multinomial logistic regression
	Activation string // relu, leaky_relu, tanh or sigmoid
	InitSeed   uint64 // seeds the weight initialisation and the per-epoch shuffles
	Optimizer  OptimConfig
	Epochs     int // passes over the training rows per Fit, >= 1
	BatchSize  int // rows per optimiser step, 1..MaxClassifierBatch

	// ClassWeights is "none" or "balanced": each row's loss weighted by the
	// inverse frequency of its class in the training labels, normalised so
	// the weights of the classes present average 1. The loss is the weighted
	// mean over the batch, so the weights change the balance between classes
	// but not the overall step size.
	ClassWeights string

	Float64 bool // compute in float64 (gradient checks); float32 otherwise
}

// MaxClassifierBatch bounds BatchSize, which sizes the working buffers (and
// so also what a checkpoint header can make LoadClassifier allocate).
const MaxClassifierBatch = 1 << 20

// predictChunk is the least number of rows per forward pass in Predict:
// large enough to amortise the per-pass overhead, small enough that memory
// stays bounded whatever the size of the test file.
const predictChunk = 1024

// DefaultClassifierConfig is one hidden layer of 64 ReLU units, Adam at
// 1e-3, 10 epochs of 256-row batches, unweighted loss.
func DefaultClassifierConfig() ClassifierConfig {
	return ClassifierConfig{
		Hidden: []int{64}, Activation: "relu", InitSeed: 1,
		Optimizer: OptimConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Epochs:    10, BatchSize: 256, ClassWeights: "none",
	}
}

// Validate reports the first invalid field.
func (c ClassifierConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("classifier config %s: %s", field, fmt.Sprintf(format, args...))
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
	if c.BatchSize < 1 || c.BatchSize > MaxClassifierBatch {
		return bad("BatchSize", "%d, want 1..%d", c.BatchSize, MaxClassifierBatch)
	}
	if c.ClassWeights != "none" && c.ClassWeights != "balanced" {
		return bad("ClassWeights", "%q, want none or balanced", c.ClassWeights)
	}
	if err := c.Optimizer.check(bad); err != nil {
		return err
	}
	return nil
}

// Classifier is a supervised MLP classifier over fixed-width encoded rows.
// It is not safe for concurrent use: Fit and Predict share working buffers.
type Classifier struct {
	cfg          ClassifierConfig
	dim, classes int
	weights      []float64 // class weights of the last Fit; nil before any
	epochs       int       // epochs completed over the classifier's life
	net          clfEngine
}

// clfEngine is the precision-specific network behind a Classifier.
type clfEngine interface {
	// grads writes the loss gradient of the rows idx of (x, y) into the
	// gradient buffer (idx nil: all len(y) rows, in order) and returns the
	// weighted mean loss and the batch's total weight.
	grads(x []float32, y []int32, idx []int32) (loss, wsum float64)
	// apply takes one optimiser step with the last gradient.
	apply() error
	setWeights(w []float64)
	predict(x []float32, rows int, labels []int32, probs []float32)
	numParams() int
	optStep() int
	setOptStep(t int)
	moments() bool
	dtype() string
	writeState(buf *bytes.Buffer)
	readState(p []byte) []byte
}

// NewClassifier builds a classifier for dim-wide rows and classes labels,
// initialised from cfg.InitSeed. be supplies the float32 optimiser kernels
// (nil means the plain-Go CPU backend).
func NewClassifier(cfg ClassifierConfig, dim, classes int, be kernels.Backend) (*Classifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if dim < 1 {
		return nil, fmt.Errorf("classifier: input width %d, want >= 1", dim)
	}
	if classes < 2 {
		return nil, fmt.Errorf("classifier: %d classes, want >= 2", classes)
	}
	if err := checkClassifierMemory(cfg, dim, classes); err != nil {
		return nil, err
	}
	if be == nil {
		be = kernels.NewCPU()
	}
	cfg.Hidden = slices.Clone(cfg.Hidden)
	c := &Classifier{cfg: cfg, dim: dim, classes: classes}
	if cfg.Float64 {
		c.net = newClfNet[float64](cfg, dim, classes, be)
	} else {
		c.net = newClfNet[float32](cfg, dim, classes, be)
	}
	return c, nil
}

// Config returns the configuration the classifier was built with.
func (c *Classifier) Config() ClassifierConfig {
	k := c.cfg
	k.Hidden = slices.Clone(k.Hidden)
	return k
}

// Dim and Classes are the input width and the number of classes.
func (c *Classifier) Dim() int     { return c.dim }
func (c *Classifier) Classes() int { return c.classes }

// Epochs is the number of training epochs completed, across Fit calls and
// checkpoints.
func (c *Classifier) Epochs() int { return c.epochs }

// ClassWeights returns the per-class loss weights of the last Fit (all 1
// for "none"; 0 for classes absent from the training labels), or nil before
// the first Fit.
func (c *Classifier) ClassWeights() []float64 { return slices.Clone(c.weights) }

// shuffleStream separates the shuffle's PCG stream from the initialiser's.
const shuffleStream = 0x636c662d73687566

// Fit trains on rows rows of x [rows*Dim] with labels y [rows] for
// cfg.Epochs epochs of mini-batches, the rows shuffled afresh each epoch.
// The shuffle of the k-th epoch of the classifier's life is seeded from
// (InitSeed, k), so training is deterministic, and a classifier restored
// from a checkpoint continues exactly as an uninterrupted one would.
// progress, if not nil, gets the 1-based epoch number (counted over the
// classifier's life) and the epoch's mean training loss.
func (c *Classifier) Fit(ctx context.Context, x []float32, y []int32, rows int, progress func(epoch int, loss float64)) error {
	if rows < 1 {
		return fmt.Errorf("classifier fit: %d rows, want >= 1", rows)
	}
	if rows > math.MaxInt32 {
		return fmt.Errorf("classifier fit: %d rows, at most %d supported", rows, math.MaxInt32)
	}
	if err := c.checkRows("fit", x, rows, len(y)); err != nil {
		return err
	}
	for i, v := range y {
		if v < 0 || int(v) >= c.classes {
			return fmt.Errorf("classifier fit: label %d at row %d outside [0,%d)", v, i, c.classes)
		}
	}
	c.weights = classWeights(c.cfg.ClassWeights, y, c.classes)
	if c.cfg.ClassWeights == "balanced" {
		c.net.setWeights(c.weights)
	} else {
		c.net.setWeights(nil)
	}
	perm := make([]int32, rows)
	src := rand.NewPCG(0, 0)
	rng := rand.New(src)
	B := c.cfg.BatchSize
	nb := (rows + B - 1) / B
	for range c.cfg.Epochs {
		epoch := c.epochs + 1
		shuffleRows(perm, src, rng, c.cfg.InitSeed, c.epochs)
		var sum, wsum float64
		for b := 0; b < nb; b++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			lo := b * B
			loss, w := c.net.grads(x, y, perm[lo:min(lo+B, rows)])
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				// Checked before the step, so the parameters stay finite.
				return &DivergedError{Stage: "classifier fit", Loss: "training", Value: loss, Epoch: epoch, Batch: b + 1, Batches: nb, Optimizer: c.cfg.Optimizer}
			}
			if err := c.net.apply(); err != nil {
				return fmt.Errorf("classifier fit: %w", err)
			}
			sum += loss * w
			wsum += w
		}
		c.epochs++
		if progress != nil {
			progress(epoch, sum/wsum)
		}
	}
	return nil
}

// shuffleRows writes into perm the row order of the epoch with 0-based
// index epoch: a permutation that depends only on (seed, epoch, len(perm)).
// rng draws from src, which is reseeded here.
func shuffleRows(perm []int32, src *rand.PCG, rng *rand.Rand, seed uint64, epoch int) {
	src.Seed(seed, shuffleStream+uint64(epoch))
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := len(perm) - 1; i > 0; i-- { // Fisher-Yates
		j := rng.IntN(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
}

// Predict writes the most probable class of each of the rows rows of x
// [rows*Dim] into labels [rows] and, when probs is not nil, the class
// probabilities into probs [rows*Classes]. Rows go through the network in
// bounded chunks.
func (c *Classifier) Predict(x []float32, rows int, labels []int32, probs []float32) error {
	if rows < 0 {
		return fmt.Errorf("classifier predict: %d rows, want >= 0", rows)
	}
	if err := c.checkRows("predict", x, rows, len(labels)); err != nil {
		return err
	}
	if probs != nil && len(probs) != rows*c.classes {
		return fmt.Errorf("classifier predict: %d probabilities for %d rows of %d classes, want %d", len(probs), rows, c.classes, rows*c.classes)
	}
	chunk := max(c.cfg.BatchSize, predictChunk)
	d, C := c.dim, c.classes
	for lo := 0; lo < rows; lo += chunk {
		hi := min(lo+chunk, rows)
		var p []float32
		if probs != nil {
			p = probs[lo*C : hi*C]
		}
		c.net.predict(x[lo*d:hi*d], hi-lo, labels[lo:hi], p)
	}
	return nil
}

// checkRows verifies x's length against rows and the label count, and that
// every feature is finite: a NaN in the data is better reported by row than
// discovered as a NaN loss.
func (c *Classifier) checkRows(op string, x []float32, rows, nLabels int) error {
	if nLabels != rows {
		return fmt.Errorf("classifier %s: %d labels for %d rows", op, nLabels, rows)
	}
	if len(x) != rows*c.dim {
		return fmt.Errorf("classifier %s: %d features for %d rows of width %d, want %d", op, len(x), rows, c.dim, rows*c.dim)
	}
	for i, v := range x {
		if v-v != 0 {
			return fmt.Errorf("classifier %s: row %d feature %d is %g", op, i/c.dim, i%c.dim, v)
		}
	}
	return nil
}

// classWeights returns the per-class weights for mode: all 1 for "none";
// for "balanced", 1/count normalised to mean 1 over the classes present,
// and 0 for absent classes (they never enter the loss).
func classWeights(mode string, y []int32, classes int) []float64 {
	w := make([]float64, classes)
	if mode != "balanced" {
		for i := range w {
			w[i] = 1
		}
		return w
	}
	counts := make([]int, classes)
	for _, v := range y {
		counts[v]++
	}
	var sum float64
	present := 0
	for i, n := range counts {
		if n > 0 {
			w[i] = 1 / float64(n)
			sum += w[i]
			present++
		}
	}
	mean := sum / float64(present)
	for i := range w {
		w[i] /= mean
	}
	return w
}

// clfNet is the network, its optimiser and its working buffers, sized once
// for max(BatchSize, predictChunk) rows so that steps do not allocate.
type clfNet[T Float] struct {
	m             *mlp
	dim, C        int
	params, grad  []T
	opt           optimizer[T]
	ps            *pass[T]
	sc            *scratch[T]
	xb            []T     // gathered (and, for float64, converted) batch rows
	yb            []int32 // gathered batch labels
	w             []float64
	prob, dlogits []T
}

func newClfNet[T Float](cfg ClassifierConfig, dim, classes int, be kernels.Backend) *clfNet[T] {
	act, _ := parseActivation(cfg.Activation)
	m := newMLP(dim, cfg.Hidden, classes, act)
	rows := max(cfg.BatchSize, predictChunk)
	n := &clfNet[T]{
		m: m, dim: dim, C: classes,
		params: make([]T, m.nParam), grad: make([]T, m.nParam),
		opt: newOptimizer[T](cfg.Optimizer, m.nParam, be),
		ps:  newPass[T](m, rows), sc: newScratch[T](m, rows, false),
		xb: make([]T, rows*dim), yb: make([]int32, rows),
		prob: make([]T, rows*classes), dlogits: make([]T, rows*classes),
	}
	initParams(m, n.params, cfg.InitSeed)
	return n
}

func (n *clfNet[T]) grads(x []float32, y []int32, idx []int32) (float64, float64) {
	d := n.dim
	var xs []T
	var ys []int32
	var rows int
	if idx == nil {
		rows = len(y)
		xs, ys = asT(n.xb, x[:rows*d]), y
	} else {
		rows = len(idx)
		for i, r := range idx {
			convert(n.xb[i*d:i*d+d], x[int(r)*d:int(r)*d+d])
			n.yb[i] = y[r]
		}
		xs, ys = n.xb[:rows*d], n.yb[:rows]
	}
	n.ps.rows = rows
	forward(n.m, n.params, xs, n.ps, n.sc)
	loss, wsum := weightedCE(n.ps.out(), ys, rows, n.C, n.w, n.prob, n.dlogits)
	clear(n.grad)
	backward(n.m, n.params, xs, n.ps, n.sc, n.dlogits[:rows*n.C], n.grad)
	return loss, wsum
}

func (n *clfNet[T]) apply() error { return n.opt.step(n.params, n.grad) }

func (n *clfNet[T]) setWeights(w []float64) { n.w = slices.Clone(w) }

func (n *clfNet[T]) predict(x []float32, rows int, labels []int32, probs []float32) {
	n.ps.rows = rows
	forward(n.m, n.params, asT(n.xb, x), n.ps, n.sc)
	C := n.C
	logits := n.ps.out()
	for r := 0; r < rows; r++ {
		l := logits[r*C : r*C+C]
		best := argmax(l)
		labels[r] = int32(best)
		if probs == nil {
			continue
		}
		mx := float64(l[best])
		var sum float64
		for _, v := range l {
			sum += math.Exp(float64(v) - mx)
		}
		p := probs[r*C : r*C+C]
		for j, v := range l {
			p[j] = float32(math.Exp(float64(v)-mx) / sum)
		}
	}
}

func (n *clfNet[T]) numParams() int   { return len(n.params) }
func (n *clfNet[T]) optStep() int     { return n.opt.t }
func (n *clfNet[T]) setOptStep(t int) { n.opt.t = t }
func (n *clfNet[T]) moments() bool    { return n.opt.m != nil }
func (n *clfNet[T]) dtype() string    { return dtypeOf[T]() }

func (n *clfNet[T]) writeState(buf *bytes.Buffer) {
	writeFloats(buf, n.params)
	if n.opt.m != nil {
		writeFloats(buf, n.opt.m)
		writeFloats(buf, n.opt.v)
	}
}

func (n *clfNet[T]) readState(p []byte) []byte {
	p = readFloats(p, n.params)
	if n.opt.m != nil {
		p = readFloats(p, n.opt.m)
		p = readFloats(p, n.opt.v)
	}
	return p
}

// weightedCE is softmaxCE with per-class weights w (nil: all 1). The loss
// is the weighted mean sum_i w[y_i] CE_i / sum_i w[y_i]; it also returns
// the denominator so that epoch means can be formed across batches.
func weightedCE[T Float](logits []T, labels []int32, rows, C int, w []float64, prob, dlogits []T) (loss, wsum float64) {
	if w == nil {
		wsum = float64(rows)
	} else {
		for _, y := range labels[:rows] {
			wsum += w[y]
		}
	}
	for r := 0; r < rows; r++ {
		y := labels[r]
		wr := 1.0
		if w != nil {
			wr = w[y]
		}
		l := logits[r*C : r*C+C]
		p := prob[r*C : r*C+C]
		mx, sum := softmaxRow(l, p)
		coef := T(wr / wsum)
		d := dlogits[r*C : r*C+C]
		for j := range p {
			d[j] = p[j] * coef
		}
		d[y] -= coef
		loss += wr * (math.Log(sum) - float64(l[y]-mx))
	}
	return loss / wsum, wsum
}

// Classifier checkpoint layout (integers little-endian), alongside but
// distinct from the meta-learner checkpoints:
//
//	magic "metaids-clf\n" | uint32 version | uint32 header length | JSON header
//	| parameters | Adam m | Adam v  (float32 or float64 each, per header.DType)
//	| extra blobs in header order | uint32 CRC-32 (IEEE) of everything before
const (
	clfMagic   = "metaids-clf\n"
	clfVersion = 1
)

type clfHeader struct {
	Version   int
	Config    ClassifierConfig
	Dim       int
	Classes   int
	DType     string
	NumParams int
	OptStep   int
	Moments   bool
	Epochs    int
	Weights   []float64
	Extra     []ckptBlob
}

// Save writes the classifier (configuration, parameters, optimiser state,
// epoch count and class weights) and the caller's extra blobs (encoder,
// spec) to w.
func (c *Classifier) Save(w io.Writer, extra map[string][]byte) error {
	h := clfHeader{
		Version: clfVersion, Config: c.cfg, Dim: c.dim, Classes: c.classes, DType: c.net.dtype(),
		NumParams: c.net.numParams(), OptStep: c.net.optStep(), Moments: c.net.moments(),
		Epochs: c.epochs, Weights: c.weights,
	}
	names, blobs := blobIndex(extra)
	h.Extra = append(h.Extra, blobs...)
	buf, err := startFrame(clfMagic, clfVersion, h)
	if err != nil {
		return fmt.Errorf("classifier checkpoint header: %w", err)
	}
	c.net.writeState(buf)
	for _, n := range names {
		buf.Write(extra[n])
	}
	if err := endFrame(w, buf); err != nil {
		return fmt.Errorf("writing classifier checkpoint: %w", err)
	}
	return nil
}

// LoadClassifier restores a classifier written by Save and returns it with
// the extra blobs. Every decoding error wraps ErrCheckpoint.
func LoadClassifier(r io.Reader, be kernels.Backend) (*Classifier, map[string][]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading classifier checkpoint: %w", err)
	}
	fail := func(format string, args ...any) (*Classifier, map[string][]byte, error) {
		return nil, nil, fmt.Errorf("%w: classifier: %s", ErrCheckpoint, fmt.Sprintf(format, args...))
	}
	if bytes.HasPrefix(data, []byte(ckptMagic)) {
		return fail("this is a meta-learner checkpoint; load it with train.Load")
	}
	if len(data) < len(clfMagic)+12 || !bytes.HasPrefix(data, []byte(clfMagic)) {
		return fail("not a metaids classifier checkpoint")
	}
	var h clfHeader
	p, err := openFrame(data, clfMagic, clfVersion, &h)
	if err != nil {
		return fail("%v", err)
	}
	if err := h.Config.Validate(); err != nil {
		return fail("%v", err)
	}
	// Every layer width is at most the parameter count, itself bounded by
	// the payload, so a corrupt header cannot ask for a huge model.
	for _, n := range append([]int{h.Dim, h.Classes}, h.Config.Hidden...) {
		if n > len(p) {
			return fail("layer width %d exceeds the %d-byte payload", n, len(p))
		}
	}
	want := "float32"
	if h.Config.Float64 {
		want = "float64"
	}
	switch {
	case h.Version != clfVersion:
		return fail("header version %d, want %d", h.Version, clfVersion)
	case h.DType != want:
		return fail("dtype %s, config says %s", h.DType, want)
	case h.OptStep < 0 || h.Epochs < 0:
		return fail("negative step or epoch count")
	case h.Moments != (h.Config.Optimizer.Name == "adam"):
		return fail("optimiser state does not match %s", h.Config.Optimizer.Name)
	case h.Weights != nil && len(h.Weights) != h.Classes:
		return fail("%d class weights for %d classes", len(h.Weights), h.Classes)
	}
	for _, w := range h.Weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fail("class weight %g", w)
		}
	}
	if h.Dim < 1 || h.Classes < 2 {
		return fail("input width %d and %d classes", h.Dim, h.Classes)
	}
	// Check the layout before NewClassifier allocates for it.
	act, _ := parseActivation(h.Config.Activation)
	if n := newMLP(h.Dim, h.Config.Hidden, h.Classes, act).nParam; h.NumParams != n {
		return fail("%d parameters, the configured model has %d", h.NumParams, n)
	}
	blobs, err := blobsLength(h.Extra, len(p))
	if err != nil {
		return fail("%v", err)
	}
	if need := stateSize(h.DType, h.NumParams, h.Moments) + blobs; need != len(p) {
		return fail("payload is %d bytes, header describes %d", len(p), need)
	}
	c, err := NewClassifier(h.Config, h.Dim, h.Classes, be)
	if err != nil {
		return fail("%v", err)
	}
	p = c.net.readState(p)
	c.net.setOptStep(h.OptStep)
	c.epochs = h.Epochs
	if h.Weights != nil {
		c.weights = h.Weights
		if h.Config.ClassWeights == "balanced" {
			c.net.setWeights(h.Weights)
		}
	}
	return c, readBlobs(p, h.Extra), nil
}
