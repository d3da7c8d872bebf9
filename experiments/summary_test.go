package experiments

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/metaids/metaids/eval"
)

// checkSummaryFromEpisodes recomputes a finished run's metrics from its
// seeds' episodes.csv files, as a reader of the results would: each metric's
// mean, sample SD and 95% half-width over the pooled test episodes of all
// seeds, and the spread of the per-seed means. The CSV holds each value
// exactly; the tolerance allows for summing in another order.
func checkSummaryFromEpisodes(t *testing.T, dir string, s *RunSummary) {
	t.Helper()
	const tol = 1e-12
	pooled := map[string][]float64{}
	means := map[string][]float64{}
	for _, seed := range s.Seeds {
		f, err := os.Open(filepath.Join(dir, "seed-"+strconv.FormatUint(seed, 10), "episodes.csv"))
		if err != nil {
			t.Fatal(err)
		}
		r := csv.NewReader(f)
		r.Comment = '#' // the provenance line
		rows, err := r.ReadAll()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for c, name := range rows[0][1:] {
			var xs []float64
			for _, row := range rows[1:] {
				if row[c+1] == "" {
					continue // undefined in that episode
				}
				v, err := strconv.ParseFloat(row[c+1], 64)
				if err != nil {
					t.Fatal(err)
				}
				xs = append(xs, v)
			}
			if len(xs) == 0 {
				continue
			}
			pooled[name] = append(pooled[name], xs...)
			sum := 0.0
			for _, x := range xs {
				sum += x
			}
			means[name] = append(means[name], sum/float64(len(xs)))
		}
	}
	meanSD := func(xs []float64) (mean, sd float64) {
		for _, x := range xs {
			mean += x
		}
		mean /= float64(len(xs))
		for _, x := range xs {
			sd += (x - mean) * (x - mean)
		}
		return mean, math.Sqrt(sd / float64(len(xs)-1))
	}
	check := func(what string, got eval.Summary, xs []float64) {
		t.Helper()
		mean, sd := meanSD(xs)
		hw := eval.CIHalfWidth(sd, len(xs))
		if got.N != len(xs) || math.Abs(got.Mean-mean) > tol || math.Abs(got.SD-sd) > tol || math.Abs(got.HalfWidth-hw) > tol {
			t.Errorf("%s: summary %+v, recomputed from episodes.csv mean %v sd %v half-width %v n %d", what, got, mean, sd, hw, len(xs))
		}
	}
	if len(pooled) != len(s.Metrics) {
		t.Errorf("summary has %d metrics, the episode files %d", len(s.Metrics), len(pooled))
	}
	for name, xs := range pooled {
		check(name, s.Metrics[name], xs)
		check(name+" seed spread", s.SeedSpread[name], means[name])
	}
}

func TestPoolSummariesIsMeanCIOfTheUnion(t *testing.T) {
	parts := [][]float64{{0.81, 0.9, 0.84}, {0.7}, {0.6, 0.66}, {0.95, 0.93, 0.99, 0.9}}
	var all []float64
	var pooled eval.Summary
	for _, p := range parts {
		all = append(all, p...)
		pooled = poolSummaries(pooled, eval.MeanCI(p))
		want := eval.MeanCI(all)
		if pooled.N != want.N || math.Abs(pooled.Mean-want.Mean) > 1e-12 || math.Abs(pooled.SD-want.SD) > 1e-12 ||
			math.Abs(pooled.HalfWidth-want.HalfWidth) > 1e-12 {
			t.Errorf("pooled %v: %+v, want %+v", all, pooled, want)
		}
	}
}

// A summary.json edited by hand so that a figure is one no run writes is
// refused, naming the file and the figure, rather than shown in a table or
// plotted (a negative half-width made report fail in its plot code, naming
// no file; a mean in percent would have shown as 8500%).
func TestReadRunSummaryRefusesImpossibleFigures(t *testing.T) {
	acc := eval.Summary{Mean: 0.85, SD: 0.1, HalfWidth: 0.02, N: 40}
	valid := func() *RunSummary {
		return &RunSummary{Run: "r", Dataset: "nsl-kdd", Protocol: "novel", Algo: "protonet", Hidden: []int{64}, Ways: 5, Shots: 5,
			Queries: 15, Seeds: []uint64{1, 2}, Metrics: map[string]eval.Summary{"accuracy": acc, "macro_f1": acc},
			SeedSpread: map[string]eval.Summary{"accuracy": acc},
			Detection:  &DetectionSummary{Method: "euclidean", Rule: "far", Metrics: map[string]eval.Summary{"auroc": acc}},
			Robustness: []RobustResult{{Attack: "fgsm", Eps: 0.1, Accuracy: acc, MacroF1: acc}},
			Multitask:  &MultitaskSummary{Metrics: map[string]eval.Summary{"binary_accuracy": acc}}}
	}
	dir := t.TempDir()
	read := func(s *RunSummary) error {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "summary.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = ReadRunSummary(dir)
		return err
	}
	if err := read(valid()); err != nil {
		t.Fatalf("a valid summary: %v", err)
	}
	// The widest spreads shares can have are figures a run may write.
	for _, xs := range [][]float64{{0.8}, {0, 1}, {0, 1, 0}, {1, 0, 1, 0, 1, 0, 1, 0}} {
		s := valid()
		s.SeedSpread["accuracy"] = eval.MeanCI(xs)
		if err := read(s); err != nil {
			t.Errorf("seed spread of %v: %v", xs, err)
		}
	}
	for _, c := range []struct {
		edit func(*RunSummary)
		want string
	}{
		{func(s *RunSummary) { s.Metrics["accuracy"] = eval.Summary{Mean: 0.85, N: -5} }, "metrics.accuracy: n = -5, want at least 1"},
		{func(s *RunSummary) { s.Metrics["macro_f1"] = eval.Summary{Mean: 0.85, SD: 0.1, HalfWidth: -1, N: 40} },
			"metrics.macro_f1: sd 0.1 and half-width -1, want both at least 0"},
		{func(s *RunSummary) { s.Metrics["accuracy"] = eval.Summary{Mean: 85, SD: 10, HalfWidth: 2, N: 40} },
			"metrics.accuracy: mean 85, want a share in [0, 1]"},
		{func(s *RunSummary) { s.SeedSpread["accuracy"] = eval.Summary{Mean: 0.85} }, "seed_spread.accuracy: n = 0, want at least 1"},
		{func(s *RunSummary) { s.Detection.Metrics["auroc"] = eval.Summary{Mean: -0.5, N: 2} }, "detection.metrics.auroc: mean -0.5, want a share in [0, 1]"},
		{func(s *RunSummary) { s.Robustness[0].MacroF1.SD = -0.1 }, "robustness[0].macro_f1: sd -0.1 and half-width 0.02, want both at least 0"},
		{func(s *RunSummary) { s.Multitask.Metrics["binary_accuracy"] = eval.Summary{Mean: 2, N: 3} },
			"multitask.metrics.binary_accuracy: mean 2, want a share in [0, 1]"},
		{func(s *RunSummary) { s.Robustness[0].Accuracy.HalfWidth = 1e300 }, // finite, but no share's
			"robustness[0].accuracy: sd 0.1 and half-width 1e+300, wider than n = 40 values in [0, 1] can give (at most 0.5064 and 0.1619)"},
		{func(s *RunSummary) { s.SeedSpread["accuracy"] = eval.Summary{Mean: 0.5, SD: 0.75, HalfWidth: 6, N: 2} },
			"seed_spread.accuracy: sd 0.75 and half-width 6, wider than n = 2 values in [0, 1] can give (at most 0.7071 and 6.353)"},
		{func(s *RunSummary) { s.Metrics["macro_f1"] = eval.Summary{Mean: 0.85, SD: 0.01, N: 1} }, // one value has no spread
			"metrics.macro_f1: sd 0.01 and half-width 0, wider than n = 1 values in [0, 1] can give (at most 0 and 0)"},
		{func(s *RunSummary) {
			s.Protocol, s.Labels, s.Ways, s.Shots, s.Queries = "supervised", "binary", 0, 0, 0
			s.Supervised = []SupervisedEval{{TestFile: "KDDTest+", Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.8, N: 0}}}}
		}, "supervised[0].metrics.accuracy: n = 0, want at least 1"},
	} {
		s := valid()
		c.edit(s)
		if err := read(s); err == nil || err.Error() != dir+"/summary.json: "+c.want {
			t.Errorf("%v; want %q", err, dir+"/summary.json: "+c.want)
		}
	}
}

// A summary.json edited by hand so that a field is one no run writes is
// refused, naming the file and the field: a name no spec can have (it went
// raw into Markdown links and tables and CSV), an episode shape the spec
// check refuses ("-5w 5s 15q"), a protocol summarise does not write, or a
// protocol the rest of the summary contradicts (a supervised run without
// test files showed empty rows).
func TestReadRunSummaryRefusesFieldsNoRunWrites(t *testing.T) {
	acc := eval.Summary{Mean: 0.85, SD: 0.1, HalfWidth: 0.02, N: 40}
	novel := func() *RunSummary {
		return &RunSummary{Run: "nsl-protonet_5w+1.shot", Dataset: "nsl-kdd", Protocol: "novel", Algo: "protonet", Ways: 5, Shots: 5, Queries: 15,
			Seeds: []uint64{1}, Metrics: map[string]eval.Summary{"accuracy": acc}}
	}
	supervised := func() *RunSummary {
		return &RunSummary{Run: "sup", Dataset: "nsl-kdd", Protocol: "supervised", Algo: "classifier", Labels: "category", Seeds: []uint64{1},
			Metrics: map[string]eval.Summary{"accuracy": acc}, Supervised: []SupervisedEval{{TestFile: "KDDTest+", Metrics: map[string]eval.Summary{"accuracy": acc}}}}
	}
	dir := t.TempDir()
	read := func(s *RunSummary) error {
		if err := os.WriteFile(filepath.Join(dir, "summary.json"), must(json.Marshal(s)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRunSummary(dir)
		return err
	}
	old := novel()
	old.Protocol = "" // written before the supervised track
	for _, s := range []*RunSummary{novel(), supervised(), old} {
		if err := read(s); err != nil {
			t.Errorf("a valid summary of protocol %q: %v", s.Protocol, err)
		}
	}
	const name = "want letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit, at most 255 characters, as the name of a spec"
	for _, c := range []struct {
		s    func() *RunSummary
		edit func(*RunSummary)
		want string
	}{
		{novel, func(s *RunSummary) { s.Run = "a|b\n# hdr" }, `run "a|b\n# hdr": ` + name},
		{novel, func(s *RunSummary) { s.Run = "-r" }, `run "-r": ` + name},
		{novel, func(s *RunSummary) { s.Run = strings.Repeat("r", 256) }, "(256 characters): " + name},
		{novel, func(s *RunSummary) { s.Ways = -5 }, "ways: -5, want at least 2, as episodes.ways of a spec"},
		{novel, func(s *RunSummary) { s.Ways = 0 }, "ways: 0, want at least 2, as episodes.ways of a spec"},
		{novel, func(s *RunSummary) { s.Shots = -1 }, "shots: -1, want at least 1, as episodes.shots of a spec"},
		{novel, func(s *RunSummary) { s.Queries = 0 }, "queries: 0, want at least 1, as episodes.queries of a spec"},
		{novel, func(s *RunSummary) { s.Protocol = "weird" }, `protocol "weird", want novel or supervised`},
		{novel, func(s *RunSummary) { s.Protocol = "supervised" },
			"ways, shots and queries 5, 5 and 15: want 0 for protocol supervised, which has no episodes"},
		{novel, func(s *RunSummary) { s.Protocol, s.Ways, s.Shots, s.Queries = "supervised", 0, 0, 0 },
			"supervised: no test results, which protocol supervised has"},
		{novel, func(s *RunSummary) { s.Labels = "binary" }, `labels "binary", but protocol "novel": want supervised`},
		{supervised, func(s *RunSummary) { s.Protocol = "novel" }, `supervised: test results, but protocol "novel": want supervised`},
		{supervised, func(s *RunSummary) { s.Labels = "" }, `labels "", want binary or category for protocol supervised`},
		{supervised, func(s *RunSummary) { s.Queries = 15 }, "ways, shots and queries 0, 0 and 15: want 0 for protocol supervised, which has no episodes"},
	} {
		s := c.s()
		c.edit(s)
		err := read(s)
		if err == nil || !strings.HasPrefix(err.Error(), dir+"/summary.json: ") || !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("%v; want %q", err, dir+"/summary.json: "+c.want)
		}
	}
}
