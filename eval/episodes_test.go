package eval

import (
	"math"
	"testing"
)

func TestEvaluationAdd(t *testing.T) {
	// Pool of 4 classes; a 3-way episode plays classes 2 (normal), 0 and 3.
	e := NewEvaluation([]string{"a", "b", "normal", "d"}, []string{"dos", "probe", "normal", "r2l"})
	in := EpisodeInput{
		Ways: 3, Classes: []int{2, 0, 3}, NormalWay: 0,
		Truth: []int32{0, 0, 1, 1, 2, 2},
		Pred:  []int32{0, 1, 1, 1, 2, 0},
	}
	// Way confusion (rows truth): [1 1 0; 0 2 0; 1 0 1]. Accuracy 4/6.
	// Precision: way0 1/2, way1 2/3, way2 1/1; recall: 1/2, 1, 1/2.
	// F1: 1/2, 4/5, 2/3. Detection: attacks (ways 1,2) = 4, predicted normal 1 -> 3/4.
	// False alarms: normal queries 2, predicted as attack 1 -> 1/2.
	s, err := e.Add(in)
	if err != nil {
		t.Fatal(err)
	}
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("accuracy", s.Accuracy, 4.0/6)
	near("macro precision", s.MacroPrecision, (0.5+2.0/3+1)/3)
	near("macro recall", s.MacroRecall, (0.5+1+0.5)/3)
	near("macro F1", s.MacroF1, (0.5+0.8+2.0/3)/3)
	near("detection rate", s.DetectionRate, 0.75)
	near("false-alarm rate", s.FalseAlarmRate, 0.5)
	if !math.IsNaN(s.AUROC) {
		t.Errorf("AUROC without scores = %v, want NaN", s.AUROC)
	}
	// Pooled by pool class: truth normal(2) -> pred normal and a(0).
	if e.Pooled.At(2, 2) != 1 || e.Pooled.At(2, 0) != 1 || e.Pooled.At(3, 2) != 1 || e.Pooled.At(0, 0) != 2 {
		t.Errorf("pooled confusion %v", e.Pooled.Counts)
	}
	pc := e.PerClass()
	if pc[0].Class != "a" || pc[0].Category != "dos" || pc[0].Support != 2 || pc[1].Support != 0 {
		t.Errorf("per-class %+v", pc)
	}
	near("pooled recall of a", pc[0].Recall, 1)

	// With scores: log p(normal) per query; attack queries get low p(normal).
	in.Scores = make([]float32, 6*3)
	pNormal := []float64{0.9, 0.6, 0.2, 0.7, 0.1, 0.3}
	for i, p := range pNormal {
		in.Scores[i*3] = float32(math.Log(p))
	}
	s, err = e.Add(in)
	if err != nil {
		t.Fatal(err)
	}
	// Attack scores 1-p: normal 0.1, 0.4; attacks 0.8, 0.3, 0.9, 0.7. Pairs
	// (attack > normal): 0.8>both, 0.3>0.1 only, 0.9>both, 0.7>both -> 7/8.
	near("AUROC", s.AUROC, 7.0/8)
	sum := e.Summaries()
	if sum["accuracy"].N != 2 || sum["auroc"].N != 1 {
		t.Errorf("summaries %+v", sum)
	}
}

func TestEvaluationNoNormalWayAndErrors(t *testing.T) {
	e := NewEvaluation([]string{"a", "b"}, nil)
	s, err := e.Add(EpisodeInput{Ways: 2, Classes: []int{1, 0}, NormalWay: -1, Truth: []int32{0, 1}, Pred: []int32{0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(s.DetectionRate) || !math.IsNaN(s.FalseAlarmRate) {
		t.Error("attack-vs-normal figures without a normal way")
	}
	if _, ok := e.Summaries()["detection_rate"]; ok {
		t.Error("detection rate summarised over NaN episodes")
	}
	bad := []EpisodeInput{
		{Ways: 2, Classes: []int{0, 1}, Truth: []int32{0}, Pred: []int32{0, 1}},
		{Ways: 2, Classes: []int{0, 5}, Truth: []int32{0}, Pred: []int32{0}},
		{Ways: 2, Classes: []int{0, 1}, Truth: []int32{2}, Pred: []int32{0}},
	}
	for i, in := range bad {
		if _, err := e.Add(in); err == nil {
			t.Errorf("bad input %d accepted", i)
		}
	}
}
