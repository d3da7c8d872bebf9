package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/experiments"
)

func init() {
	register(command{name: "compare", summary: "put finished runs side by side (metric ± 95% CI), marking significant differences", run: runCompare})
}

// lowerIsBetter lists the metrics where the smallest mean is the best.
var lowerIsBetter = map[string]bool{"false_alarm_rate": true}

func runCompare(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "compare", "compare RESULT_DIR... [--format F]")
	var format string
	formatFlag(fs, &format)
	dirs, err := parseFlags(e, fs, args)
	if err != nil {
		return err
	}
	f, err := eval.ParseFormat(format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	if len(dirs) == 0 {
		return usageErrorf("compare needs at least one result directory: a run (results/<run>) or a folder of runs (results)")
	}
	// Runs in the order named; a folder of runs gives its runs by name.
	var runs []*experiments.RunSummary
	seen := map[string]bool{}
	for _, d := range dirs {
		found, folders, err := findRuns([]string{d})
		if err != nil {
			return err
		}
		for i, s := range found {
			if k := experiments.DirKey(folders[i]); !seen[k] {
				seen[k] = true // the same run named twice is one run
				runs = append(runs, s)
			}
		}
	}
	t := compareTable(runs)
	return t.Render(e.stdout, f)
}

// compareTable shows each metric as mean ± CI in percent; per metric the
// best run is marked "▲" and runs whose interval does not overlap the best
// one's "▼" (a difference unlikely to be noise). Only figures with an
// interval (two or more values) are ranked, and only where two of them are:
// a single value is shown as it is, marked neither way. Runs are ranked
// only against runs of the same data set (its distinct records apart) and
// task (ways and queries per way, or the supervised labelling), whose chance
// levels are the same.
func compareTable(runs []*experiments.RunSummary) *eval.Table {
	metrics := eval.MetricNames
	t := &eval.Table{Title: "Comparison", Labels: 4, Header: []string{"run", "dataset", "algo", "episodes", "seeds"}}
	t.Header = append(t.Header, metrics...)
	group := func(r *experiments.RunSummary) string {
		if r.Protocol == "supervised" {
			g := r.DataName() + " " + r.Shape()
			if len(r.Supervised) > 0 { // its figures are the first test file's
				g += " on " + r.Supervised[0].TestFile
			}
			return g
		}
		return fmt.Sprintf("%s %dw %dq", r.DataName(), r.Ways, r.Queries)
	}
	var groups []string
	groupOf := make([]string, len(runs))
	for i, r := range runs {
		groupOf[i] = group(r)
		if !slices.Contains(groups, groupOf[i]) {
			groups = append(groups, groupOf[i])
		}
	}
	type key struct{ group, metric string }
	best := map[key]int{}
	ranked := 0 // metrics with two or more intervals to compare
	var single []string
	for _, g := range groups {
		for _, m := range metrics {
			k, n := key{g, m}, 0
			best[k] = -1
			for i, r := range runs {
				s, ok := r.Metrics[m]
				if !ok || groupOf[i] != g {
					continue
				}
				if s.N < 2 {
					if !slices.Contains(single, r.Run) {
						single = append(single, r.Run)
					}
					continue
				}
				n++
				if b := best[k]; b < 0 || better(m, s.Mean, runs[b].Metrics[m].Mean) {
					best[k] = i
				}
			}
			if n < 2 {
				best[k] = -1
			} else {
				ranked++
			}
		}
	}
	if len(groups) > 1 {
		t.Notes = append(t.Notes, "runs are ranked only against runs of the same data set and task: "+strings.Join(groups, "; "))
	}
	differs := 0
	for i, r := range runs {
		row := []string{r.Run, r.DataName(), r.Algo, r.Shape(), fmt.Sprint(len(r.Seeds))}
		for _, m := range metrics {
			s, ok := r.Metrics[m]
			if !ok {
				row = append(row, "-")
				continue
			}
			cell := s.Format(100, 2)
			switch b, ok := best[key{groupOf[i], m}]; {
			case !ok || b < 0 || s.N < 2:
			case b == i || s.Mean == runs[b].Metrics[m].Mean: // a tie for best is marked on each
				cell += " ▲"
			case !eval.Overlaps(s, runs[b].Metrics[m]):
				cell += " ▼"
				differs++
			}
			row = append(row, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	t.Notes = append([]string{"mean ± 95% CI (t·sd/√n, Student's t with n−1 degrees of freedom) over test episodes, in percent; ▲ best run per metric; ▼ interval does not overlap the best run's"}, t.Notes...)
	for _, r := range runs {
		if r.Protocol == "supervised" {
			t.Notes = append(t.Notes, "supervised runs: the interval is over seeds, on the first test file")
			break
		}
	}
	if ranked > 0 && differs == 0 {
		t.Notes = append(t.Notes, "every interval overlaps the best run's: no difference stands out from the noise")
	}
	if len(single) > 0 && len(runs) > 1 {
		t.Notes = append(t.Notes, fmt.Sprintf("%s: a figure over a single value (n=1) has no interval, so it is neither ranked nor compared", strings.Join(single, ", ")))
	}
	return t
}

func better(metric string, a, b float64) bool {
	if math.IsNaN(b) {
		return true
	}
	if lowerIsBetter[metric] {
		return a < b
	}
	return a > b
}
