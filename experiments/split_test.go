package experiments

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// dataset.distinct reaches the split: KDD Cup 99's pools hold distinct
// records only, and the log says how many repeats were left out.
func TestDistinctRecordsReachTheSplit(t *testing.T) {
	spec, err := Parse([]byte("dataset: {name: kddcup99, distinct: true}\nsplit: {val_fraction: 0.25}\n"), "d.yaml")
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
	if !strings.Contains(log.String(), "(distinct records: 348435 repeats left out of kddcup.data_10_percent, 233738 of corrected)") {
		t.Errorf("log does not count the repeats:\n%s", log.String())
	}
	for name, want := range map[string]int{"mailbomb": 308, "snmpgetattack": 179, "normal": 47913} {
		if i := split.Test.ClassIndex(name); i < 0 || len(split.Test.Classes[i].Rows) != want {
			t.Errorf("meta-test %s (class %d): want %d distinct records", name, i, want)
		}
	}
}

// A supervised run on distinct records logs the repeats it left out of each
// file, and its summary is marked.
func TestSupervisedDistinctRecordsAreLogged(t *testing.T) {
	s, log, err := runResume(t, t.TempDir(), RunOptions{}, "split.protocol=supervised", "episodes.normal_way=false",
		"dataset.name=kddcup99", "dataset.distinct=true", "supervised.epochs=1", "supervised.batch_size=4096")
	if err != nil {
		t.Fatal(err)
	}
	if want := "distinct records: repeats left out: 348435 of kddcup.data_10_percent, 233738 of corrected"; !strings.Contains(log, want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}
	if !s.Distinct || s.DataName() != "kddcup99 (distinct)" {
		t.Errorf("summary: distinct %v, data %q", s.Distinct, s.DataName())
	}
}
