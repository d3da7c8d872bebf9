package datasets

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplitClasses(t *testing.T) {
	all := []string{"back", "ipsweep", "neptune", "nmap", "normal", "pod", "satan", "smurf", "teardrop", "warezclient"}
	for _, tc := range []struct {
		name             string
		names            []string
		cfg              SplitConfig
		train, val, test []string // nil: only checked for being disjoint
		nVal             int      // with a fraction: the val size
		err              []string
		tooFew           bool // the error is ErrTooFewClasses
	}{
		{name: "all train", names: all, cfg: SplitConfig{}, train: all, val: []string{}, test: []string{}},
		{name: "explicit", names: all,
			cfg:   SplitConfig{Train: []string{"smurf", "normal"}, Val: []string{"pod"}, Test: []string{"nmap", "back"}},
			train: []string{"normal", "smurf"}, val: []string{"pod"}, test: []string{"back", "nmap"}},
		{name: "train is the rest", names: all,
			cfg:   SplitConfig{Val: []string{"pod", "back"}, Test: []string{"satan", "nmap", "ipsweep"}},
			train: []string{"neptune", "normal", "smurf", "teardrop", "warezclient"}, val: []string{"back", "pod"}, test: []string{"ipsweep", "nmap", "satan"}},
		{name: "fraction", names: all, cfg: SplitConfig{Test: []string{"satan", "nmap"}, ValFraction: 0.25, Seed: 1}, nVal: 2},
		{name: "fraction rounds up to one", names: all, cfg: SplitConfig{ValFraction: 0.01}, nVal: 1},
		{name: "fraction keeps one train class", names: all, cfg: SplitConfig{Train: []string{"pod", "smurf"}, ValFraction: 0.9}, nVal: 1},
		{name: "explicit val wins over fraction", names: all, cfg: SplitConfig{Val: []string{"pod"}, ValFraction: 0.5},
			val: []string{"pod"}, nVal: 1},
		{name: "in two lists", names: all, cfg: SplitConfig{Train: []string{"pod"}, Test: []string{"smurf", "pod"}},
			err: []string{`"pod"`, "both meta-train and meta-test"}},
		{name: "listed twice", names: all, cfg: SplitConfig{Val: []string{"pod", "pod"}}, err: []string{`split: class "pod" is listed twice in meta-val`}},
		{name: "unknown", names: all, cfg: SplitConfig{Test: []string{"smurf", "mailbomb"}},
			err: []string{`split: class "mailbomb" in meta-test is not one of the 10 classes`}},
		{name: "fraction impossible", names: all, cfg: SplitConfig{Train: []string{"pod"}, ValFraction: 0.5},
			err: []string{"split: a meta-val fraction of 0.5 needs at least 2 meta-train classes to keep one; meta-train has 1"}, tooFew: true},
		{name: "fraction out of range", names: all, cfg: SplitConfig{ValFraction: 1}, err: []string{"split: the meta-val fraction must be in [0, 1) (got 1)"}},
		{name: "negative fraction", names: all, cfg: SplitConfig{ValFraction: -0.1}, err: []string{"meta-val fraction"}},
		// The meta-val list took them: not a shortage that min_records explains.
		{name: "nothing left to train", names: []string{"a", "b"}, cfg: SplitConfig{Val: []string{"a"}, Test: []string{"b"}},
			err: []string{"split: no meta-train classes left: the meta-val list (1) takes every class that remains"}},
		{name: "nothing left at all", names: []string{"b"}, cfg: SplitConfig{Test: []string{"b"}},
			err: []string{"split: no meta-train classes left"}, tooFew: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			train, val, test, err := SplitClasses(tc.names, tc.cfg)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("no error; got %v / %v / %v", train, val, test)
				}
				for _, w := range tc.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if errors.Is(err, ErrTooFewClasses) != tc.tooFew {
					t.Errorf("errors.Is(%q, ErrTooFewClasses) = %v, want %v", err, !tc.tooFew, tc.tooFew)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range [][]string{train, val, test} {
				if !slices.IsSorted(l) {
					t.Errorf("%v is not sorted", l)
				}
			}
			check := func(what string, got, want []string) {
				if want != nil && !slices.Equal(got, want) && len(got)+len(want) > 0 {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("train", train, tc.train)
			check("val", val, tc.val)
			check("test", test, tc.test)
			if tc.nVal > 0 && len(val) != tc.nVal {
				t.Errorf("val has %d classes (%v), want %d", len(val), val, tc.nVal)
			}
			seen := map[string]bool{}
			for _, n := range slices.Concat(train, val, test) {
				if seen[n] {
					t.Errorf("class %q in two splits", n)
				}
				seen[n] = true
			}
			if tc.cfg.Train == nil && len(seen) != len(tc.names) {
				t.Errorf("splits cover %d of %d classes", len(seen), len(tc.names))
			}
		})
	}
}

func TestSplitClassesValFractionDeterministic(t *testing.T) {
	all := names(20)
	rev := slices.Clone(all)
	slices.Reverse(rev)
	cfg := SplitConfig{Test: []string{"c03"}, ValFraction: 0.2, Seed: 99}
	tr1, v1, _, err := SplitClasses(all, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Same seed, names in another order: same split.
	tr2, v2, _, err := SplitClasses(rev, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tr1, tr2) || !slices.Equal(v1, v2) {
		t.Errorf("split depends on the order of names: %v vs %v", v1, v2)
	}
	if len(v1) != 4 || len(tr1) != 15 {
		t.Errorf("round(0.2*19) = 4 val classes, 15 train; got %d and %d", len(v1), len(tr1))
	}
	// Different seeds choose different val sets, and every class is chosen by
	// some seed.
	sets := map[string]bool{}
	chosen := map[string]bool{}
	for seed := range uint64(30) {
		cfg.Seed = seed
		_, v, _, err := SplitClasses(all, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sets[strings.Join(v, ",")] = true
		for _, n := range v {
			chosen[n] = true
		}
	}
	if len(sets) < 20 {
		t.Errorf("30 seeds gave only %d val sets", len(sets))
	}
	if chosen["c03"] || len(chosen) != 19 {
		t.Errorf("val classes chosen over seeds: %v", chosen)
	}
}

func TestSubset(t *testing.T) {
	p := testPool(t, 3, []string{"a", "b", "c", "d"}, []int{5, 6, 7, 8})
	sub, err := p.Subset([]string{"d", "b", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if got := classNames(sub.Classes); !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("subset classes %v, want [b d] in pool order", got)
	}
	if sub.Dim != p.Dim || &sub.X[0] != &p.X[0] || len(sub.X) != len(p.X) {
		t.Error("subset does not share the pool's matrix")
	}
	if !slices.Equal(sub.Classes[1].Rows, p.Classes[3].Rows) || sub.Classes[1].Category != "test" {
		t.Errorf("subset class d = %+v", sub.Classes[1])
	}
	// A sampler over the subset only draws its classes.
	s := mustSampler(t, sub, SamplerConfig{Ways: 2, Shots: 2, Queries: 3, MetaBatch: 1})
	ep := s.NewEpisode()
	for range 50 {
		if err := s.Next(ep); err != nil {
			t.Fatal(err)
		}
		checkEpisode(t, s, ep)
		for i := range ep.Ways * ep.Shots {
			if c := ep.SupportX[i*3]; c != 1 && c != 3 {
				t.Fatalf("row of pool class %v in a subset episode", c)
			}
		}
	}

	if _, err := p.Subset([]string{"a", "zz", "yy"}); err == nil || !strings.Contains(err.Error(), `"yy", "zz"`) {
		t.Errorf("unknown classes: error %v", err)
	}
	if empty, err := p.Subset(nil); err != nil || len(empty.Classes) != 0 {
		t.Errorf("empty subset: %v, %v", empty, err)
	}
}

func TestCheckDisjoint(t *testing.T) {
	p := testPool(t, 3, []string{"a", "b", "c", "d", "e"}, sizes(5, 4))
	sub := func(n ...string) *Pool {
		s, err := p.Subset(n)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := CheckDisjoint(sub("a", "b"), sub("c"), nil, sub("d", "e")); err != nil {
		t.Errorf("disjoint pools: %v", err)
	}
	if err := CheckDisjoint(); err != nil {
		t.Errorf("no pools: %v", err)
	}
	err := CheckDisjoint(sub("a", "b"), sub("c", "b"), sub("d", "a", "b"))
	if err == nil {
		t.Fatal("overlapping pools: no error")
	}
	for _, w := range []string{`"a" (pools 0, 2)`, `"b" (pools 0, 1, 2)`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), `"c"`) || strings.Contains(err.Error(), `"d"`) {
		t.Errorf("error %q names a class found in one pool only", err)
	}

	// A split's pools are disjoint.
	train, val, test, err := SplitClasses(classNames(p.Classes), SplitConfig{Test: []string{"e"}, ValFraction: 0.3, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckDisjoint(sub(train...), sub(val...), sub(test...)); err != nil {
		t.Error(err)
	}
}
