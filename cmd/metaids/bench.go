package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

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
	dim := fs.Int("dim", 122, "input features (122 = encoded NSL-KDD)")
	act := fs.String("activation", "relu", "activation: relu, leaky_relu, tanh, sigmoid")
	steps := fs.Int("steps", 200, "timed meta-steps per repeat")
	warmup := fs.Int("warmup", 20, "untimed meta-steps first")
	repeats := fs.Int("repeats", 5, "timed repeats (the median is reported)")
	threads := fs.Int("threads", 1, "GOMAXPROCS during the run")
	backend := fs.String("backend", "cpu", "compute backend: cpu, auto, cuda")
	f64 := fs.Bool("float64", false, "compute in float64")
	format := fs.String("format", "text", "output format: text or json")
	seed := fs.Uint64("seed", 1, "seed of the synthetic episodes and the initialisation")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments %q: %w", pos, errUsage)
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("--format %q, want text or json: %w", *format, errUsage)
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
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(e.stdout, "algo          %s (backend %s, kernels %s, %d thread(s))\n", r.Algo, r.Backend, r.Kernels, r.Threads)
	fmt.Fprintf(e.stdout, "episodes      %d-way %d-shot %d-query, dim %d, meta-batch %d, hidden %v, inner steps %d\n",
		shape.Ways, shape.Shots, shape.Queries, shape.Dim, shape.MetaBatch, r.Hidden, r.InnerSteps)
	fmt.Fprintf(e.stdout, "steps/s       %.1f (median of %d x %d steps; min %.1f, max %.1f)\n",
		r.StepsPerSec, r.Repeats, r.Steps, minOf(r.AllStepsSec), maxOf(r.AllStepsSec))
	fmt.Fprintf(e.stdout, "tasks/s       %.1f\n", r.TasksPerSec)
	fmt.Fprintf(e.stdout, "allocs/step   %.2f (%.0f B/step)\n", r.AllocsPerStep, r.BytesPerStep)
	fmt.Fprintf(e.stdout, "heap growth   %d B\n", r.HeapGrowth)
	fmt.Fprintf(e.stdout, "final loss    %.4f\n", r.FinalLoss)
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
