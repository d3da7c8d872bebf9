package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/metaids/metaids/datasets"
)

// Synthetic draws episodes from seeded Gaussian classes, for benchmarks and
// tests that must not depend on a data set. Class c has a random mean in the
// first Informative dimensions; every dimension gets unit noise and the
// remaining (nuisance) dimensions get Nuisance-scaled noise, so a learned
// encoder can beat raw nearest-centroid by discounting them.
type Synthetic struct {
	Dim, Informative int
	Nuisance         float64
	means            [][]float32
	rng              *rand.Rand
}

// NewSynthetic makes classes Gaussian classes of dimension dim.
func NewSynthetic(classes, dim, informative int, separation, nuisance float64, seed uint64) (*Synthetic, error) {
	if classes < 2 || dim < 1 || informative < 1 || informative > dim {
		return nil, fmt.Errorf("synthetic: classes=%d dim=%d informative=%d, want classes >= 2 and 1 <= informative <= dim", classes, dim, informative)
	}
	s := &Synthetic{Dim: dim, Informative: informative, Nuisance: nuisance, rng: rand.New(rand.NewPCG(seed, 0x73796e7468))}
	for c := 0; c < classes; c++ {
		m := make([]float32, dim)
		for j := 0; j < informative; j++ {
			m[j] = float32(s.rng.NormFloat64() * separation)
		}
		s.means = append(s.means, m)
	}
	return s, nil
}

// Classes is the number of classes.
func (s *Synthetic) Classes() int { return len(s.means) }

// Fill overwrites ep with a fresh episode whose ways are distinct classes
// drawn from [lo, hi). Way w plays class ep.Classes[w].
func (s *Synthetic) Fill(ep *datasets.Episode, lo, hi int) error {
	if ep.Dim != s.Dim || hi-lo < ep.Ways || lo < 0 || hi > len(s.means) {
		return fmt.Errorf("synthetic: cannot draw a %d-way dim-%d episode from classes [%d,%d) of %d (dim %d)", ep.Ways, ep.Dim, lo, hi, len(s.means), s.Dim)
	}
	perm := s.rng.Perm(hi - lo)
	for w := 0; w < ep.Ways; w++ {
		ep.Classes[w] = lo + perm[w]
	}
	ep.NormalWay = -1
	ep.Source, ep.RowsOnly = nil, false
	fill := func(x []float32, y []int32, per int) {
		for w := 0; w < ep.Ways; w++ {
			mean := s.means[ep.Classes[w]]
			for i := 0; i < per; i++ {
				r := w*per + i
				y[r] = int32(w)
				row := x[r*s.Dim : (r+1)*s.Dim]
				for j := range row {
					sd := 1.0
					if j >= s.Informative {
						sd = s.Nuisance
					}
					row[j] = mean[j] + float32(s.rng.NormFloat64()*sd)
				}
			}
		}
	}
	fill(ep.SupportX, ep.SupportY, ep.Shots)
	fill(ep.QueryX, ep.QueryY, ep.Queries)
	return nil
}
