package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/metaids/metaids/eval"
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
	algo := fs.String("algo", "protonet", "learner: "+strings.Join(train.Names(), ", "))
	ways := fs.Int("ways", 5, "ways per episode")
	shots := fs.Int("shots", 5, "support rows per way")
	queries := fs.Int("queries", 15, "query rows per way")
	metaBatch := fs.Int("meta-batch", 1, "episodes per meta-step")
	inner := fs.Int("inner-steps", 1, "inner-loop steps (gradient-based learners)")
	hidden := fs.String("hidden", "64", "comma-separated hidden layer widths")
	dim := fs.Int("dim", 122, "input features (122: the usual NSL-KDD one-hot width; metaids encodes NSL-KDD to 125)")
	act := fs.String("activation", "relu", "activation: relu, leaky_relu, tanh, sigmoid")
	steps := fs.Int("steps", 200, "timed meta-steps per repeat")
	warmup := fs.Int("warmup", 20, "untimed meta-steps first")
	repeats := fs.Int("repeats", 5, "timed repeats (the median is reported)")
	threads := fs.Int("threads", 1, "GOMAXPROCS during the run")
	backend := fs.String("device", "cpu", "compute backend: cpu, auto or cuda")
	fs.StringVar(backend, "backend", "cpu", "the same as --device")
	f64 := fs.Bool("float64", false, "compute in float64")
	engine := fs.String("engine", "fused", "gradient engine: fused or gorgonia (protonet, maml, fomaml)")
	var format string
	formatFlag(fs, &format)
	seed := fs.Uint64("seed", 1, "seed of the synthetic episodes and the initialisation")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q: %w", pos, errUsage)
	}
	outFormat, err := eval.ParseFormat(format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	hs, err := parseInts(*hidden)
	if err != nil {
		return fmt.Errorf("--hidden: %v: %w", err, errUsage)
	}
	be, err := kernels.Open(*backend, func(msg string) { fmt.Fprintln(e.stderr, "metaids bench:", msg) })
	if err != nil {
		return err
	}
	cfg := train.DefaultConfig(*algo)
	cfg.Hidden = hs
	cfg.Activation = *act
	cfg.InnerSteps = *inner
	cfg.Float64 = *f64
	cfg.Engine = *engine
	cfg.InitSeed = *seed
	cfg.PretrainClasses = max(2**ways, 20)
	shape := train.Shape{Ways: *ways, Shots: *shots, Queries: *queries, MetaBatch: *metaBatch, Dim: *dim}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	if err := shape.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, errUsage)
	}
	r, err := train.Bench(ctx, train.BenchOptions{
		Config: cfg, Shape: shape, Steps: *steps, Warmup: *warmup, Repeats: *repeats,
		Threads: *threads, Seed: *seed, Backend: be,
	})
	if err != nil {
		return err
	}
	if outFormat == eval.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	t := &eval.Table{
		Title:  fmt.Sprintf("metaids bench: %s on %s (kernels %s, %d thread(s))", r.Algo, r.Backend, r.Kernels, r.Threads),
		Header: []string{"metric", "value"},
		Rows: [][]string{
			{"episodes", fmt.Sprintf("%d-way %d-shot %d-query, dim %d", shape.Ways, shape.Shots, shape.Queries, shape.Dim)},
			{"meta-batch", strconv.Itoa(shape.MetaBatch)},
			{"engine", *engine},
			{"hidden", fmt.Sprint(r.Hidden)},
			{"inner steps", strconv.Itoa(r.InnerSteps)},
			{"steps/s (median)", f1(r.StepsPerSec)},
			{"steps/s (min, max)", f1(minOf(r.AllStepsSec)) + ", " + f1(maxOf(r.AllStepsSec))},
			{"tasks/s", f1(r.TasksPerSec)},
			{"allocs/step", strconv.FormatFloat(r.AllocsPerStep, 'f', 2, 64)},
			{"bytes/step", strconv.FormatFloat(r.BytesPerStep, 'f', 0, 64)},
			{"heap growth (bytes)", strconv.FormatInt(int64(r.HeapGrowth), 10)},
			{"final loss", strconv.FormatFloat(r.FinalLoss, 'f', 4, 64)},
		},
		Notes: []string{fmt.Sprintf("median of %d repeats of %d meta-steps after %d warm-up steps, on seeded synthetic episodes", r.Repeats, r.Steps, *warmup)},
	}
	return t.Render(e.stdout, outFormat)
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
