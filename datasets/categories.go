package datasets

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Categories maps a label (attack name or "normal") to its category:
// normal, dos, probe, r2l or u2r.
type Categories map[string]string

// Unknown is the category Of gives a label that no mapping names; Check
// tells such labels apart, and no pool has a class of it.
const Unknown = "unknown"

// CategoryNames are the categories a mapping may give a label, in the order
// messages list them.
var CategoryNames = []string{"normal", "dos", "probe", "r2l", "u2r"}

// Of returns the category of a label, or Unknown.
func (c Categories) Of(label string) string {
	if cat, ok := c[label]; ok {
		return cat
	}
	return Unknown
}

// UnmappedError is a label of a record file that the categories mapping
// lacks: it would be a class of category Unknown, so a typo such as
// "Normal" would pass for a novel attack type. It names no remedy, since
// only the caller knows how its user gives a categories file; match it
// with errors.As and add that.
type UnmappedError struct {
	File  string
	Line  int // of the label's first record; 0 when unknown
	Label string
}

func (e *UnmappedError) Error() string {
	at := e.File
	if e.Line > 0 {
		at = fmt.Sprintf("%s line %d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: label %q has no category: the categories mapping lacks it", at, e.Label)
}

// Check returns an *UnmappedError for the label of r that c lacks and that
// comes first in the file, or nil when c maps every label.
func (c Categories) Check(r *Records) error {
	var first *UnmappedError
	for i, name := range r.LabelNames {
		if _, ok := c[name]; ok {
			continue
		}
		if e := r.unmapped(i); first == nil || e.Line < first.Line {
			first = e
		}
	}
	if first == nil {
		return nil
	}
	return first
}

// unmapped is the *UnmappedError of r's label i.
func (r *Records) unmapped(i int) *UnmappedError {
	e := &UnmappedError{File: r.Name, Label: r.LabelNames[i]}
	if i < len(r.LabelLines) {
		e.Line = r.LabelLines[i]
	}
	return e
}

// DefaultCategories is the shipped mapping of all 39 attack names in the six
// files (UCI's training_attack_types for the 22 training attacks, the DARPA
// 1998/1999 list for the 17 test-only ones).
func DefaultCategories() Categories {
	b, err := shipped.ReadFile("data/attack_categories.csv")
	if err != nil {
		panic("shipped attack_categories.csv missing: " + err.Error()) // a broken build, not bad input
	}
	c, err := ParseCategories(bytes.NewReader(b), "attack_categories.csv")
	if err != nil {
		panic("shipped attack_categories.csv: " + err.Error())
	}
	return c
}

// ParseCategories reads "attack,category" lines (an optional header line
// "attack,category" is skipped; blank lines and # comments are ignored).
// The category must be one of CategoryNames (any case), an attack may be
// listed again only with the same category, and "normal" is only ever
// normal; errors name the file and line.
func ParseCategories(r io.Reader, name string) (Categories, error) {
	c, _, err := parseCategories(r, name)
	return c, err
}

// parseCategories is ParseCategories that also returns the line that first
// maps each attack.
func parseCategories(r io.Reader, name string) (Categories, map[string]int, error) {
	br := bufio.NewReader(r)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		br.Discard(3) // a byte-order mark some editors write
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	c := Categories{}
	line := map[string]int{} // where each attack was first mapped
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		l, _ := cr.FieldPos(0)
		if len(rec) != 2 {
			return nil, nil, fmt.Errorf("%s line %d: %d fields, want 2 (attack,category)", name, l, len(rec))
		}
		attack, cat := strings.TrimSpace(rec[0]), strings.ToLower(strings.TrimSpace(rec[1]))
		if attack == "attack" && cat == "category" {
			continue
		}
		attack = strings.TrimSuffix(attack, ".")
		if attack == "" || cat == "" {
			return nil, nil, fmt.Errorf("%s line %d: empty attack or category", name, l)
		}
		if !slices.Contains(CategoryNames, cat) {
			return nil, nil, fmt.Errorf("%s line %d: %s: unknown category %q (want one of %s)",
				name, l, attack, rec[1], strings.Join(CategoryNames, ", "))
		}
		if attack == DefaultNormalClass && cat != "normal" {
			return nil, nil, fmt.Errorf("%s line %d: normal traffic is category normal, not %s", name, l, cat)
		}
		if prev, ok := c[attack]; ok && prev != cat {
			return nil, nil, fmt.Errorf("%s line %d: %s is mapped to %s here and to %s on line %d",
				name, l, attack, cat, prev, line[attack])
		}
		if _, ok := line[attack]; !ok {
			line[attack] = l
		}
		c[attack] = cat
	}
	if len(c) == 0 {
		return nil, nil, fmt.Errorf("%s: no mappings", name)
	}
	return c, line, nil
}

// maxCategoriesBytes bounds what LoadCategories reads: the shipped mapping
// of every attack is half a kilobyte, and a path such as /dev/zero would be
// read until the memory runs out.
const maxCategoriesBytes = 1 << 20

// CategoryFile is a categories CSV laid over the shipped mapping: its path
// and the line that maps each attack it names.
type CategoryFile struct {
	Path  string
	Lines map[string]int
}

// LoadCategories returns the default mapping with the entries of the file at
// path laid over it, and that file ("" gives the default alone and a nil
// file).
func LoadCategories(path string) (Categories, *CategoryFile, error) {
	c := DefaultCategories()
	if path == "" {
		return c, nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is a folder, not a CSV of attack categories", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCategoriesBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxCategoriesBytes {
		return nil, nil, fmt.Errorf("%s: more than %d MiB: not a CSV of attack categories", path, maxCategoriesBytes>>20)
	}
	over, lines, err := parseCategories(bytes.NewReader(b), path)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range over {
		c[k] = v
	}
	return c, &CategoryFile{Path: path, Lines: lines}, nil
}

// Unmatched returns a warning for each attack the file maps that is neither
// a shipped attack name nor a label of recs, whose names (as the command
// line gives them: "KDDTrain+") are in files, in line order. Such a name is
// most likely a typo, which leaves the attack meant in its shipped category
// (or unknown); it is not an error, since one file may serve several data
// sets. A nil file has none.
func (f *CategoryFile) Unmatched(files []string, recs ...*Records) []string {
	if f == nil {
		return nil
	}
	known := DefaultCategories()
	var names []string
	for name := range f.Lines {
		if _, ok := known[name]; ok {
			continue
		}
		if !slices.ContainsFunc(recs, func(r *Records) bool { return slices.Contains(r.LabelNames, name) }) {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return f.Lines[a] - f.Lines[b] })
	warnings := make([]string, len(names))
	for i, name := range names {
		warnings[i] = fmt.Sprintf("%s line %d: %q is no shipped attack name and labels no record of %s: if it is a typo, the attack meant keeps its shipped category",
			f.Path, f.Lines[name], name, strings.Join(files, " or "))
	}
	return warnings
}
