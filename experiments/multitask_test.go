package experiments

import (
	"bytes"
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
