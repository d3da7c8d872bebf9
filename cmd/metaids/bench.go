package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/experiments"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure meta-training throughput on synthetic episodes",
		run:     runBench,
	})
}

func runBench(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench", "bench [flags]")
	algos := fs.String("algo", "protonet", "learner, or a comma-separated list for a sweep: "+strings.Join(train.Names(), ", "))
	ways := fs.Int("ways", 5, "ways per episode")
	shots := fs.Int("shots", 5, "support rows per way")
	queries := fs.Int("queries", 15, "query rows per way")
	metaBatches := fs.String("meta-batch", "1", "episodes per meta-step, or a comma-separated list for a sweep (e.g. 1,4,16,64,256,1024)")
	inner := fs.Int("inner-steps", 1, "inner-loop steps (gradient-based learners)")
	hidden := fs.String("hidden", "64", "comma-separated hidden layer widths")
	dim := fs.Int("dim", 122, "input features (122: the usual NSL-KDD one-hot width; metaids encodes NSL-KDD to 125)")
	act := fs.String("activation", "relu", "activation: relu, leaky_relu, tanh, sigmoid")
	steps := fs.Int("steps", 200, "timed meta-steps per repeat")
	warmup := fs.Int("warmup", 20, "untimed meta-steps first")
	repeats := fs.Int("repeats", 5, "timed repeats (the median is reported)")
	threads := fs.Int("threads", 1, "GOMAXPROCS during the run, and the tasks of a meta-batch the MAML family adapts at once")
	backend := fs.String("device", "cpu", "compute backend: cpu, auto or cuda")
	fs.StringVar(backend, "backend", "cpu", "the same as --device")
	f64 := fs.Bool("float64", false, "compute in float64")
	engine := fs.String("engine", "fused", "gradient engine: fused or gorgonia (protonet, maml, fomaml)")
	evalMode := fs.Bool("eval", false, "time evaluation (query episodes classified per second) instead of meta-training")
	compare := fs.String("compare", "", "JSON from bench/pytorch_bench.py: its tasks/s beside ours, per learner and meta-batch")
	var format string
	formatFlag(fs, &format)
	seed := fs.Uint64("seed", 1, "seed of the synthetic episodes and the initialisation")
	pos, err := parseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments %q", pos)
	}
	outFormat, err := eval.ParseFormat(format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	if err := checkMins(intFlag{"--steps", *steps, 1}, intFlag{"--repeats", *repeats, 1},
		intFlag{"--warmup", *warmup, 0}, intFlag{"--threads", *threads, 0}); err != nil {
		return err
	}
	if *threads > train.MaxThreads {
		return usageErrorf("--threads must be at most %d (got %d)", train.MaxThreads, *threads)
	}
	hs, err := parseInts(*hidden)
	if err != nil {
		return usageErrorf("--hidden: %v", err)
	}
	mbs, err := parseInts(*metaBatches)
	if err != nil {
		return usageErrorf("--meta-batch: %v", err)
	}
	var ref *pyTorchRef
	if *compare != "" {
		if ref, err = readPyTorchBench(*compare); err != nil {
			return err
		}
	}
	if err := checkDeviceFlag(*backend); err != nil {
		return err
	}
	be, err := kernels.Open(*backend, func(msg string) { fmt.Fprintln(e.stderr, "metaids bench:", msg) })
	if err != nil {
		return err
	}
	var algoNames []string
	for _, a := range strings.Split(*algos, ",") {
		algoNames = append(algoNames, strings.TrimSpace(a))
	}
	var runs []benchRun
	for _, algo := range algoNames {
		for _, mb := range mbs {
			cfg := train.DefaultConfig(algo)
			cfg.Hidden = hs
			cfg.Activation = *act
			cfg.InnerSteps = *inner
			cfg.Float64 = *f64
			cfg.Engine = *engine
			cfg.InitSeed = *seed
			cfg.PretrainClasses = max(2**ways, 20)
			cfg.Threads = *threads
			if cfg.Threads == 0 {
				cfg.Threads = runtime.GOMAXPROCS(0) // what Bench leaves it at
			}
			shape := train.Shape{Ways: *ways, Shots: *shots, Queries: *queries, MetaBatch: mb, Dim: *dim}
			if err := cfg.Validate(); err != nil {
				return benchFlagError(err)
			}
			if err := shape.Validate(); err != nil {
				return benchFlagError(err)
			}
			if err := benchFitsMemory(cfg, shape); err != nil {
				return err
			}
			runs = append(runs, benchRun{cfg: cfg, shape: shape})
		}
	}
	// A sweep lists each learner and meta-batch once: a repeat would time
	// the same run twice under one label.
	if err := cmp.Or(listedTwice("--algo", algoNames), listedTwice("--meta-batch", mbs)); err != nil {
		return err
	}
	var refTasksPS map[string]float64
	if ref != nil {
		if err := ref.check(*compare, runs[0].cfg, runs[0].shape, *evalMode); err != nil {
			return err
		}
		refTasksPS = ref.tasksPS
	}
	for i := range runs {
		r := &runs[i]
		r.res, r.err = train.Bench(ctx, train.BenchOptions{
			Config: r.cfg, Shape: r.shape, Steps: *steps, Warmup: *warmup, Repeats: *repeats,
			Threads: *threads, Seed: *seed, Backend: be, Eval: *evalMode,
		})
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: no figures are reported (%w)", ctx.Err())
		}
		if r.err != nil && len(runs) == 1 {
			return r.err
		}
		if len(runs) > 1 {
			msg := fmt.Sprintf("%.0f %s", r.res.TasksPerSec, rateName(*evalMode))
			if r.err != nil {
				msg = r.err.Error()
			}
			fmt.Fprintf(e.stderr, "metaids bench: %s meta-batch %d: %s\n", r.cfg.Algo, r.shape.MetaBatch, msg)
		}
	}
	if len(runs) == 1 && ref == nil {
		return singleBench(e, outFormat, runs[0], *engine, *warmup)
	}
	return sweepBench(e, outFormat, runs, refTasksPS, be, *evalMode, *steps, *warmup, *repeats)
}

// benchFlags names the flag that sets each Config and Shape field bench
// takes from its command line.
var benchFlags = map[string]string{
	"Algo": "--algo", "Hidden": "--hidden", "Activation": "--activation", "InnerSteps": "--inner-steps",
	"Engine": "--engine", "Ways": "--ways", "Shots": "--shots", "Queries": "--queries",
	"MetaBatch": "--meta-batch", "Dim": "--dim",
}

// benchFlagError turns an invalid Config or Shape field into a usage error
// that names the flag.
func benchFlagError(err error) error {
	var fe *train.FieldError
	if errors.As(err, &fe) {
		if flag, ok := benchFlags[fe.Field]; ok {
			return usageErrorf("%s: %s", flag, fe.Msg)
		}
	}
	return usageErrorf("%v", err)
}

// benchRun is one learner and meta-batch of a bench.
type benchRun struct {
	cfg   train.Config
	shape train.Shape
	res   train.BenchResult
	err   error
}

// singleBench prints one measurement in full.
func singleBench(e *env, outFormat eval.Format, run benchRun, engine string, warmup int) error {
	r, shape := run.res, run.shape
	if outFormat == eval.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		prov := experiments.CurrentProvenance()
		return enc.Encode(struct {
			train.BenchResult
			Commit string `json:"commit"`
			Go     string `json:"go"`
		}{r, prov.Commit, prov.GoVersion})
	}
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	t := &eval.Table{
		Title:  fmt.Sprintf("metaids bench: %s on %s (kernels %s, %d thread(s))", r.Algo, r.Backend, r.Kernels, r.Threads),
		Header: []string{"metric", "value"},
		Rows: [][]string{
			{"episodes", fmt.Sprintf("%d-way %d-shot %d-query, dim %d", shape.Ways, shape.Shots, shape.Queries, shape.Dim)},
			{"meta-batch", strconv.Itoa(shape.MetaBatch)},
			{"engine", engine},
			{"hidden", fmt.Sprint(r.Hidden)},
			{"inner steps", strconv.Itoa(r.InnerSteps)},
			{"steps/s (median)", f1(r.StepsPerSec)},
			{"steps/s (min, max)", f1(minOf(r.AllStepsSec)) + ", " + f1(maxOf(r.AllStepsSec))},
			{rateName(r.Eval), f1(r.TasksPerSec)},
			{"allocs/step", strconv.FormatFloat(r.AllocsPerStep, 'f', 2, 64)},
			{"bytes/step", strconv.FormatFloat(r.BytesPerStep, 'f', 0, 64)},
			{"heap growth (bytes)", strconv.FormatInt(int64(r.HeapGrowth), 10)},
			{lossName(r.Eval), strconv.FormatFloat(r.FinalLoss, 'f', 4, 64)},
		},
		Notes: []string{benchNote(r.Repeats, r.Steps, warmup)},
	}
	if r.DeviceResident {
		t.Rows = append(t.Rows,
			[]string{"device-resident", "yes"},
			[]string{"CUDA graphs", yesNo(r.CUDAGraphs)},
			[]string{"steps queued ahead", yesNo(r.Pipelined)},
			[]string{"device memory (MiB)", mib(r.DeviceBytes)})
		if r.EvalOnHost {
			t.Rows = append(t.Rows, []string{"evaluated on", "the host twin (adapts to each episode there)"})
		}
	}
	if r.DeviceMSPerStep > 0 {
		t.Rows = append(t.Rows, []string{"device ms/step", strconv.FormatFloat(r.DeviceMSPerStep, 'f', 3, 64)})
	}
	return t.Render(e.stdout, outFormat)
}

// sweepRecord is one row of a sweep's JSON: the measurement, or the error
// that stopped it (e.g. out of device memory), and the reference's rate.
type sweepRecord struct {
	Algo      string `json:"algo"`
	MetaBatch int    `json:"meta_batch"`
	*train.BenchResult
	Error          string  `json:"error,omitempty"`
	PyTorchTasksPS float64 `json:"pytorch_tasks_per_sec,omitempty"`
	SpeedUp        float64 `json:"speed_up,omitempty"`
}

// sweepBench prints one row per learner and meta-batch: JSON shaped like
// bench/pytorch_bench.py's ({"env", "results"}), or a table.
func sweepBench(e *env, outFormat eval.Format, runs []benchRun, ref map[string]float64, be kernels.Backend, evalMode bool, steps, warmup, repeats int) error {
	var recs []sweepRecord
	for i := range runs {
		r := &runs[i]
		rec := sweepRecord{Algo: r.cfg.Algo, MetaBatch: r.shape.MetaBatch}
		if r.err != nil {
			rec.Error = r.err.Error()
		} else {
			rec.BenchResult = &r.res
			if pt := ref[benchKey(r.cfg.Algo, r.shape.MetaBatch)]; pt > 0 {
				rec.PyTorchTasksPS, rec.SpeedUp = pt, r.res.TasksPerSec/pt
			}
		}
		recs = append(recs, rec)
	}
	s := runs[0].shape
	if outFormat == eval.JSON {
		env := map[string]any{
			"backend": be.Name(), "device": be.Device(), "go": runtime.Version(), "commit": experiments.CurrentProvenance().Commit,
			"engine": runs[0].cfg.Engine, "activation": runs[0].cfg.Activation, "float64": runs[0].cfg.Float64, "seed": runs[0].cfg.InitSeed,
			"ways": s.Ways, "shots": s.Shots, "queries": s.Queries, "dim": s.Dim, "hidden": runs[0].cfg.Hidden,
			"inner_steps": runs[0].cfg.InnerSteps, "steps": steps, "warmup": warmup, "repeats": repeats,
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"env": env, "results": recs})
	}
	t := &eval.Table{
		Title: fmt.Sprintf("metaids bench: %d-way %d-shot %d-query, dim %d, hidden %v, on %s (%s)",
			s.Ways, s.Shots, s.Queries, s.Dim, runs[0].cfg.Hidden, be.Name(), be.Device()),
		Header: []string{"learner", "meta-batch", rateName(evalMode), "steps/s", "device ms/step", "device MiB", lossName(evalMode)},
	}
	if ref != nil {
		t.Header = append(t.Header, "PyTorch tasks/s", "speed-up")
	}
	for _, rec := range recs {
		row := []string{rec.Algo, strconv.Itoa(rec.MetaBatch)}
		if rec.Error != "" {
			row = append(row, rec.Error, "", "", "", "")
		} else {
			r := rec.BenchResult
			dms, dmib := "-", "-"
			if r.DeviceMSPerStep > 0 {
				dms = strconv.FormatFloat(r.DeviceMSPerStep, 'f', 3, 64)
			}
			if r.DeviceResident {
				dmib = mib(r.DeviceBytes)
			}
			row = append(row, strconv.FormatFloat(r.TasksPerSec, 'f', 0, 64), strconv.FormatFloat(r.StepsPerSec, 'f', 1, 64),
				dms, dmib, strconv.FormatFloat(r.FinalLoss, 'f', 4, 64))
		}
		if ref != nil {
			pt, su := "-", "-"
			if rec.PyTorchTasksPS > 0 {
				pt = strconv.FormatFloat(rec.PyTorchTasksPS, 'f', 0, 64)
				su = strconv.FormatFloat(rec.SpeedUp, 'f', 2, 64) + "x"
			}
			row = append(row, pt, su)
		}
		t.Rows = append(t.Rows, row)
	}
	t.Notes = []string{benchNote(repeats, steps, warmup) + "; device ms/step: stream time per step, idle gaps included"}
	if runs[0].err == nil && runs[0].res.DeviceResident {
		t.Notes = append(t.Notes, "device steps replayed as CUDA graphs: "+yesNo(runs[0].res.CUDAGraphs)+
			" (METAIDS_CUDA_GRAPHS=0 launches every kernel); queued ahead of the device: "+yesNo(runs[0].res.Pipelined))
	}
	return t.Render(e.stdout, outFormat)
}

// benchNote says how a bench's rates were taken.
func benchNote(repeats, steps, warmup int) string {
	return fmt.Sprintf("median of %d repeats of %d meta-steps after %d warm-up steps, on seeded synthetic episodes", repeats, steps, warmup)
}

func mib(bytes int64) string { return strconv.FormatFloat(float64(bytes)/(1<<20), 'f', 1, 64) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// rateName and lossName label the measurement of a training or an
// evaluation bench.
func rateName(eval bool) string {
	if eval {
		return "episodes/s"
	}
	return "tasks/s"
}

func lossName(eval bool) string {
	if eval {
		return "error rate"
	}
	return "final loss"
}

func benchKey(algo string, mb int) string { return algo + "/" + strconv.Itoa(mb) }

// pyTorchRef is what --compare reads from bench/pytorch_bench.py's JSON:
// the configuration it timed and its tasks/s per learner and meta-batch.
type pyTorchRef struct {
	ways, shots, queries, dim, hidden, innerSteps int
	firstOrder                                    bool
	tasksPS                                       map[string]float64
}

// readPyTorchBench reads bench/pytorch_bench.py's JSON. Its first-order
// MAML rows (--first-order) are metaids' fomaml. A file that is missing or
// not that JSON is a wrong command line, as a bad --categories file is for
// data stats.
func readPyTorchBench(path string) (*pyTorchRef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--compare: %v", err)
	}
	notIt := func(format string, a ...any) error {
		return usageErrorf("--compare %s: %s (want the JSON bench/pytorch_bench.py prints)", path, fmt.Sprintf(format, a...))
	}
	var doc struct {
		Env struct {
			Ways, Shots, Queries, Dim, Hidden *int
			InnerSteps                        *int  `json:"inner_steps"`
			FirstOrder                        *bool `json:"first_order"`
		} `json:"env"`
		Results []struct {
			Algo        string   `json:"algo"`
			MetaBatch   int      `json:"meta_batch"`
			TasksPerSec *float64 `json:"tasks_per_sec"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		// A value of the wrong kind is named by its field, not by the Go
		// type it would not fit.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			where := "the top level"
			if te.Field != "" {
				where = strings.ToLower(te.Field) // the file's keys, not the Go names
			}
			return nil, notIt("%s is a JSON %s", where, te.Value)
		}
		return nil, notIt("%v", err)
	}
	if len(doc.Results) == 0 {
		return nil, notIt("no results")
	}
	e := doc.Env
	if e.Ways == nil || e.Shots == nil || e.Queries == nil || e.Dim == nil || e.Hidden == nil || e.InnerSteps == nil || e.FirstOrder == nil {
		return nil, notIt("its env does not give ways, shots, queries, dim, hidden, inner_steps and first_order, the configuration it timed")
	}
	ref := &pyTorchRef{ways: *e.Ways, shots: *e.Shots, queries: *e.Queries, dim: *e.Dim, hidden: *e.Hidden,
		innerSteps: *e.InnerSteps, firstOrder: *e.FirstOrder, tasksPS: map[string]float64{}}
	seen := map[string]bool{}
	for _, r := range doc.Results {
		algo := r.Algo
		if algo == "maml" && ref.firstOrder {
			algo = "fomaml"
		}
		key := benchKey(algo, r.MetaBatch)
		if seen[key] {
			return nil, notIt("%s at meta-batch %d is listed twice", r.Algo, r.MetaBatch)
		}
		seen[key] = true
		if r.TasksPerSec == nil {
			continue // a meta-batch that failed there (out of memory)
		}
		if !(*r.TasksPerSec > 0) {
			return nil, notIt("%s at meta-batch %d: %g tasks/s", r.Algo, r.MetaBatch, *r.TasksPerSec)
		}
		ref.tasksPS[key] = *r.TasksPerSec
	}
	return ref, nil
}

// check refuses a comparison of different things: the reference times
// float32 meta-training of a relu MLP with one hidden layer, so the
// episodes, input width, layer, inner steps and mode must be the bench's.
func (ref *pyTorchRef) check(path string, cfg train.Config, s train.Shape, evalMode bool) error {
	if evalMode {
		return usageErrorf("--compare with --eval: bench/pytorch_bench.py times meta-training, not evaluation")
	}
	if ref.ways == s.Ways && ref.shots == s.Shots && ref.queries == s.Queries && ref.dim == s.Dim && slices.Equal(cfg.Hidden, []int{ref.hidden}) &&
		ref.innerSteps == cfg.InnerSteps && cfg.Activation == "relu" && !cfg.Float64 {
		return nil
	}
	precision := "float32"
	if cfg.Float64 {
		precision = "float64"
	}
	return usageErrorf("--compare %s timed %d-way %d-shot %d-query episodes, dim %d, hidden [%d], %d inner steps, relu, float32; "+
		"this bench is %d-way %d-shot %d-query, dim %d, hidden %v, %d inner steps, %s, %s: run both with the same settings",
		path, ref.ways, ref.shots, ref.queries, ref.dim, ref.hidden, ref.innerSteps,
		s.Ways, s.Shots, s.Queries, s.Dim, cfg.Hidden, cfg.InnerSteps, cfg.Activation, precision)
}

// listedTwice is a usage error naming the first value of a sweep flag's
// list that repeats one before it; nil when none does.
func listedTwice[T comparable](flag string, list []T) error {
	seen := map[T]bool{}
	for _, v := range list {
		if seen[v] {
			return usageErrorf("%s: %v is listed twice", flag, v)
		}
		seen[v] = true
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer list", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func minOf(x []float64) float64 {
	m := x[0]
	for _, v := range x {
		m = min(m, v)
	}
	return m
}

func maxOf(x []float64) float64 {
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// benchFitsMemory is a usage error, naming the flags to lower, for a model
// or meta-batch whose model, episodes and working buffers
// (train.MemoryFloor) exceed the machine's memory.
func benchFitsMemory(cfg train.Config, shape train.Shape) error {
	have := train.GiB(train.MachineMemory())
	switch part, need := train.MemoryShortfall(cfg, shape); part {
	case "":
		return nil
	case "model":
		return usageErrorf("--hidden %v (with --dim %d): the model needs at least %s; this machine has %s",
			cfg.Hidden, shape.Dim, train.GiB(need), have)
	case "threads":
		return usageErrorf("--threads %d: each task adapted at once keeps its own inner-loop buffers: at least %s; this machine has %s",
			cfg.Threads, train.GiB(need), have)
	case "inner-steps":
		return usageErrorf("--inner-steps %d: the inner loop keeps %s: at least %s; this machine has %s",
			cfg.InnerSteps, train.InnerStepsKeep(cfg), train.GiB(need), have)
	case "episode":
		return usageErrorf("--ways %d, --shots %d, --queries %d: one episode needs at least %s with the model; this machine has %s",
			shape.Ways, shape.Shots, shape.Queries, train.GiB(need), have)
	default:
		return usageErrorf("--meta-batch %d: needs at least %s with the model; this machine has %s", shape.MetaBatch, train.GiB(need), have)
	}
}
