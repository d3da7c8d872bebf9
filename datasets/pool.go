package datasets

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// Pool is a set of classes whose records are rows of one encoded matrix.
// Episodes are drawn from a pool; class-disjoint splits are separate pools
// over the same matrix.
type Pool struct {
	Dim     int
	X       []float32 // [rows, Dim] row-major, shared by every class
	Classes []Class
}

// Class is one label of a pool and the matrix rows that carry it.
type Class struct {
	Name     string // the label, e.g. "neptune" (KDD Cup 99's trailing period removed)
	Category string // normal, dos, probe, r2l or u2r
	Rows     []int32
}

// ClassIndex returns the index of the named class, or -1.
func (p *Pool) ClassIndex(name string) int {
	for i, c := range p.Classes {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// Categories returns the distinct categories of the pool's classes, sorted.
func (p *Pool) Categories() []string {
	var out []string
	for _, c := range p.Classes {
		if !slices.Contains(out, c.Category) {
			out = append(out, c.Category)
		}
	}
	slices.Sort(out)
	return out
}

// PoolOptions choose the classes of a pool.
type PoolOptions struct {
	// MinRecords drops classes with fewer records (e.g. shots+queries).
	MinRecords int
	// Include, when not empty, keeps only these classes; each must occur.
	Include []string
	// Exclude drops these classes; each must occur.
	Exclude []string
}

// ErrTooFewClasses is matched (errors.Is) by the errors about a split or a
// pool with fewer classes than asked for, so that a caller can say which of
// its settings left classes out.
var ErrTooFewClasses = errors.New("too few classes")

// ErrNoNormalClass is matched by the error of NewSampler for a pool without
// the normal class when every episode is to have it as a way (NormalWay).
var ErrNoNormalClass = errors.New("no normal class")

// kindError is an error with its own message that errors.Is matches to
// the sentinels (ErrTooFewClasses, ...) saying what kind of error it is.
type kindError struct {
	msg   string
	kinds []error
}

func (e kindError) Error() string        { return e.msg }
func (e kindError) Is(target error) bool { return slices.Contains(e.kinds, target) }

// errorOf is a kindError of the given kinds.
func errorOf(msg string, kinds ...error) error { return kindError{msg, kinds} }

func tooFewClasses(format string, a ...any) error {
	return errorOf(fmt.Sprintf(format, a...), ErrTooFewClasses)
}

// ErrNotMetaTest is matched by the error of NovelAttackSplit for a class to
// leave out of meta-test (TestExclude) that is not a meta-test class.
var ErrNotMetaTest = errors.New("not a meta-test class")

// ErrValClassLeftOut is matched by the error of NovelAttackSplit for a
// meta-val class (ProtocolOptions.Val) that the pools leave out for having
// fewer than MinRecords records. It matches ErrTooFewClasses too, MinRecords
// being the setting that left it out.
var ErrValClassLeftOut = errors.New("meta-val class left out")

// Dropped is a class left out of a pool, and why.
type Dropped struct {
	Name    string
	Records int
	Reason  string
}

// NewPool groups the rows of an encoded file by label. Classes are sorted by
// name so that pools, and so episodes, do not depend on file order. It also
// returns the classes the options dropped.
func NewPool(r *Records, m *Matrix, cats Categories, opt PoolOptions) (*Pool, []Dropped, error) {
	if m.Rows != r.N {
		return nil, nil, fmt.Errorf("pool: %d encoded rows for %d records", m.Rows, r.N)
	}
	rows := make([][]int32, len(r.LabelNames))
	for i, l := range r.Label {
		rows[l] = append(rows[l], int32(i))
	}
	byName := make(map[string][]int32, len(rows))
	for l, name := range r.LabelNames {
		byName[name] = rows[l]
	}
	for _, list := range [][]string{opt.Include, opt.Exclude} {
		for _, n := range list {
			if _, ok := byName[n]; !ok {
				return nil, nil, fmt.Errorf("pool: class %q does not occur in %s", n, r.Name)
			}
		}
	}
	include := setOf(opt.Include)
	exclude := setOf(opt.Exclude)
	names := append([]string(nil), r.LabelNames...)
	sort.Strings(names)
	p := &Pool{Dim: m.Dim, X: m.X}
	var dropped []Dropped
	for _, n := range names {
		count := len(byName[n])
		switch {
		case len(include) > 0 && !include[n]:
			continue // not asked for: not reported as dropped
		case exclude[n]:
			dropped = append(dropped, Dropped{n, count, "excluded"})
		case count < opt.MinRecords:
			dropped = append(dropped, Dropped{n, count, fmt.Sprintf("fewer than %d records", opt.MinRecords)})
		default:
			cat, ok := cats[n]
			if !ok {
				return nil, nil, r.unmapped(slices.Index(r.LabelNames, n))
			}
			p.Classes = append(p.Classes, Class{Name: n, Category: cat, Rows: byName[n]})
		}
	}
	return p, dropped, nil
}

// NovelLabels lists, sorted, the labels of test that train lacks.
func NovelLabels(train, test *Records) []string {
	seen := setOf(train.LabelNames)
	var novel []string
	for _, n := range test.LabelNames {
		if !seen[n] {
			novel = append(novel, n)
		}
	}
	sort.Strings(novel)
	return novel
}

func setOf(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}
