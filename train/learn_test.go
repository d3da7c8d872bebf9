package train

import (
	"testing"

	"github.com/metaids/metaids/datasets"
)

// accuracy is the mean query accuracy of l over episodes.
func accuracy(t *testing.T, l Learner, eps []*datasets.Episode) float64 {
	s := l.Shape()
	nq := s.Ways * s.Queries
	labels, scores := make([]int32, nq), make([]float32, nq*s.Ways)
	var right, all int
	for _, ep := range eps {
		if err := l.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		for i, y := range ep.QueryY {
			if labels[i] == y {
				right++
			}
			all++
		}
	}
	return float64(right) / float64(all)
}

// TestEveryLearnerBeatsNearestCentroid meta-trains each learner on classes
// [0,20) of a synthetic set whose raw features carry high-variance nuisance
// dimensions, and evaluates on the held-out classes [20,30). Raw nearest
// centroid is hurt by the nuisance; a learned encoder can discount it.
func TestEveryLearnerBeatsNearestCentroid(t *testing.T) {
	s := Shape{Ways: 5, Shots: 5, Queries: 10, MetaBatch: 4, Dim: 16}
	syn, err := NewSynthetic(30, s.Dim, 4, 1.2, 3, 42)
	if err != nil {
		t.Fatal(err)
	}
	var test []*datasets.Episode
	for i := 0; i < 60; i++ {
		ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
		if err := syn.Fill(ep, 20, 30); err != nil {
			t.Fatal(err)
		}
		test = append(test, ep)
	}
	floor := accuracy(t, mustNew(t, DefaultConfig("nearest-centroid"), s), test)
	type tc struct {
		algo  string
		steps int
		edit  func(*Config)
	}
	cases := []tc{
		{"protonet", 200, nil},
		{"protonet", 200, func(c *Config) { c.Distance = "cosine" }},
		{"maml", 300, nil},
		{"fomaml", 300, nil},
		// Classic Reptile: outer SGD with step 1 on θ−θ_K, longer inner loops.
		{"reptile", 300, func(c *Config) {
			c.InnerSteps, c.TestInnerSteps, c.InnerLR = 5, 20, 0.3
			c.Optimizer = OptimConfig{Name: "sgd", LR: 1}
		}},
		{"anil", 300, nil},
		{"metasgd", 300, nil},
		{"finetune", 300, func(c *Config) { c.PretrainClasses = 20 }},
	}
	batch := make(datasets.Batch, s.MetaBatch)
	for i := range batch {
		batch[i] = datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
	}
	for _, c := range cases {
		cfg := DefaultConfig(c.algo)
		cfg.Hidden = []int{32}
		cfg.InnerSteps = 3
		cfg.TestInnerSteps = 10
		cfg.InnerLR = 0.1
		cfg.Optimizer.LR = 3e-3
		if c.edit != nil {
			c.edit(&cfg)
		}
		l := mustNew(t, cfg, s)
		for step := 0; step < c.steps; step++ {
			for _, ep := range batch {
				if err := syn.Fill(ep, 0, 20); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.MetaStep(batch); err != nil {
				t.Fatal(err)
			}
		}
		acc := accuracy(t, l, test)
		t.Logf("%-9s %-9s accuracy %.3f (nearest centroid %.3f)", c.algo, cfg.Distance, acc, floor)
		if acc <= floor+0.03 {
			t.Errorf("%s (%s): held-out accuracy %.3f does not beat nearest centroid's %.3f", c.algo, cfg.Distance, acc, floor)
		}
	}
}
