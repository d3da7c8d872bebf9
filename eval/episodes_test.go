package eval

import (
	"encoding/json"
	"math"
	"strings"
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
		{Ways: 2, Classes: []int{0, 1}, NormalWay: 2, Truth: []int32{0}, Pred: []int32{0}},
		{Ways: 2, Classes: []int{0, 1}, NormalWay: -2, Truth: []int32{0}, Pred: []int32{0}},
		{Ways: 2, Classes: []int{0, 1}, Truth: []int32{0}, Pred: []int32{0}, Scores: []float32{0, 0, 0}},
	}
	for i, in := range bad {
		if _, err := e.Add(in); err == nil {
			t.Errorf("bad input %d accepted", i)
		}
	}
}

// Confident scores: log p(normal) of -40 (normal query) and -50 (attack
// query) differ, though 1 - p(normal) rounds both to 1 in float64.
func TestAttackAUROCKeepsConfidentScoresApart(t *testing.T) {
	e := NewEvaluation([]string{"normal", "x"}, nil)
	s, err := e.Add(EpisodeInput{Ways: 2, Classes: []int{0, 1}, NormalWay: 0,
		Truth: []int32{0, 1}, Pred: []int32{1, 1}, Scores: []float32{-40, 0, -50, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if s.AUROC != 1 {
		t.Errorf("AUROC = %v, want 1 (the attack query is less likely normal)", s.AUROC)
	}
}

// Per-class figures with a zero denominator are undefined, not 0, and stay
// so through JSON.
func TestPerClassUndefinedFigures(t *testing.T) {
	// Pool a, b, c, d: truth a predicted b; truth c predicted c; d neither.
	e := NewEvaluation([]string{"a", "b", "c", "d"}, nil)
	if _, err := e.Add(EpisodeInput{Ways: 3, Classes: []int{0, 1, 2}, NormalWay: -1,
		Truth: []int32{0, 2}, Pred: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	pc := e.PerClass()
	nan := math.NaN()
	want := [][3]float64{
		{nan, 0, 0},     // a: present, never predicted
		{0, nan, 0},     // b: predicted, never present
		{1, 1, 1},       // c
		{nan, nan, nan}, // d: neither
	}
	same := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	for k, w := range want {
		got := [3]float64{pc[k].Precision, pc[k].Recall, pc[k].F1}
		if !same(got[0], w[0]) || !same(got[1], w[1]) || !same(got[2], w[2]) {
			t.Errorf("%s: precision, recall, F1 = %v, want %v", pc[k].Class, got, w)
		}
	}
	b, err := json.Marshal(pc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `{"class":"d","category":"","precision":null,"recall":null,"f1":null,"support":0}`) {
		t.Errorf("JSON %s", b)
	}
	var back []ClassScore
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for k := range pc {
		if !same(back[k].Precision, pc[k].Precision) || !same(back[k].Recall, pc[k].Recall) || !same(back[k].F1, pc[k].F1) ||
			back[k].Class != pc[k].Class || back[k].Support != pc[k].Support {
			t.Errorf("round trip: %+v, want %+v", back[k], pc[k])
		}
	}
}
