package datasets

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testPool builds a pool with one class per name, of the given sizes, whose
// rows are interleaved through X. Row r holds (class, r, 7r+2, 7r+3, ...), so
// a test can tell from a copied row exactly which matrix row it came from.
func testPool(t testing.TB, dim int, names []string, sizes []int) *Pool {
	t.Helper()
	if dim < 2 || len(names) != len(sizes) {
		t.Fatalf("testPool: dim %d, %d names, %d sizes", dim, len(names), len(sizes))
	}
	var owner []int
	for c, n := range sizes {
		for range n {
			owner = append(owner, c)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(owner), func(i, j int) { owner[i], owner[j] = owner[j], owner[i] })
	p := &Pool{Dim: dim, X: make([]float32, len(owner)*dim)}
	for _, n := range names {
		p.Classes = append(p.Classes, Class{Name: n, Category: "test"})
	}
	for r, c := range owner {
		row := p.X[r*dim : (r+1)*dim]
		row[0], row[1] = float32(c), float32(r)
		for j := 2; j < dim; j++ {
			row[j] = float32(7*r + j)
		}
		p.Classes[c].Rows = append(p.Classes[c].Rows, int32(r))
	}
	return p
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%02d", i)
	}
	return out
}

func sizes(n, size int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = size
	}
	return out
}

// rowID returns the matrix row a copied row came from, checking that the copy
// is exact.
func rowID(t testing.TB, p *Pool, x []float32) int {
	t.Helper()
	r := int(x[1])
	if r < 0 || (r+1)*p.Dim > len(p.X) || !slices.Equal(x, p.X[r*p.Dim:(r+1)*p.Dim]) {
		t.Fatalf("copied row %v is not a row of the pool", x[:2])
	}
	return r
}

// checkEpisode verifies an episode against its sampler's config and pool and
// returns, way-major, the matrix rows of its support and query sets.
func checkEpisode(t testing.TB, s *Sampler, ep *Episode) (support, query []int) {
	t.Helper()
	p, cfg := s.Pool(), s.Config()
	if ep.Ways != cfg.Ways || ep.Shots != cfg.Shots || ep.Queries != cfg.Queries || ep.Dim != p.Dim {
		t.Fatalf("episode shape %d/%d/%d/%d", ep.Ways, ep.Shots, ep.Queries, ep.Dim)
	}
	need := cfg.Shots + cfg.Queries
	seenClass := map[int]bool{}
	normal := p.ClassIndex(cfg.NormalClass)
	wantNormal := -1
	for w, c := range ep.Classes {
		if c < 0 || c >= len(p.Classes) || seenClass[c] {
			t.Fatalf("way %d plays class %d (classes %v)", w, c, ep.Classes)
		}
		seenClass[c] = true
		if c == normal {
			wantNormal = w
		}
	}
	if ep.NormalWay != wantNormal {
		t.Fatalf("NormalWay %d, want %d (classes %v)", ep.NormalWay, wantNormal, ep.Classes)
	}
	if cfg.NormalWay && wantNormal < 0 {
		t.Fatalf("NormalWay set but normal is not a way (classes %v)", ep.Classes)
	}
	seenRow := map[int]bool{}
	take := func(x []float32, y int32, w int) int {
		if int(y) != w {
			t.Fatalf("label %d in way %d", y, w)
		}
		r := rowID(t, p, x)
		c := ep.Classes[w]
		if !slices.Contains(p.Classes[c].Rows, int32(r)) {
			t.Fatalf("way %d (class %d) holds row %d, not one of its rows", w, c, r)
		}
		if len(p.Classes[c].Rows) >= need {
			if seenRow[r] {
				t.Fatalf("row %d repeated in an episode drawn without replacement", r)
			}
			seenRow[r] = true
		}
		return r
	}
	d := p.Dim
	for i := range ep.Ways * ep.Shots {
		support = append(support, take(ep.SupportX[i*d:(i+1)*d], ep.SupportY[i], i/ep.Shots))
	}
	for i := range ep.Ways * ep.Queries {
		query = append(query, take(ep.QueryX[i*d:(i+1)*d], ep.QueryY[i], i/ep.Queries))
	}
	return support, query
}

func mustSampler(t testing.TB, p *Pool, cfg SamplerConfig) *Sampler {
	t.Helper()
	s, err := NewSampler(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chi2 is Pearson's statistic of counts against a uniform expectation.
func chi2(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	e := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		x += (float64(c) - e) * (float64(c) - e) / e
	}
	return x
}

// chi2Bound is a loose upper bound for a chi-square with len-1 degrees of
// freedom: mean plus six standard deviations plus slack.
func chi2Bound(n int) float64 {
	df := float64(n - 1)
	return df + 6*math.Sqrt(2*df) + 10
}

func TestSamplerEpisodes(t *testing.T) {
	ns := append(names(7), "normal")
	p := testPool(t, 5, ns, []int{40, 25, 20, 100, 33, 21, 50, 60})
	for _, cfg := range []SamplerConfig{
		{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 1},
		{Ways: 5, Shots: 1, Queries: 0, MetaBatch: 1},
		{Ways: 1, Shots: 3, Queries: 2, MetaBatch: 1},
		{Ways: 8, Shots: 2, Queries: 3, MetaBatch: 1},
		{Ways: 3, Shots: 5, Queries: 15, MetaBatch: 1, NormalWay: true},
		{Ways: 1, Shots: 5, Queries: 15, MetaBatch: 1, NormalWay: true},
		{Ways: 8, Shots: 10, Queries: 10, MetaBatch: 1, NormalWay: true, Seed: 9},
	} {
		t.Run(fmt.Sprintf("%dw%ds%dq-normal=%v", cfg.Ways, cfg.Shots, cfg.Queries, cfg.NormalWay), func(t *testing.T) {
			s := mustSampler(t, p, cfg)
			ep := s.NewEpisode()
			for range 300 {
				if err := s.Next(ep); err != nil {
					t.Fatal(err)
				}
				checkEpisode(t, s, ep)
			}
		})
	}
}

func TestSamplerWayMajorLabels(t *testing.T) {
	p := testPool(t, 3, names(4), sizes(4, 30))
	s := mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1})
	ep := s.NewEpisode()
	if err := s.Next(ep); err != nil {
		t.Fatal(err)
	}
	if want := []int32{0, 0, 1, 1, 2, 2}; !slices.Equal(ep.SupportY, want) {
		t.Errorf("SupportY %v, want %v", ep.SupportY, want)
	}
	if want := []int32{0, 0, 0, 1, 1, 1, 2, 2, 2}; !slices.Equal(ep.QueryY, want) {
		t.Errorf("QueryY %v, want %v", ep.QueryY, want)
	}
	for i, y := range ep.SupportY {
		if got := int(ep.SupportX[i*3]); got != ep.Classes[y] {
			t.Errorf("support row %d is of class %d, way %d plays %d", i, got, y, ep.Classes[y])
		}
	}
	for i, y := range ep.QueryY {
		if got := int(ep.QueryX[i*3]); got != ep.Classes[y] {
			t.Errorf("query row %d is of class %d, way %d plays %d", i, got, y, ep.Classes[y])
		}
	}
}

func TestSamplerNormalWay(t *testing.T) {
	p := testPool(t, 2, []string{"a", "b", "benign", "c", "d", "e"}, sizes(6, 20))
	const n, ways = 20000, 4
	s := mustSampler(t, p, SamplerConfig{Ways: ways, Shots: 1, Queries: 1, MetaBatch: 1, NormalWay: true, NormalClass: "benign"})
	ep := s.NewEpisode()
	pos := make([]int, ways)
	for range n {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		checkEpisode(t, s, ep)
		if ep.NormalWay < 0 || ep.Classes[ep.NormalWay] != 2 {
			t.Fatalf("NormalWay %d, classes %v", ep.NormalWay, ep.Classes)
		}
		pos[ep.NormalWay]++
	}
	if x := chi2(pos); x > chi2Bound(ways) {
		t.Errorf("normal way positions %v: chi-square %.1f", pos, x)
	}

	// Without NormalWay the normal class is an ordinary class, but the
	// episode still says where it is.
	s = mustSampler(t, p, SamplerConfig{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 1, NormalClass: "benign"})
	ep = s.NewEpisode()
	with := 0
	const m = 6000
	for range m {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		checkEpisode(t, s, ep)
		if ep.NormalWay >= 0 {
			with++
		}
	}
	// normal is one of 2 ways drawn from 6 classes: P = 1/3.
	if f := float64(with) / m; math.Abs(f-1.0/3) > 0.03 {
		t.Errorf("normal drawn in %.3f of episodes, want about 1/3", f)
	}
}

func sameEpisode(a, b *Episode) bool {
	return a.Ways == b.Ways && a.Shots == b.Shots && a.Queries == b.Queries && a.Dim == b.Dim &&
		a.NormalWay == b.NormalWay && slices.Equal(a.Classes, b.Classes) &&
		slices.Equal(a.SupportX, b.SupportX) && slices.Equal(a.SupportY, b.SupportY) &&
		slices.Equal(a.QueryX, b.QueryX) && slices.Equal(a.QueryY, b.QueryY)
}

// draws returns copies of the next n episodes of s.
func draws(t testing.TB, s *Sampler, n int) []*Episode {
	t.Helper()
	out := make([]*Episode, n)
	for i := range out {
		out[i] = s.NewEpisode()
		if err := s.Next(out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameDraws(a, b []*Episode) bool {
	return slices.EqualFunc(a, b, sameEpisode)
}

func TestSamplerDeterminism(t *testing.T) {
	p := testPool(t, 4, append(names(9), "normal"), []int{50, 20, 31, 8, 44, 100, 25, 60, 22, 70})
	base := SamplerConfig{Ways: 4, Shots: 3, Queries: 7, MetaBatch: 1, NormalWay: true, Replacement: true, Seed: 42, Stream: 3}
	want := draws(t, mustSampler(t, p, base), 50)
	if got := draws(t, mustSampler(t, p, base), 50); !sameDraws(got, want) {
		t.Fatal("same config gave different episodes")
	}
	for _, tc := range []struct {
		name string
		edit func(*SamplerConfig)
	}{
		{"seed", func(c *SamplerConfig) { c.Seed++ }},
		{"stream", func(c *SamplerConfig) { c.Stream++ }},
		{"swapped", func(c *SamplerConfig) { c.Seed, c.Stream = c.Stream, c.Seed }},
	} {
		cfg := base
		tc.edit(&cfg)
		if got := draws(t, mustSampler(t, p, cfg), 50); sameDraws(got, want) {
			t.Errorf("changing the %s gave the same episodes", tc.name)
		}
	}
}

func TestSamplerFork(t *testing.T) {
	p := testPool(t, 3, names(12), sizes(12, 40))
	cfg := SamplerConfig{Ways: 5, Shots: 2, Queries: 3, MetaBatch: 1, Seed: 7, Stream: 1}
	parent := mustSampler(t, p, cfg)
	parentDraws := draws(t, parent, 20)

	// Forking after drawing gives the same children as forking at once.
	kids := parent.Fork(4)
	again := mustSampler(t, p, cfg).Fork(4)
	if len(kids) != 4 {
		t.Fatalf("Fork(4) gave %d samplers", len(kids))
	}
	streams := map[uint64]bool{cfg.Stream: true}
	var kidDraws [][]*Episode
	for i, k := range kids {
		kc := k.Config()
		if kc.Seed != cfg.Seed || kc.Ways != cfg.Ways || kc.Shots != cfg.Shots || kc.Queries != cfg.Queries {
			t.Errorf("child %d config %+v", i, kc)
		}
		if streams[kc.Stream] {
			t.Errorf("child %d reuses stream %d", i, kc.Stream)
		}
		streams[kc.Stream] = true
		d := draws(t, k, 20)
		if !sameDraws(d, draws(t, again[i], 20)) {
			t.Errorf("child %d differs between two forks", i)
		}
		if !sameDraws(d, draws(t, mustSampler(t, p, kc), 20)) {
			t.Errorf("child %d differs from a sampler built from its config", i)
		}
		if sameDraws(d, parentDraws) {
			t.Errorf("child %d repeats its parent", i)
		}
		for j, o := range kidDraws {
			if sameDraws(d, o) {
				t.Errorf("children %d and %d draw the same episodes", j, i)
			}
		}
		kidDraws = append(kidDraws, d)
	}

	// Children own their index copies: drawing from all at once is safe (run
	// with -race) and does not change what each draws.
	var wg sync.WaitGroup
	got := make([][]*Episode, len(kids))
	fresh := mustSampler(t, p, cfg).Fork(len(kids))
	for i, k := range fresh {
		wg.Go(func() {
			got[i] = make([]*Episode, 20)
			for j := range got[i] {
				got[i][j] = k.NewEpisode()
				if err := k.Next(got[i][j]); err != nil {
					panic(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range kids {
		if !sameDraws(got[i], kidDraws[i]) {
			t.Errorf("child %d drew differently in parallel", i)
		}
	}
	if parent.Fork(0) != nil {
		t.Error("Fork(0) should return nil")
	}
}

func TestSamplerConfigErrors(t *testing.T) {
	ok := SamplerConfig{Ways: 2, Shots: 5, Queries: 15, MetaBatch: 1}
	with := func(edit func(*SamplerConfig)) SamplerConfig {
		c := ok
		edit(&c)
		return c
	}
	abc := testPool(t, 3, []string{"a", "b", "c"}, sizes(3, 30))
	spy := testPool(t, 3, []string{"a", "normal", "spy"}, []int{30, 30, 2})
	many := testPool(t, 3, names(12), []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 50})
	ghost := testPool(t, 3, []string{"a", "b", "ghost"}, []int{30, 30, 0})
	badDim := testPool(t, 3, []string{"a", "b"}, sizes(2, 30))
	badDim.Dim = 0
	ragged := testPool(t, 3, []string{"a", "b"}, sizes(2, 30))
	ragged.X = ragged.X[:len(ragged.X)-1]
	outside := testPool(t, 3, []string{"a", "b"}, sizes(2, 30))
	outside.Classes[1].Rows = append(slices.Clip(outside.Classes[1].Rows), 60)

	for _, tc := range []struct {
		name string
		pool *Pool
		cfg  SamplerConfig
		want []string // substrings of the error
	}{
		{"nil pool", nil, ok, []string{"nil pool"}},
		{"ways", abc, with(func(c *SamplerConfig) { c.Ways = 0 }), []string{"Ways", "at least 1", "got 0"}},
		{"shots", abc, with(func(c *SamplerConfig) { c.Shots = 0 }), []string{"Shots", "at least 1"}},
		{"queries", abc, with(func(c *SamplerConfig) { c.Queries = -1 }), []string{"Queries", "negative", "-1"}},
		{"metabatch", abc, with(func(c *SamplerConfig) { c.MetaBatch = 0 }), []string{"MetaBatch", "at least 1"}},
		{"dim", badDim, ok, []string{"Dim", "got 0"}},
		{"ragged X", ragged, ok, []string{"179 values", "not a multiple of Dim 3"}},
		{"row outside", outside, ok, []string{`class "b"`, "row 60", "60 rows"}},
		{"too many ways", abc, with(func(c *SamplerConfig) { c.Ways = 5 }),
			[]string{"5-way episodes need at least 5 classes; the pool has 3: a, b, c"}},
		{"no classes", &Pool{Dim: 3}, ok, []string{"the pool has none"}},
		{"no normal", abc, with(func(c *SamplerConfig) { c.NormalWay = true }),
			[]string{"normal traffic is to be a way of every episode", `no class "normal"`, "a, b, c"}},
		{"no named normal", spy, with(func(c *SamplerConfig) { c.NormalWay = true; c.NormalClass = "benign"; c.Replacement = true }),
			[]string{`no class "benign"`}},
		{"small class", spy, ok,
			[]string{`class "spy" has 2 records; 5-shot 15-query episodes need 20 (set Replacement to sample with replacement)`}},
		{"small classes", many, with(func(c *SamplerConfig) { c.Shots, c.Queries = 1, 9 }),
			[]string{"9 classes have too few records", `"c00" (1)`, `"c07" (8)`, "and 1 more", "1-shot 9-query episodes need 10", "Replacement"}},
		{"empty class", ghost, ok, []string{`class "ghost" has no records`}},
		{"empty class with replacement", ghost, with(func(c *SamplerConfig) { c.Replacement = true }),
			[]string{`class "ghost" has no records`}},
		// Sizes whose products overflow an int, or whose meta-batch is
		// beyond MaxBatchBytes, are errors rather than panics or an
		// out-of-memory death in newSampler and NewBatch.
		{"shots+queries overflow", abc, with(func(c *SamplerConfig) { c.Shots, c.Queries = math.MaxInt, 1 }),
			[]string{"a meta-batch of 1 2-way 9223372036854775807-shot 1-query episodes of 3 features", "more than MaxBatchBytes (16 GiB)"}},
		{"ways×shots overflow", abc, with(func(c *SamplerConfig) { c.Shots, c.Queries, c.Replacement = math.MaxInt/2+1, 0, true }),
			[]string{"MaxBatchBytes"}},
		{"huge meta-batch", abc, with(func(c *SamplerConfig) { c.MetaBatch = 1_000_000_000 }),
			[]string{"a meta-batch of 1000000000 2-way 5-shot 15-query episodes of 3 features takes", "MaxBatchBytes"}},
		{"huge shots with replacement", abc, with(func(c *SamplerConfig) { c.Shots, c.Replacement = 1_000_000_000, true }),
			[]string{"MaxBatchBytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSampler(tc.pool, tc.cfg)
			if err == nil {
				t.Fatalf("no error; sampler %+v", s.Config())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			tooFew := tc.name == "too many ways" || tc.name == "no classes"
			if errors.Is(err, ErrTooFewClasses) != tooFew {
				t.Errorf("errors.Is(%q, ErrTooFewClasses) = %v, want %v", err, !tooFew, tooFew)
			}
			noNormal := strings.HasPrefix(tc.name, "no normal") || tc.name == "no named normal"
			if errors.Is(err, ErrNoNormalClass) != noNormal {
				t.Errorf("errors.Is(%q, ErrNoNormalClass) = %v, want %v", err, !noNormal, noNormal)
			}
			tooLarge := strings.Contains(err.Error(), "MaxBatchBytes")
			if errors.Is(err, ErrBatchTooLarge) != tooLarge {
				t.Errorf("errors.Is(%q, ErrBatchTooLarge) = %v, want %v", err, !tooLarge, tooLarge)
			}
		})
	}
}

func TestSamplerEpisodeMismatch(t *testing.T) {
	p := testPool(t, 3, names(4), sizes(4, 30))
	s := mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2})
	short := s.NewEpisode()
	short.QueryX = short.QueryX[:len(short.QueryX)-1]
	for _, tc := range []struct {
		name string
		ep   *Episode
		want string
	}{
		{"nil", nil, "nil episode"},
		{"ways", NewEpisode(2, 2, 3, 3), "episode is 2-way 2-shot 3-query with Dim 3; the sampler draws 3-way 2-shot 3-query with Dim 3"},
		{"dim", NewEpisode(3, 2, 3, 4), "with Dim 4"},
		{"buffer", short, "QueryX has 26 values; its shape needs 27"},
	} {
		if err := s.Next(tc.ep); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := s.NextBatch(Batch{s.NewEpisode()}); err == nil || !strings.Contains(err.Error(), "batch has 1 episodes; MetaBatch is 2") {
		t.Errorf("short batch: error %v", err)
	}
	if err := s.NextBatch(Batch{s.NewEpisode(), short}); err == nil || !strings.Contains(err.Error(), "batch episode 1") {
		t.Errorf("bad batch episode: error %v", err)
	}
}

func TestSamplerBatch(t *testing.T) {
	p := testPool(t, 3, names(6), sizes(6, 30))
	cfg := SamplerConfig{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 4, Seed: 5}
	s := mustSampler(t, p, cfg)
	b := s.NewBatch()
	if len(b) != 4 {
		t.Fatalf("NewBatch has %d episodes", len(b))
	}
	if err := s.NextBatch(b); err != nil {
		t.Fatal(err)
	}
	// A batch is the next MetaBatch episodes of the stream.
	want := draws(t, mustSampler(t, p, cfg), 4)
	for i, ep := range b {
		checkEpisode(t, s, ep)
		if !sameEpisode(ep, want[i]) {
			t.Errorf("batch episode %d differs from episode %d of the stream", i, i)
		}
	}
}

func TestSamplerReplacement(t *testing.T) {
	// "tiny" has 3 records for 20-record ways; the others have enough.
	p := testPool(t, 3, []string{"a", "b", "tiny"}, []int{25, 40, 3})
	s := mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 5, Queries: 15, MetaBatch: 1, Replacement: true})
	ep := s.NewEpisode()
	counts := map[int]int{}
	for range 2000 {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		// checkEpisode also checks that the large classes do not repeat rows.
		sup, qry := checkEpisode(t, s, ep)
		for w, c := range ep.Classes {
			if c != 2 {
				continue
			}
			for _, r := range sup[w*5 : (w+1)*5] {
				counts[r]++
			}
			for _, r := range qry[w*15 : (w+1)*15] {
				counts[r]++
			}
		}
	}
	if len(counts) != 3 {
		t.Fatalf("tiny class rows drawn: %v", counts)
	}
	var c []int
	for _, r := range p.Classes[2].Rows {
		c = append(c, counts[int(r)])
	}
	if x := chi2(c); x > chi2Bound(len(c)) {
		t.Errorf("tiny class row counts %v: chi-square %.1f", c, x)
	}
	// The pool's own rows are left as they were.
	if !slices.IsSorted(p.Classes[0].Rows) || !slices.IsSorted(p.Classes[2].Rows) {
		t.Error("sampling permuted the pool's row lists")
	}
}

func TestSamplerRowUniformity(t *testing.T) {
	// One 10-row class, 4 rows an episode: every (slot, row) pair is equally
	// likely, whatever state earlier partial shuffles left the rows in.
	const rows, n = 10, 40000
	p := testPool(t, 2, []string{"a"}, []int{rows})
	s := mustSampler(t, p, SamplerConfig{Ways: 1, Shots: 2, Queries: 2, MetaBatch: 1, Seed: 11})
	ep := s.NewEpisode()
	local := map[int]int{}
	for i, r := range p.Classes[0].Rows {
		local[int(r)] = i
	}
	counts := make([][]int, 4)
	for i := range counts {
		counts[i] = make([]int, rows)
	}
	pairs := make([]int, rows*rows)
	// Consecutive episodes are independent: the row in slot 0 is uniform
	// whatever the previous episode's slot 0 was.
	next := make([]int, rows*rows)
	prev := -1
	for range n {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		sup, qry := checkEpisode(t, s, ep)
		all := append(sup, qry...)
		for slot, r := range all {
			counts[slot][local[r]]++
		}
		pairs[local[all[0]]*rows+local[all[1]]]++
		if prev >= 0 {
			next[prev*rows+local[all[0]]]++
		}
		prev = local[all[0]]
	}
	for slot, c := range counts {
		if x := chi2(c); x > chi2Bound(rows) {
			t.Errorf("slot %d row counts %v: chi-square %.1f", slot, c, x)
		}
	}
	// Ordered pairs of distinct rows in the first two slots.
	var distinct []int
	for i, c := range pairs {
		if i/rows != i%rows {
			distinct = append(distinct, c)
		} else if c != 0 {
			t.Fatalf("row %d drawn twice in one episode", i%rows)
		}
	}
	if x := chi2(distinct); x > chi2Bound(len(distinct)) {
		t.Errorf("pair counts: chi-square %.1f over %d pairs", x, len(distinct))
	}
	if x := chi2(next); x > chi2Bound(len(next)) {
		t.Errorf("consecutive slot-0 counts: chi-square %.1f over %d pairs", x, len(next))
	}
}

func TestSamplerWayUniformity(t *testing.T) {
	const classes, ways, n = 7, 3, 35000
	p := testPool(t, 2, names(classes), sizes(classes, 5))
	s := mustSampler(t, p, SamplerConfig{Ways: ways, Shots: 1, Queries: 1, MetaBatch: 1, Seed: 3})
	ep := s.NewEpisode()
	counts := make([][]int, ways)
	for w := range counts {
		counts[w] = make([]int, classes)
	}
	for range n {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		for w, c := range ep.Classes {
			counts[w][c]++
		}
	}
	for w, c := range counts {
		if x := chi2(c); x > chi2Bound(classes) {
			t.Errorf("way %d class counts %v: chi-square %.1f", w, c, x)
		}
	}
}

func TestSamplerAllocs(t *testing.T) {
	p := testPool(t, 8, append(names(6), "normal"), []int{100, 30, 25, 2, 60, 45, 80})
	s := mustSampler(t, p, SamplerConfig{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 3, NormalWay: true, Replacement: true})
	ep := s.NewEpisode()
	if a := testing.AllocsPerRun(200, func() {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("Next allocates %v times per episode", a)
	}
	b := s.NewBatch()
	if a := testing.AllocsPerRun(100, func() {
		if err := s.NextBatch(b); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("NextBatch allocates %v times per batch", a)
	}
}

func TestSamplerWayCategory(t *testing.T) {
	p := testPool(t, 2, []string{"a", "b", "c", "d", "normal"}, sizes(5, 10))
	for i, cat := range []string{"dos", "probe", "dos", "u2r", "normal"} {
		p.Classes[i].Category = cat
	}
	if got, want := p.Categories(), []string{"dos", "normal", "probe", "u2r"}; !slices.Equal(got, want) {
		t.Fatalf("Categories() = %v, want %v", got, want)
	}

	// u2r is left out of the list: its ways get -1.
	vocab := []string{"normal", "dos", "probe"}
	want := map[string]int32{"dos": 1, "probe": 2, "u2r": -1, "normal": 0}
	s := mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 2, Queries: 2, MetaBatch: 1, Categories: vocab})
	ep := s.NewEpisode()
	seen := map[int32]bool{}
	for range 200 {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		for w, c := range ep.Classes {
			if got := ep.WayCategory[w]; got != want[p.Classes[c].Category] {
				t.Fatalf("way %d plays %s (%s): WayCategory %d, want %d", w, p.Classes[c].Name, p.Classes[c].Category, got, want[p.Classes[c].Category])
			}
			seen[ep.WayCategory[w]] = true
		}
	}
	if len(seen) != 4 {
		t.Errorf("saw categories %v in 200 episodes, want all of -1, 0, 1, 2", seen)
	}

	// Without a list every way is -1.
	s = mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 2, Queries: 2, MetaBatch: 1})
	if err := s.Next(ep); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ep.WayCategory, []int32{-1, -1, -1}) {
		t.Errorf("WayCategory without Categories = %v, want all -1", ep.WayCategory)
	}

	ep.WayCategory = ep.WayCategory[:2]
	if err := s.Next(ep); err == nil || !strings.Contains(err.Error(), "WayCategory") {
		t.Errorf("short WayCategory: error %v, want one naming WayCategory", err)
	}
}

func TestSamplerRecordsRows(t *testing.T) {
	p := testPool(t, 5, names(6), sizes(6, 12))
	s := mustSampler(t, p, SamplerConfig{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1, Seed: 9})
	ep := s.NewEpisode()
	for range 20 {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		if len(ep.Source) != len(p.X) || &ep.Source[0] != &p.X[0] {
			t.Fatal("Source is not the pool's matrix")
		}
		ns := ep.Ways * ep.Shots
		for i, r := range ep.Rows {
			x, row := ep.SupportX, i
			if i >= ns {
				x, row = ep.QueryX, i-ns
			}
			if !slices.Equal(x[row*p.Dim:(row+1)*p.Dim], p.X[int(r)*p.Dim:(int(r)+1)*p.Dim]) {
				t.Fatalf("row %d of the episode is not matrix row %d", i, r)
			}
		}
	}
	ep.Rows = ep.Rows[:3]
	if err := s.Next(ep); err == nil || !strings.Contains(err.Error(), "Rows") {
		t.Errorf("short Rows: %v", err)
	}
}

// TestSamplerRowsOnly draws with and without RowsOnly from the same seed:
// the same rows, labels and classes, the features left as they were and the
// episode marked; a full draw into the same episode clears the mark.
func TestSamplerRowsOnly(t *testing.T) {
	p := testPool(t, 5, append(names(6), "normal"), []int{12, 9, 30, 8, 15, 11, 40})
	cfg := SamplerConfig{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 2, NormalWay: true, Replacement: true, Seed: 5}
	full := mustSampler(t, p, cfg)
	cfg.RowsOnly = true
	rows := mustSampler(t, p, cfg)
	fb, rb := full.NewBatch(), rows.NewBatch()
	for _, ep := range rb {
		for i := range ep.SupportX {
			ep.SupportX[i] = -7
		}
	}
	for range 30 {
		if err := full.NextBatch(fb); err != nil {
			t.Fatal(err)
		}
		if err := rows.NextBatch(rb); err != nil {
			t.Fatal(err)
		}
		for i := range fb {
			f, r := fb[i], rb[i]
			if !slices.Equal(f.Rows, r.Rows) || !slices.Equal(f.SupportY, r.SupportY) || !slices.Equal(f.QueryY, r.QueryY) ||
				!slices.Equal(f.Classes, r.Classes) || f.NormalWay != r.NormalWay || !slices.Equal(f.WayCategory, r.WayCategory) {
				t.Fatalf("episode %d: RowsOnly drew other rows or labels than the full sampler", i)
			}
			if !r.RowsOnly || f.RowsOnly || &r.Source[0] != &p.X[0] {
				t.Fatalf("episode %d: RowsOnly %v (full %v), Source the pool's %v", i, r.RowsOnly, f.RowsOnly, &r.Source[0] == &p.X[0])
			}
			if r.SupportX[0] != -7 {
				t.Fatalf("episode %d: RowsOnly copied features", i)
			}
		}
	}
	if err := full.NextBatch(rb); err != nil {
		t.Fatal(err)
	}
	if rb[0].RowsOnly {
		t.Error("a full draw into a RowsOnly episode left it marked")
	}
}
