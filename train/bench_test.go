package train

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/metaids/metaids/datasets"
)

// The speed-target shape: 122 encoded NSL-KDD features, hidden 64,
// 5-way 5-shot 15-query.
func benchShape(mb int) Shape { return Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: mb, Dim: 122} }

func BenchmarkMetaStep(b *testing.B) {
	rows := []struct {
		algo      string
		mb, inner int
	}{
		{"protonet", 1, 1}, {"protonet", 4, 1},
		{"maml", 4, 1}, {"maml", 4, 5},
		{"fomaml", 4, 1}, {"fomaml", 4, 5},
		{"reptile", 4, 5}, {"anil", 4, 5}, {"metasgd", 4, 5},
		{"finetune", 4, 1},
	}
	for _, r := range rows {
		b.Run(fmt.Sprintf("%s/mb%d/inner%d", r.algo, r.mb, r.inner), func(b *testing.B) {
			c := DefaultConfig(r.algo)
			c.InnerSteps = r.inner
			c.PretrainClasses = 20
			benchSteps(b, c, benchShape(r.mb))
		})
	}
}

// BenchmarkMetaStepThreads adapts the tasks of a meta-batch on one thread
// and on GOMAXPROCS of them (run with -cpu 2, say): the speed-up of
// Config.Threads.
func BenchmarkMetaStepThreads(b *testing.B) {
	for _, algo := range []string{"maml", "fomaml", "metasgd"} {
		for _, mb := range []int{4, 16} {
			for _, threads := range []int{1, 0} {
				name := "threads=1"
				if threads == 0 {
					name = "threads=GOMAXPROCS"
				}
				b.Run(fmt.Sprintf("%s/mb%d/inner5/%s", algo, mb, name), func(b *testing.B) {
					c := DefaultConfig(algo)
					c.InnerSteps = 5
					c.Threads = threads
					if threads == 0 {
						c.Threads = runtime.GOMAXPROCS(0)
					}
					benchSteps(b, c, benchShape(mb))
				})
			}
		}
	}
}

// BenchmarkMetaStepAux is the cost of the multi-task heads: the same steps
// without and with both heads (5 categories).
func BenchmarkMetaStepAux(b *testing.B) {
	for _, algo := range []string{"protonet", "maml"} {
		for _, heads := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/mb4/heads=%v", algo, heads), func(b *testing.B) {
				c := DefaultConfig(algo)
				c.InnerSteps = 5
				if heads {
					c.Aux = AuxConfig{BinaryWeight: 0.5, CategoryWeight: 0.5, Categories: 5}
				}
				benchSteps(b, c, benchShape(4))
			})
		}
	}
}

// benchSteps times MetaStep on one synthetic meta-batch whose episodes
// carry the labels auxiliary heads read (a normal way, categories).
func benchSteps(b *testing.B, c Config, s Shape) {
	l := mustNew(b, c, s) // New builds the gorgonia engine's graphs too (c.Engine)
	syn, _ := NewSynthetic(20, s.Dim, 8, 1, 1, 1)
	var batch datasets.Batch
	for range s.MetaBatch {
		ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
		syn.Fill(ep, 0, 20)
		for w, cl := range ep.Classes {
			ep.WayCategory[w] = int32(cl % 5)
		}
		ep.NormalWay = 0
		batch = append(batch, ep)
	}
	l.MetaStep(batch)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.MetaStep(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

func TestBenchEval(t *testing.T) {
	c := DefaultConfig("protonet")
	c.Hidden = []int{16}
	r, err := Bench(context.Background(), BenchOptions{Config: c, Shape: small, Steps: 4, Repeats: 2, Threads: 1, Seed: 1, Eval: true})
	if err != nil {
		t.Fatal(err)
	}
	// FinalLoss is the error rate of the last batch: a fraction.
	if !r.Eval || r.TasksPerSec != r.StepsPerSec*float64(small.MetaBatch) || !(r.FinalLoss >= 0 && r.FinalLoss <= 1) {
		t.Errorf("implausible evaluation %+v", r)
	}
}

func TestBenchReports(t *testing.T) {
	c := DefaultConfig("maml")
	c.Hidden = []int{16}
	c.InnerSteps = 2
	r, err := Bench(context.Background(), BenchOptions{Config: c, Shape: small, Steps: 5, Warmup: 2, Repeats: 3, Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.StepsPerSec <= 0 || r.TasksPerSec != r.StepsPerSec*float64(small.MetaBatch) || len(r.AllStepsSec) != 3 || r.Threads != 1 {
		t.Errorf("implausible result %+v", r)
	}
	if r.AllocsPerStep != 0 {
		t.Errorf("%.2f allocations per step", r.AllocsPerStep)
	}
	if _, err := Bench(context.Background(), BenchOptions{Config: c, Shape: small}); err == nil {
		t.Error("zero steps accepted")
	}
}

// A thread count the runtime cannot take (it dies past 10,000 threads) is
// refused before GOMAXPROCS is touched.
func TestBenchRefusesTooManyThreads(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	c := DefaultConfig("protonet")
	_, err := Bench(context.Background(), BenchOptions{Config: c, Shape: Shape{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 4},
		Steps: 1, Repeats: 1, Threads: MaxThreads + 1, Seed: 1})
	if err == nil || !strings.Contains(err.Error(), "threads from 0 to 1024") {
		t.Errorf("Threads %d: %v; want an error naming the bound", MaxThreads+1, err)
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Errorf("GOMAXPROCS is %d after the refusal, %d before", after, before)
	}
}

// A cancelled bench stops between steps: a repeat of a billion steps (or
// as long a warm-up) does not hold out for hours.
func TestBenchStopsBetweenSteps(t *testing.T) {
	c := DefaultConfig("protonet")
	c.Hidden = []int{16}
	for _, o := range []BenchOptions{{Steps: 1e9, Repeats: 1}, {Steps: 1, Warmup: 1e9, Repeats: 1}} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		o.Config, o.Shape, o.Threads, o.Seed = c, small, 1, 1
		done := make(chan error, 1)
		go func() {
			_, err := Bench(ctx, o)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("steps %d, warmup %d: %v, want the context's error", o.Steps, o.Warmup, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("steps %d, warmup %d: still running 10s after the context ended", o.Steps, o.Warmup)
		}
		cancel()
	}
}
