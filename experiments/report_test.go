package experiments

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/eval"
)

func TestSuiteReport(t *testing.T) {
	mk := func(algo string, shots int, acc float64) *RunSummary {
		return &RunSummary{Run: "r-" + algo, Dataset: "nsl-kdd", Algo: algo, Ways: 5, Shots: shots, Queries: 15, Seeds: []uint64{1},
			Wall: 60, Provenance: Provenance{Commit: "first", GoVersion: "go1", OS: "linux", Arch: "amd64", CPUs: 2},
			Backend: "cpu", Device: "c", Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	mt := mk("protonet", 5, 0.91)
	mt.Variant = "multitask-b0.5"
	mt.Provenance.Commit, mt.Provenance.GoVersion, mt.Backend, mt.Device = "later", "go0", "cuda", "H100"
	mt.Wall = 60.8 // the sum, 300.8 s, is rounded, not cut to whole seconds
	mt.Multitask = &MultitaskSummary{BinaryWeight: 0.5, Metrics: map[string]eval.Summary{
		"binary_accuracy": {Mean: 0.95, HalfWidth: 0.02, N: 3}, "binary_auroc": {Mean: 0.97, HalfWidth: 0.01, N: 3}}}
	runs := []*RunSummary{mk("maml", 5, 0.7), mk("protonet", 1, 0.8), mk("protonet", 5, 0.9), mk("zeta", 1, 0.5), mt}
	dir, got := suiteReport(t, runs, "## Extra")
	// Learners in the usual order, unknown ones last; a missing cell is "-".
	reportHas(t, got,
		"| learner | 1-shot | 5-shot |",
		"| maml | - | 70.00 ± 1.00 |\n| zeta | 50.00 ± 1.00 | - |",
		"Commits first (4 runs), later (1 runs),",
		// The machine of every run, not only the first's.
		"go1, linux/amd64 with 2 CPUs, backend cpu (c) (4 runs); go0, linux/amd64 with 2 CPUs, backend cuda (H100) (1 runs).",
		"Compute time of the runs (sum of their wall times): 5m1s.",
		"![nsl-kdd accuracy by learner and shots](fewshot-nsl-kdd.png)",
		"# Suite\n\n## Extra\n\nGenerated",
		// A variant is its own row, beside the plain learner.
		"| protonet | 80.00 ± 1.00 | 90.00 ± 1.00 |\n| protonet + multitask-b0.5 | - | 91.00 ± 1.00 |",
		"| protonet + multitask-b0.5 | 5 | 95.00 ± 2.00 | 97.00 ± 1.00 | - | - |",
	)
	if strings.Contains(got, "Macro F1") {
		t.Error("a table for a metric no run has")
	}
	if _, err := os.Stat(filepath.Join(dir, "fewshot-nsl-kdd.png")); err != nil {
		t.Error("no plot beside the report")
	}
	if err := SuiteReport(filepath.Join(dir, "none.md"), "Suite", nil, nil); err == nil {
		t.Error("a report of no runs")
	}
}

// Per-class rows run from the best F1 down; a class without an F1 (never
// present nor predicted) comes last, shown as "-".
func TestRunReportPutsUndefinedF1Last(t *testing.T) {
	nan := math.NaN()
	s := &RunSummary{Run: "r", Seeds: []uint64{1}, Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.5, N: 4}},
		PerClass: []eval.ClassScore{
			{Class: "absent", Precision: nan, Recall: nan, F1: nan},
			{Class: "weak", Precision: 0.5, Recall: 0.5, F1: 0.5, Support: 2},
			{Class: "strong", Precision: 1, Recall: 1, F1: 1, Support: 2},
		}}
	md := runReport(s, nil)
	strong, weak, absent := strings.Index(md, "| strong"), strings.Index(md, "| weak"), strings.Index(md, "| absent")
	if strong < 0 || !(strong < weak && weak < absent) {
		t.Errorf("per-class order: strong at %d, weak at %d, absent at %d; want that order\n%s", strong, weak, absent, md)
	}
	if !strings.Contains(md[absent:], "| absent |  | - | - | - | 0 |") {
		t.Errorf("the absent class's row:\n%s", md[absent:])
	}
}

// A run report says where the wall time went, largest phase first, and
// leaves out phases that did not run; seeds without phase times (written
// before they were recorded) make no sum.
func TestRunReportPhases(t *testing.T) {
	seeds := []*SeedResult{
		{Phases: &PhaseSeconds{MetaTrain: 4, Validation: 0.5, MetaTest: 0.5, Other: 1.5}},
		{Phases: &PhaseSeconds{MetaTrain: 2, Validation: 0.5, MetaTest: 0.5, Other: 0.5}},
	}
	sum := addPhases(seeds)
	if want := (PhaseSeconds{MetaTrain: 6, Validation: 1, MetaTest: 1, Other: 2}); sum == nil || *sum != want {
		t.Fatalf("added phases %+v, want %+v", sum, want)
	}
	s := &RunSummary{Run: "r", Seeds: []uint64{1, 2}, Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.5, N: 4}}, Phases: sum}
	want := "Where the wall time went, all seeds: meta-training 6.0 s (60%), other 2.0 s (20%), validation 1.0 s (10%), meta-test 1.0 s (10%).\n"
	if md := runReport(s, nil); !strings.Contains(md, want) {
		t.Errorf("report without %q:\n%s", want, md)
	}
	if got := addPhases(append(seeds, &SeedResult{})); got != nil {
		t.Errorf("a seed without phase times: sum %+v, want none", got)
	}
	if md := runReport(&RunSummary{Run: "r", Seeds: []uint64{1}, Metrics: map[string]eval.Summary{}}, nil); strings.Contains(md, "wall time went") {
		t.Errorf("a report without phase times says where the time went:\n%s", md)
	}
}

// The run table shows accuracy and the macro precision, recall and F1,
// each under its own header.
func TestMetricTableColumns(t *testing.T) {
	v := func(m float64) eval.Summary { return eval.Summary{Mean: m, HalfWidth: 0.01, N: 10} }
	s := &RunSummary{Run: "r", Algo: "protonet", Ways: 5, Shots: 1, Queries: 15, Seeds: []uint64{1},
		Metrics: map[string]eval.Summary{"accuracy": v(0.5), "macro_precision": v(0.6), "macro_recall": v(0.7), "macro_f1": v(0.65)}}
	tab := MetricTable("t", []*RunSummary{s})
	want := map[string]string{"accuracy %": "50.00 ± 1.00", "precision %": "60.00 ± 1.00", "recall %": "70.00 ± 1.00",
		"F1 %": "65.00 ± 1.00", "detection %": "-", "AUROC %": "-"}
	for i, h := range tab.Header {
		if w, ok := want[h]; ok && tab.Rows[0][i] != w {
			t.Errorf("%s: %q, want %q", h, tab.Rows[0][i], w)
		}
		delete(want, h)
	}
	for h := range want {
		t.Errorf("no %q column in %v", h, tab.Header)
	}
}

// The table's notes say what its intervals are over: episodes of the few-
// shot runs, seeds of the supervised ones, both when it has both.
func TestMetricTableNotes(t *testing.T) {
	fewShot := &RunSummary{Run: "f", Protocol: "novel", Seeds: []uint64{1}}
	supervised := &RunSummary{Run: "s", Protocol: "supervised", Seeds: []uint64{1}}
	episodes := "over all test episodes of all seeds"
	for _, c := range []struct {
		runs      []*RunSummary
		want, not []string
	}{
		{[]*RunSummary{fewShot}, []string{episodes, "classes of each episode"}, []string{"over seeds"}},
		{[]*RunSummary{supervised}, []string{"degrees of freedom) over seeds, on the first test file", "classes of the test file"}, []string{episodes, "supervised runs:"}},
		{[]*RunSummary{fewShot, supervised}, []string{episodes, "supervised runs: over seeds, on the first test file"}, nil},
	} {
		notes := strings.Join(MetricTable("t", c.runs).Notes, "\n")
		for _, w := range c.want {
			if !strings.Contains(notes, w) {
				t.Errorf("%d runs (%s first): notes without %q:\n%s", len(c.runs), c.runs[0].Protocol, w, notes)
			}
		}
		for _, w := range c.not {
			if strings.Contains(notes, w) {
				t.Errorf("%d runs (%s first): notes with %q:\n%s", len(c.runs), c.runs[0].Protocol, w, notes)
			}
		}
	}
}

// Runs with different robustness budgets share one table: each cell is the
// run's own score at that column's attack and budget, "-" where it has none.
// Runs with different detection settings each get their note.
func TestSuiteReportMixedRobustnessAndDetection(t *testing.T) {
	acc := func(v float64) eval.Summary { return eval.Summary{Mean: v, HalfWidth: 0.01, N: 10} }
	mk := func(algo string) *RunSummary {
		return &RunSummary{Run: "r-" + algo, Dataset: "nsl-kdd", Algo: algo, Ways: 5, Shots: 5, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": acc(0.9)}}
	}
	pn, nc := mk("protonet"), mk("nearest-centroid")
	pn.Robustness = []RobustResult{{Attack: "fgsm", Eps: 0, Accuracy: acc(0.9)},
		{Attack: "fgsm", Eps: 0.05, Accuracy: acc(0.8)}, {Attack: "pgd", Eps: 0.05, Accuracy: acc(0.7)}}
	nc.Robustness = []RobustResult{{Attack: "fgsm", Eps: 0, Accuracy: acc(0.85)},
		{Attack: "fgsm", Eps: 0.5, Accuracy: acc(0.4)}, {Attack: "pgd", Eps: 0.5, Accuracy: acc(0.3)}}
	pn.Detection = &DetectionSummary{Method: "mahalanobis", Rule: "far 0.05", Metrics: map[string]eval.Summary{"auroc": acc(0.95)}}
	nc.Detection = &DetectionSummary{Method: "euclidean", Rule: "f1", Metrics: map[string]eval.Summary{"auroc": acc(0.9)}}
	_, got := suiteReport(t, []*RunSummary{pn, nc})
	reportHas(t, got,
		"| learner | clean | fgsm 0.05 | fgsm 0.5 | pgd 0.05 | pgd 0.5 |",
		"| protonet | 90.00 ± 1.00 | 80.00 ± 1.00 | - | 70.00 ± 1.00 | - |",
		"| nearest-centroid | 85.00 ± 1.00 | - | 40.00 ± 1.00 | - | 30.00 ± 1.00 |",
		"protonet: mahalanobis distance to normal traffic in the learner's embedding; threshold: false-alarm rate 0.05 on held-out training-file normal flows",
		"nearest-centroid: euclidean distance to normal traffic in the learner's embedding; threshold: best F1 on held-out training-file normal flows and meta-val attack flows",
	)
}

// Runs of one learner and shot count that differ in other settings all
// appear: each episode shape (ways, queries) is its own section, titled by
// its own shape, and runs that would share a cell get rows of their own,
// named by run.
func TestSuiteReportKeepsEveryRun(t *testing.T) {
	mk := func(run string, ways int, acc float64) *RunSummary {
		return &RunSummary{Run: run, Dataset: "nsl-kdd", Algo: "protonet", Ways: ways, Shots: 5, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	dup := mk("p5lr", 5, 0.6) // a second folder holding a run of the same name
	runs := []*RunSummary{mk("p3", 3, 0.95), mk("p5", 5, 0.8), mk("p5lr", 5, 0.7), dup, mk("p5-1shot", 5, 0.5)}
	runs[4].Shots = 1
	dir, got := suiteReport(t, runs)
	reportHas(t, got,
		"## nsl-kdd, 3-way, 15 queries per way: few-shot novel-attack detection\n\n**Accuracy (3-way, 15 queries per way)**",
		"| protonet | 95.00 ± 1.00 |",
		"## nsl-kdd, 5-way, 15 queries per way: few-shot novel-attack detection\n\n**Accuracy (5-way, 15 queries per way)**",
		"| protonet (p5) | 50.00 ± 1.00 | 80.00 ± 1.00 |\n| protonet (p5lr) | - | 70.00 ± 1.00 |\n| protonet (p5lr #2) | - | 60.00 ± 1.00 |",
		"![nsl-kdd, 3-way, 15 queries per way accuracy by learner and shots](fewshot-nsl-kdd-3way-15q.png)",
		"(fewshot-nsl-kdd-5way-15q.png)",
	)
	for _, f := range []string{"fewshot-nsl-kdd-3way-15q.png", "fewshot-nsl-kdd-5way-15q.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("no plot %s beside the report", f)
		}
	}
}

// A grid over hidden layers and shots (runs g-h64-1shot, g-h64-5shot,
// g-h128-1shot, g-h128-5shot) is a table of two rows, one per hidden-layer
// setting, each with both shot counts filled: the row is named by the run
// name less its shot-count suffix, so a shot count one setting lacks
// (g-h128-10shot alone) still joins its row. Runs whose names still agree
// get a number, and the learner's other runs are named too.
func TestSuiteReportLinesUpAGridOverShots(t *testing.T) {
	mk := func(run string, shots int, acc float64) *RunSummary {
		return &RunSummary{Run: run, Dataset: "nsl-kdd", Algo: "protonet", Ways: 5, Shots: shots, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	runs := []*RunSummary{mk("g-h64-1shot", 1, 0.61), mk("g-h64-5shot", 5, 0.65), mk("g-h128-1shot", 1, 0.71), mk("g-h128-5shot", 5, 0.75),
		mk("g-h128-10shot", 10, 0.77), mk("q-5shot-15query", 10, 0.4), mk("q-5shot-15query", 10, 0.3), mk("m", 20, 0.9)}
	_, got := suiteReport(t, runs)
	reportHas(t, got,
		"| learner | 1-shot | 5-shot | 10-shot | 20-shot |",
		"| protonet (g-h64) | 61.00 ± 1.00 | 65.00 ± 1.00 | - | - |\n"+
			"| protonet (g-h128) | 71.00 ± 1.00 | 75.00 ± 1.00 | 77.00 ± 1.00 | - |\n"+
			"| protonet (q-5shot-15query) | - | - | 40.00 ± 1.00 | - |\n"+
			"| protonet (q-5shot-15query #2) | - | - | 30.00 ± 1.00 | - |\n"+
			"| protonet (m) | - | - | - | 90.00 ± 1.00 |\n",
	)
	for run, want := range map[string]string{"g-h64-5shot": "g-h64", "g-5shot-15query": "g-15query", "g-5shot-1shot": "g-5shot",
		"g-15shot": "g-15shot", "g-5shots": "g-5shots", "g-5shot-x-5shot": "g-5shot-x", "5shot": "5shot"} {
		shots := 5
		if run == "g-5shot-1shot" {
			shots = 1
		}
		if n := rowName(&RunSummary{Run: run, Shots: shots}); n != want {
			t.Errorf("rowName(%q at %d shots) = %q, want %q", run, shots, n, want)
		}
	}
}

// A report that cannot be written leaves no plot behind.
func TestSuiteReportFailsWithoutLeavingPlots(t *testing.T) {
	dir := t.TempDir()
	runs := []*RunSummary{{Run: "r", Dataset: "nsl-kdd", Algo: "protonet", Ways: 5, Shots: 5, Queries: 15, Seeds: []uint64{1},
		Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.9, HalfWidth: 0.01, N: 10}}}}
	taken := filepath.Join(dir, "taken")
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{taken, filepath.Join(dir, "missing", "REPORT.md")} {
		if err := SuiteReport(path, "Suite", runs, nil); err == nil {
			t.Errorf("report to %s: no error", path)
		}
	}
	if err := SuiteReport(taken, "Suite", runs, nil); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("report to a directory: %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("a failed report left %v behind", names)
	}
}

// Per-run links lead from the report's folder to each run's folder, wherever
// the two are.
func TestSuiteReportLinksFromTheReportsFolder(t *testing.T) {
	mk := func(run string, shots int) *RunSummary {
		return &RunSummary{Run: run, Dataset: "nsl-kdd", Algo: "protonet", Ways: 5, Shots: shots, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.9, HalfWidth: 0.01, N: 10}}}
	}
	dir := t.TempDir()
	runs := []*RunSummary{mk("a", 1), mk("b", 5), mk("c", 10)}
	dirs := []string{filepath.Join(dir, "runs", "a"), filepath.Join(dir, "out", "b"), filepath.Join(dir, "out")}
	path := filepath.Join(dir, "out", "REPORT.md")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := SuiteReport(path, "Suite", runs, dirs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[a](../runs/a/report.md), [b](b/report.md), [c](report.md)"; !strings.Contains(string(b), want) {
		t.Errorf("report lacks %q:\n%s", want, b)
	}
	// Without run folders, runs are taken to sit beside the report.
	if err := SuiteReport(path, "Suite", runs, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ = os.ReadFile(path); !strings.Contains(string(b), "[a](a/report.md), [b](b/report.md), [c](c/report.md)") {
		t.Errorf("links without run folders:\n%s", b)
	}
	if err := SuiteReport(path, "Suite", runs, dirs[:1]); err == nil {
		t.Error("fewer run folders than runs")
	}
}

// suiteReport writes the report of runs (and extra text) into a fresh
// folder and returns the folder and the report.
func suiteReport(t *testing.T, runs []*RunSummary, extra ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "REPORT.md")
	if err := SuiteReport(path, "Suite", runs, nil, extra...); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, string(b)
}

// reportHas fails the test for each of wants that got lacks.
func reportHas(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

// Two folders holding runs of the same names (two suites) keep their rows
// apart: each folder's runs share a row, numbered by folder.
func TestSuiteReportKeepsFoldersApart(t *testing.T) {
	mk := func(run string, shots int, acc float64) *RunSummary {
		return &RunSummary{Run: run, Dataset: "nsl-kdd", Algo: "protonet", Ways: 5, Shots: shots, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	runs := []*RunSummary{mk("g-1shot", 1, 0.70), mk("g-1shot", 1, 0.60), mk("g-5shot", 5, 0.80)}
	dir := t.TempDir()
	dirs := []string{filepath.Join(dir, "x", "g-1shot"), filepath.Join(dir, "y", "g-1shot"), filepath.Join(dir, "y", "g-5shot")}
	path := filepath.Join(dir, "REPORT.md")
	if err := SuiteReport(path, "Suite", runs, dirs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reportHas(t, string(b), "| protonet (g) | 70.00 ± 1.00 | - |\n| protonet (g #2) | 60.00 ± 1.00 | 80.00 ± 1.00 |")

	// A suite extended by a run in another folder, and a folder spelled two
	// ways, keep one row.
	runs = []*RunSummary{mk("g-1shot", 1, 0.70), mk("g-5shot", 5, 0.80), mk("h-1shot", 1, 0.50), mk("g-10shot", 10, 0.85)}
	dirs = []string{filepath.Join(dir, "x", "g-1shot"), dir + "/x/./g-5shot", filepath.Join(dir, "x", "h-1shot"), filepath.Join(dir, "y", "g-10shot")}
	if err := SuiteReport(path, "Suite", runs, dirs); err != nil {
		t.Fatal(err)
	}
	if b, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	reportHas(t, string(b), "| protonet (g) | 70.00 ± 1.00 | 80.00 ± 1.00 | 85.00 ± 1.00 |\n| protonet (h) | 50.00 ± 1.00 | - | - |")
}

// Runs on a data set's distinct records (of both files, or of one) have a
// section and plot of their own: beside the runs on every record they would
// share cells.
func TestSuiteReportKeepsDistinctRecordsApart(t *testing.T) {
	mk := func(run, distinct string, acc float64) *RunSummary {
		return &RunSummary{Run: run, Dataset: "kddcup99", Distinct: distinct, Algo: "protonet", Ways: 5, Shots: 5, Queries: 15, Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	dir, got := suiteReport(t, []*RunSummary{mk("all", "", 0.9), mk("distinct", "both", 0.8), mk("test", "test", 0.85)})
	reportHas(t, got,
		"## kddcup99: few-shot novel-attack detection",
		"## kddcup99 (distinct): few-shot novel-attack detection",
		"## kddcup99 (distinct test): few-shot novel-attack detection",
		"![kddcup99 (distinct) accuracy by learner and shots](fewshot-kddcup99-distinct.png)",
		"(fewshot-kddcup99-distinct-test.png)",
	)
	if strings.Contains(got, "protonet (") {
		t.Error("runs of two sections share a table")
	}
	for _, f := range []string{"fewshot-kddcup99.png", "fewshot-kddcup99-distinct.svg", "fewshot-kddcup99-distinct-test.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("no plot %s beside the report", f)
		}
	}
}
