package eval

import (
	"encoding/json"
	"math"
	"testing"
)

const eps = 1e-12

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > eps {
		t.Errorf("%s = %.15g, want %.15g", name, got, want)
	}
}

// example3 builds this matrix (rows = truth, columns = prediction), with
// class 0 as "normal" and classes 1, 2 as attacks:
//
//	      p0 p1 p2 | support
//	t0  [  5  1  0 ] 6
//	t1  [  2  3  1 ] 6
//	t2  [  0  1  3 ] 4
//	pred   7  5  4   total 16
func example3() *Confusion {
	c := NewConfusion(3)
	rows := [3][3]int{{5, 1, 0}, {2, 3, 1}, {0, 1, 3}}
	var truth, pred []int32
	for ti, row := range rows {
		for pi, n := range row {
			for range n {
				truth = append(truth, int32(ti))
				pred = append(pred, int32(pi))
			}
		}
	}
	c.AddAll(truth, pred)
	return c
}

func TestConfusionBasics(t *testing.T) {
	c := example3()
	if c.Total() != 16 {
		t.Fatalf("Total = %d, want 16", c.Total())
	}
	if c.At(1, 2) != 1 || c.At(1, 0) != 2 || c.At(2, 0) != 0 {
		t.Errorf("At: got (1,2)=%d (1,0)=%d (2,0)=%d", c.At(1, 2), c.At(1, 0), c.At(2, 0))
	}
	for k, want := range []int64{6, 6, 4} {
		if got := c.Support(k); got != want {
			t.Errorf("Support(%d) = %d, want %d", k, got, want)
		}
	}
}

func TestConfusionMetrics(t *testing.T) {
	c := example3()

	// Diagonal 5+3+3 = 11 of 16.
	near(t, "Accuracy", c.Accuracy(), 11.0/16)

	// Precision = TP / column sum: 5/7, 3/5, 3/4.
	prec := []float64{5.0 / 7, 3.0 / 5, 3.0 / 4}
	// Recall = TP / row sum: 5/6, 3/6, 3/4.
	rec := []float64{5.0 / 6, 3.0 / 6, 3.0 / 4}
	// F1 = 2TP / (row + column): 10/13, 6/11, 6/8.
	f1 := []float64{10.0 / 13, 6.0 / 11, 6.0 / 8}
	for k := range 3 {
		near(t, "Precision", c.Precision(k), prec[k])
		near(t, "Recall", c.Recall(k), rec[k])
		near(t, "F1", c.F1(k), f1[k])
		// F1 is also the harmonic mean of P and R.
		near(t, "F1 harmonic", c.F1(k), 2*prec[k]*rec[k]/(prec[k]+rec[k]))
	}

	// Macro: plain means over the three classes.
	// (5/7 + 3/5 + 3/4)/3 ≈ 0.688095
	near(t, "MacroPrecision", c.MacroPrecision(), (5.0/7+3.0/5+3.0/4)/3)
	// (5/6 + 1/2 + 3/4)/3 = (10 + 6 + 9)/36 = 25/36
	near(t, "MacroRecall", c.MacroRecall(), 25.0/36)
	// (10/13 + 6/11 + 3/4)/3 ≈ 0.688170
	near(t, "MacroF1", c.MacroF1(), (10.0/13+6.0/11+3.0/4)/3)

	// Weighted by support 6, 6, 4 over 16.
	// (6·5/7 + 6·3/5 + 4·3/4)/16 = (30/7 + 18/5 + 3)/16 ≈ 0.680357
	near(t, "WeightedPrecision", c.WeightedPrecision(), (30.0/7+18.0/5+3)/16)
	// (5 + 3 + 3)/16 = 11/16, the accuracy.
	near(t, "WeightedRecall", c.WeightedRecall(), 11.0/16)
	// (6·10/13 + 6·6/11 + 4·3/4)/16 = (60/13 + 36/11 + 3)/16
	near(t, "WeightedF1", c.WeightedF1(), (60.0/13+36.0/11+3)/16)
}

func TestDetectionAndFalseAlarm(t *testing.T) {
	c := example3()
	// Attacks are rows 1 and 2: 6 + 4 = 10 samples. Those not predicted as
	// normal: row 1 has 3+1 = 4 (the DoS→probe mistake still counts as
	// detected), row 2 has 1+3 = 4; 8/10.
	near(t, "DetectionRate(0)", c.DetectionRate(0), 8.0/10)
	// Normal row 0 has 6 samples, 1+0 predicted as attacks: 1/6.
	near(t, "FalseAlarmRate(0)", c.FalseAlarmRate(0), 1.0/6)

	// Treating class 2 as normal: attacks are rows 0 and 1 (12 samples), of
	// which 0 + 1 were predicted as class 2, so 11/12 detected; row 2 has 4
	// samples, 0+1 predicted as something else: 1/4.
	near(t, "DetectionRate(2)", c.DetectionRate(2), 11.0/12)
	near(t, "FalseAlarmRate(2)", c.FalseAlarmRate(2), 1.0/4)
}

func TestConfusionEmptyClasses(t *testing.T) {
	// Four classes: class 2 is predicted once but never occurs; class 3
	// neither occurs nor is predicted.
	//
	//	      p0 p1 p2 p3
	//	t0  [  2  0  1  0 ]
	//	t1  [  0  1  0  0 ]
	//	t2  [  0  0  0  0 ]
	//	t3  [  0  0  0  0 ]
	c := NewConfusion(4)
	c.Add(0, 0)
	c.Add(0, 0)
	c.Add(0, 2)
	c.Add(1, 1)

	// 0/0 denominators give 0.
	near(t, "Precision(3)", c.Precision(3), 0)
	near(t, "Recall(3)", c.Recall(3), 0)
	near(t, "F1(3)", c.F1(3), 0)
	// Class 2: TP 0, predicted 1, support 0.
	near(t, "Precision(2)", c.Precision(2), 0)
	near(t, "Recall(2)", c.Recall(2), 0)

	// Macro over classes 0, 1, 2 (class 3 skipped):
	// precision (1 + 1 + 0)/3, recall (2/3 + 1 + 0)/3,
	// F1 (2·2/(3+2) + 2/(1+1) + 0)/3 = (4/5 + 1)/3.
	near(t, "MacroPrecision", c.MacroPrecision(), 2.0/3)
	near(t, "MacroRecall", c.MacroRecall(), (2.0/3+1)/3)
	near(t, "MacroF1", c.MacroF1(), (4.0/5+1)/3)
	// Weighted by support 3, 1 over 4: recall (3·2/3 + 1)/4 = 3/4.
	near(t, "WeightedRecall", c.WeightedRecall(), 3.0/4)
	near(t, "WeightedF1", c.WeightedF1(), (3*4.0/5+1)/4)

	// Only normal traffic: no attack samples (DetectionRate with normal=0)
	// and no normal samples (FalseAlarmRate with normal=1) both give 0.
	n := NewConfusion(2)
	n.Add(0, 0)
	near(t, "DetectionRate no attacks", n.DetectionRate(0), 0)
	near(t, "FalseAlarmRate no normal", n.FalseAlarmRate(1), 0)

	e := NewConfusion(3)
	for name, v := range map[string]float64{
		"Accuracy": e.Accuracy(), "MacroF1": e.MacroF1(), "WeightedF1": e.WeightedF1(),
		"DetectionRate": e.DetectionRate(0), "FalseAlarmRate": e.FalseAlarmRate(0),
	} {
		if v != 0 {
			t.Errorf("empty matrix %s = %v, want 0", name, v)
		}
	}
}

func TestConfusionMerge(t *testing.T) {
	a, b := example3(), example3()
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Total() != 32 || a.At(1, 2) != 2 {
		t.Errorf("after merge Total=%d At(1,2)=%d, want 32, 2", a.Total(), a.At(1, 2))
	}
	// Doubling every count leaves the ratios unchanged.
	near(t, "merged MacroF1", a.MacroF1(), b.MacroF1())
	if err := a.Merge(NewConfusion(2)); err == nil {
		t.Error("merging different sizes: want error")
	}
}

func TestConfusionPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"Add out of range": func() { NewConfusion(2).Add(0, 2) },
		"Add negative":     func() { NewConfusion(2).Add(-1, 0) },
		"AddAll lengths":   func() { NewConfusion(2).AddAll([]int32{0}, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: want panic", name)
				}
			}()
			f()
		}()
	}
}

// Student's t 97.5% quantiles in closed form: with 1 degree of freedom
// t = tan(π(p−½)); with 2, t = √(2/α − 2), α = 4p(1−p); with 4,
// t = 2√(q−1), q = cos(arccos(√α)/3)/√α (p = 0.975).
var (
	p975  = 0.975
	alpha = 4 * p975 * (1 - p975)
	t1    = math.Tan(math.Pi * (p975 - 0.5))                                          // 12.7062
	t2    = math.Sqrt(2/alpha - 2)                                                    // 4.3027
	t4    = 2 * math.Sqrt(math.Cos(math.Acos(math.Sqrt(alpha))/3)/math.Sqrt(alpha)-1) // 2.7764
)

func TestCIHalfWidth(t *testing.T) {
	const tol = 1e-9
	for _, c := range []struct {
		n    int
		want float64
	}{{2, t1 / math.Sqrt(2)}, {3, t2 / math.Sqrt(3)}, {5, t4 / math.Sqrt(5)}, {1, 0}, {0, 0}} {
		if got := CIHalfWidth(1, c.n); math.Abs(got-c.want) > tol {
			t.Errorf("CIHalfWidth(1, %d) = %.12g, want %.12g", c.n, got, c.want)
		}
	}
	// Many values: the normal quantile 1.95996 to three decimals.
	if got := CIHalfWidth(1, 10001) * 100; math.Abs(got-1.96) > 1e-3 {
		t.Errorf("CIHalfWidth(1, 10001)·√10001 = %.6g, want ≈1.96", got)
	}
}

func TestMeanCI(t *testing.T) {
	// xs = 1..5: mean 3, squared deviations 4+1+0+1+4 = 10, sample variance
	// 10/4 = 2.5, SD = √2.5, half-width t₄·√2.5/√5 = t₄/√2 ≈ 1.96324
	// (t₄ = 2.77645, Student's t with n−1 = 4 degrees of freedom).
	s := MeanCI([]float64{1, 2, 3, 4, 5})
	if s.N != 5 {
		t.Errorf("N = %d, want 5", s.N)
	}
	near(t, "Mean", s.Mean, 3)
	near(t, "SD", s.SD, math.Sqrt(2.5))
	if math.Abs(s.HalfWidth-t4/math.Sqrt2) > 1e-9 {
		t.Errorf("HalfWidth = %.12g, want %.12g", s.HalfWidth, t4/math.Sqrt2)
	}
	if got := s.Format(1, 2); got != "3.00 ± 1.96" {
		t.Errorf("Format(1,2) = %q", got)
	}

	// Two seeds, 0.80 and 0.84: SD = 0.02·√2, half-width
	// t₁·0.02·√2/√2 = 0.02·12.7062 ≈ 0.254, not the 1.96·0.02 = 0.039 of a
	// normal quantile.
	two := MeanCI([]float64{0.80, 0.84})
	if got := two.Format(100, 2); got != "82.00 ± 25.41" {
		t.Errorf("two values: Format(100,2) = %q", got)
	}

	// Three seeds 0.70, 0.75, 0.80: SD 0.05, half-width t₂·0.05/√3 ≈ 0.1242.
	three := MeanCI([]float64{0.70, 0.75, 0.80})
	if got := three.Format(100, 2); got != "75.00 ± 12.42" {
		t.Errorf("three values: Format(100,2) = %q", got)
	}

	one := MeanCI([]float64{0.7})
	if one.N != 1 || one.Mean != 0.7 || one.SD != 0 || one.HalfWidth != 0 {
		t.Errorf("MeanCI(one value) = %+v", one)
	}
	if got := one.Format(100, 2); got != "70.00 (n=1)" {
		t.Errorf("one value: Format(100,2) = %q, want no interval", got)
	}
	if z := MeanCI(nil); z != (Summary{}) {
		t.Errorf("MeanCI(nil) = %+v, want zero", z)
	}
}

func TestOverlaps(t *testing.T) {
	a := Summary{Mean: 0.80, HalfWidth: 0.02, N: 10} // [0.78, 0.82]
	b := Summary{Mean: 0.83, HalfWidth: 0.02, N: 10} // [0.81, 0.85]
	c := Summary{Mean: 0.90, HalfWidth: 0.01, N: 10} // [0.89, 0.91]
	d := Summary{Mean: 0.5, N: 10}                   // the point 0.5
	if !Overlaps(a, b) || !Overlaps(b, a) {
		t.Error("a and b overlap")
	}
	if Overlaps(a, c) || Overlaps(c, a) {
		t.Error("a and c do not overlap")
	}
	if !Overlaps(d, Summary{Mean: 0.25, HalfWidth: 0.25, N: 10}) {
		t.Error("touching intervals count as overlapping")
	}
	// One value has no interval: far from c, but nothing can be said.
	one := Summary{Mean: 0.5, N: 1}
	if !Overlaps(one, c) || !Overlaps(c, one) {
		t.Error("a single value is counted as overlapping")
	}
}

// Positives score {0.9, 0.8, 0.7}, negatives {0.8, 0.6, 0.6}. Pairwise:
// 0.9 beats all three (3); 0.8 ties one and beats two (2.5); 0.7 loses to
// 0.8 and beats two (2). AUROC = 7.5/9 = 5/6.
// By ranks: ascending 0.6,0.6 → 1.5 each; 0.7 → 3; 0.8,0.8 → 4.5; 0.9 → 6.
// Positive rank sum 6+4.5+3 = 13.5, minus 3·4/2 = 6, gives U = 7.5.
var (
	rocScores   = []float64{0.9, 0.8, 0.8, 0.7, 0.6, 0.6}
	rocPositive = []bool{true, true, false, true, false, false}
)

func TestAUROC(t *testing.T) {
	got, err := AUROC(rocScores, rocPositive)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "AUROC", got, 5.0/6)

	// All scores tied: every pair counts half.
	got, err = AUROC([]float64{1, 1, 1}, []bool{true, false, false})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "AUROC all tied", got, 0.5)

	// Perfectly inverted ranking.
	got, _ = AUROC([]float64{0.1, 0.9}, []bool{true, false})
	near(t, "AUROC inverted", got, 0)

	for name, c := range map[string]struct {
		s []float64
		p []bool
	}{
		"no negatives": {[]float64{1, 2}, []bool{true, true}},
		"no positives": {[]float64{1, 2}, []bool{false, false}},
		"empty":        {nil, nil},
		"length":       {[]float64{1}, []bool{true, false}},
		"NaN":          {[]float64{math.NaN(), 1}, []bool{true, false}},
	} {
		if _, err := AUROC(c.s, c.p); err == nil {
			t.Errorf("%s: want error", name)
		}
		if f, _, _ := ROC(c.s, c.p); f != nil {
			t.Errorf("%s: ROC want nil", name)
		}
	}
}

func TestROC(t *testing.T) {
	// Sweeping the threshold down (3 positives, 3 negatives):
	//   +Inf: TP 0 FP 0 → (0, 0)
	//   0.9 : TP 1 FP 0 → (0, 1/3)
	//   0.8 : TP 2 FP 1 → (1/3, 2/3)
	//   0.7 : TP 3 FP 1 → (1/3, 1)
	//   0.6 : TP 3 FP 3 → (1, 1)
	fpr, tpr, th := ROC(rocScores, rocPositive)
	wantF := []float64{0, 0, 1.0 / 3, 1.0 / 3, 1}
	wantT := []float64{0, 1.0 / 3, 2.0 / 3, 1, 1}
	wantTh := []float64{math.Inf(1), 0.9, 0.8, 0.7, 0.6}
	if len(fpr) != len(wantF) || len(tpr) != len(wantT) || len(th) != len(wantTh) {
		t.Fatalf("lengths %d/%d/%d, want %d", len(fpr), len(tpr), len(th), len(wantF))
	}
	for i := range wantF {
		near(t, "fpr", fpr[i], wantF[i])
		near(t, "tpr", tpr[i], wantT[i])
		if th[i] != wantTh[i] {
			t.Errorf("threshold[%d] = %v, want %v", i, th[i], wantTh[i])
		}
	}
	// Trapezoids: 1/3 wide at mean height 1/2, then 2/3 wide at height 1:
	// 1/6 + 2/3 = 5/6, the AUROC.
	var area float64
	for i := 1; i < len(fpr); i++ {
		area += (fpr[i] - fpr[i-1]) * (tpr[i] + tpr[i-1]) / 2
	}
	near(t, "ROC area", area, 5.0/6)
}

// A Summary is written with lower-case keys and read back from them, and
// from the capitalised keys of files written before.
func TestSummaryJSON(t *testing.T) {
	s := Summary{Mean: 0.875, SD: 0.125, HalfWidth: 0.0625, N: 3}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mean":0.875,"sd":0.125,"ci95_half_width":0.0625,"n":3}`; string(b) != want {
		t.Errorf("written as %s, want %s", b, want)
	}
	for _, text := range []string{string(b), `{"Mean":0.875,"SD":0.125,"HalfWidth":0.0625,"N":3}`} {
		var got Summary
		if err := json.Unmarshal([]byte(text), &got); err != nil || got != s {
			t.Errorf("%s read as %+v (%v), want %+v", text, got, err, s)
		}
	}
	var got Summary
	if err := json.Unmarshal([]byte(`{"mean":"x"}`), &got); err == nil {
		t.Error("a mean that is no number was read")
	}
}
