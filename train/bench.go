package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
)

// MaxThreads bounds the threads (GOMAXPROCS) of a run or a benchmark. The
// runtime keeps a few threads per P and dies past 10,000 of them (a
// fatal error, not a panic), and reads a count past 2^31 as a negative
// one; threads beyond the machine's cores only add switching.
const MaxThreads = 1024

// BenchOptions configures Bench.
type BenchOptions struct {
	// Config.Threads 0 becomes GOMAXPROCS: the MAML family then adapts
	// that many tasks of a meta-batch at once.
	Config  Config
	Shape   Shape
	Steps   int    // timed meta-steps per repeat, >= 1
	Warmup  int    // untimed meta-steps before the first repeat
	Repeats int    // timed repeats; the median is reported, >= 1
	Threads int    // GOMAXPROCS during the run; 0 leaves it; at most MaxThreads
	Seed    uint64 // seed of the synthetic episodes
	Backend kernels.Backend
	// Eval times evaluation instead of training: each "step" classifies
	// the query rows of MetaBatch episodes (in one call for a
	// BatchPredictor, else episode by episode with Predict).
	Eval bool
}

// BenchResult is Bench's measurement. Rates are medians over the repeats.
type BenchResult struct {
	Algo       string `json:"algo"`
	Engine     string `json:"engine"`
	Activation string `json:"activation"`
	Float64    bool   `json:"float64"`
	Seed       uint64 `json:"seed"`
	Warmup     int    `json:"warmup"`
	Backend    string `json:"backend"`
	Device     string `json:"device"`
	Kernels    string `json:"kernels"` // "avx2-fma" or "go"
	Shape      Shape  `json:"shape"`
	Hidden     []int  `json:"hidden"`
	InnerSteps int    `json:"inner_steps"`
	Threads    int    `json:"threads"`
	// TaskThreads is how many tasks of a meta-batch the host learner
	// adapted at once (TaskThreads; 1 for a device-resident learner).
	TaskThreads int       `json:"task_threads"`
	Steps       int       `json:"steps"`
	Repeats     int       `json:"repeats"`
	StepsPerSec float64   `json:"steps_per_sec"`
	TasksPerSec float64   `json:"tasks_per_sec"` // with Eval: evaluation episodes per second
	Eval        bool      `json:"eval,omitempty"`
	AllStepsSec []float64 `json:"steps_per_sec_repeats"`
	// Allocation figures are per timed meta-step, over all repeats.
	AllocsPerStep float64 `json:"allocs_per_step"`
	BytesPerStep  float64 `json:"bytes_per_step"`
	// HeapGrowth is the live heap after the timed steps minus before them,
	// both measured after a GC.
	HeapGrowth int64 `json:"heap_growth_bytes"`
	// FinalLoss is the last step's loss; with Eval, the last batch's
	// query error rate (1 - accuracy).
	FinalLoss float64 `json:"final_loss"`
	// DeviceResident is set when the meta-steps ran on the GPU end to end
	// (the device learners); DeviceBytes is the device memory they held.
	DeviceResident bool  `json:"device_resident"`
	DeviceBytes    int64 `json:"device_bytes,omitempty"`
	// DevicePool is set when the episodes reached the device as row
	// numbers of a pool matrix kept there.
	DevicePool bool `json:"device_pool,omitempty"`
	// CUDAGraphs is set when the device learner replayed recorded steps
	// (one graph launch a step) rather than launching every kernel.
	CUDAGraphs bool `json:"cuda_graphs,omitempty"`
	// Pipelined is set when the steps were queued (Pipeliner), the device
	// running behind the host, each repeat waiting for its last step.
	Pipelined bool `json:"pipelined,omitempty"`
	// DeviceMSPerStep is the device time per meta-step (median over
	// repeats) on a backend with a device timer: stream time from the first
	// to the last queued operation of a repeat, idle gaps included.
	DeviceMSPerStep float64 `json:"device_ms_per_step,omitempty"`
	// EvalOnHost is set when a device learner evaluated on its host twin
	// (MAML and FOMAML adapt to each episode there): no device time then.
	EvalOnHost bool `json:"eval_on_host,omitempty"`
}

// Bench measures meta-training throughput on seeded synthetic episodes, so
// it needs no data set. Episodes are generated before timing starts.
func Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	var r BenchResult
	if o.Steps < 1 || o.Repeats < 1 || o.Warmup < 0 || o.Threads < 0 || o.Threads > MaxThreads {
		return r, fmt.Errorf("bench: steps=%d repeats=%d warmup=%d threads=%d, want steps, repeats >= 1, warmup >= 0 and threads from 0 to %d",
			o.Steps, o.Repeats, o.Warmup, o.Threads, MaxThreads)
	}
	if o.Threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(o.Threads))
	}
	if o.Config.Threads == 0 {
		o.Config.Threads = runtime.GOMAXPROCS(0)
	}
	l, err := New(o.Config, o.Shape, o.Backend)
	if err != nil {
		return r, err
	}
	if c, ok := l.(io.Closer); ok {
		defer c.Close()
	}
	if d, ok := l.(interface{ DeviceBytes() int64 }); ok {
		r.DeviceResident, r.DeviceBytes = true, d.DeviceBytes()
	}
	if g, ok := l.(interface{ UsesGraphs() bool }); ok {
		r.CUDAGraphs = g.UsesGraphs()
	}
	timer, _ := o.Backend.(kernels.DeviceTimer)
	if d, ok := l.(interface{ PredictsOnDevice() bool }); ok && o.Eval && !d.PredictsOnDevice() {
		r.EvalOnHost, timer = true, nil
	}
	var deviceMS []float64
	s := o.Shape
	classes := max(2*s.Ways, 20)
	if o.Config.Algo == "finetune" {
		classes = o.Config.PretrainClasses
	}
	syn, err := NewSynthetic(classes, s.Dim, min(s.Dim, 8), 1, 1, o.Seed)
	if err != nil {
		return r, err
	}
	batches := make([]datasets.Batch, 8)
	for i := range batches {
		for range s.MetaBatch {
			ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
			if err := syn.Fill(ep, 0, classes); err != nil {
				return r, err
			}
			batches[i] = append(batches[i], ep)
		}
	}
	if pu, ok := l.(PoolUser); ok {
		// As in a run, the episodes are rows of a pool matrix that a
		// device learner keeps on its device.
		if err := pu.UsePool(poolOf(batches)); err != nil {
			return r, err
		}
		r.DevicePool = true
	}
	step := 0
	r.AllStepsSec = make([]float64, 0, o.Repeats)
	nq := s.Ways * s.Queries
	labels, scores := make([]int32, s.MetaBatch*nq), make([]float32, nq*s.Ways)
	bp, _ := l.(BatchPredictor)
	// evaluate classifies a batch's queries into labels; the error rate of
	// the last batch is counted after the timing (errorRate).
	evaluate := func(b datasets.Batch) error {
		if bp != nil {
			return bp.PredictBatch(b, labels)
		}
		for i, ep := range b {
			if err := l.Predict(ep, labels[i*nq:(i+1)*nq], scores); err != nil {
				return err
			}
		}
		return nil
	}
	errorRate := func(b datasets.Batch) float64 {
		right := 0
		for i, ep := range b {
			for q, y := range ep.QueryY {
				if labels[i*nq+q] == y {
					right++
				}
			}
		}
		return 1 - float64(right)/float64(len(labels))
	}
	pl, _ := l.(Pipeliner)
	r.Pipelined = pl != nil && !o.Eval
	run := func(n int) error {
		for range n {
			// A stop is asked for between steps, not only between
			// repeats, which --steps or --warmup in the billions make
			// hours long.
			if ctx.Err() != nil {
				break
			}
			b := batches[step%len(batches)]
			step++
			switch {
			case o.Eval:
				if err := evaluate(b); err != nil {
					return err
				}
			case pl != nil:
				if _, err := pl.QueueStep(b); err != nil {
					return err
				}
			default:
				loss, err := l.MetaStep(b)
				if err != nil {
					return err
				}
				r.FinalLoss = loss
			}
		}
		if r.Pipelined {
			// The repeat ends when its last step has run.
			losses, err := pl.Drain()
			if err != nil {
				return err
			}
			if len(losses) > 0 {
				r.FinalLoss = losses[len(losses)-1]
			}
		}
		return ctx.Err()
	}
	if err := run(o.Warmup); err != nil {
		return r, err
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range o.Repeats {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		t0 := time.Now()
		if timer != nil {
			ms, err := timer.TimeDevice(func() error { return run(o.Steps) })
			if err != nil {
				return r, err
			}
			deviceMS = append(deviceMS, ms/float64(o.Steps))
		} else if err := run(o.Steps); err != nil {
			return r, err
		}
		r.AllStepsSec = append(r.AllStepsSec, float64(o.Steps)/time.Since(t0).Seconds())
	}
	runtime.ReadMemStats(&after)
	total := float64(o.Steps * o.Repeats)
	r.AllocsPerStep = float64(after.Mallocs-before.Mallocs) / total
	r.BytesPerStep = float64(after.TotalAlloc-before.TotalAlloc) / total
	runtime.GC()
	runtime.ReadMemStats(&after)
	r.HeapGrowth = int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(l)
	runtime.KeepAlive(batches)

	if o.Eval {
		r.FinalLoss = errorRate(batches[(step-1)%len(batches)])
	}
	r.Algo, r.Shape, r.Hidden, r.InnerSteps, r.Eval = o.Config.Algo, s, slices.Clone(o.Config.Hidden), o.Config.InnerSteps, o.Eval
	r.Engine, r.Activation, r.Float64, r.Seed, r.Warmup = o.Config.Engine, o.Config.Activation, o.Config.Float64, o.Seed, o.Warmup
	r.Backend, r.Device = "cpu", kernels.NewCPU().Device()
	if o.Backend != nil {
		r.Backend, r.Device = o.Backend.Name(), o.Backend.Device()
	}
	r.Kernels = "go"
	if !o.Config.Float64 {
		r.Kernels = HostKernels()
	}
	r.Threads = runtime.GOMAXPROCS(0)
	r.TaskThreads = TaskThreads(l)
	r.Steps, r.Repeats = o.Steps, o.Repeats
	r.StepsPerSec = median(r.AllStepsSec)
	r.TasksPerSec = r.StepsPerSec * float64(s.MetaBatch)
	if len(deviceMS) > 0 {
		r.DeviceMSPerStep = median(deviceMS)
	}
	if math.IsNaN(r.FinalLoss) {
		return r, fmt.Errorf("bench: loss became NaN")
	}
	return r, nil
}

// poolOf stacks the rows of every episode into one matrix and makes each
// episode's Source and Rows point into it, as a sampler's do.
func poolOf(batches []datasets.Batch) []float32 {
	var x []float32
	n := int32(0)
	for _, b := range batches {
		for _, ep := range b {
			x = append(append(x, ep.SupportX...), ep.QueryX...)
			for i := range ep.Rows {
				ep.Rows[i] = n
				n++
			}
		}
	}
	for _, b := range batches {
		for _, ep := range b {
			ep.Source = x
		}
	}
	return x
}

func median(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	n := len(y)
	if n%2 == 1 {
		return y[n/2]
	}
	return (y[n/2-1] + y[n/2]) / 2
}
