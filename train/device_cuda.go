//go:build metaids_cuda

package train

import (
	"fmt"
	"io"
	"math"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/cuda"
)

// Device-resident learners: with the cuda backend, ProtoNet (Euclidean),
// MAML and FOMAML keep their parameters, optimiser state and every
// activation on the GPU. A meta-step copies the episodes' labels and either
// their features or, for episodes drawn from a pool whose matrix is on the
// device (UsePool), their row numbers to the device, and the loss back;
// nothing else crosses. Each kind of step is recorded once as a CUDA graph
// and replayed (cuda.GraphsVar), and steps can be queued ahead of the
// device (Pipeliner). The fused CPU learner each is built around keeps a
// host copy of the parameters, refreshed only when something reads it, and
// does what the device learners do not: prediction (but ProtoNet's batch
// classification), checkpoints, embeddings and input gradients.

func init() { deviceLearner, deviceUnsupported = newDeviceLearner, DeviceUnsupported }

// DeviceUnsupported says why cfg cannot run device-resident, or "".
func DeviceUnsupported(cfg Config) string {
	switch {
	case cfg.Algo != "protonet" && cfg.Algo != "maml" && cfg.Algo != "fomaml":
		return "only protonet, maml and fomaml run device-resident"
	case cfg.Algo == "protonet" && cfg.Distance != "euclidean":
		return "device-resident ProtoNet uses Euclidean distances"
	case cfg.Engine != "" && cfg.Engine != "fused":
		return "the device learners are the fused engine's"
	case cfg.Float64:
		return "the device computes in float32"
	case cfg.Aux.Enabled():
		return "auxiliary heads run on the host"
	case cfg.Optimizer.ClipNorm > 0:
		return "gradient clipping runs on the host"
	}
	return ""
}

// newDeviceLearner wraps host, built by the fused engine, in its
// device-resident twin when be is the cuda backend and cfg is supported;
// ok is false otherwise.
func newDeviceLearner(cfg Config, shape Shape, be kernels.Backend, host Learner) (Learner, bool, error) {
	cb, isCuda := be.(*cuda.Backend)
	if !isCuda || DeviceUnsupported(cfg) != "" {
		return nil, false, nil
	}
	d := &devLearner{Learner: host, dev: cb.Dev(), cfg: cfg, shape: shape}
	switch h := host.(type) {
	case *protoNet[float32]:
		d.base, d.m = &h.base, h.m
	case *gbml[float32]:
		d.base, d.m = &h.base, h.m
	default:
		return nil, false, nil
	}
	if err := d.build(); err != nil {
		d.Close()
		return nil, false, fmt.Errorf("%s on the device: %w", cfg.Algo, err)
	}
	return d, true, nil
}

// devLearner is a device-resident learner around its host twin.
type devLearner struct {
	Learner // the host learner
	base    *base[float32]
	m       *mlp
	dev     cuda.Dev
	cfg     Config
	shape   Shape

	params, grad, mom, vel cuda.Buffer
	// stale is set while the device parameters are ahead of the host copy.
	stale bool

	// The staged meta-batch: the support rows of every task, then their
	// query rows (x, allocated when a batch not drawn from the pool first
	// needs it), and the way labels. For B tasks, lab holds the
	// support labels, the query labels and, for a batch drawn from the pool,
	// the row numbers, one after another, so that one copy brings them;
	// ys, yq and rows are its parts for the batch staged last.
	x, lab, ys, yq, rows cuda.Buffer

	// Host staging, a slot per meta-step in flight (QueueStep), and the
	// steps in flight, oldest first. ready holds the losses of finished
	// steps not yet returned; out is what QueueStep and Drain return.
	slots      [maxInFlight]stageSlot
	inFlight   []queuedStep
	ready, out []float64

	// in is the staged batch's input (stageDevice).
	in devInput

	// A pool matrix kept on the device (UsePool).
	pool     cuda.Buffer
	poolHost []float32
	fromPool int // batches staged from the pool, for tests and benchmarks

	loss cuda.Buffer // [1]

	scores []float32 // PredictBatch's scratch where it predicts on the host

	// graphs holds the recorded steps by what they do and their batch's
	// shape, when the backend replays graphs (cuda.GraphsVar).
	graphs   map[graphKey]*cuda.Graph
	useGraph bool

	step  func(tasks int) error // writes grad and loss for the staged batch
	proto *devProto             // ProtoNet's step, which also classifies batches
	bufs  []cuda.Buffer         // every allocation, for Close
	host  []cuda.HostBuffer     // every page-locked buffer, for Close
	bytes int64
	err   error // the first allocation failure
}

// graphKey names a recorded operation: a meta-step or a classification,
// of a batch of tasks drawn from the pool or copied, staged in a slot.
type graphKey struct {
	classify bool
	tasks    int
	fromPool bool
	slot     int
}

// maxInFlight is how many meta-steps QueueStep lets the device run behind
// the host: two, so that the host lays out one batch while the device runs
// the step before.
const maxInFlight = 2

// stageSlot is page-locked memory a step is staged in and its loss comes
// back to (what a recorded step copies from and to), and an event marking
// the end of the step's work. hx, for batches that are not drawn from the
// pool, is allocated on first use.
type stageSlot struct {
	hx, hlab, hloss cuda.HostBuffer
	done            *cuda.Event
}

// queuedStep is a meta-step in flight: its slot and its number.
type queuedStep struct{ slot, step int }

// allocHost returns n page-locked float32s and remembers them.
func (d *devLearner) allocHost(n int) cuda.HostBuffer {
	if n == 0 || d.err != nil {
		return cuda.HostBuffer{}
	}
	h, err := d.dev.AllocHost(n)
	if err != nil {
		d.err = err
		return cuda.HostBuffer{}
	}
	d.host = append(d.host, h)
	return h
}

// alloc returns a zeroed device buffer of n float32s and remembers it.
func (d *devLearner) alloc(n int) cuda.Buffer {
	if n == 0 || d.err != nil {
		return cuda.Buffer{}
	}
	b, err := d.dev.Alloc(n)
	if err != nil {
		d.err = err
		return cuda.Buffer{}
	}
	d.bufs = append(d.bufs, b)
	d.bytes += 4 * int64(n)
	return b
}

func (d *devLearner) build() (err error) {
	s := d.shape
	n := len(d.base.params)
	d.params, d.grad = d.alloc(n), d.alloc(n)
	if d.cfg.Optimizer.Name == "adam" {
		d.mom, d.vel = d.alloc(n), d.alloc(n)
	}
	ns, nq, B := s.Ways*s.Shots, s.Ways*s.Queries, s.MetaBatch
	// x, for batches not drawn from the pool, is allocated on first use.
	d.lab, d.loss = d.alloc(2*B*(ns+nq)), d.alloc(1)
	for i := range d.slots {
		sl := &d.slots[i]
		sl.hlab, sl.hloss = d.allocHost(2*B*(ns+nq)), d.allocHost(1)
		if sl.done, err = d.dev.NewEvent(); err != nil {
			return err
		}
	}
	d.useGraph = d.dev.Graphs()
	d.graphs = map[graphKey]*cuda.Graph{}
	if d.cfg.Algo == "protonet" {
		d.proto = newDevProto(d)
		d.step = d.proto.grads
	} else {
		d.step = newDevMAML(d).grads
	}
	if d.err != nil {
		return d.err
	}
	return d.upload()
}

// Close frees the device memory; the learner must not be stepped after.
// The host twin stays usable with the parameters of the last sync.
func (d *devLearner) Close() error {
	err := d.sync()
	if e := d.freeGraphs(); err == nil {
		err = e
	}
	for _, h := range d.host {
		if e := d.dev.FreeHost(h); err == nil {
			err = e
		}
	}
	d.host = nil
	for i := range d.slots {
		if e := d.dev.FreeEvent(d.slots[i].done); err == nil {
			err = e
		}
		d.slots[i] = stageSlot{}
	}
	if !d.pool.IsNil() {
		d.bufs = append(d.bufs, d.pool)
		d.pool, d.poolHost = cuda.Buffer{}, nil
	}
	for _, b := range d.bufs {
		if e := d.dev.Free(b); err == nil {
			err = e
		}
	}
	d.bufs, d.bytes = nil, 0
	return err
}

// freeGraphs forgets the recorded steps.
func (d *devLearner) freeGraphs() error {
	var err error
	for k, g := range d.graphs {
		if e := d.dev.FreeGraph(g); err == nil {
			err = e
		}
		delete(d.graphs, k)
	}
	return err
}

// UsesGraphs reports whether the learner replays recorded steps.
func (d *devLearner) UsesGraphs() bool { return d.useGraph }

// DeviceBytes is the device memory the learner holds.
func (d *devLearner) DeviceBytes() int64 { return d.bytes }

// upload copies the host parameters and optimiser state to the device.
func (d *devLearner) upload() error {
	b := d.base
	if err := d.dev.Upload(d.params, b.params); err != nil {
		return err
	}
	if b.opt.m != nil {
		if err := d.dev.Upload(d.mom, b.opt.m); err != nil {
			return err
		}
		if err := d.dev.Upload(d.vel, b.opt.v); err != nil {
			return err
		}
	}
	d.stale = false
	return nil
}

// sync brings the host copy up to date after device steps.
func (d *devLearner) sync() error {
	if err := d.settle(); err != nil {
		return err
	}
	if !d.stale || len(d.bufs) == 0 {
		return nil
	}
	b := d.base
	if err := d.dev.Download(b.params, d.params); err != nil {
		return err
	}
	if b.opt.m != nil {
		if err := d.dev.Download(b.opt.m, d.mom); err != nil {
			return err
		}
		if err := d.dev.Download(b.opt.v, d.vel); err != nil {
			return err
		}
	}
	d.stale = false
	return nil
}

// UsePool implements PoolUser: it uploads x, a pool matrix of rows of the
// learner's input width, replacing any earlier one.
func (d *devLearner) UsePool(x []float32) error {
	if len(x) == 0 || len(x)%d.shape.Dim != 0 {
		return fmt.Errorf("UsePool: %d values are not rows of width %d", len(x), d.shape.Dim)
	}
	if len(d.bufs) == 0 {
		return fmt.Errorf("%s: UsePool after Close", d.cfg.Algo)
	}
	// The recorded steps read the pool being replaced.
	if err := d.settle(); err != nil {
		return err
	}
	if err := d.freeGraphs(); err != nil {
		return err
	}
	if !d.pool.IsNil() {
		_ = d.dev.Free(d.pool)
		d.bytes -= 4 * int64(d.pool.Len())
		d.pool, d.poolHost = cuda.Buffer{}, nil
	}
	buf, err := d.dev.Alloc(len(x))
	if err != nil {
		return err
	}
	if err := d.dev.Upload(buf, x); err != nil {
		_ = d.dev.Free(buf)
		return err
	}
	d.pool, d.poolHost = buf, x
	d.bytes += 4 * int64(len(x))
	return nil
}

// drawnFromPool reports whether every episode's features are rows of the
// device's pool matrix.
func (d *devLearner) drawnFromPool(b datasets.Batch) bool {
	if d.poolHost == nil {
		return false
	}
	for _, ep := range b {
		if ep == nil || len(ep.Source) != len(d.poolHost) || &ep.Source[0] != &d.poolHost[0] || len(ep.Rows) != len(ep.SupportY)+len(ep.QueryY) {
			return false
		}
	}
	return true
}

// stageHost lays a checked batch out in slot k's page-locked buffers and
// points ys, yq and rows at its parts of lab: for a batch drawn from the
// pool (drawnFromPool) the row numbers, else the features.
func (d *devLearner) stageHost(b datasets.Batch, k int, fromPool bool) error {
	s, sl := d.shape, &d.slots[k]
	ns, nq, B := s.Ways*s.Shots, s.Ways*s.Queries, len(b)
	n := B * (ns + nq)
	lab := sl.hlab.Int32()
	for i, ep := range b {
		copy(lab[i*ns:], ep.SupportY)
		copy(lab[B*ns+i*nq:], ep.QueryY)
	}
	// Checked here, side by side, rather than episode by episode.
	if !allIn(lab[:n], int32(s.Ways)) {
		for i, ep := range b {
			if err := checkLabels(ep, s); err != nil {
				return fmt.Errorf("%s: episode %d: %w", d.cfg.Algo, i, err)
			}
		}
	}
	d.ys, d.yq = d.lab.Slice(0, B*ns), d.lab.Slice(B*ns, n)
	if fromPool {
		rows, poolRows := lab[n:2*n], int32(len(d.poolHost)/s.Dim)
		for i, ep := range b {
			copy(rows[i*ns:], ep.Rows[:ns])
			copy(rows[B*ns+i*nq:], ep.Rows[ns:])
		}
		// The device reads wherever a row number points.
		if !allIn(rows, poolRows) {
			for i, ep := range b {
				if !allIn(ep.Rows, poolRows) {
					return fmt.Errorf("%s: episode %d: a row number outside the pool's %d rows: %w", d.cfg.Algo, i, poolRows, ErrShape)
				}
			}
		}
		d.rows = d.lab.Slice(n, 2*n)
		d.fromPool++
		return nil
	}
	if sl.hx.Float32() == nil {
		if sl.hx = d.allocHost(s.MetaBatch * (ns + nq) * s.Dim); d.err != nil {
			return d.err
		}
	}
	x, q0 := sl.hx.Float32(), B*ns*s.Dim
	for i, ep := range b {
		copy(x[i*ns*s.Dim:], ep.SupportX)
		copy(x[q0+i*nq*s.Dim:], ep.QueryX)
	}
	return nil
}

// stageDevice queues the copy of the batch stageHost laid out in slot k
// for B tasks and points in at its rows: the pool's that rows names (the
// first layer reads them there), or the features copied into x.
func (d *devLearner) stageDevice(B int, fromPool bool, k int) error {
	s, sl := d.shape, &d.slots[k]
	n := B * (s.Ways*s.Shots + s.Ways*s.Queries)
	if fromPool {
		d.in = devInput{x: d.pool, idx: d.rows}
		return d.dev.UploadInt32(d.lab.Slice(0, 2*n), sl.hlab.Int32()[:2*n])
	}
	if d.x.IsNil() {
		if d.x = d.alloc(s.MetaBatch * (s.Ways*s.Shots + s.Ways*s.Queries) * s.Dim); d.err != nil {
			return d.err
		}
	}
	d.in = devInput{x: d.x.Slice(0, n*s.Dim)}
	return run(
		d.dev.UploadInt32(d.lab.Slice(0, n), sl.hlab.Int32()[:n]),
		d.dev.Upload(d.in.x, sl.hx.Float32()[:n*s.Dim]),
	)
}

// devInput is the network's input for a staged batch: the rows of x in
// order, or, with idx, the rows of x that idx names (the pool's, which the
// first layer's products read through idx rather than gathering them).
type devInput struct{ x, idx cuda.Buffer }

// rows is the input's rows [lo, hi), of width dim.
func (in devInput) rows(lo, hi, dim int) devInput {
	if in.idx.IsNil() {
		return devInput{x: in.x.Slice(lo*dim, hi*dim)}
	}
	return devInput{x: in.x, idx: in.idx.Slice(lo, hi)}
}

// withInput makes layer i's input the A operand of g, a product over
// tasks of rows rows each: the network's input x for the first layer, the
// previous layer's output a[i-1] after it.
func withInput(g cuda.Gemm, i int, x devInput, a []cuda.Buffer, rows int) cuda.Gemm {
	switch {
	case i > 0:
		g.A = a[i-1]
	case x.idx.IsNil():
		g.A = x.x
	default:
		g.A, g.StrideA, g.ARows, g.ARowsStride = x.x, 0, x.idx, rows
	}
	return g
}

// replay runs f (which queues device work) for the staged batch: recorded
// on first use for its key and replayed from then on when the learner uses
// graphs, else directly.
func (d *devLearner) replay(key graphKey, f func() error) error {
	if !d.useGraph {
		return f()
	}
	g := d.graphs[key]
	if g == nil {
		var err error
		if g, err = d.dev.Record(f); err != nil {
			return fmt.Errorf("recording the device step (%s=0 runs without graphs): %w", cuda.GraphsVar, err)
		}
		d.graphs[key] = g
	}
	return d.dev.Launch(g)
}

// MetaStep runs the step on the device (gradient, optimiser update) and
// returns its loss. Losses of steps queued before (QueueStep) are kept for
// the next Drain. As on the CPU, a step whose loss is not finite is an
// error and changes nothing: the update kernels skip it and finishOldest
// takes back its count.
func (d *devLearner) MetaStep(b datasets.Batch) (float64, error) {
	if err := d.settle(); err != nil {
		return 0, err
	}
	if err := d.queue(b); err != nil {
		return 0, err
	}
	err := d.settle()
	if len(d.ready) == 0 {
		return 0, err
	}
	loss := d.ready[len(d.ready)-1]
	d.ready = d.ready[:len(d.ready)-1]
	return loss, err
}

// QueueStep implements Pipeliner: it queues the step on b and returns as
// soon as b is staged, with the losses of earlier steps that finished.
// With graphs the device runs up to maxInFlight steps behind the host;
// without, each step finishes before QueueStep returns.
//
// A step whose loss is not finite is skipped on the device, and once the
// steps in flight are in (Drain), Steps() and Adam's count are the updates
// applied. The step queued behind a skipped one (at most maxInFlight-1)
// still runs, from the parameters the skipped one left, but was numbered
// when queued: its Adam bias correction used a count one more than the
// updates before it, and its error, if its loss is not finite too, names
// that number.
func (d *devLearner) QueueStep(b datasets.Batch) ([]float64, error) {
	err := d.queue(b)
	return d.takeReady(), err
}

// Drain implements Pipeliner: it waits for the queued steps and returns
// the losses not returned yet.
func (d *devLearner) Drain() ([]float64, error) {
	err := d.settle()
	return d.takeReady(), err
}

func (d *devLearner) takeReady() []float64 {
	d.out = append(d.out[:0], d.ready...)
	d.ready = d.ready[:0]
	return d.out
}

// queue stages b in the slot after the newest step in flight (waiting for
// the step that used it before) and queues the step: the recorded copy,
// gradient and loss copy, the optimiser update, and the slot's event.
func (d *devLearner) queue(b datasets.Batch) error {
	if len(d.bufs) == 0 {
		return fmt.Errorf("%s: MetaStep after Close", d.cfg.Algo)
	}
	fromPool := d.drawnFromPool(b)
	if err := d.base.checkBatchLayout(b, fromPool); err != nil {
		return err
	}
	k := 0
	if n := len(d.inFlight); n > 0 {
		k = (d.inFlight[n-1].slot + 1) % maxInFlight
	}
	if len(d.inFlight) == maxInFlight {
		if err := d.finishOldest(); err != nil {
			return err
		}
	}
	B := len(b)
	if err := d.stageHost(b, k, fromPool); err != nil {
		return err
	}
	hloss := d.slots[k].hloss.Float32()
	if err := d.replay(graphKey{tasks: B, fromPool: fromPool, slot: k}, func() error {
		return run(d.stageDevice(B, fromPool, k), d.step(B), d.dev.Download(hloss, d.loss))
	}); err != nil {
		return err
	}
	o, opt := d.cfg.Optimizer, &d.base.opt
	opt.t++
	var err error
	switch o.Name {
	case "sgd":
		err = d.dev.SGDStep(d.params, d.grad, d.loss, float32(o.LR), float32(o.WeightDecay))
	case "adam":
		err = d.dev.AdamStep(d.params, d.grad, d.mom, d.vel, d.loss, opt.t, kernels.AdamParams{
			LR: float32(o.LR), Beta1: float32(o.Beta1), Beta2: float32(o.Beta2),
			Eps: float32(o.Eps), WeightDecay: float32(o.WeightDecay), Decoupled: o.Decoupled,
		})
	}
	if err != nil {
		return err
	}
	d.stale = true
	d.base.steps++
	if err := d.dev.Mark(d.slots[k].done); err != nil {
		return err
	}
	d.inFlight = append(d.inFlight, queuedStep{slot: k, step: d.base.steps})
	return nil
}

// finishOldest waits for the oldest step in flight and moves its loss to
// ready; a loss that is not finite is an error naming the step. The update
// kernels read the same float32 and skipped such a step, so it is not
// counted, in Steps() or in Adam's bias correction, as on the CPU.
func (d *devLearner) finishOldest() error {
	q := d.inFlight[0]
	d.inFlight = append(d.inFlight[:0], d.inFlight[1:]...)
	sl := &d.slots[q.slot]
	if err := d.dev.Wait(sl.done); err != nil {
		return err
	}
	loss := float64(sl.hloss.Float32()[0])
	d.ready = append(d.ready, loss)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		d.base.steps--
		d.base.opt.t--
		return fmt.Errorf("%s step %d: loss is %g", d.cfg.Algo, q.step, loss)
	}
	return nil
}

// settle waits for every step in flight.
func (d *devLearner) settle() error {
	for len(d.inFlight) > 0 {
		if err := d.finishOldest(); err != nil {
			return err
		}
	}
	return nil
}

// PredictBatch implements BatchPredictor. ProtoNet classifies every
// episode of b in one pass on the device, only the predicted ways coming
// back; MAML and FOMAML, which adapt to each episode, predict episode by
// episode on the host twin.
func (d *devLearner) PredictBatch(b datasets.Batch, labels []int32) error {
	if len(d.bufs) == 0 {
		return fmt.Errorf("%s: PredictBatch after Close", d.cfg.Algo)
	}
	nq := d.shape.Ways * d.shape.Queries
	if len(labels) != len(b)*nq {
		return fmt.Errorf("PredictBatch: %d labels for %d episodes of %d queries", len(labels), len(b), nq)
	}
	if d.proto == nil {
		if err := d.base.checkBatch(b); err != nil {
			return err
		}
		if len(d.scores) != nq*d.shape.Ways {
			d.scores = make([]float32, nq*d.shape.Ways)
		}
		for i, ep := range b {
			if err := d.Predict(ep, labels[i*nq:(i+1)*nq], d.scores); err != nil {
				return err
			}
		}
		return nil
	}
	fromPool := d.drawnFromPool(b)
	if err := d.base.checkBatchLayout(b, fromPool); err != nil {
		return err
	}
	// Slot 0, free once the steps in flight are done.
	if err := d.settle(); err != nil {
		return err
	}
	B := len(b)
	if err := d.stageHost(b, 0, fromPool); err != nil {
		return err
	}
	if err := d.replay(graphKey{classify: true, tasks: B, fromPool: fromPool}, func() error {
		return run(d.stageDevice(B, fromPool, 0), d.proto.classify(B))
	}); err != nil {
		return err
	}
	return d.dev.DownloadInt32(labels, d.proto.pred.Slice(0, B*d.shape.Ways*d.shape.Queries))
}

// PredictsOnDevice reports whether PredictBatch classifies on the device
// (ProtoNet) rather than on the host twin (MAML, FOMAML).
func (d *devLearner) PredictsOnDevice() bool { return d.proto != nil }

// The rest reads the host twin, brought up to date first.

func (d *devLearner) Predict(ep *datasets.Episode, labels []int32, scores []float32) error {
	if err := d.sync(); err != nil {
		return err
	}
	return d.Learner.Predict(ep, labels, scores)
}

func (d *devLearner) SaveCheckpoint(w io.Writer, extra map[string][]byte) error {
	if err := d.sync(); err != nil {
		return err
	}
	return d.Learner.SaveCheckpoint(w, extra)
}

func (d *devLearner) LoadCheckpoint(r io.Reader) (map[string][]byte, error) {
	if err := d.settle(); err != nil {
		return nil, err
	}
	blobs, err := d.Learner.LoadCheckpoint(r)
	if err != nil {
		return nil, err
	}
	if len(d.bufs) > 0 {
		err = d.upload()
	}
	return blobs, err
}

// restore is base's, for Load: the restored state reaches the device.
func (d *devLearner) restore(h ckptHeader, p []byte) (map[string][]byte, error) {
	if err := d.settle(); err != nil {
		return nil, err
	}
	blobs, err := d.Learner.(interface {
		restore(ckptHeader, []byte) (map[string][]byte, error)
	}).restore(h, p)
	if err == nil && len(d.bufs) > 0 {
		err = d.upload()
	}
	return blobs, err
}

// Pre-training writes the host twin's encoder, then the device's.
func (d *devLearner) pretrainPrefixLen() int { return d.Learner.(pretrainTarget).pretrainPrefixLen() }

func (d *devLearner) writeParamPrefix(src []float64) error {
	if err := d.sync(); err != nil {
		return err
	}
	if err := d.Learner.(pretrainTarget).writeParamPrefix(src); err != nil || len(d.bufs) == 0 {
		return err
	}
	return d.upload()
}

func (d *devLearner) EmbedDim() int { return d.Learner.(Embedder).EmbedDim() }

func (d *devLearner) Embed(x []float32, rows int, out []float32) error {
	if err := d.sync(); err != nil {
		return err
	}
	return d.Learner.(Embedder).Embed(x, rows, out)
}

func (d *devLearner) QueryInputGrad(ep *datasets.Episode, gx []float32) (float64, error) {
	if err := d.sync(); err != nil {
		return 0, err
	}
	return d.Learner.(InputGradienter).QueryInputGrad(ep, gx)
}

// The MLP on the device. A pass runs batch tasks of rows rows each; the
// weights of task b start at element b*wStride of w (wStride 0: shared).

// devPass holds one evaluation's pre-activations z, outputs a (aliasing z
// for the linear head) and the loss gradient dz, per layer.
type devPass struct{ z, a, dz []cuda.Buffer }

func (d *devLearner) newPass(rows int) *devPass {
	z, a, dz := d.layerBufs(rows)
	return &devPass{z: z, a: a, dz: dz}
}

// layerBufs allocates per layer a buffer for pre-activations, one for
// outputs (the same buffer for the linear head) and one for gradients,
// rows by the layer's width each.
func (d *devLearner) layerBufs(rows int) (pre, post, grad []cuda.Buffer) {
	for _, l := range d.m.layers {
		z := d.alloc(rows * l.out)
		a := z
		if l.act {
			a = d.alloc(rows * l.out)
		}
		pre, post, grad = append(pre, z), append(post, a), append(grad, d.alloc(rows*l.out))
	}
	return pre, post, grad
}

// devRop holds the directional derivatives of a pass (Hessian-vector
// products): rz, ra per layer and the back-propagated rdz.
type devRop struct{ rz, ra, rdz []cuda.Buffer }

func (d *devLearner) newRop(rows int) *devRop {
	rz, ra, rdz := d.layerBufs(rows)
	return &devRop{rz: rz, ra: ra, rdz: rdz}
}

func (d *devLearner) act() cuda.Activation { return cuda.Activation(d.m.act) }

// run stops at the first error of a sequence of device calls.
func run(calls ...error) error {
	for _, err := range calls {
		if err != nil {
			return err
		}
	}
	return nil
}

// matmul queues C (+)= op(A)·op(B) for batch tasks.
func (d *devLearner) matmul(transA, transB bool, M, N, K int, a cuda.Buffer, strideA int, b cuda.Buffer, strideB int,
	c cuda.Buffer, strideC, batch int, accumulate bool) error {
	return d.dev.GemmBatched(gemmOf(transA, transB, M, N, K, a, strideA, b, strideB, c, strideC, batch, accumulate))
}

// gemmOf is matmul's product, for a caller to add an epilogue to.
func gemmOf(transA, transB bool, M, N, K int, a cuda.Buffer, strideA int, b cuda.Buffer, strideB int,
	c cuda.Buffer, strideC, batch int, accumulate bool) cuda.Gemm {
	lda, ldb := K, N
	if transA {
		lda = M
	}
	if transB {
		ldb = K
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	return cuda.Gemm{TransA: transA, TransB: transB, M: M, N: N, K: K, Alpha: 1, Beta: beta,
		A: a, LDA: lda, StrideA: strideA, B: b, LDB: ldb, StrideB: strideB, C: c, LDC: N, StrideC: strideC, Batch: batch}
}

// tail is x from element i on.
func tail(x cuda.Buffer, i int) cuda.Buffer { return x.Slice(i, x.Len()) }

// forward evaluates the network on x [batch*rows, Dim]: per layer one
// product with the bias and activation fused.
func (d *devLearner) forward(p *devPass, w cuda.Buffer, wStride int, x devInput, batch, rows int) error {
	for i, l := range d.m.layers {
		n := batch * rows * l.out
		g := gemmOf(false, false, rows, l.out, l.in, cuda.Buffer{}, rows*l.in, tail(w, l.w), wStride, p.z[i].Slice(0, n), rows*l.out, batch, false)
		g = withInput(g, i, x, p.a, rows)
		g.Bias, g.BiasStride = tail(w, l.b), wStride
		if l.act {
			g.Act, g.ActOut = d.act(), p.a[i].Slice(0, n)
		}
		if err := d.dev.GemmBatched(g); err != nil {
			return err
		}
	}
	return nil
}

// backward back-propagates dout (the loss gradient at the output) and
// writes (or accumulates) each task's parameter gradient into g at stride
// gStride. da is scratch of the widest layer input.
func (d *devLearner) backward(p *devPass, w cuda.Buffer, wStride int, x devInput, batch, rows int,
	dout, g cuda.Buffer, gStride int, accumulate bool, da cuda.Buffer) error {
	grad := dout
	for i := len(d.m.layers) - 1; i >= 0; i-- {
		l := d.m.layers[i]
		n := batch * rows * l.out
		dz := p.dz[i].Slice(0, n)
		var err error
		if l.act {
			err = d.dev.ActivationGrad(d.act(), dz, grad.Slice(0, n), p.z[i].Slice(0, n), p.a[i].Slice(0, n))
		} else if dz.Ptr() != grad.Ptr() { // a linear head's dz is usually dout itself (newDevMAML)
			err = d.dev.Copy(dz, grad.Slice(0, n))
		}
		gw := gemmOf(true, false, l.in, l.out, rows, cuda.Buffer{}, rows*l.in, dz, rows*l.out, tail(g, l.w), gStride, batch, accumulate)
		if err := run(err,
			d.dev.GemmBatched(withInput(gw, i, x, p.a, rows)),
			d.dev.ColSum(tail(g, l.b), dz, batch, rows, l.out, gStride, accumulate),
		); err != nil {
			return err
		}
		if i > 0 {
			grad = da.Slice(0, batch*rows*l.in)
			if err := d.matmul(false, true, rows, l.in, l.out, dz, rows*l.out, tail(w, l.w), wStride, grad, rows*l.in, batch, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// rForward computes the directional derivatives of p's pre-activations and
// outputs along the per-task parameter direction v (stride vStride).
func (d *devLearner) rForward(p *devPass, r *devRop, w cuda.Buffer, wStride int, v cuda.Buffer, vStride int,
	x devInput, batch, rows int) error {
	for i, l := range d.m.layers {
		n := batch * rows * l.out
		rz := r.rz[i].Slice(0, n)
		// rz = in·v_w (+ ra_{i-1}·w_w) + v_b, the bias in the last product's
		// epilogue.
		g := gemmOf(false, false, rows, l.out, l.in, cuda.Buffer{}, rows*l.in, tail(v, l.w), vStride, rz, rows*l.out, batch, false)
		g = withInput(g, i, x, p.a, rows)
		if i > 0 {
			if err := d.dev.GemmBatched(g); err != nil {
				return err
			}
			g = gemmOf(false, false, rows, l.out, l.in, r.ra[i-1], rows*l.in, tail(w, l.w), wStride, rz, rows*l.out, batch, true)
		}
		g.Bias, g.BiasStride = tail(v, l.b), vStride
		if err := d.dev.GemmBatched(g); err != nil {
			return err
		}
		if l.act {
			if err := d.dev.ActivationGrad(d.act(), r.ra[i].Slice(0, n), rz, p.z[i].Slice(0, n), p.a[i].Slice(0, n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rBackward differentiates backward along v given rdout, the directional
// derivative of the output gradient, and writes each task's Hessian-vector
// product into hv (stride vStride). rda is scratch.
func (d *devLearner) rBackward(p *devPass, r *devRop, w cuda.Buffer, wStride int, v cuda.Buffer, vStride int,
	x devInput, batch, rows int, rdout, hv, rda cuda.Buffer) error {
	rd := rdout
	for i := len(d.m.layers) - 1; i >= 0; i-- {
		l := d.m.layers[i]
		n := batch * rows * l.out
		rdz, dz := r.rdz[i].Slice(0, n), p.dz[i].Slice(0, n)
		var calls []error
		if l.act {
			calls = append(calls,
				d.dev.ActivationGrad(d.act(), rdz, rd.Slice(0, n), p.z[i].Slice(0, n), p.a[i].Slice(0, n)),
				d.dev.ActivationCurv(d.act(), rdz, dz, p.a[i].Slice(0, n), r.rz[i].Slice(0, n)))
		} else if rdz.Ptr() != rd.Ptr() {
			calls = append(calls, d.dev.Copy(rdz, rd.Slice(0, n)))
		}
		// The first term of each part of hv is written, the rest added.
		gw := gemmOf(true, false, l.in, l.out, rows, cuda.Buffer{}, rows*l.in, rdz, rows*l.out, tail(hv, l.w), vStride, batch, false)
		calls = append(calls, d.dev.GemmBatched(withInput(gw, i, x, p.a, rows)))
		if i > 0 {
			calls = append(calls, d.matmul(true, false, l.in, l.out, rows, r.ra[i-1], rows*l.in, dz, rows*l.out, tail(hv, l.w), vStride, batch, true))
		}
		calls = append(calls, d.dev.ColSum(tail(hv, l.b), rdz, batch, rows, l.out, vStride, false))
		if i > 0 {
			rd = rda.Slice(0, batch*rows*l.in)
			calls = append(calls,
				d.matmul(false, true, rows, l.in, l.out, rdz, rows*l.out, tail(w, l.w), wStride, rd, rows*l.in, batch, false),
				d.matmul(false, true, rows, l.in, l.out, dz, rows*l.out, tail(v, l.w), vStride, rd, rows*l.in, batch, true))
		}
		if err := run(calls...); err != nil {
			return err
		}
	}
	return nil
}

// devProto is ProtoNet's step: one pass over every row of the meta-batch
// with the shared weights, prototypes, distances, loss and backward pass.
type devProto struct {
	d                       *devLearner
	pass                    *devPass
	proto, dist, qloss      cuda.Buffer
	prob, dlog, gemb, gprot cuda.Buffer
	da                      cuda.Buffer
	pred                    cuda.Buffer // predicted ways, int32 [B*nq]
}

func newDevProto(d *devLearner) *devProto {
	s := d.shape
	ns, nq, B, h := s.Ways*s.Shots, s.Ways*s.Queries, s.MetaBatch, d.m.outDim()
	rows := B * (ns + nq)
	return &devProto{
		d: d, pass: d.newPass(rows),
		proto: d.alloc(B * s.Ways * h), dist: d.alloc(B * nq * s.Ways), qloss: d.alloc(B * nq),
		prob: d.alloc(B * nq * s.Ways), dlog: d.alloc(B * nq * s.Ways),
		gemb: d.alloc(rows * h), gprot: d.alloc(B * s.Ways * h), da: d.alloc(rows * d.m.width),
		pred: d.alloc(B * nq),
	}
}

// logits runs the encoder over the staged batch and the prototypes and
// logits (negative squared distances) of its B tasks.
func (p *devProto) logits(B int) error {
	d, s := p.d, p.d.shape
	ns, nq, W, h := s.Ways*s.Shots, s.Ways*s.Queries, s.Ways, d.m.outDim()
	rows := B * (ns + nq)
	emb := p.pass.a[len(d.m.layers)-1]
	dist := p.dist.Slice(0, B*nq*W)
	return run(
		d.forward(p.pass, d.params, 0, d.in, 1, rows),
		d.dev.ClassMean(p.proto.Slice(0, B*W*h), emb.Slice(0, B*ns*h), d.ys.Slice(0, B*ns), B, ns, W, h),
		d.dev.PairwiseSqDist(dist, emb.Slice(B*ns*h, rows*h), p.proto.Slice(0, B*W*h), B, nq, W, h, -1), // the logits
	)
}

// classify queues the staged batch's predicted ways into pred.
func (p *devProto) classify(B int) error {
	d, s := p.d, p.d.shape
	nq, W := s.Ways*s.Queries, s.Ways
	return run(
		p.logits(B),
		d.dev.LogSoftmax(p.prob.Slice(0, B*nq*W), p.pred.Slice(0, B*nq), p.dist.Slice(0, B*nq*W), B*nq, W),
	)
}

func (p *devProto) grads(B int) error {
	d, s := p.d, p.d.shape
	ns, nq, W, h := s.Ways*s.Shots, s.Ways*s.Queries, s.Ways, d.m.outDim()
	rows := B * (ns + nq)
	emb := p.pass.a[len(d.m.layers)-1]
	embQ := emb.Slice(B*ns*h, rows*h)
	gemb := p.gemb.Slice(0, rows*h)
	proto, gprot := p.proto.Slice(0, B*W*h), p.gprot.Slice(0, B*W*h)
	dist, dlog := p.dist.Slice(0, B*nq*W), p.dlog.Slice(0, B*nq*W)
	scale := 1 / float32(B*nq)
	return run(
		p.logits(B),
		// A negative scale makes dlog the gradient with respect to the
		// distances (logits = -dist) rather than the logits.
		d.dev.SoftmaxXent(p.qloss.Slice(0, B*nq), p.prob.Slice(0, B*nq*W), dlog, dist, d.yq.Slice(0, B*nq), B*nq, W, -scale),
		d.dev.ReduceSum(d.loss, p.qloss.Slice(0, B*nq), scale),
		// Written, not added: the query rows' and prototypes' gradients
		// come from the distances alone, the support rows' from the
		// prototypes alone.
		d.dev.PairwiseSqDistGrad(gemb.Slice(B*ns*h, rows*h), gprot, dlog, embQ, proto, B, nq, W, h, false),
		d.dev.ClassMeanGrad(gemb.Slice(0, B*ns*h), gprot, d.ys.Slice(0, B*ns), B, ns, W, h, false),
		d.backward(p.pass, d.params, 0, d.in, 1, rows, gemb, d.grad, 0, false, p.da),
	)
}

// devMAML is the step of MAML and FOMAML, every task of the meta-batch at
// once: K inner steps on per-task fast weights, the query loss at the
// adapted weights and, for MAML, the backward sweep through the inner loop
// with exact Hessian-vector products (as gbml does on the host).
type devMAML struct {
	d          *devLearner
	firstOrder bool
	lr         float32
	nt         int           // parameters per task
	fast       []cuda.Buffer // θ_1..θ_K, [B*nt] each (θ_0 is the shared params)
	gk         []cuda.Buffer // support gradients per inner step, [B*nt]
	steps      []*devPass    // support passes per inner step
	prob, dlog []cuda.Buffer // per inner step, [B*ns*C]
	sloss      cuda.Buffer
	qpass      *devPass
	qloss      cuda.Buffer
	qprob      cuda.Buffer
	qdlog      cuda.Buffer
	v, w, hv   cuda.Buffer // [B*nt]
	rop        *devRop
	rd         cuda.Buffer
	da, rda    cuda.Buffer
}

func newDevMAML(d *devLearner) *devMAML {
	s := d.shape
	ns, nq, B, C := s.Ways*s.Shots, s.Ways*s.Queries, s.MetaBatch, s.Ways
	K := d.cfg.InnerSteps
	p := &devMAML{d: d, firstOrder: d.cfg.Algo == "fomaml", lr: float32(d.cfg.InnerLR), nt: d.m.nParam}
	// The loss gradients at the (linear) head are the passes' head dz
	// buffers themselves, which saves backward a copy.
	out := len(d.m.layers) - 1
	for k := 0; k < K; k++ {
		p.fast = append(p.fast, d.alloc(B*p.nt))
		p.gk = append(p.gk, d.alloc(B*p.nt))
		p.steps = append(p.steps, d.newPass(B*ns))
		p.prob = append(p.prob, d.alloc(B*ns*C))
		p.dlog = append(p.dlog, p.steps[k].dz[out])
	}
	p.sloss = d.alloc(B * ns)
	p.qpass = d.newPass(B * nq)
	p.qloss, p.qprob, p.qdlog = d.alloc(B*nq), d.alloc(B*nq*C), p.qpass.dz[out]
	p.v = d.alloc(B * p.nt)
	rows := B * max(ns, nq)
	p.da = d.alloc(rows * d.m.width)
	if !p.firstOrder {
		p.w, p.hv = d.alloc(B*p.nt), d.alloc(B*p.nt)
		p.rop = d.newRop(B * ns)
		p.rd = p.rop.rdz[out]
		p.rda = d.alloc(rows * d.m.width)
	}
	return p
}

// theta returns θ_k for B tasks and its stride.
func (p *devMAML) theta(k, B int) (cuda.Buffer, int) {
	if k == 0 {
		return p.d.params, 0
	}
	return p.fast[k-1].Slice(0, B*p.nt), p.nt
}

func (p *devMAML) grads(B int) error {
	d, s := p.d, p.d.shape
	ns, nq, C := s.Ways*s.Shots, s.Ways*s.Queries, s.Ways
	K, nt := len(p.steps), p.nt
	xs, xq := d.in.rows(0, B*ns, s.Dim), d.in.rows(B*ns, B*(ns+nq), s.Dim)
	ys, yq := d.ys.Slice(0, B*ns), d.yq.Slice(0, B*nq)
	out := len(d.m.layers) - 1
	for k := 0; k < K; k++ {
		th, stride := p.theta(k, B)
		ps := p.steps[k]
		dlog := p.dlog[k].Slice(0, B*ns*C)
		g := p.gk[k].Slice(0, B*nt)
		if err := run(
			d.forward(ps, th, stride, xs, B, ns),
			d.dev.SoftmaxXent(p.sloss.Slice(0, B*ns), p.prob[k].Slice(0, B*ns*C), dlog, ps.a[out].Slice(0, B*ns*C), ys, B*ns, C, 1/float32(ns)),
			d.backward(ps, th, stride, xs, B, ns, dlog, g, nt, false, p.da),
			d.dev.InnerUpdate(p.fast[k].Slice(0, B*nt), th, stride, g, cuda.Buffer{}, p.lr, nt, B),
		); err != nil {
			return err
		}
	}
	thK, _ := p.theta(K, B)
	v := p.v.Slice(0, B*nt)
	qdlog := p.qdlog.Slice(0, B*nq*C)
	scale := 1 / float32(B*nq)
	if err := run(
		d.forward(p.qpass, thK, nt, xq, B, nq),
		d.dev.SoftmaxXent(p.qloss.Slice(0, B*nq), p.qprob.Slice(0, B*nq*C), qdlog, p.qpass.a[out].Slice(0, B*nq*C), yq, B*nq, C, scale),
		d.dev.ReduceSum(d.loss, p.qloss.Slice(0, B*nq), scale),
		d.backward(p.qpass, thK, nt, xq, B, nq, qdlog, v, nt, false, p.da),
	); err != nil {
		return err
	}
	if !p.firstOrder {
		w, hv, rd := p.w.Slice(0, B*nt), p.hv.Slice(0, B*nt), p.rd.Slice(0, B*ns*C)
		for k := K - 1; k >= 0; k-- {
			th, stride := p.theta(k, B)
			ps := p.steps[k]
			if err := run(
				d.dev.ScaleTo(w, v, p.lr),
				d.rForward(ps, p.rop, th, stride, w, nt, xs, B, ns),
				d.dev.SoftmaxXentRop(rd, p.prob[k].Slice(0, B*ns*C), p.rop.ra[out].Slice(0, B*ns*C), B*ns, C, 1/float32(ns)),
				d.rBackward(ps, p.rop, th, stride, w, nt, xs, B, ns, rd, hv, p.rda),
				d.dev.Axpy(v, hv, -1),
			); err != nil {
				return err
			}
		}
	}
	// The meta-gradient is the sum of the tasks' (the 1/B is in scale).
	return d.dev.ColSum(d.grad, v, 1, B, nt, 0, false)
}
