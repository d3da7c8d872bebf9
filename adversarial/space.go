// Package adversarial perturbs encoded query rows inside a budget (FGSM and
// PGD in the L∞ norm), mixes such rows into meta-training batches, and
// measures learners' accuracy and macro-F1 under attack.
//
// Budgets are in encoded units: with min-max scaling, eps = 0.05 lets each
// numeric feature move by 5% of its training range (after log1p).
// Perturbations only touch the columns a Space marks mutable and keep each
// within its training range; one-hot blocks never change. Values between
// those a column took are allowed, so a binary flag or a count may come out
// fractional: the threat model is a bounded move in feature space, not a
// replayable flow.
package adversarial

import (
	"fmt"
	"math"

	"github.com/metaids/metaids/datasets"
)

// Space says which encoded columns an attack may change and the range each
// may take: column j may change iff Mutable[j], and then stays in
// [Lo[j], Hi[j]].
//
// A clean value already outside [Lo[j], Hi[j]] (a test record beyond the
// training range) is a real value, so the range used for that coordinate is
// widened to include it: a perturbation never moves a value further out of
// range than the clean one was, and never by more than the budget.
type Space struct {
	Lo, Hi  []float32
	Mutable []bool
}

// Dim is the number of columns.
func (s Space) Dim() int { return len(s.Mutable) }

// Validate reports inconsistent lengths or ranges.
func (s Space) Validate() error {
	if len(s.Lo) != len(s.Mutable) || len(s.Hi) != len(s.Mutable) {
		return fmt.Errorf("adversarial: space has %d lower bounds, %d upper bounds and %d mutable flags", len(s.Lo), len(s.Hi), len(s.Mutable))
	}
	for j, m := range s.Mutable {
		if m && !(s.Lo[j] <= s.Hi[j]) {
			return fmt.Errorf("adversarial: column %d has range [%g, %g]", j, s.Lo[j], s.Hi[j])
		}
	}
	return nil
}

// ZScoreSpan is the upper end, in standard deviations above the encoding
// of a raw zero, that NewSpace allows a z-scored column when the training
// extremes are unknown. Use SpaceFromData for the exact training range.
const ZScoreSpan = 10

// NewSpace is the valid space of enc's encoding: the numeric columns
// [0, NumNumeric) are mutable, except constant ones (Scale 0, which always
// encode as 0); the one-hot blocks are immutable, since a perturbed one-hot
// vector is no category at all.
//
// With min-max scaling the training data maps exactly onto [0,1], which is
// the range. With z-score scaling the encoder keeps no training extremes:
// the lower bound is the encoding of a raw 0 (every KDD numeric feature is
// a non-negative count, rate or size, and log1p keeps 0 at 0), which is the
// training minimum whenever a column contains a zero; the upper bound is
// ZScoreSpan standard deviations above it. SpaceFromData is exact.
func NewSpace(enc *datasets.Encoder) Space {
	s := immutable(enc.Dim())
	for j := 0; j < datasets.NumNumeric; j++ {
		if enc.Scale[j] == 0 {
			continue
		}
		s.Mutable[j] = true
		if enc.Scaling == datasets.ZScore {
			lo := -enc.Offset[j] * enc.Scale[j]
			s.Lo[j], s.Hi[j] = float32(lo), float32(lo+ZScoreSpan)
		} else {
			s.Lo[j], s.Hi[j] = 0, 1
		}
	}
	return s
}

// SpaceFromData is NewSpace with each mutable numeric column's range set to
// the range of the encoded training matrix train (which enc was fitted on),
// exact for either scaling.
func SpaceFromData(enc *datasets.Encoder, train *datasets.Matrix) (Space, error) {
	s := NewSpace(enc)
	if train == nil || train.Dim != s.Dim() || train.Rows == 0 {
		return Space{}, fmt.Errorf("adversarial: training matrix does not match the encoder (dim %d)", s.Dim())
	}
	for j := 0; j < datasets.NumNumeric; j++ {
		if !s.Mutable[j] {
			continue
		}
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for i := 0; i < train.Rows; i++ {
			v := train.X[i*train.Dim+j]
			lo, hi = min(lo, v), max(hi, v)
		}
		s.Lo[j], s.Hi[j] = lo, hi
	}
	return s, nil
}

// Box is a space of dim columns, all mutable within [lo, hi] (e.g. for
// synthetic data).
func Box(dim int, lo, hi float32) Space {
	s := immutable(dim)
	for j := range s.Mutable {
		s.Mutable[j], s.Lo[j], s.Hi[j] = true, lo, hi
	}
	return s
}

func immutable(dim int) Space {
	return Space{Lo: make([]float32, dim), Hi: make([]float32, dim), Mutable: make([]bool, dim)}
}

// bounds is the interval coordinate j may take around the clean value c
// with budget eps: [c-eps, c+eps] ∩ [min(Lo,c), max(Hi,c)].
func (s Space) bounds(j int, c, eps float32) (lo, hi float32) {
	return max(c-eps, min(s.Lo[j], c)), min(c+eps, max(s.Hi[j], c))
}
