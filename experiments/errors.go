package experiments

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/metaids/metaids/datasets"
)

// Error is one problem with a spec: where it is (file and line, or the
// --set override that caused it), the dotted key and what is wrong.
type Error struct {
	File     string
	Line     int    // 0 when unknown or when Override is set
	Override string // the --set argument the value came from, if any
	Key      string // dotted key, with [i] for list elements; may be empty
	Msg      string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	switch {
	case e.Override != "":
		b.WriteString(": --set ")
		b.WriteString(e.Override)
	case e.Line > 0:
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	// The override already names its key; repeating it adds nothing.
	if e.Key != "" && (e.Override == "" || !strings.HasPrefix(e.Override, e.Key+"=")) {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one spec file, in file order
// (problems caused by overrides last). Parse and Load return it.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// errorSet collects errors without repeats: a grid decodes the same nodes once
// per combination.
type errorSet struct {
	list ErrorList
	seen map[string]bool
	n    int // every error added, repeats included
}

func (c *errorSet) add(e *Error) {
	c.n++
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if k := e.Error(); !c.seen[k] {
		c.seen[k] = true
		c.list = append(c.list, e)
	}
}

func (c *errorSet) err() error {
	if len(c.list) == 0 {
		return nil
	}
	rank := func(e *Error) int {
		if e.Override != "" {
			return 1 << 30
		}
		return e.Line
	}
	sort.SliceStable(c.list, func(i, j int) bool { return rank(c.list[i]) < rank(c.list[j]) })
	return c.list
}

// suggestName returns the candidate closest to s by edit distance, or "" when
// none is close enough to be a likely typo.
func suggestName(s string, candidates []string) string {
	best, bestD := "", 0
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		limit := max(1, min(len(s), len(c))/3)
		if d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// didYouMean is " (did you mean X?)" for a close candidate, else "".
func didYouMean(s string, candidates []string) string {
	if c := suggestName(s, candidates); c != "" && c != s {
		return " (did you mean " + c + "?)"
	}
	return ""
}

// oneOf is "want one of a, b, c" plus a suggestion.
func oneOf(s string, candidates []string) string {
	msg := "want one of " + strings.Join(candidates, ", ")
	if c := suggestName(s, candidates); c != "" && c != s {
		msg += "; did you mean " + c + "?"
	}
	return msg
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// shortageError is an error of this package about a pool with too few
// classes, which ExplainShortage explains as it does the datasets package's.
type shortageError struct{ msg string }

func (e shortageError) Error() string        { return e.msg }
func (e shortageError) Is(target error) bool { return target == datasets.ErrTooFewClasses }

// ExplainShortage adds to an error about a split or pool with too few
// classes the rule that left classes out, naming the keys behind it: with
// minRecords above 1, smaller classes are in no pool. To an error about a
// meta-batch too large for a sampler it adds the keys that size it.
func ExplainShortage(err error, minRecords int) error {
	if errors.Is(err, datasets.ErrBatchTooLarge) {
		return fmt.Errorf("%w (lower episodes.meta_batch, or episodes.ways, shots or queries)", err)
	}
	if errors.Is(err, datasets.ErrNoNormalClass) {
		return fmt.Errorf("%w (episodes.normal_way is true; set it to false to draw episodes without normal traffic)", err)
	}
	if minRecords <= 1 || !errors.Is(err, datasets.ErrTooFewClasses) {
		return err
	}
	return fmt.Errorf("%w (classes with fewer than %d records are left out: split.min_records, or episodes.shots + "+
		"episodes.queries when it is 0; episodes.replacement: true keeps them and samples with replacement)", err, minRecords)
}

// ExplainChecksum adds to an error about a data file whose checksum is not
// the published one the spec key that accepts it anyway.
func ExplainChecksum(err error) error {
	var ce *datasets.ChecksumError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (set dataset.no_checksum: true to use it anyway)", err)
	}
	return err
}

// ExplainCategories adds to an error about a label that no categories
// mapping names the spec key that maps it.
func ExplainCategories(err error) error { return CategoriesRemedy(err, "dataset.categories") }

// CategoriesRemedy adds to an error about a label that no categories
// mapping names how to map it: a row of a CSV given as where (a spec key,
// or a command's flag).
func CategoriesRemedy(err error, where string) error {
	var ue *datasets.UnmappedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w (a typo in the file? else add a row %q, CATEGORY one of %s, to a CSV given as %s)",
			err, ue.Label+",CATEGORY", strings.Join(datasets.CategoryNames, ", "), where)
	}
	return err
}

// ExplainData adds to an error of loading and splitting a spec's data what
// the spec can do about it: ExplainChecksum, ExplainCategories, the key of a
// class to leave out of meta-test that is not a meta-test class, and that of
// a meta-val class too small for the pools (ExplainShortage says why).
func ExplainData(err error) error {
	if errors.Is(err, datasets.ErrNotMetaTest) {
		return fmt.Errorf("split.test_exclude: %w", err)
	}
	if errors.Is(err, datasets.ErrValClassLeftOut) {
		return fmt.Errorf("split.val_classes: %w", err)
	}
	return ExplainCategories(ExplainChecksum(err))
}
