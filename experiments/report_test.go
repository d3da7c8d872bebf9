package experiments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/eval"
)

func TestSuiteReport(t *testing.T) {
	mk := func(algo string, shots int, acc float64) *RunSummary {
		return &RunSummary{Run: "r-" + algo, Dataset: "nsl-kdd", Algo: algo, Ways: 5, Shots: shots, Queries: 15, Seeds: []uint64{1},
			Wall: 60, Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 10}}}
	}
	runs := []*RunSummary{mk("maml", 5, 0.7), mk("protonet", 1, 0.8), mk("protonet", 5, 0.9), mk("zeta", 1, 0.5)}
	dir := t.TempDir()
	path := filepath.Join(dir, "REPORT.md")
	if err := SuiteReport(path, "Suite", runs, "## Extra"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	// Learners in the usual order, unknown ones last; a missing cell is "-".
	for _, want := range []string{
		"| learner | 1-shot | 5-shot |",
		"| protonet | 80.00 ± 1.00 | 90.00 ± 1.00 |\n| maml | - | 70.00 ± 1.00 |\n| zeta | 50.00 ± 1.00 | - |",
		"Compute time of the runs (sum of their wall times): 4m0s.",
		"![nsl-kdd accuracy by learner and shots](fewshot-nsl-kdd.png)",
		"# Suite\n\n## Extra\n\nGenerated",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Macro F1") {
		t.Error("a table for a metric no run has")
	}
	if _, err := os.Stat(filepath.Join(dir, "fewshot-nsl-kdd.png")); err != nil {
		t.Error("no plot beside the report")
	}
	if err := SuiteReport(path, "Suite", nil); err == nil {
		t.Error("a report of no runs")
	}
}
