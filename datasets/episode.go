package datasets

// Episode is one N-way K-shot Q-query task. Support and query rows are ordered
// way-major: rows [w*Shots, (w+1)*Shots) of the support set belong to way w,
// and SupportY/QueryY hold the way index (labels re-indexed 0..Ways-1).
// The buffers are owned by the episode and reused by Sampler.Next.
type Episode struct {
	Ways, Shots, Queries, Dim int

	SupportX []float32 // [Ways*Shots, Dim] row-major
	SupportY []int32   // [Ways*Shots]
	QueryX   []float32 // [Ways*Queries, Dim] row-major
	QueryY   []int32   // [Ways*Queries]

	// Classes[w] is the index, in the pool the episode was drawn from, of the
	// class that plays way w.
	Classes []int
	// NormalWay is the way played by normal traffic, or -1 when normal is not
	// one of the ways.
	NormalWay int
	// WayCategory[w] is the category of way w's class as an index into the
	// sampler's SamplerConfig.Categories, or -1 when that list does not name
	// it (or is empty). Auxiliary category heads learn from it.
	WayCategory []int32

	// Source and Rows say where the features came from, for learners that
	// keep a pool's matrix on a device and move only row numbers: Rows
	// [Ways*Shots + Ways*Queries] are the rows of Source (a pool's X,
	// row-major of width Dim) copied into SupportX and then QueryX. Source
	// is nil when the features are not, or no longer, those rows (synthetic
	// episodes, or ones perturbed in place); whoever changes the features
	// must clear it.
	Source []float32
	Rows   []int32
	// RowsOnly marks an episode drawn by a RowsOnly sampler: SupportX and
	// QueryX were not filled, and only Source and Rows say what the features
	// are. Learners that read features refuse such episodes.
	RowsOnly bool
}

// NewEpisode allocates the buffers of an episode of the given shape.
func NewEpisode(ways, shots, queries, dim int) *Episode {
	ep := &Episode{
		Ways: ways, Shots: shots, Queries: queries, Dim: dim,
		SupportX:    make([]float32, ways*shots*dim),
		SupportY:    make([]int32, ways*shots),
		QueryX:      make([]float32, ways*queries*dim),
		QueryY:      make([]int32, ways*queries),
		Classes:     make([]int, ways),
		NormalWay:   -1,
		WayCategory: make([]int32, ways),
		Rows:        make([]int32, ways*(shots+queries)),
	}
	for w := range ep.WayCategory {
		ep.WayCategory[w] = -1
	}
	return ep
}

// Batch is a meta-batch: episodes of one shape, trained on together.
type Batch []*Episode
