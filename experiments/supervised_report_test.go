package experiments

import (
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
)

// A test file with no attack record has no detection rate.
func TestSupervisedUndefinedRatesAreLeftOut(t *testing.T) {
	te := &encodedFile{name: "only-normal", m: &datasets.Matrix{Rows: 4, Dim: 1, X: make([]float32, 4)}, y: []int32{0, 0, 0, 0}}
	ev := evaluateFile(te, []int32{0, 0, 1, 1}, []string{"normal", "attack"})
	if v, ok := ev.Metrics["detection_rate"]; ok {
		t.Errorf("detection_rate on a file without attacks = %+v, want absent (undefined)", v)
	}
	te.y = []int32{1, 1, 1, 1}
	ev = evaluateFile(te, []int32{0, 0, 1, 1}, []string{"normal", "attack"})
	if v, ok := ev.Metrics["false_alarm_rate"]; ok {
		t.Errorf("false_alarm_rate on a file without normal = %+v, want absent (undefined)", v)
	}
}

// The run report of a supervised run should show every test file.
func TestSupervisedRunReportHasEveryTestFile(t *testing.T) {
	one := func(v float64) eval.Summary { return eval.Summary{Mean: v, N: 1} }
	m := func(a float64) map[string]eval.Summary {
		return map[string]eval.Summary{"accuracy": one(a), "macro_f1": one(a)}
	}
	s := &RunSummary{Run: "sup", Dataset: "nsl-kdd", Protocol: "supervised", Algo: "classifier", Labels: "binary", Seeds: []uint64{1},
		Metrics: m(0.8), SeedSpread: m(0.8),
		Supervised: []SupervisedEval{{TestFile: "KDDTest+", Metrics: m(0.8)}, {TestFile: "KDDTest-21", Metrics: m(0.6)}}}
	seed := &SeedResult{Seed: 1, Metrics: m(0.8)}
	rep := runReport(s, []*SeedResult{seed})
	if !strings.Contains(rep, "KDDTest-21") {
		t.Errorf("report.md of a supervised run omits KDDTest-21:\n%s", rep)
	}
	// Its per-class figures are the first test file's, with no episodes.
	if !strings.Contains(rep, "Per class on KDDTest+ (pooled over seeds)") || strings.Contains(rep, "episodes and seeds") {
		t.Errorf("per-class table of a supervised run:\n%s", rep)
	}
	// No validation, no episodes: the per-seed table shows neither.
	seed.Train = TrainStats{Steps: 2, BestStep: -1, StepsPerSec: 0.5}
	rep = runReport(s, []*SeedResult{seed})
	if !strings.Contains(rep, "| seed | accuracy % | macro F1 % | train epochs/s |") || !strings.Contains(rep, "| 1 | 80.00 (n=1) | 80.00 (n=1) | 0.50 |") {
		t.Errorf("per-seed table of a supervised run:\n%s", rep)
	}
}

// Only NSL-KDD runs trained on the whole KDDTrain+ sit beside the published
// figures; every supervised run is in the table of test files.
func TestSupervisedSectionPlacesRunsByDataAndTrainingFile(t *testing.T) {
	one := eval.Summary{Mean: 0.9, N: 1}
	mk := func(run, dataset, train string) *RunSummary {
		return &RunSummary{Run: run, Dataset: dataset, Protocol: "supervised", Labels: "binary",
			Spec:       "dataset: {name: " + dataset + ", train_file: " + train + "}\nsplit: {protocol: supervised}\n",
			Supervised: []SupervisedEval{{TestFile: "t", Metrics: map[string]eval.Summary{"accuracy": one}}}}
	}
	sec := SupervisedSection([]*RunSummary{mk("kdd-sup", "kddcup99", "kddcup.data_10_percent"), mk("nsl-20", "nsl-kdd", "KDDTrain+_20Percent"), mk("nsl-full", "nsl-kdd", "KDDTrain+")})
	lit, files, ok := strings.Cut(sec, "**Every supervised run")
	if !ok {
		t.Fatalf("no table of test files:\n%s", sec)
	}
	if !strings.Contains(lit, "metaids, nsl-full") || strings.Contains(lit, "kdd-sup") || strings.Contains(lit, "nsl-20") {
		t.Errorf("literature table:\n%s", lit)
	}
	for _, run := range []string{"kdd-sup", "nsl-20", "nsl-full"} {
		if !strings.Contains(files, "| "+run+" |") {
			t.Errorf("%s missing from the table of test files:\n%s", run, files)
		}
	}
	if !strings.Contains(files, "| 90.00 (n=1) | - | - | - |") {
		t.Errorf("a metric a file lacks should read -:\n%s", files)
	}
}

// A seed whose test episodes hold no normal row has no binary false-alarm rate.
func TestMultitaskFalseAlarmsNeedNormalRows(t *testing.T) {
	m := &multitaskEval{res: &MultitaskResult{BinaryWeight: 1}, hasBinary: true, binConf: eval.NewConfusion(2)}
	for i := 0; i < 10; i++ { // ten attack rows, six detected
		m.binConf.Add(1, map[bool]int{true: 1, false: 0}[i < 6])
	}
	r := m.result()
	if v, ok := r.Metrics["binary_false_alarm_rate"]; ok {
		t.Errorf("binary_false_alarm_rate with no normal rows = %g, want absent (undefined)", v)
	}
}

// When no query row has a category the head knows, its figures are left out
// rather than reported as 0.
func TestMultitaskCategoryFiguresNeedScoredRows(t *testing.T) {
	m := &multitaskEval{res: &MultitaskResult{CategoryWeight: 1}, hasCats: true, catConf: eval.NewConfusion(3)}
	r := m.result()
	for _, k := range []string{"category_accuracy", "category_macro_f1"} {
		if v, ok := r.Metrics[k]; ok {
			t.Errorf("%s with no scored row = %g, want absent", k, v)
		}
	}
}

// A run resumed across builds names every commit its seeds were made with.
func TestRunSummaryNamesEveryCommit(t *testing.T) {
	p := testPlan(t, "protonet")
	seed := func(n uint64, commit string) *SeedResult {
		return &SeedResult{Seed: n, Provenance: Provenance{Commit: commit}, Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.5, N: 1}}}
	}
	s := summarise(p, []*SeedResult{seed(1, "aaa"), seed(2, "bbb"), seed(3, "aaa")})
	if s.Provenance.Commit != "aaa, bbb" {
		t.Errorf("commit %q, want \"aaa, bbb\"", s.Provenance.Commit)
	}
}

// A run resumed with another Go, on another machine or backend, names each
// in its summary, not only the first seed's.
func TestRunSummaryNamesEveryGoVersionAndBackend(t *testing.T) {
	p := testPlan(t, "protonet")
	seed := func(n uint64, goVersion, backend, device, kernels string) *SeedResult {
		return &SeedResult{Seed: n, Provenance: Provenance{Commit: "aaa", GoVersion: goVersion, OS: "linux", Arch: "amd64", Kernels: kernels},
			Backend: backend, Device: device, Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.5, N: 1}}}
	}
	s := summarise(p, []*SeedResult{seed(1, "go1.26.0", "cpu", "Xeon", "avx2-fma"), seed(2, "go1.26.1", "cuda", "H100", "go"), seed(3, "go1.26.0", "cpu", "Xeon", "avx2-fma")})
	got := []string{s.Provenance.Commit, s.Provenance.GoVersion, s.Provenance.OS, s.Backend, s.Device, s.Provenance.Kernels}
	want := []string{"aaa", "go1.26.0, go1.26.1", "linux", "cpu, cuda", "Xeon, H100", "avx2-fma, go"}
	if !slices.Equal(got, want) {
		t.Errorf("commit, Go, OS, backend, device, kernels %q, want %q", got, want)
	}
}
