package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
)

// SplitConfig chooses class-disjoint train, validation and test classes.
type SplitConfig struct {
	// Train, Val and Test name classes explicitly. An empty Train means every
	// class not in Val or Test; an empty Test means no test classes.
	Train, Val, Test []string
	// ValFraction, when Val is empty and it is > 0, moves
	// round(ValFraction*len(train)) randomly chosen train classes to val: at
	// least one, and never the last train class.
	ValFraction float64
	// Seed makes the ValFraction draw reproducible.
	Seed uint64
}

// SplitClasses splits names into class-disjoint train, val and test lists,
// each sorted. Its errors call the lists by the pools they make (meta-train,
// meta-val, meta-test), not by the SplitConfig fields, since callers take
// them from flags or spec keys of their own.
func SplitClasses(names []string, cfg SplitConfig) (train, val, test []string, err error) {
	known := setOf(names)
	owner := make(map[string]string)
	lists := []struct {
		name string
		list []string
	}{{"meta-train", cfg.Train}, {"meta-val", cfg.Val}, {"meta-test", cfg.Test}}
	for _, l := range lists {
		for _, n := range l.list {
			if !known[n] {
				return nil, nil, nil, fmt.Errorf("split: class %q in %s is not one of the %d classes", n, l.name, len(known))
			}
			if prev, ok := owner[n]; ok {
				if prev == l.name {
					return nil, nil, nil, fmt.Errorf("split: class %q is listed twice in %s", n, l.name)
				}
				return nil, nil, nil, fmt.Errorf("split: class %q is in both %s and %s", n, prev, l.name)
			}
			owner[n] = l.name
		}
	}
	if f := cfg.ValFraction; math.IsNaN(f) || f < 0 || f >= 1 {
		return nil, nil, nil, fmt.Errorf("split: the meta-val fraction must be in [0, 1) (got %v)", f)
	}

	train = append([]string(nil), cfg.Train...)
	if len(train) == 0 {
		for n := range known {
			if _, ok := owner[n]; !ok {
				train = append(train, n)
			}
		}
	}
	val = append([]string(nil), cfg.Val...)
	test = append([]string(nil), cfg.Test...)
	sort.Strings(train)
	// The draw depends only on the sorted train list and the seed, not on the
	// order of names.
	if len(val) == 0 && cfg.ValFraction > 0 {
		if len(train) < 2 {
			return nil, nil, nil, tooFewClasses("split: a meta-val fraction of %v needs at least 2 meta-train classes to keep one; meta-train has %d",
				cfg.ValFraction, len(train))
		}
		k := int(math.Round(cfg.ValFraction * float64(len(train))))
		k = max(1, min(k, len(train)-1))
		rng := rand.New(rand.NewPCG(mix64(cfg.Seed), mix64(cfg.Seed^0x5b1f7a3c9e2d4861)))
		for i := range k {
			j := i + rng.IntN(len(train)-i)
			train[i], train[j] = train[j], train[i]
		}
		val = append(val, train[:k]...)
		train = train[k:]
		sort.Strings(train)
	}
	if len(train) == 0 {
		if len(cfg.Val) > 0 {
			// The list given is the cause, not classes left out for size.
			return nil, nil, nil, fmt.Errorf("split: no meta-train classes left: the meta-val list (%d) takes every class that remains", len(cfg.Val))
		}
		return nil, nil, nil, tooFewClasses("split: no meta-train classes left")
	}
	sort.Strings(val)
	sort.Strings(test)
	return train, val, test, nil
}

// Subset returns a pool of the named classes only, in p's class order. It
// shares X and the classes' Rows with p.
func (p *Pool) Subset(names []string) (*Pool, error) {
	want := setOf(names)
	var unknown []string
	for _, n := range names {
		if p.ClassIndex(n) < 0 {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("subset: the pool has no class %s", strings.Join(quoted(unknown), ", "))
	}
	sub := &Pool{Dim: p.Dim, X: p.X}
	for _, c := range p.Classes {
		if want[c.Name] {
			sub.Classes = append(sub.Classes, c)
			delete(want, c.Name) // a duplicate class name in p is kept once
		}
	}
	return sub, nil
}

// CheckDisjoint reports every class name found in more than one of the pools,
// naming the pools by position.
func CheckDisjoint(pools ...*Pool) error {
	where := make(map[string][]int)
	for i, p := range pools {
		if p == nil {
			continue
		}
		for _, c := range p.Classes {
			if at := where[c.Name]; len(at) == 0 || at[len(at)-1] != i {
				where[c.Name] = append(at, i)
			}
		}
	}
	var clashes []string
	for n, at := range where {
		if len(at) > 1 {
			idx := make([]string, len(at))
			for j, i := range at {
				idx[j] = fmt.Sprint(i)
			}
			clashes = append(clashes, fmt.Sprintf("%q (pools %s)", n, strings.Join(idx, ", ")))
		}
	}
	if len(clashes) == 0 {
		return nil
	}
	sort.Strings(clashes)
	return fmt.Errorf("pools are not class-disjoint: %s", strings.Join(clashes, "; "))
}
