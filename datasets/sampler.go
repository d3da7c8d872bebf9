package datasets

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// SamplerConfig is the shape of the episodes a Sampler draws and how it draws
// them.
type SamplerConfig struct {
	Ways, Shots, Queries int
	// MetaBatch is the number of episodes in a Batch.
	MetaBatch int

	// NormalWay makes normal traffic one of the ways of every episode, at a
	// random way position. The normal class is the one named NormalClass
	// ("normal" when empty).
	NormalWay   bool
	NormalClass string

	// Replacement allows classes with fewer than Shots+Queries records: their
	// rows are drawn independently with replacement (so support and query may
	// share rows). Larger classes are still drawn without replacement.
	Replacement bool

	// Categories, when not empty, is the category list that
	// Episode.WayCategory indexes; give every sampler of a run the same list
	// so that indices agree across pools.
	Categories []string

	// RowsOnly leaves the features out: episodes get their labels, classes
	// and Rows (Source set, RowsOnly marked) but not SupportX and QueryX,
	// for a learner that reads the rows from the pool's matrix on its
	// device. Copying the scattered rows is most of the sampler's work.
	// The draws are those of a sampler without it.
	RowsOnly bool

	// Seed and Stream seed the PCG generator; the same config over the same
	// pool gives the same episodes.
	Seed, Stream uint64
}

// DefaultNormalClass is the normal class of a SamplerConfig whose NormalClass
// is empty.
const DefaultNormalClass = "normal"

// Sampler draws episodes from a pool. A Sampler is not safe for concurrent
// use; Fork gives one per worker.
type Sampler struct {
	pool *Pool
	cfg  SamplerConfig
	rng  *rand.Rand

	// rows[c] is a private copy of class c's rows, permuted in place by the
	// partial Fisher–Yates draws. Classes drawn with replacement are never
	// permuted and share the pool's slice.
	rows    [][]int32
	withRep []bool
	// cands are the classes the ways are drawn from (all but the normal class
	// when NormalWay), permuted in place like rows.
	cands  []int
	normal int // pool index of the normal class, or -1
	// category[c] is class c's index in cfg.Categories, or -1.
	category []int32

	pick []int32 // the rows drawn for the current episode, way-major
	sink float32 // keeps touch's loads from being optimised away
}

// MaxBatchBytes caps BatchBytes for a Sampler: NewSampler refuses an
// episode shape whose meta-batch would take more (16 GiB), so that absurd
// sizes, including those whose products overflow an int, are an error and
// not a panic or an out-of-memory death in NewBatch.
const MaxBatchBytes = 16 << 30

// MinEncodedDim is the fewest features a record file can encode to: every
// categorical feature has at least one value and the column for unknown
// ones. Checks made before the data is read use it as a lower bound.
const MinEncodedDim = NumNumeric + 2*len(CategoricalFields)

// BatchBytes is the memory that NewBatch allocates for metaBatch episodes
// of the given shape with dim features: per support and query row, dim
// float32 features, a label and a row number (int32). It is computed in
// float64, so that no size overflows.
func BatchBytes(ways, shots, queries, metaBatch, dim int) float64 {
	rows := float64(ways) * (float64(shots) + float64(queries))
	return float64(metaBatch) * rows * (4*float64(dim) + 8)
}

// ErrBatchTooLarge is matched (errors.Is) by NewSampler's error about a
// meta-batch above MaxBatchBytes, so that a caller can name its settings.
var ErrBatchTooLarge = errors.New("meta-batch too large")

// NewSampler checks cfg against the pool and returns a sampler.
func NewSampler(p *Pool, cfg SamplerConfig) (*Sampler, error) {
	if p == nil {
		return nil, errors.New("sampler: nil pool")
	}
	switch {
	case cfg.Ways < 1:
		return nil, fmt.Errorf("sampler: Ways must be at least 1 (got %d)", cfg.Ways)
	case cfg.Shots < 1:
		return nil, fmt.Errorf("sampler: Shots must be at least 1 (got %d)", cfg.Shots)
	case cfg.Queries < 0:
		return nil, fmt.Errorf("sampler: Queries must not be negative (got %d)", cfg.Queries)
	case cfg.MetaBatch < 1:
		return nil, fmt.Errorf("sampler: MetaBatch must be at least 1 (got %d)", cfg.MetaBatch)
	}
	if p.Dim < 1 {
		return nil, fmt.Errorf("sampler: pool Dim must be at least 1 (got %d)", p.Dim)
	}
	if len(p.X)%p.Dim != 0 {
		return nil, fmt.Errorf("sampler: pool X has %d values, not a multiple of Dim %d", len(p.X), p.Dim)
	}
	if b := BatchBytes(cfg.Ways, cfg.Shots, cfg.Queries, cfg.MetaBatch, p.Dim); b > MaxBatchBytes {
		return nil, errorOf(fmt.Sprintf("sampler: a meta-batch of %d %d-way %d-shot %d-query episodes of %d features takes %.4g GiB, more than MaxBatchBytes (%d GiB)",
			cfg.MetaBatch, cfg.Ways, cfg.Shots, cfg.Queries, p.Dim, b/(1<<30), MaxBatchBytes>>30), ErrBatchTooLarge)
	}
	if cfg.Ways > len(p.Classes) {
		have := "none"
		if len(p.Classes) > 0 {
			have = fmt.Sprintf("%d: %s", len(p.Classes), nameList(classNames(p.Classes), 20))
		}
		return nil, tooFewClasses("sampler: %d-way episodes need at least %d classes; the pool has %s",
			cfg.Ways, cfg.Ways, have)
	}
	if cfg.NormalClass == "" {
		cfg.NormalClass = DefaultNormalClass
	}
	normal := p.ClassIndex(cfg.NormalClass)
	if cfg.NormalWay && normal < 0 {
		return nil, errorOf(fmt.Sprintf("sampler: normal traffic is to be a way of every episode, but the pool has no class %q; it has %s",
			cfg.NormalClass, nameList(classNames(p.Classes), 20)), ErrNoNormalClass)
	}

	need := cfg.Shots + cfg.Queries
	nrows := len(p.X) / p.Dim
	var empty []string
	var small []Class
	for _, c := range p.Classes {
		if len(c.Rows) == 0 {
			empty = append(empty, c.Name)
			continue
		}
		for _, r := range c.Rows {
			if r < 0 || int(r) >= nrows {
				return nil, fmt.Errorf("sampler: class %q has row %d outside the pool matrix (%d rows)", c.Name, r, nrows)
			}
		}
		if len(c.Rows) < need {
			small = append(small, c)
		}
	}
	if len(empty) == 1 {
		return nil, fmt.Errorf("sampler: class %q has no records", empty[0])
	}
	if len(empty) > 1 {
		return nil, fmt.Errorf("sampler: %d classes have no records: %s", len(empty), nameList(quoted(empty), 8))
	}
	if len(small) > 0 && !cfg.Replacement {
		shape := fmt.Sprintf("%d-shot %d-query episodes need %d", cfg.Shots, cfg.Queries, need)
		if len(small) == 1 {
			return nil, fmt.Errorf("sampler: class %q has %d records; %s (set Replacement to sample with replacement)",
				small[0].Name, len(small[0].Rows), shape)
		}
		list := make([]string, len(small))
		for i, c := range small {
			list[i] = fmt.Sprintf("%q (%d)", c.Name, len(c.Rows))
		}
		return nil, fmt.Errorf("sampler: %d classes have too few records: %s; %s (set Replacement to sample with replacement)",
			len(small), nameList(list, 8), shape)
	}
	return newSampler(p, cfg, normal), nil
}

// newSampler builds a sampler from a checked config.
func newSampler(p *Pool, cfg SamplerConfig, normal int) *Sampler {
	need := cfg.Shots + cfg.Queries
	s := &Sampler{
		pool:    p,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(mix64(cfg.Seed), mix64(cfg.Stream))),
		rows:    make([][]int32, len(p.Classes)),
		withRep: make([]bool, len(p.Classes)),
		normal:  normal,
		pick:    make([]int32, cfg.Ways*need),
	}
	s.category = make([]int32, len(p.Classes))
	for i, c := range p.Classes {
		s.category[i] = int32(slices.Index(cfg.Categories, c.Category))
	}
	for i, c := range p.Classes {
		if len(c.Rows) < need {
			s.withRep[i] = true
			s.rows[i] = c.Rows
		} else {
			s.rows[i] = append([]int32(nil), c.Rows...)
		}
		if !(cfg.NormalWay && i == normal) {
			s.cands = append(s.cands, i)
		}
	}
	return s
}

// Config returns the sampler's config, defaults filled in.
func (s *Sampler) Config() SamplerConfig { return s.cfg }

// Pool returns the pool the sampler draws from.
func (s *Sampler) Pool() *Pool { return s.pool }

// NewEpisode allocates an episode of the sampler's shape.
func (s *Sampler) NewEpisode() *Episode {
	return NewEpisode(s.cfg.Ways, s.cfg.Shots, s.cfg.Queries, s.pool.Dim)
}

// NewBatch allocates MetaBatch episodes of the sampler's shape.
func (s *Sampler) NewBatch() Batch {
	b := make(Batch, s.cfg.MetaBatch)
	for i := range b {
		b[i] = s.NewEpisode()
	}
	return b
}

// Next draws an episode into ep, whose shape must match the sampler's. It
// does not allocate.
func (s *Sampler) Next(ep *Episode) error {
	if err := s.checkEpisode(ep); err != nil {
		return err
	}
	s.fill(ep)
	return nil
}

// NextBatch draws a meta-batch of independent episodes into b, which must
// hold MetaBatch episodes of the sampler's shape.
func (s *Sampler) NextBatch(b Batch) error {
	if len(b) != s.cfg.MetaBatch {
		return fmt.Errorf("sampler: batch has %d episodes; MetaBatch is %d", len(b), s.cfg.MetaBatch)
	}
	// Check all before drawing any, so that a bad batch leaves the RNG as it was.
	for i, ep := range b {
		if err := s.checkEpisode(ep); err != nil {
			return fmt.Errorf("batch episode %d: %w", i, err)
		}
	}
	for _, ep := range b {
		s.fill(ep)
	}
	return nil
}

// Fork returns n samplers with the same pool and shape and distinct streams,
// for parallel workers. The children's Streams are derived from the parent's
// Seed and Stream only, not from how far the parent has drawn, so Fork(n)
// always gives the same children and each child equals
// NewSampler(pool, child.Config()).
func (s *Sampler) Fork(n int) []*Sampler {
	if n <= 0 {
		return nil
	}
	out := make([]*Sampler, n)
	state := mix64(s.cfg.Seed) ^ s.cfg.Stream
	for i := range out {
		// SplitMix64: successive states a golden-ratio step apart, hashed.
		state += 0x9e3779b97f4a7c15
		cfg := s.cfg
		cfg.Stream = mix64(state)
		out[i] = newSampler(s.pool, cfg, s.normal)
	}
	return out
}

func (s *Sampler) checkEpisode(ep *Episode) error {
	if ep == nil {
		return errors.New("sampler: nil episode")
	}
	c := &s.cfg
	dim := s.pool.Dim
	if ep.Ways != c.Ways || ep.Shots != c.Shots || ep.Queries != c.Queries || ep.Dim != dim {
		return fmt.Errorf("sampler: episode is %d-way %d-shot %d-query with Dim %d; the sampler draws %d-way %d-shot %d-query with Dim %d",
			ep.Ways, ep.Shots, ep.Queries, ep.Dim, c.Ways, c.Shots, c.Queries, dim)
	}
	ns, nq := c.Ways*c.Shots, c.Ways*c.Queries
	switch {
	case len(ep.SupportX) != ns*dim:
		return fmt.Errorf("sampler: episode SupportX has %d values; its shape needs %d", len(ep.SupportX), ns*dim)
	case len(ep.SupportY) != ns:
		return fmt.Errorf("sampler: episode SupportY has %d labels; its shape needs %d", len(ep.SupportY), ns)
	case len(ep.QueryX) != nq*dim:
		return fmt.Errorf("sampler: episode QueryX has %d values; its shape needs %d", len(ep.QueryX), nq*dim)
	case len(ep.QueryY) != nq:
		return fmt.Errorf("sampler: episode QueryY has %d labels; its shape needs %d", len(ep.QueryY), nq)
	case len(ep.Classes) != c.Ways:
		return fmt.Errorf("sampler: episode Classes has %d entries; its shape needs %d", len(ep.Classes), c.Ways)
	case len(ep.WayCategory) != c.Ways:
		return fmt.Errorf("sampler: episode WayCategory has %d entries; its shape needs %d", len(ep.WayCategory), c.Ways)
	case len(ep.Rows) != ns+nq:
		return fmt.Errorf("sampler: episode Rows has %d entries; its shape needs %d", len(ep.Rows), ns+nq)
	}
	return nil
}

// fill draws one episode into a checked ep.
func (s *Sampler) fill(ep *Episode) {
	ways := s.cfg.Ways
	free, pos := ways, -1
	if s.cfg.NormalWay {
		pos = s.rng.IntN(ways)
		free--
	}
	// Partial Fisher–Yates: the first free candidates become a uniform
	// ordered sample whatever order earlier draws left them in.
	cands := s.cands
	for i := range free {
		j := i + s.rng.IntN(len(cands)-i)
		cands[i], cands[j] = cands[j], cands[i]
	}
	ep.NormalWay = -1
	need := s.cfg.Shots + s.cfg.Queries
	k := 0
	for w := range ways {
		var cls int
		if w == pos {
			cls = s.normal
		} else {
			cls = cands[k]
			k++
		}
		ep.Classes[w] = cls
		ep.WayCategory[w] = s.category[cls]
		if cls == s.normal {
			ep.NormalWay = w
		}
		s.drawRows(s.pick[w*need:(w+1)*need], cls)
	}
	if !s.cfg.RowsOnly {
		s.touch()
	}
	s.copyRows(ep)
}

// drawRows draws len(pick) rows of class cls.
func (s *Sampler) drawRows(pick []int32, cls int) {
	rows := s.rows[cls]
	if s.withRep[cls] {
		for k := range pick {
			pick[k] = rows[s.rng.IntN(len(rows))]
		}
		return
	}
	for k := range pick {
		j := k + s.rng.IntN(len(rows)-k)
		rows[k], rows[j] = rows[j], rows[k]
		pick[k] = rows[k]
	}
}

// touch reads one value per cache line of every picked row before any is
// copied. The rows are scattered over a matrix far larger than the caches;
// these loads are independent, so their misses overlap, where row-by-row
// copies would wait for each row in turn.
func (s *Sampler) touch() {
	x, dim := s.pool.X, s.pool.Dim
	var acc float32
	for _, r := range s.pick {
		row := x[int(r)*dim : (int(r)+1)*dim]
		for i := 0; i < len(row); i += 16 {
			acc += row[i]
		}
		acc += row[len(row)-1]
	}
	s.sink = acc
}

// copyRows copies the picked rows into ep (but for RowsOnly), way-major:
// of each way's picks the first Shots are support and the rest query; it
// records them in Rows.
func (s *Sampler) copyRows(ep *Episode) {
	ep.Source, ep.RowsOnly = s.pool.X, s.cfg.RowsOnly
	shots, queries, dim := s.cfg.Shots, s.cfg.Queries, ep.Dim
	need := shots + queries
	x := s.pool.X
	for w := range ep.Ways {
		pick := s.pick[w*need : (w+1)*need]
		for k, r := range pick {
			if k < shots {
				i := w*shots + k
				if !ep.RowsOnly {
					copy(ep.SupportX[i*dim:(i+1)*dim], x[int(r)*dim:(int(r)+1)*dim])
				}
				ep.SupportY[i] = int32(w)
				ep.Rows[i] = r
			} else {
				i := w*queries + k - shots
				if !ep.RowsOnly {
					copy(ep.QueryX[i*dim:(i+1)*dim], x[int(r)*dim:(int(r)+1)*dim])
				}
				ep.QueryY[i] = int32(w)
				ep.Rows[ep.Ways*shots+i] = r
			}
		}
	}
}

// mix64 is the SplitMix64 finalizer, a bijection that spreads nearby seeds
// (0, 1, 2, ...) over unrelated generator states.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func classNames(cs []Class) []string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return names
}

func quoted(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return q
}

// nameList joins up to max items, then says how many it left out.
func nameList(items []string, max int) string {
	if len(items) == 0 {
		return "no classes"
	}
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:max], ", "), len(items)-max)
}
