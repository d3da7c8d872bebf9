package experiments

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/train"
)

// TestMultitaskEvalOnKnownAttacks trains ProtoNet with both heads on the
// NSL-KDD meta-train pool and scores the heads, through the evaluation the
// runner uses, on fresh episodes of the same pool: there the heads must be
// right almost always, so a mix-up of labels, ways or categories between
// training and evaluation shows.
func TestMultitaskEvalOnKnownAttacks(t *testing.T) {
	p := testPlan(t, "protonet")
	p.Learner.Aux = train.AuxConfig{BinaryWeight: 1, CategoryWeight: 1}
	split, err := NewRunner(RunOptions{Log: &bytes.Buffer{}}).split(p)
	if err != nil {
		t.Fatal(err)
	}
	cats, err := auxCategories(p, split)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Learner
	cfg.Aux.Categories = len(cats)
	shape := train.Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 4, Dim: split.Encoder.Dim()}
	l, err := train.New(cfg, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := datasets.NewSampler(split.Train, datasets.SamplerConfig{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 4,
		NormalWay: true, Categories: cats, Seed: 1, Stream: streamTrain})
	if err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	for range 300 {
		if err := s.NextBatch(b); err != nil {
			t.Fatal(err)
		}
		if _, err := l.MetaStep(b); err != nil {
			t.Fatal(err)
		}
	}
	m, err := newMultitaskEval(l, cfg, cats)
	if err != nil {
		t.Fatal(err)
	}
	ep := s.NewEpisode()
	for range 40 {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		if err := m.add(ep); err != nil {
			t.Fatal(err)
		}
	}
	r := m.result()
	t.Logf("known attacks: %v", r.Metrics)
	// A constant "attack" would score 0.8 (one normal way in five) with a
	// detection rate of 1 and AUROC 0.5.
	if r.Metrics["binary_accuracy"] < 0.95 || r.Metrics["binary_auroc"] < 0.98 || r.Metrics["binary_false_alarm_rate"] > 0.1 {
		t.Errorf("binary head on known attacks: %v", r.Metrics)
	}
	if r.Metrics["category_accuracy"] < 0.9 || r.UnknownRows != 0 {
		t.Errorf("category head on known attacks: %v, %d unknown rows", r.Metrics, r.UnknownRows)
	}
}

// A seed whose test episodes hold no normal row has no binary AUROC: its
// results are still written, without it, and the summary uses the seeds that
// have one.
func TestMultitaskWithoutNormalTestRows(t *testing.T) {
	s, out := runSpec(t, `
name: mt
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4, min_records: 20}
episodes: {ways: 2, normal_way: false, meta_batch: 2, train_steps: 4, val_every: 0, val_episodes: 0, test_episodes: 1}
model: {hidden: [8]}
multitask: {binary_weight: 1}
seeds: [1, 2, 3, 4]
`, "mt.yaml")
	withAUROC := 0
	for _, seed := range []string{"seed-1", "seed-2", "seed-3", "seed-4"} {
		res, err := readSeedResult(filepath.Join(out, "mt", seed))
		if err != nil || res.Multitask == nil {
			t.Fatalf("%s: %v", seed, err)
		}
		if _, ok := res.Multitask.Metrics["binary_auroc"]; ok {
			withAUROC++
		}
	}
	if withAUROC == 0 || withAUROC == 4 {
		t.Fatalf("%d of 4 seeds have a binary AUROC; the test needs seeds with and without normal rows", withAUROC)
	}
	if auc := s.Multitask.Metrics["binary_auroc"]; auc.N != withAUROC {
		t.Errorf("binary AUROC summarised over %d seeds, want %d", auc.N, withAUROC)
	}
	if acc := s.Multitask.Metrics["binary_accuracy"]; acc.N != 4 {
		t.Errorf("binary accuracy over %d seeds, want 4", acc.N)
	}
}
