// Package detect is open-set threat detection: a model of normal traffic
// fitted on embeddings of normal flows, a score for "this flow is not
// normal" (the distance to the normal mean, Euclidean or Mahalanobis), a
// threshold chosen on validation scores, and the evaluation of a threshold
// on flows that may include attack types never seen in training.
//
// Flows are flagged as attacks when score > threshold.
package detect

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/metaids/metaids/eval"
)

// Method is the distance a NormalModel scores with.
type Method string

const (
	// Euclidean scores the squared Euclidean distance to the normal mean.
	Euclidean Method = "euclidean"
	// Mahalanobis scores the squared Mahalanobis distance under the shrunk
	// covariance of the normal embeddings.
	Mahalanobis Method = "mahalanobis"
)

// LedoitWolf, passed as Fit's shrinkage, asks for the Ledoit–Wolf estimate
// of the shrinkage intensity; any negative value does.
const LedoitWolf = -1.0

// MaxCond is the largest condition number of the shrunk covariance Fit
// accepts: beyond it Mahalanobis distances are dominated by rounding along
// the near-null directions (e.g. dead ReLU units, which have zero variance).
const MaxCond = 1e12

// ErrIllConditioned is wrapped by Fit's error when the shrunk covariance is
// singular or beyond MaxCond: a larger shrinkage is the remedy.
var ErrIllConditioned = errors.New("the shrunk covariance is singular or ill conditioned")

// ErrNoVariance is Fit's error, for Mahalanobis, when the normal embeddings
// are all alike: no shrinkage mends a zero covariance.
var ErrNoVariance = errors.New("the normal embeddings do not vary (zero covariance)")

// fitChunk is the number of rows per covariance update in Fit.
const fitChunk = 512

// NormalModel is the model of normal traffic: the mean of the normal
// embeddings and, for Mahalanobis, the Cholesky factor of their shrunk
// covariance. It is immutable after Fit, so Score may be called
// concurrently.
type NormalModel struct {
	method    Method
	dim, rows int
	mean      []float64
	shrinkage float64
	// winv is L⁻¹ [dim*dim] row-major (lower triangle), where the shrunk
	// covariance is L·Lᵀ, so the squared Mahalanobis distance of d is
	// ||L⁻¹d||²: one triangular matrix-vector product per row.
	winv []float64
}

// Fit fits a NormalModel to rows embeddings of normal flows, x [rows*dim]
// row-major.
//
// The covariance is the maximum-likelihood one, S = (1/n)·Σ(x-μ)(x-μ)ᵀ (as
// in Ledoit and Wolf's paper and scikit-learn), shrunk toward a scaled
// identity: Σ_s = (1-λ)·S + λ·(tr(S)/d)·I. λ is shrinkage, in [0,1], or, for
// a negative shrinkage (see LedoitWolf), the Ledoit–Wolf estimate of the λ
// that minimises the expected squared Frobenius error of Σ_s. Shrinkage is
// ignored by Euclidean.
//
// Fit fails for fewer than 2 rows, non-finite input, or, for Mahalanobis, a
// zero covariance or a shrunk covariance that is singular or too ill
// conditioned (MaxCond): more shrinkage is the remedy.
func Fit(method Method, x []float32, rows, dim int, shrinkage float64) (*NormalModel, error) {
	switch method {
	case Euclidean, Mahalanobis:
	default:
		return nil, fmt.Errorf("detect: method %q, want %q or %q", method, Euclidean, Mahalanobis)
	}
	if dim < 1 {
		return nil, fmt.Errorf("detect: dim %d, want >= 1", dim)
	}
	if rows < 2 {
		return nil, fmt.Errorf("detect: %d normal rows, need at least 2", rows)
	}
	if len(x)%dim != 0 || len(x)/dim != rows {
		return nil, fmt.Errorf("detect: %d values for %d rows of width %d", len(x), rows, dim)
	}
	if math.IsNaN(shrinkage) || shrinkage > 1 {
		return nil, fmt.Errorf("detect: shrinkage %g, want in [0,1] or negative for Ledoit–Wolf", shrinkage)
	}
	if r, c, ok := nonFinite(x, dim); !ok {
		return nil, fmt.Errorf("detect: normal row %d, column %d is %g", r, c, x[r*dim+c])
	}
	m := &NormalModel{method: method, dim: dim, rows: rows, mean: make([]float64, dim)}
	for r := 0; r < rows; r++ {
		for j, v := range x[r*dim : (r+1)*dim] {
			m.mean[j] += float64(v)
		}
	}
	for j := range m.mean {
		m.mean[j] /= float64(rows)
	}
	if method == Euclidean {
		return m, nil
	}

	s, sum4 := m.covariance(x)
	d := float64(dim)
	mu := mat.Trace(s) / d
	if !(mu > 0) {
		return nil, fmt.Errorf("detect: %w", ErrNoVariance)
	}
	lambda := shrinkage
	if lambda < 0 {
		lambda = ledoitWolf(s, mu, sum4, rows)
	}
	m.shrinkage = lambda
	for i := 0; i < dim; i++ {
		for j := i; j < dim; j++ {
			v := (1 - lambda) * s.At(i, j)
			if i == j {
				v += lambda * mu
			}
			s.SetSym(i, j, v)
		}
	}
	var chol mat.Cholesky
	if ok := chol.Factorize(s); !ok || chol.Cond() > MaxCond {
		cond := math.Inf(1)
		if ok {
			cond = chol.Cond()
		}
		return nil, fmt.Errorf("detect: %w (condition number %.3g, shrinkage %g); use more shrinkage, e.g. 0.1, or Ledoit–Wolf (%g)",
			ErrIllConditioned, cond, lambda, LedoitWolf)
	}
	var l, li mat.TriDense
	chol.LTo(&l)
	if err := li.InverseTri(&l); err != nil {
		return nil, fmt.Errorf("detect: %w: inverting its factor: %v; use more shrinkage", ErrIllConditioned, err)
	}
	m.winv = make([]float64, dim*dim)
	for i := 0; i < dim; i++ {
		for j := 0; j <= i; j++ {
			m.winv[i*dim+j] = li.At(i, j)
		}
	}
	return m, nil
}

// covariance returns S = (1/n)·Σ(x-μ)(x-μ)ᵀ and Σ‖x-μ‖⁴ (for Ledoit–Wolf),
// from centred chunks of rows.
func (m *NormalModel) covariance(x []float32) (*mat.SymDense, float64) {
	d := m.dim
	s := mat.NewSymDense(d, nil)
	buf := make([]float64, min(fitChunk, m.rows)*d)
	var sum4 float64
	for lo := 0; lo < m.rows; lo += fitChunk {
		n := min(fitChunk, m.rows-lo)
		c := buf[:n*d]
		for i, v := range x[lo*d : (lo+n)*d] {
			c[i] = float64(v) - m.mean[i%d]
		}
		for r := 0; r < n; r++ {
			var sq float64
			for _, v := range c[r*d : (r+1)*d] {
				sq += v * v
			}
			sum4 += sq * sq
		}
		// S += Cᵀ·C for the chunk C [n, d].
		s.SymRankK(s, 1, mat.NewDense(n, d, c).T())
	}
	s.ScaleSym(1/float64(m.rows), s)
	return s, sum4
}

// ledoitWolf is the Ledoit–Wolf (2004) shrinkage intensity toward μ·I for
// the covariance s of n centred rows with Σ‖x_k‖⁴ = sum4:
//
//	δ = ‖S − μI‖²_F / d
//	β = (1/(d·n²))·Σ_k ‖x_k x_kᵀ − S‖²_F = (1/(d·n))·(sum4/n − ‖S‖²_F)
//	λ = min(β, δ) / δ   (0 when δ = 0: S is already the target)
//
// the same normalisation by d as scikit-learn's ledoit_wolf_shrinkage.
func ledoitWolf(s *mat.SymDense, mu, sum4 float64, n int) float64 {
	d := s.SymmetricDim()
	var fro2, delta float64
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			v := s.At(i, j)
			fro2 += v * v
			if i == j {
				v -= mu
			}
			delta += v * v
		}
	}
	delta /= float64(d)
	nf := float64(n)
	beta := (sum4/nf - fro2) / (float64(d) * nf)
	beta = max(beta, 0) // rounding can make a zero β slightly negative
	if delta == 0 {
		return 0
	}
	return min(beta, delta) / delta
}

// Method, Dim and Rows are what the model was fitted with.
func (m *NormalModel) Method() Method { return m.method }
func (m *NormalModel) Dim() int       { return m.dim }
func (m *NormalModel) Rows() int      { return m.rows }

// Shrinkage is the λ used (Ledoit–Wolf's estimate when Fit was asked for
// it); 0 for Euclidean.
func (m *NormalModel) Shrinkage() float64 { return m.shrinkage }

// Mean returns a copy of the mean normal embedding.
func (m *NormalModel) Mean() []float64 { return append([]float64(nil), m.mean...) }

// Score writes the anomaly score of each of the rows rows of x [rows*Dim]
// into out [rows]: the squared Euclidean or squared Mahalanobis distance to
// the normal mean; higher is less normal. Non-finite input is an error.
func (m *NormalModel) Score(x []float32, rows int, out []float64) error {
	d := m.dim
	if rows < 0 || len(x)%d != 0 || len(x)/d != rows || len(out) != rows {
		return fmt.Errorf("detect: score %d rows from %d values and %d outputs, want %d values of width %d and %d outputs",
			rows, len(x), len(out), max(rows, 0)*d, d, max(rows, 0))
	}
	if r, c, ok := nonFinite(x, d); !ok {
		return fmt.Errorf("detect: score row %d, column %d is %g", r, c, x[r*d+c])
	}
	// Rows go four at a time so each weight loaded serves four independent
	// accumulations.
	diff := make([]float64, 4*d)
	for r := 0; r < rows; r += 4 {
		n := min(4, rows-r)
		for k := 0; k < n; k++ {
			for j, v := range x[(r+k)*d : (r+k+1)*d] {
				diff[k*d+j] = float64(v) - m.mean[j]
			}
		}
		for k := n; k < 4; k++ {
			clear(diff[k*d : (k+1)*d])
		}
		var s [4]float64
		if m.winv == nil {
			for k := 0; k < n; k++ {
				s[k] = dot(diff[k*d:(k+1)*d], diff[k*d:(k+1)*d])
			}
		} else {
			s = m.mahalanobis4(diff)
		}
		copy(out[r:r+n], s[:n])
	}
	return nil
}

// mahalanobis4 returns ||L⁻¹d_k||² for the four rows d_k of diff [4*dim].
func (m *NormalModel) mahalanobis4(diff []float64) [4]float64 {
	d := m.dim
	d0, d1, d2, d3 := diff[:d], diff[d:2*d], diff[2*d:3*d], diff[3*d:4*d]
	var s [4]float64
	for i := 0; i < d; i++ {
		w := m.winv[i*d : i*d+i+1]
		a0, a1, a2, a3 := d0[:len(w)], d1[:len(w)], d2[:len(w)], d3[:len(w)] // drops bounds checks
		var z0, z1, z2, z3 float64
		for j, v := range w {
			z0 += v * a0[j]
			z1 += v * a1[j]
			z2 += v * a2[j]
			z3 += v * a3[j]
		}
		s[0] += z0 * z0
		s[1] += z1 * z1
		s[2] += z2 * z2
		s[3] += z3 * z3
	}
	return s
}

// dot is Σ a[i]·b[i] with four accumulators, so the additions overlap.
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// nonFinite returns the first NaN or infinite value of x as (row, column,
// false), or ok when there is none.
func nonFinite(x []float32, dim int) (row, col int, ok bool) {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i / dim, i % dim, false
		}
	}
	return 0, 0, true
}

func checkScores(scores []float64) error {
	if len(scores) == 0 {
		return errors.New("detect: no scores")
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return fmt.Errorf("detect: score %d is NaN", i)
		}
	}
	return nil
}

// ThresholdAtFAR returns the smallest threshold whose false-alarm rate on
// normalScores, the fraction with score > threshold, is at most far, for far
// in [0,1). It is always one of the scores: with n scores it is the
// (n−k)-th smallest, k = ⌊far·n⌋ (up to rounding of far·n), so at most k
// scores exceed it; ties can make the rate lower than far.
func ThresholdAtFAR(normalScores []float64, far float64) (float64, error) {
	if err := checkScores(normalScores); err != nil {
		return 0, err
	}
	if !(far >= 0 && far < 1) {
		return 0, fmt.Errorf("detect: false-alarm rate %g, want in [0,1)", far)
	}
	n := len(normalScores)
	// The small slack keeps e.g. 0.29·100 = 28.999999999999996 at 29 alarms.
	k := min(int(math.Floor(far*float64(n)+1e-9)), n-1)
	s := append([]float64(nil), normalScores...)
	sort.Float64s(s)
	return s[n-1-k], nil
}

// ThresholdBestF1 returns the threshold that maximises the F1 score of
// flagging attacks (attack[i] true) by score > threshold, and that F1.
// Candidates are every distinct score and, for flagging every row, the
// largest float below the smallest score (unless that is −Inf, which no
// threshold flags). F1 is compared exactly, as the
// fraction 2TP/(2TP+FP+FN); among equal F1 the largest threshold (fewest
// alarms) wins.
func ThresholdBestF1(scores []float64, attack []bool) (float64, float64, error) {
	if len(scores) != len(attack) {
		return 0, 0, fmt.Errorf("detect: %d scores but %d labels", len(scores), len(attack))
	}
	if err := checkScores(scores); err != nil {
		return 0, 0, err
	}
	pos := 0
	for _, a := range attack {
		if a {
			pos++
		}
	}
	if pos == 0 {
		return 0, 0, errors.New("detect: best F1 needs at least one attack")
	}
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })

	// Sweep thresholds from the largest score down; before group g (the
	// rows tied at the g-th largest score) is flagged, the threshold is
	// that group's score.
	var tp, fp int64
	bestNum, bestDen := int64(0), int64(1)
	best := scores[idx[0]]
	for i := 0; ; {
		var th float64
		if i < len(idx) {
			th = scores[idx[i]]
		} else {
			lo := scores[idx[len(idx)-1]]
			if math.IsInf(lo, -1) {
				break // no threshold flags a -Inf score
			}
			th = math.Nextafter(lo, math.Inf(-1))
		}
		num, den := 2*tp, 2*tp+fp+(int64(pos)-tp)
		if num*bestDen > bestNum*den {
			bestNum, bestDen, best = num, den, th
		}
		if i == len(idx) {
			break
		}
		for ; i < len(idx) && scores[idx[i]] == th; i++ {
			if attack[idx[i]] {
				tp++
			} else {
				fp++
			}
		}
	}
	return best, float64(bestNum) / float64(bestDen), nil
}

// ROC is a ROC curve: false- and true-positive rates from (0,0) to (1,1),
// one point per distinct score (see eval.ROC).
type ROC struct {
	FPR []float64 `json:"fpr"`
	TPR []float64 `json:"tpr"`
}

// TypeResult is the detection of one attack type against all normal flows.
type TypeResult struct {
	Type          string  `json:"type"`
	N             int     `json:"n"`
	DetectionRate float64 `json:"detection_rate"` // fraction with score > threshold
	AUROC         float64 `json:"auroc"`          // this type's flows vs all normal flows
}

// Report is the evaluation of scores and a threshold on labelled flows.
type Report struct {
	AUROC          float64      `json:"auroc"` // attack (any type) vs normal
	Threshold      float64      `json:"threshold"`
	Normal         int          `json:"normal"`  // normal flows
	Attacks        int          `json:"attacks"` // attack flows of every type
	DetectionRate  float64      `json:"detection_rate"`
	FalseAlarmRate float64      `json:"false_alarm_rate"`
	F1             float64      `json:"f1"` // of flagging attacks
	ROC            ROC          `json:"roc"`
	PerType        []TypeResult `json:"per_type"` // sorted by type
}

// Evaluate scores a detector: labels[i] names the class of the flow with
// score scores[i], normal names normal traffic and every other label is an
// attack type. Flows are flagged when score > threshold. It needs at least
// one normal and one attack flow.
func Evaluate(scores []float64, labels []string, normal string, threshold float64) (*Report, error) {
	if len(scores) != len(labels) {
		return nil, fmt.Errorf("detect: %d scores but %d labels", len(scores), len(labels))
	}
	if err := checkScores(scores); err != nil {
		return nil, err
	}
	if math.IsNaN(threshold) {
		return nil, errors.New("detect: threshold is NaN")
	}
	attack := make([]bool, len(labels))
	var normalScores []float64
	byType := map[string][]float64{}
	var tp, fp int
	for i, l := range labels {
		flagged := scores[i] > threshold
		if l == normal {
			normalScores = append(normalScores, scores[i])
			if flagged {
				fp++
			}
			continue
		}
		attack[i] = true
		byType[l] = append(byType[l], scores[i])
		if flagged {
			tp++
		}
	}
	nNormal, nAttack := len(normalScores), len(scores)-len(normalScores)
	if nNormal == 0 {
		return nil, fmt.Errorf("detect: no flows labelled %q (normal)", normal)
	}
	if nAttack == 0 {
		return nil, errors.New("detect: no attack flows")
	}
	auroc, err := eval.AUROC(scores, attack)
	if err != nil {
		return nil, err
	}
	fpr, tpr, _ := eval.ROC(scores, attack)
	rep := &Report{
		AUROC: auroc, Threshold: threshold, Normal: nNormal, Attacks: nAttack,
		DetectionRate:  float64(tp) / float64(nAttack),
		FalseAlarmRate: float64(fp) / float64(nNormal),
		F1:             float64(2*tp) / float64(2*tp+fp+(nAttack-tp)),
		ROC:            ROC{FPR: fpr, TPR: tpr},
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	// One buffer of normal scores then this type's, reused per type.
	buf := append([]float64(nil), normalScores...)
	pos := make([]bool, nNormal, len(scores))
	for _, t := range types {
		ts := byType[t]
		s := append(buf[:nNormal], ts...)
		p := pos[:nNormal]
		hit := 0
		for _, v := range ts {
			p = append(p, true)
			if v > threshold {
				hit++
			}
		}
		a, err := eval.AUROC(s, p)
		if err != nil {
			return nil, fmt.Errorf("detect: %s: %v", t, err)
		}
		buf = s
		rep.PerType = append(rep.PerType, TypeResult{Type: t, N: len(ts), DetectionRate: float64(hit) / float64(len(ts)), AUROC: a})
	}
	return rep, nil
}
