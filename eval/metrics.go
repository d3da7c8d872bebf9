package eval

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"
)

// Confusion is an N×N confusion matrix stored row-major: Counts[t*N+p] is
// the number of samples of true class t predicted as class p.
//
// Ratios whose denominator is zero (e.g. precision of a class that was never
// predicted) are reported as 0 rather than NaN, so that averages and tables
// stay finite; Support and the raw counts show when that happened.
type Confusion struct {
	N      int
	Counts []int64
}

// NewConfusion returns an empty matrix for n classes.
func NewConfusion(n int) *Confusion {
	if n < 0 {
		panic(fmt.Sprintf("eval: NewConfusion(%d): negative class count", n))
	}
	return &Confusion{N: n, Counts: make([]int64, n*n)}
}

func (c *Confusion) check(class int) {
	if class < 0 || class >= c.N {
		panic(fmt.Sprintf("eval: class %d out of range [0,%d)", class, c.N))
	}
}

// Add records one prediction. Labels outside [0,N) panic: they mean the
// caller's label mapping is wrong, which no metric can recover from.
func (c *Confusion) Add(truth, pred int) {
	c.check(truth)
	c.check(pred)
	c.Counts[truth*c.N+pred]++
}

// AddAll records a batch of predictions; the slices must have equal length.
func (c *Confusion) AddAll(truth, pred []int32) {
	if len(truth) != len(pred) {
		panic(fmt.Sprintf("eval: AddAll: %d labels but %d predictions", len(truth), len(pred)))
	}
	for i := range truth {
		c.Add(int(truth[i]), int(pred[i]))
	}
}

// Merge adds other's counts into c, e.g. to pool episodes or seeds.
func (c *Confusion) Merge(other *Confusion) error {
	if other.N != c.N {
		return fmt.Errorf("eval: cannot merge %d-class confusion into %d-class one", other.N, c.N)
	}
	for i, v := range other.Counts {
		c.Counts[i] += v
	}
	return nil
}

// At returns the number of samples of true class t predicted as p.
func (c *Confusion) At(t, p int) int64 {
	c.check(t)
	c.check(p)
	return c.Counts[t*c.N+p]
}

// Total returns the number of recorded samples.
func (c *Confusion) Total() int64 {
	var s int64
	for _, v := range c.Counts {
		s += v
	}
	return s
}

// Support returns how many samples truly belong to class k (its row sum).
func (c *Confusion) Support(k int) int64 {
	c.check(k)
	var s int64
	for p := 0; p < c.N; p++ {
		s += c.Counts[k*c.N+p]
	}
	return s
}

// predicted returns how many samples were predicted as class k (column sum).
func (c *Confusion) predicted(k int) int64 {
	var s int64
	for t := 0; t < c.N; t++ {
		s += c.Counts[t*c.N+k]
	}
	return s
}

// ratio is num/den, or 0 when den is 0 (see the Confusion doc).
func ratio(num, den int64) float64 {
	if den == 0 {
		return 0
	}
	return float64(num) / float64(den)
}

// Accuracy is the fraction of samples on the diagonal (0 when empty).
func (c *Confusion) Accuracy() float64 {
	var diag int64
	for k := 0; k < c.N; k++ {
		diag += c.Counts[k*c.N+k]
	}
	return ratio(diag, c.Total())
}

// Precision of class k: TP / predicted-as-k; 0 if k was never predicted.
func (c *Confusion) Precision(k int) float64 {
	c.check(k)
	return ratio(c.Counts[k*c.N+k], c.predicted(k))
}

// Recall of class k: TP / support; 0 if k has no samples.
func (c *Confusion) Recall(k int) float64 {
	c.check(k)
	return ratio(c.Counts[k*c.N+k], c.Support(k))
}

// F1 of class k, computed as 2TP / (support + predicted), which equals the
// harmonic mean of precision and recall and avoids a second 0/0 case. It is
// 0 when the class is neither present nor predicted.
func (c *Confusion) F1(k int) float64 {
	c.check(k)
	return ratio(2*c.Counts[k*c.N+k], c.Support(k)+c.predicted(k))
}

// macro averages metric over the classes that occur in the truth or in the
// predictions. Classes absent from both (common when an episode samples a
// subset of classes) have no defined score and would only drag the mean
// towards 0; a class that is predicted but absent still counts, because
// those predictions are real errors. This matches scikit-learn's default
// label set (the union of y_true and y_pred).
func (c *Confusion) macro(metric func(int) float64) float64 {
	var sum float64
	n := 0
	for k := 0; k < c.N; k++ {
		if c.Support(k) == 0 && c.predicted(k) == 0 {
			continue
		}
		sum += metric(k)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// weighted averages metric over classes weighted by support, so classes
// with no samples contribute nothing; 0 when the matrix is empty.
func (c *Confusion) weighted(metric func(int) float64) float64 {
	total := c.Total()
	if total == 0 {
		return 0
	}
	var sum float64
	for k := 0; k < c.N; k++ {
		if s := c.Support(k); s > 0 {
			sum += float64(s) * metric(k)
		}
	}
	return sum / float64(total)
}

// MacroPrecision is the unweighted mean precision over the classes that
// occur in the truth or the predictions (see macro for why).
func (c *Confusion) MacroPrecision() float64 { return c.macro(c.Precision) }

// MacroRecall is the unweighted mean recall over occurring classes.
func (c *Confusion) MacroRecall() float64 { return c.macro(c.Recall) }

// MacroF1 is the unweighted mean F1 over occurring classes.
func (c *Confusion) MacroF1() float64 { return c.macro(c.F1) }

// WeightedPrecision is precision averaged with support weights.
func (c *Confusion) WeightedPrecision() float64 { return c.weighted(c.Precision) }

// WeightedRecall is recall averaged with support weights; it always equals
// Accuracy.
func (c *Confusion) WeightedRecall() float64 { return c.weighted(c.Recall) }

// WeightedF1 is F1 averaged with support weights.
func (c *Confusion) WeightedF1() float64 { return c.weighted(c.F1) }

// DetectionRate treats every class except normal as an attack: it is the
// fraction of attack samples predicted as any attack class (a DoS flagged as
// probe still counts as detected). 0 when there are no attack samples.
func (c *Confusion) DetectionRate(normal int) float64 {
	c.check(normal)
	var attacks, detected int64
	for t := 0; t < c.N; t++ {
		if t == normal {
			continue
		}
		row := c.Support(t)
		attacks += row
		detected += row - c.Counts[t*c.N+normal]
	}
	return ratio(detected, attacks)
}

// FalseAlarmRate is the fraction of normal samples predicted as any attack
// class. 0 when there are no normal samples.
func (c *Confusion) FalseAlarmRate(normal int) float64 {
	c.check(normal)
	row := c.Support(normal)
	return ratio(row-c.Counts[normal*c.N+normal], row)
}

// Summary describes repeated measurements (e.g. one score per seed).
type Summary struct {
	Mean      float64 `json:"mean"`
	SD        float64 `json:"sd"`              // sample standard deviation (n-1 denominator)
	HalfWidth float64 `json:"ci95_half_width"` // half-width of the 95% interval (see CIHalfWidth)
	N         int     `json:"n"`
}

// UnmarshalJSON also reads files written before the keys were lower case
// (Mean, SD, HalfWidth, N), so older results stay readable: HalfWidth is
// the one old key that no new key matches regardless of case.
func (s *Summary) UnmarshalJSON(b []byte) error {
	type plain Summary // the same fields, without this method
	var v struct {
		plain
		Old *float64 `json:"HalfWidth"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Summary(v.plain)
	if v.Old != nil {
		s.HalfWidth = *v.Old
	}
	return nil
}

// CIHalfWidth is the half-width of the 95% confidence interval of the mean
// of n values whose sample SD is sd: t·sd/√n, with t the 97.5% quantile of
// Student's t distribution with n−1 degrees of freedom (12.71 for n = 2,
// 4.30 for n = 3, 2.09 for n = 20, tending to the normal 1.96 as n grows).
// The normal quantile alone would give an interval that holds the true mean
// far less often than 95% when n is a handful of seeds. 0 for n < 2.
func CIHalfWidth(sd float64, n int) float64 {
	if n < 2 {
		return 0
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975)
	return t * sd / math.Sqrt(float64(n))
}

// MeanCI summarises xs with its mean, sample SD and a 95% interval
// half-width (CIHalfWidth). With fewer than two values the spread is unknown
// and SD and HalfWidth are 0; with none, the whole Summary is zero.
func MeanCI(xs []float64) Summary {
	s := Summary{N: len(xs)}
	if s.N == 0 {
		return s
	}
	for _, x := range xs {
		s.Mean += x
	}
	s.Mean /= float64(s.N)
	if s.N < 2 {
		return s
	}
	var ss float64
	for _, x := range xs {
		d := x - s.Mean
		ss += d * d
	}
	s.SD = math.Sqrt(ss / float64(s.N-1))
	s.HalfWidth = CIHalfWidth(s.SD, s.N)
	return s
}

// Format prints "mean ± half-width" after multiplying both by scale, e.g.
// scale 100 and prec 2 turn fractions into "81.23 ± 0.45" percentages.
// With fewer than two values there is no interval, and it prints
// "81.23 (n=1)" rather than a "± 0.00" that would read as certainty.
func (s Summary) Format(scale float64, prec int) string {
	if s.N < 2 {
		return fmt.Sprintf("%.*f (n=%d)", prec, s.Mean*scale, s.N)
	}
	return fmt.Sprintf("%.*f ± %.*f", prec, s.Mean*scale, prec, s.HalfWidth*scale)
}

// Overlaps reports whether the closed intervals Mean ± HalfWidth intersect.
// Overlap does not show that two results are equal; disjoint intervals are
// a conservative sign that they differ. A summary of fewer than two values
// has no interval, so it is counted as overlapping: nothing can be said.
func Overlaps(a, b Summary) bool {
	if a.N < 2 || b.N < 2 {
		return true
	}
	return a.Mean-a.HalfWidth <= b.Mean+b.HalfWidth &&
		b.Mean-b.HalfWidth <= a.Mean+a.HalfWidth
}

func checkScores(scores []float64, positive []bool) (nPos, nNeg int, err error) {
	if len(scores) != len(positive) {
		return 0, 0, fmt.Errorf("eval: %d scores but %d labels", len(scores), len(positive))
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return 0, 0, fmt.Errorf("eval: score %d is NaN", i)
		}
		if positive[i] {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return nPos, nNeg, errors.New("eval: AUROC needs both positive and negative samples")
	}
	return nPos, nNeg, nil
}

// AUROC is the probability that a random positive scores higher than a
// random negative, ties counting one half (the Mann–Whitney U statistic
// divided by nPos·nNeg). Higher scores must mean "more positive".
func AUROC(scores []float64, positive []bool) (float64, error) {
	nPos, nNeg, err := checkScores(scores, positive)
	if err != nil {
		return 0, err
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })

	// Sum the 1-based ranks of positives, giving each run of tied scores
	// the average of the ranks it spans; that is what counts ties as half.
	var posRanks float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+1+j) / 2 // mean of ranks i+1 .. j
		for k := i; k < j; k++ {
			if positive[idx[k]] {
				posRanks += avg
			}
		}
		i = j
	}
	u := posRanks - float64(nPos)*float64(nPos+1)/2
	return u / (float64(nPos) * float64(nNeg)), nil
}

// ROC returns the ROC curve: one point per distinct score, sweeping the
// threshold from high to low, where a sample is flagged when its score is
// >= the threshold. The first point is (0,0) at threshold +Inf and the last
// is (1,1), so the trapezoidal area equals AUROC. It returns nil slices
// when AUROC would return an error.
func ROC(scores []float64, positive []bool) (fpr, tpr, thresholds []float64) {
	nPos, nNeg, err := checkScores(scores, positive)
	if err != nil {
		return nil, nil, nil
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })

	fpr = []float64{0}
	tpr = []float64{0}
	thresholds = []float64{math.Inf(1)}
	var tp, fp int
	for i := 0; i < len(idx); {
		th := scores[idx[i]]
		// Tied samples cross the threshold together, giving the diagonal
		// segment that makes the area count ties as half.
		for ; i < len(idx) && scores[idx[i]] == th; i++ {
			if positive[idx[i]] {
				tp++
			} else {
				fp++
			}
		}
		fpr = append(fpr, float64(fp)/float64(nNeg))
		tpr = append(tpr, float64(tp)/float64(nPos))
		thresholds = append(thresholds, th)
	}
	return fpr, tpr, thresholds
}
