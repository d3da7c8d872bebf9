package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func classNamesOf(p *Pool) []string {
	if p == nil {
		return nil
	}
	var n []string
	for _, c := range p.Classes {
		n = append(n, c.Name)
	}
	return n
}

func TestNovelAttackSplitNSLKDD(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, ValFraction: 0.25, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// KDDTrain+ attack types with >= 20 records: 13 of 22 (land has 18),
	// plus normal; round(0.25*13) = 3 attacks go to meta-val.
	if got := len(s.Train.Classes) + len(s.Val.Classes) - 2; got != 13 {
		t.Errorf("%d meta-train+val attack classes, want 13: train %v val %v", got, classNamesOf(s.Train), classNamesOf(s.Val))
	}
	if len(s.Val.Classes) != 4 || s.Val.ClassIndex("normal") < 0 {
		t.Errorf("meta-val %v, want 3 attacks and normal", classNamesOf(s.Val))
	}
	// Novel types in KDDTest+ with >= 20 records: apache2 httptunnel mailbomb
	// mscan processtable saint snmpgetattack snmpguess (8), plus normal.
	want := "apache2 httptunnel mailbomb mscan normal processtable saint snmpgetattack snmpguess"
	if got := strings.Join(classNamesOf(s.Test), " "); got != want {
		t.Errorf("meta-test classes\n got %s\nwant %s", got, want)
	}
	if s.Test.Dim != 125 || s.Train.Dim != 125 {
		t.Errorf("dims %d/%d, want 125", s.Train.Dim, s.Test.Dim)
	}
	var droppedTest []string
	for _, dr := range s.Dropped["test"] {
		droppedTest = append(droppedTest, dr.Name)
	}
	if strings.Join(droppedTest, " ") != "named ps sendmail sqlattack udpstorm worm xlock xsnoop xterm" {
		t.Errorf("dropped from meta-test: %v", droppedTest)
	}
	// The same seed gives the same split; the split is class-disjoint.
	s2, _ := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, ValFraction: 0.25, Seed: 7})
	if strings.Join(classNamesOf(s2.Val), " ") != strings.Join(classNamesOf(s.Val), " ") {
		t.Error("meta-val classes differ for the same seed")
	}
	if err := CheckDisjoint(withoutClass(s.Train, "normal"), withoutClass(s.Val, "normal"), withoutClass(s.Test, "normal")); err != nil {
		t.Error(err)
	}
}

func TestNovelAttackSplitErrors(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	if _, err := NovelAttackSplit(d, ProtocolOptions{TestInclude: []string{"neptune"}}); err == nil || !strings.Contains(err.Error(), `"neptune" is not a novel attack type`) {
		t.Errorf("non-novel meta-test class: %v", err)
	}
	// A class to leave out of meta-test must be a meta-test class: a
	// training attack of the test file is in no meta-test pool.
	for _, c := range []struct {
		opt  ProtocolOptions
		want string
	}{
		{ProtocolOptions{TestExclude: []string{"warezmaster"}}, `class "warezmaster" to leave out of meta-test is not a meta-test class of KDDTest+ (they are: apache2, httptunnel, `},
		{ProtocolOptions{TestInclude: []string{"saint", "apache2"}, TestExclude: []string{"mscan"}}, `class "mscan" to leave out of meta-test is not a meta-test class of KDDTest+ (they are: saint, apache2)`},
		{ProtocolOptions{NoNormal: true, TestExclude: []string{"normal"}}, `class "normal" to leave out of meta-test is not a meta-test class`},
	} {
		if _, err := NovelAttackSplit(d, c.opt); !errors.Is(err, ErrNotMetaTest) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.opt.TestExclude, err, c.want)
		}
	}
	for _, exclude := range []string{"saint", "normal"} {
		s, err := NovelAttackSplit(d, ProtocolOptions{TestExclude: []string{exclude}})
		if err != nil || s.Test.ClassIndex(exclude) >= 0 {
			t.Errorf("%s left out of meta-test: %v", exclude, err)
		}
	}
	// A training file without attack types has no meta-train classes
	// whatever the class size asked for: not a shortage of MinRecords.
	f, _ := d.File("KDDTrain+_20Percent")
	keep := func(labels ...string) func([]byte) []byte {
		return func(b []byte) []byte {
			var out []byte
			for _, l := range bytes.SplitAfter(b, []byte("\n")) {
				for _, label := range labels {
					if bytes.Contains(l, []byte(","+label+",")) {
						out = append(out, l...)
					}
				}
			}
			return out
		}
	}
	for _, c := range []struct {
		labels, exclude []string
		want            string
	}{
		{[]string{"normal"}, nil, "KDDTrain+_20Percent.txt holds no attack records, only normal traffic: there are no meta-train classes"},
		{[]string{"normal", "neptune", "satan"}, []string{"satan", "neptune"}, "every attack type of %s is excluded (2): there are no meta-train classes"},
	} {
		dir := userCopy(t, d, f, false, keep(c.labels...))
		want := c.want
		if strings.Contains(want, "%s") {
			want = fmt.Sprintf(want, filepath.Join(dir, "KDDTrain+_20Percent.txt"))
		}
		_, err := NovelAttackSplit(d, ProtocolOptions{TrainFile: "KDDTrain+_20Percent", TestFile: "KDDTest-21", MinRecords: 20, ValFraction: 0.25,
			TrainExclude: c.exclude, Load: LoadOptions{DataDir: dir, SkipChecksum: true}})
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, ErrTooFewClasses) {
			t.Errorf("%v: %v, want %q and no shortage", c.labels, err, want)
		}
	}
	if _, err := NovelAttackSplit(d, ProtocolOptions{Val: []string{"mscan"}}); err == nil || !strings.Contains(err.Error(), "mscan") {
		t.Errorf("meta-val class not in training file: %v", err)
	}
	// A meta-val class of the training file too small for the pools (spy
	// has 2 records) is said to be that, as a shortage MinRecords explains.
	_, err := NovelAttackSplit(d, ProtocolOptions{Val: []string{"back", "spy"}, MinRecords: 20})
	if !errors.Is(err, ErrValClassLeftOut) || !errors.Is(err, ErrTooFewClasses) ||
		!strings.Contains(err.Error(), `meta-val class "spy" has 2 records, too few for a pool`) {
		t.Errorf("meta-val class below MinRecords: %v", err)
	}
	s, err := NovelAttackSplit(d, ProtocolOptions{NoNormal: true, MinRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pool{s.Train, s.Test} {
		if p.ClassIndex("normal") >= 0 {
			t.Error("NoNormal pool holds normal")
		}
	}
	// A misspelt normal class would make normal traffic an attack class.
	if _, err := NovelAttackSplit(d, ProtocolOptions{NormalClass: "Normal"}); err == nil ||
		!strings.Contains(err.Error(), `normal class "Normal" labels no record of KDDTrain+ or KDDTest+`) {
		t.Errorf("misspelt normal class: %v", err)
	}
	// So would an excluded class that is not in the training file be
	// silently kept out of nothing.
	if _, err := NovelAttackSplit(d, ProtocolOptions{TrainExclude: []string{"neptun"}}); err == nil || !strings.Contains(err.Error(), `"neptun"`) {
		t.Errorf("misspelt excluded class: %v", err)
	}
	// Excluding normal explicitly and by NoNormal at once is not an error.
	if _, err := NovelAttackSplit(d, ProtocolOptions{NoNormal: true, TrainExclude: []string{"normal"}, MinRecords: 100}); err != nil {
		t.Errorf("normal excluded twice: %v", err)
	}
}

// TestNovelAttackSplitPools checks each pool against the files it comes
// from: meta-train and meta-val hold rows of the training file under their
// own labels, class-disjoint but for normal traffic, which they share;
// meta-test holds rows of the test file whose attack types the training
// file never has. Every class of the files with enough records is in the
// pool the protocol puts it in.
func TestNovelAttackSplitPools(t *testing.T) {
	for _, tc := range []struct{ dataset, train, test string }{
		{"nsl-kdd", "KDDTrain+", "KDDTest+"},
		{"kddcup99", "kddcup.data_10_percent", "corrected"},
	} {
		t.Run(tc.dataset, func(t *testing.T) {
			if testing.Short() && tc.dataset == "kddcup99" {
				t.Skip("large files")
			}
			const minRecords = 25
			d, _ := Lookup(tc.dataset)
			s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: minRecords, ValFraction: 0.4, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			train, test := loadShipped(t, tc.dataset, tc.train), loadShipped(t, tc.dataset, tc.test)
			counts := func(r *Records) map[string]int {
				n := map[string]int{}
				for _, l := range r.Label {
					n[r.LabelNames[l]]++
				}
				return n
			}
			inTrain, inTest := counts(train), counts(test)
			checkRows := func(pool string, p *Pool, r *Records, count map[string]int) {
				if len(p.X) != r.N*p.Dim {
					t.Fatalf("%s pool: %d values, not the %d rows of %s", pool, len(p.X), r.N, r.Name)
				}
				for _, c := range p.Classes {
					if len(c.Rows) < minRecords || len(c.Rows) != count[c.Name] {
						t.Errorf("%s class %s: %d rows", pool, c.Name, len(c.Rows))
					}
					for _, row := range c.Rows {
						if got := r.LabelNames[r.Label[row]]; got != c.Name {
							t.Fatalf("%s class %s holds row %d of %s, labelled %s", pool, c.Name, row, r.Name, got)
						}
					}
				}
			}
			checkRows("meta-train", s.Train, train, inTrain)
			checkRows("meta-val", s.Val, train, inTrain)
			checkRows("meta-test", s.Test, test, inTest)

			where := map[string][]string{}
			for pool, p := range map[string]*Pool{"meta-train": s.Train, "meta-val": s.Val, "meta-test": s.Test} {
				for _, c := range p.Classes {
					where[c.Name] = append(where[c.Name], pool)
				}
			}
			for name, pools := range where {
				if name != "normal" && len(pools) != 1 {
					t.Errorf("class %s is in %v", name, pools)
				}
			}
			if got := len(where["normal"]); got != 3 {
				t.Errorf("normal is in %d pools, want every one", got)
			}
			// Normal traffic: the same training records in meta-train and
			// meta-val, the test file's in meta-test.
			trainNormal, valNormal := s.Train.Classes[s.Train.ClassIndex("normal")], s.Val.Classes[s.Val.ClassIndex("normal")]
			if !slices.Equal(trainNormal.Rows, valNormal.Rows) {
				t.Error("meta-train and meta-val hold different normal records")
			}
			for name, n := range inTrain {
				switch got := where[name]; {
				case n < minRecords && len(got) > 0, n >= minRecords && len(got) == 0,
					name != "normal" && slices.Contains(got, "meta-test"):
					t.Errorf("%s (%d records in %s) is in %v", name, n, tc.train, got)
				}
			}
			novel := 0
			for name, n := range inTest {
				if _, ok := inTrain[name]; ok {
					continue
				}
				novel++
				if got := where[name]; n >= minRecords != slices.Equal(got, []string{"meta-test"}) {
					t.Errorf("novel %s (%d records in %s) is in %v", name, n, tc.test, got)
				}
			}
			if novel != 17 {
				t.Errorf("%d attack types of %s are not in %s, want 17", novel, tc.test, tc.train)
			}
			if got, want := len(s.Val.Classes)-1, 5; got != want {
				t.Errorf("%d meta-val attack types, want round(0.4 * meta-train and meta-val attack types) = %d", got, want)
			}
		})
	}
}

func TestNovelAttackSplitOptions(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 25, Val: []string{"smurf", "pod"},
		TrainExclude: []string{"neptune"}, TestExclude: []string{"mscan"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(classNamesOf(s.Val), " "); got != "normal pod smurf" {
		t.Errorf("meta-val %s, want normal pod smurf", got)
	}
	for _, p := range []*Pool{s.Train, s.Val, s.Test} {
		if p.ClassIndex("neptune") >= 0 || p.ClassIndex("mscan") >= 0 {
			t.Errorf("excluded class in %v", classNamesOf(p))
		}
	}
	for _, p := range []*Pool{s.Train, s.Test} {
		if p.ClassIndex("smurf") >= 0 || p.ClassIndex("pod") >= 0 {
			t.Errorf("meta-val class in %v", classNamesOf(p))
		}
	}
	if len(s.Train.Classes) != 12-3+1 {
		t.Errorf("meta-train %v, want the 12 attack types with 25 records but neptune, pod and smurf, and normal", classNamesOf(s.Train))
	}
	if want := "apache2 httptunnel mailbomb normal processtable saint snmpgetattack snmpguess"; strings.Join(classNamesOf(s.Test), " ") != want {
		t.Errorf("meta-test %v, want %s", classNamesOf(s.Test), want)
	}
	excluded := func(pool string) (names []string) {
		for _, dr := range s.Dropped[pool] {
			if dr.Reason == "excluded" {
				names = append(names, dr.Name)
			}
		}
		return names
	}
	if !slices.Equal(excluded("train"), []string{"neptune"}) || !slices.Equal(excluded("test"), []string{"mscan"}) {
		t.Errorf("excluded: meta-train %v, meta-test %v", excluded("train"), excluded("test"))
	}

	s, err = NovelAttackSplit(d, ProtocolOptions{MinRecords: 25, TestInclude: []string{"saint", "apache2"}, NoNormal: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(classNamesOf(s.Test), " "); got != "apache2 saint" {
		t.Errorf("meta-test %s, want apache2 saint", got)
	}
}

// TestNSLKDDHasNoSameLabelDuplicates checks what README.md says of NSL-KDD:
// no two records of one label encode alike, so no query row of an NSL-KDD
// episode has a copy of its own class in the support set.
func TestNSLKDDHasNoSameLabelDuplicates(t *testing.T) {
	train := loadShipped(t, "nsl-kdd", "KDDTrain+")
	enc, err := FitEncoder(train, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Records{train, loadShipped(t, "nsl-kdd", "KDDTest+")} {
		m := enc.Transform(r)
		first := map[string]int{}
		var b []byte
		for i := range m.Rows {
			b = binary.LittleEndian.AppendUint16(b[:0], r.Label[i])
			for _, v := range m.Row(i) {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
			}
			key := string(b)
			if j, ok := first[key]; ok {
				t.Fatalf("%s: records %d and %d are both %s and encode alike", r.Name, j, i, r.LabelNames[r.Label[i]])
			}
			first[key] = i
		}
	}
}
