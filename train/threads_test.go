package train

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// The MAML family adapts Config.Threads tasks at once and adds their shares
// of the meta-gradient in task order, so any number of threads gives the
// parameters, losses and predictions of one, to the last bit: for every
// learner of the family, both precisions, one and several inner steps, with
// and without an auxiliary head, and meta-batches that are no multiple of
// the threads.
func TestThreadsDoNotChangeTheNumbers(t *testing.T) {
	s := Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 5, Dim: 8}
	train := tinyBatch(t, s, 5, 3)
	test := tinyBatch(t, s, 1, 4)[0]
	type outcome struct {
		params, losses []float64
		labels         []int32
		scores         []float32
	}
	run := func(c Config) outcome {
		l := mustNew(t, c, s)
		var o outcome
		// Whole meta-batches and smaller ones, as a run's last may be.
		for _, batch := range []datasets.Batch{train, train[:4], train[1:]} {
			loss, err := l.MetaStep(batch)
			if err != nil {
				t.Fatal(err)
			}
			o.losses = append(o.losses, loss)
		}
		e := l.(engine)
		o.params = make([]float64, e.numParams())
		e.getParams(o.params)
		o.labels = make([]int32, s.Ways*s.Queries)
		o.scores = make([]float32, s.Ways*s.Queries*s.Ways)
		if err := l.Predict(test, o.labels, o.scores); err != nil {
			t.Fatal(err)
		}
		return o
	}
	same := func(a, b []float64) bool {
		return slices.EqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
	}
	for _, algo := range []string{"maml", "fomaml", "reptile", "anil", "metasgd"} {
		for _, f64 := range []bool{false, true} {
			for _, inner := range []int{1, 3} {
				for _, aux := range []bool{false, true} {
					name := fmt.Sprintf("%s float64=%v inner=%d aux=%v", algo, f64, inner, aux)
					c := DefaultConfig(algo)
					c.Hidden, c.InnerSteps, c.InnerLR, c.Float64 = []int{16, 8}, inner, 0.1, f64
					if aux {
						c.Aux = AuxConfig{BinaryWeight: 0.5}
					}
					one := run(c)
					for _, threads := range []int{2, 3, 5, 64} {
						c.Threads = threads
						got := run(c)
						if !same(got.params, one.params) || !same(got.losses, one.losses) ||
							!slices.Equal(got.labels, one.labels) || !slices.Equal(got.scores, one.scores) {
							t.Errorf("%s: %d threads give other numbers than one (losses %v, want %v)", name, threads, got.losses, one.losses)
						}
					}
				}
			}
		}
	}
}

// The threads must not make learning a no-op that the comparison above
// would pass: several threads learn what one does, and differ from the
// initial parameters.
func TestThreadsLearn(t *testing.T) {
	s := Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 4, Dim: 8}
	c := DefaultConfig("maml")
	c.Threads = 4
	l := mustNew(t, c, s)
	e := l.(engine)
	before := make([]float64, e.numParams())
	e.getParams(before)
	b := tinyBatch(t, s, 4, 5)
	first, err := l.MetaStep(b)
	if err != nil {
		t.Fatal(err)
	}
	var last float64
	for range 50 {
		if last, err = l.MetaStep(b); err != nil {
			t.Fatal(err)
		}
	}
	after := make([]float64, e.numParams())
	e.getParams(after)
	if slices.Equal(before, after) || !(last < first) {
		t.Errorf("4 threads: loss %g -> %g over 50 steps, parameters changed: %v", first, last, !slices.Equal(before, after))
	}
}

func TestThreadsOutOfRange(t *testing.T) {
	for _, n := range []int{-1, MaxThreads + 1} {
		c := DefaultConfig("maml")
		c.Threads = n
		if err := c.Validate(); err == nil {
			t.Errorf("Threads %d: no error", n)
		}
	}
}

// TaskThreads reads the workers a learner has: Threads up to one per task
// for the MAML family, one for ProtoNet whatever Threads says.
func TestTaskThreads(t *testing.T) {
	s := Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 4, Dim: 8}
	for _, c := range []struct {
		algo          string
		threads, want int
	}{{"maml", 0, 1}, {"maml", 3, 3}, {"reptile", 8, 4}, {"protonet", 8, 1}} {
		cfg := DefaultConfig(c.algo)
		cfg.Threads = c.threads
		if got := TaskThreads(mustNew(t, cfg, s)); got != c.want {
			t.Errorf("%s with Threads %d: %d tasks at once, want %d", c.algo, c.threads, got, c.want)
		}
	}
}
