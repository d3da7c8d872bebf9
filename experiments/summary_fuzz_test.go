package experiments

import (
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/metaids/metaids/eval"
)

// FuzzReadRunSummary: a corrupted summary.json gives an error naming it or
// a summary that the results table and a suite report (as metaids compare
// and report make them) take without a panic, the report writing nothing
// outside its own folder. Two inputs are two runs.
func FuzzReadRunSummary(f *testing.F) {
	acc := eval.Summary{Mean: 0.9, SD: 0.1, HalfWidth: 0.01, N: 10}
	s := &RunSummary{Run: "r", Dataset: "nsl-kdd", Protocol: "novel", Algo: "protonet", Hidden: []int{64}, Ways: 5, Shots: 5,
		Queries: 15, Seeds: []uint64{1, 2}, Metrics: map[string]eval.Summary{"accuracy": acc, "macro_f1": acc},
		Detection:  &DetectionSummary{Method: "euclidean", Rule: "f1", Metrics: map[string]eval.Summary{"auroc": acc}},
		Robustness: []RobustResult{{Attack: "fgsm", Eps: 0.1, Accuracy: acc}}}
	valid, err := json.Marshal(s)
	if err != nil {
		f.Fatal(err)
	}
	s.Run, s.Protocol, s.Labels, s.Detection, s.Robustness = "sup", "supervised", "binary", nil, nil
	s.Ways, s.Shots, s.Queries = 0, 0, 0
	s.Supervised = []SupervisedEval{{TestFile: "KDDTest+", Metrics: map[string]eval.Summary{"accuracy": acc}}}
	supervised, err := json.Marshal(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, supervised)
	f.Add(valid, valid)
	f.Add(valid[:len(valid)/2], []byte("{}"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		root := t.TempDir()
		var runs []*RunSummary
		for i, data := range [][]byte{a, b} {
			dir := filepath.Join(root, "results", []string{"a", "b"}[i])
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "summary.json"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := ReadRunSummary(dir)
			if err != nil {
				if want := dir + "/summary.json"; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
					t.Fatalf("error does not name %s: %v", want, err)
				}
				continue
			}
			runs = append(runs, s)
		}
		if len(runs) == 0 {
			return
		}
		for _, format := range []eval.Format{eval.Terminal, eval.JSON, eval.CSV, eval.Markdown, eval.LaTeX} {
			MetricTable("Results", runs).Render(io.Discard, format)
		}
		report := filepath.Join(root, "results", "REPORT.md")
		SuiteReport(report, "fuzz", runs, nil)
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if !d.IsDir() && filepath.Dir(path) != filepath.Dir(report) && filepath.Base(path) != "summary.json" {
				t.Fatalf("the report wrote %s", path)
			}
			return nil
		})
	})
}
