package adversarial

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/train"
)

// FGSM applies the fast gradient sign step to the rows x [rows*Dim] in
// place: every mutable coordinate moves by eps in the direction of the sign
// of its loss gradient g (a zero gradient leaves it), then is clipped to the
// space (see Space). It panics if the lengths do not match the space, which
// is a programming error.
func FGSM(x []float32, g []float32, eps float32, s Space) {
	mustFit(x, g, s)
	step(x, x, g, eps, eps, s)
}

// PGD runs projected gradient descent on the loss (ascent, as an attack) on
// ep.QueryX, in place: the L∞ ball of radius eps around the clean query
// rows, a uniform random start inside it (skipped when rng is nil), then
// steps steps of size alpha along the gradient's sign, each followed by the
// projection onto the ball ∩ the space. The clean rows are not restored:
// callers that need them copy ep (or its QueryX) first; ep.Source is
// cleared, as they are no longer the pool's. The support set is left alone.
func PGD(ctx context.Context, ig train.InputGradienter, ep *datasets.Episode, eps, alpha float32, steps int, s Space, rng *rand.Rand) error {
	if err := checkBudget(eps); err != nil {
		return err
	}
	if !(alpha >= 0) || steps < 0 {
		return fmt.Errorf("adversarial: PGD step size %g and %d steps, want >= 0", alpha, steps)
	}
	if err := fitsEpisode(ep, s); err != nil {
		return err
	}
	// The query rows stop being the pool's from the random start on: a
	// device-resident learner must take the gradient at the perturbed rows.
	ep.Source = nil
	x := ep.QueryX
	x0 := append([]float32(nil), x...)
	d := s.Dim()
	if rng != nil {
		for i, c := range x0 {
			j := i % d
			if !s.Mutable[j] {
				continue
			}
			lo, hi := s.bounds(j, c, eps)
			// Clamped, as lo + (hi-lo)*u may round past hi.
			x[i] = min(max(lo+(hi-lo)*rng.Float32(), lo), hi)
		}
	}
	g := make([]float32, len(x))
	for k := 0; k < steps; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := ig.QueryInputGrad(ep, g); err != nil {
			return err
		}
		step(x, x0, g, alpha, eps, s)
	}
	return nil
}

// AdversarialBatch replaces round(mix*Ways*Queries) randomly chosen query
// rows of each episode of b by their FGSM perturbation with budget eps, in
// place, for adversarial meta-training: the caller then passes b to
// MetaStep. The gradients come from ig at its current parameters, one
// clean query gradient per episode. rng may be nil only when mix is 0 or 1.
func AdversarialBatch(ig train.InputGradienter, b datasets.Batch, eps float32, s Space, mix float64, rng *rand.Rand) error {
	if err := checkBudget(eps); err != nil {
		return err
	}
	if !(mix >= 0 && mix <= 1) {
		return fmt.Errorf("adversarial: mix %g, want in [0,1]", mix)
	}
	// Scratch for every episode: the query gradient and the rows to perturb.
	var g []float32
	var rows []int
	for i, ep := range b {
		if err := fitsEpisode(ep, s); err != nil {
			return fmt.Errorf("episode %d: %w", i, err)
		}
		nq := len(ep.QueryY)
		k := int(math.Round(mix * float64(nq)))
		if k == 0 || eps == 0 {
			continue
		}
		if rng == nil && k < nq {
			return fmt.Errorf("adversarial: mixing %d of %d query rows needs a random source", k, nq)
		}
		g = slices.Grow(g[:0], len(ep.QueryX))[:len(ep.QueryX)]
		if _, err := ig.QueryInputGrad(ep, g); err != nil {
			return fmt.Errorf("episode %d: %w", i, err)
		}
		rows = slices.Grow(rows[:0], nq)[:nq]
		for r := range rows {
			rows[r] = r
		}
		if k < nq {
			// rng.Perm(nq)[:k], without allocating.
			rng.Shuffle(nq, func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		}
		d := ep.Dim
		for _, r := range rows[:k] {
			FGSM(ep.QueryX[r*d:(r+1)*d], g[r*d:(r+1)*d], eps, s)
		}
		ep.Source = nil // the query rows are no longer the pool's
	}
	return nil
}

// step moves x by alpha·sign(g) on the mutable coordinates and projects
// onto the eps-ball around x0 intersected with the space. x may alias x0.
func step(x, x0, g []float32, alpha, eps float32, s Space) {
	d := s.Dim()
	for i, c := range x0 {
		j := i % d
		if !s.Mutable[j] {
			continue
		}
		v := x[i]
		switch gi := g[i]; {
		case gi > 0:
			v += alpha
		case gi < 0:
			v -= alpha
		}
		lo, hi := s.bounds(j, c, eps)
		x[i] = min(max(v, lo), hi)
	}
}

func checkBudget(eps float32) error {
	if !(eps >= 0) || math.IsInf(float64(eps), 0) {
		return fmt.Errorf("adversarial: budget %g, want finite and >= 0", eps)
	}
	return nil
}

func mustFit(x, g []float32, s Space) {
	if d := s.Dim(); d == 0 || len(x)%d != 0 || len(g) != len(x) || len(s.Lo) != d || len(s.Hi) != d {
		panic(fmt.Sprintf("adversarial: %d values and %d gradients for a space of %d columns", len(x), len(g), d))
	}
}

func fitsEpisode(ep *datasets.Episode, s Space) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if ep == nil || ep.Dim != s.Dim() || len(ep.QueryX) != len(ep.QueryY)*ep.Dim {
		return fmt.Errorf("adversarial: episode does not match a space of %d columns", s.Dim())
	}
	if ep.RowsOnly {
		return fmt.Errorf("adversarial: episode carries row numbers only (a RowsOnly sampler's): no features to perturb")
	}
	return nil
}
