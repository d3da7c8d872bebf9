package experiments

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// A name in dataset.categories that labels nothing (a typo, most likely)
// is logged once per split, and returned by the supervised track's check.
func TestCategoriesTypoIsLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cats.csv")
	if err := os.WriteFile(path, []byte("neptune,probe\nneptun,probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testPlan(t, "protonet")
	spec, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, []string{"dataset.categories=" + path})...)
	if err != nil {
		t.Fatal(err)
	}
	if p.Protocol, err = spec[0].ProtocolOptions(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	r := NewRunner(RunOptions{Log: &log})
	for range 2 {
		if _, err := r.split(p); err != nil {
			t.Fatal(err)
		}
	}
	want := `nsl-kdd: warning: dataset.categories: ` + path + ` line 2: "neptun" is no shipped attack name and labels no record of KDDTrain+ or KDDTest+: `
	if n := strings.Count(log.String(), want); n != 1 || strings.Count(log.String(), "warning") != 1 {
		t.Errorf("log has the warning %d times, want once:\n%s", n, log.String())
	}

	sup, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, []string{"split.protocol=supervised", "episodes.normal_way=false",
		"supervised.labels=category", "supervised.test_files=[KDDTest-21]", "dataset.categories=" + path})...)
	if err != nil {
		t.Fatal(err)
	}
	_, warnings, err := CheckSupervisedData(sup[0])
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], `line 2: "neptun"`) || !strings.Contains(warnings[0], "KDDTest-21") {
		t.Errorf("supervised: %v, warnings %q; want the one of line 2, naming KDDTest-21", err, warnings)
	}
}

// dataset.distinct reaches the split: KDD Cup 99's pools hold the distinct
// records of the files it names, and the log says how many repeats were
// left out of each.
func TestDistinctRecordsReachTheSplit(t *testing.T) {
	for _, c := range []struct {
		distinct, log     string
		neptune, mailbomb int
	}{
		{"both", "(repeated records left out: 348435 of kddcup.data_10_percent, 233738 of corrected)", 51820, 308},
		{"train", "(repeated records left out: 348435 of kddcup.data_10_percent)", 51820, 5000},
		{"test", "(repeated records left out: 233738 of corrected)", 107201, 308},
		{"none", "split in", 107201, 5000},
	} {
		spec, err := Parse([]byte("dataset: {name: kddcup99, distinct: "+c.distinct+"}\nsplit: {val_fraction: 0.25}\n"), "d.yaml")
		if err != nil {
			t.Fatal(err)
		}
		p, err := planFor(spec[0])
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		split, err := NewRunner(RunOptions{Log: &log}).split(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), c.log) || (c.distinct == "none") == strings.Contains(log.String(), "left out") {
			t.Errorf("%s: log does not say %q:\n%s", c.distinct, c.log, log.String())
		}
		pools := []*datasets.Pool{split.Train, split.Val}
		neptune := -1
		for _, pool := range pools {
			if i := pool.ClassIndex("neptune"); i >= 0 {
				neptune = len(pool.Classes[i].Rows)
			}
		}
		mailbomb := -1
		if i := split.Test.ClassIndex("mailbomb"); i >= 0 {
			mailbomb = len(split.Test.Classes[i].Rows)
		}
		if neptune != c.neptune || mailbomb != c.mailbomb {
			t.Errorf("%s: neptune %d and mailbomb %d records, want %d and %d", c.distinct, neptune, mailbomb, c.neptune, c.mailbomb)
		}
	}
}

// A supervised run with distinct test files logs the repeats it left out of
// them alone, and its summary is marked.
func TestSupervisedDistinctRecordsAreLogged(t *testing.T) {
	s, log, err := runResume(t, t.TempDir(), RunOptions{}, "split.protocol=supervised", "episodes.normal_way=false",
		"dataset.name=kddcup99", "dataset.distinct=test", "supervised.epochs=1", "supervised.batch_size=4096")
	if err != nil {
		t.Fatal(err)
	}
	if want := "repeated records left out: 233738 of corrected\n"; !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
	if s.Distinct != "test" || s.DataName() != "kddcup99 (distinct test)" {
		t.Errorf("summary: distinct %q, data %q", s.Distinct, s.DataName())
	}
}
