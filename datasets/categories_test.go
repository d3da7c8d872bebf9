package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseCategoriesChecksValues(t *testing.T) {
	cases := []struct {
		name, csv, want string // want "" for no error
	}{
		{"known categories, any case", "attack,category\nneptune,DoS\nfoo.,probe\n", ""},
		{"same mapping twice", "neptune,dos\nneptune.,dos\n", ""},
		{"normal is normal", "normal,normal\n", ""},
		{"unknown category", "smurf,dos\nneptune,weird\n", `cats.csv line 2: neptune: unknown category "weird" (want one of normal, dos, probe, r2l, u2r)`},
		{"unknown is not a category", "neptune,unknown\n", `cats.csv line 1: neptune: unknown category "unknown" (want one of normal, dos, probe, r2l, u2r)`},
		{"conflicting duplicate", "neptune,dos\nsmurf,dos\nneptune,probe\n", "cats.csv line 3: neptune is mapped to probe here and to dos on line 1"},
		{"conflicting duplicate with a period", "smurf.,dos\nsmurf,r2l\n", "cats.csv line 2: smurf is mapped to r2l here and to dos on line 1"},
		{"normal remapped", "normal,dos\n", "cats.csv line 1: normal traffic is category normal, not dos"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseCategories(strings.NewReader(c.csv), "cats.csv")
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.want != "" && (err == nil || err.Error() != c.want):
				t.Fatalf("error %v (mapping %v), want %q", err, m, c.want)
			}
		})
	}
}

func TestLoadCategoriesRejectsBadOverlay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cats.csv")
	if err := os.WriteFile(path, []byte("neptune,dos\nneptune,probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadCategories(path); err == nil || !strings.Contains(err.Error(), path+" line 2:") {
		t.Errorf("LoadCategories: error %v, want one naming %s line 2", err, path)
	}
	// Overlaying a different category on the shipped mapping is the point of
	// the file, not a conflict.
	if err := os.WriteFile(path, []byte("neptune,probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _, err := LoadCategories(path); err != nil || c.Of("neptune") != "probe" || c.Of("smurf") != "dos" {
		t.Errorf("overlay: %v, neptune %s, smurf %s", err, c.Of("neptune"), c.Of("smurf"))
	}
}

// What is no CSV of categories is refused naming the path: a folder, and a
// file past 1 MiB (a device such as /dev/zero was read until the memory ran
// out).
func TestLoadCategoriesRefusesWhatIsNoCSV(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.csv")
	if err := os.WriteFile(big, []byte(strings.Repeat("# a comment line\n", 70000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		big: big + ": more than 1 MiB: not a CSV of attack categories",
		dir: dir + " is a folder, not a CSV of attack categories",
	} {
		if _, _, err := LoadCategories(path); err == nil || err.Error() != want {
			t.Errorf("LoadCategories(%s): %v, want %q", path, err, want)
		}
	}
}

// A byte-order mark before the first attack (or header) is not part of it.
func TestParseCategoriesSkipsAByteOrderMark(t *testing.T) {
	for _, in := range []string{"\ufeffsmurf,probe\n", "\ufeffattack,category\nsmurf,probe\n", "\ufeff# mine\nsmurf,probe\n",
		"\ufeff\nsmurf,probe\n", "\ufeff\"smurf\",probe\n"} {
		c, err := ParseCategories(strings.NewReader(in), "c.csv")
		if err != nil || c.Of("smurf") != "probe" {
			t.Errorf("%q: %v, smurf is %q", in, err, c.Of("smurf"))
		}
	}
}

// A categories file's name that is no shipped attack and labels no record
// is most likely a typo (the attack meant keeps its category): the split
// warns, naming file and line, and says nothing of names that are shipped
// attacks or labels of the files.
func TestCategoryFileWarnsOfNamesThatLabelNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cats.csv")
	body := "attack,category\nneptune,probe\nsatan,dos\nneptun,probe\n\nmailbomb,r2l\nportswep,dos\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cats, file, err := LoadCategories(path)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Lookup("nsl-kdd")
	s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, Categories: cats, CategoryFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 2 {
		t.Fatalf("warnings %q, want 2 (neptun, portswep)", s.Warnings)
	}
	for i, want := range []string{path + ` line 4: "neptun" is no shipped attack name`, path + ` line 7: "portswep" is no shipped attack name`} {
		if !strings.HasPrefix(s.Warnings[i], want) || !strings.Contains(s.Warnings[i], " and labels no record of KDDTrain+ or KDDTest+: ") {
			t.Errorf("warning %d: %q, want it to begin %q and name both files", i, s.Warnings[i], want)
		}
	}
	// A name that labels records of the files is no typo, even if the
	// shipped mapping lacks it.
	recs, err := Parse(strings.NewReader(strings.Repeat("0,tcp,http,SF"+strings.Repeat(",0", 37)+",neptun,21\n", 2)), "mine.txt", FormatNSL)
	if err != nil {
		t.Fatal(err)
	}
	if w := file.Unmatched([]string{"mine.txt"}, recs); len(w) != 1 || !strings.Contains(w[0], `"portswep"`) || !strings.Contains(w[0], "mine.txt") {
		t.Errorf("Unmatched(mine.txt): %q, want portswep alone", w)
	}
	// Without a file there is nothing to warn of.
	var none *CategoryFile
	if w := none.Unmatched([]string{"mine.txt"}, recs); w != nil {
		t.Errorf("nil file: %q", w)
	}
	if s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20}); err != nil || s.Warnings != nil {
		t.Errorf("no categories file: %v, warnings %q", err, s.Warnings)
	}
}

// A label the categories lack is an error naming the file, the line of its
// first record and the label, not a class of category unknown: a typo of
// normal would be a novel attack type. Mapped, it is a class.
func TestUnmappedLabelIsAnError(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest+")
	typo := 0 // records relabelled
	first := 0
	dir := userCopy(t, d, f, false, func(b []byte) []byte {
		lines := bytes.SplitAfter(b, []byte("\n"))
		for i, l := range lines {
			if typo < 30 && bytes.Contains(l, []byte(",normal,")) {
				lines[i] = bytes.Replace(l, []byte(",normal,"), []byte(",Normal,"), 1)
				if typo++; first == 0 {
					first = i + 1
				}
			}
		}
		return bytes.Join(lines, nil)
	})
	path := filepath.Join(dir, "KDDTest+.txt")
	for _, distinct := range []bool{false, true} {
		_, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, Load: LoadOptions{DataDir: dir, SkipChecksum: true, Distinct: distinct}})
		var ue *UnmappedError
		if !errors.As(err, &ue) || *ue != (UnmappedError{File: path, Line: first, Label: "Normal"}) {
			t.Fatalf("distinct %v: error %v, want an *UnmappedError for Normal on line %d", distinct, err, first)
		}
		if want := fmt.Sprintf(`%s line %d: label "Normal" has no category`, path, first); !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want it to begin %q", err, want)
		}
	}
	cats := DefaultCategories()
	cats["Normal"] = "normal"
	s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, Categories: cats, Load: LoadOptions{DataDir: dir, SkipChecksum: true}})
	if err != nil {
		t.Fatal(err)
	}
	if i := s.Test.ClassIndex("Normal"); i < 0 || s.Test.Classes[i].Category != "normal" || len(s.Test.Classes[i].Rows) != 30 {
		t.Errorf("mapped Normal: meta-test classes %v", s.Test.Classes)
	}

	// The normal class named is normal traffic, mapped or not; NewPool
	// refuses a class the categories lack.
	recs, err := Parse(strings.NewReader(strings.Replace(nslLine, "normal", "benign", 1)+"\n"+nslLine+"\n"), "mine.txt", FormatNSL)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := FitEncoder(recs, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `mine.txt line 1: label "benign" has no category`
	if _, _, err := NewPool(recs, enc.Transform(recs), DefaultCategories(), PoolOptions{}); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("NewPool: %v, want %q", err, want)
	}
	if _, _, err := NewPool(recs, enc.Transform(recs), DefaultCategories(), PoolOptions{Exclude: []string{"benign"}}); err != nil {
		t.Errorf("NewPool without benign: %v", err)
	}
	if err := DefaultCategories().Check(recs); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Check: %v, want %q", err, want)
	}
}
