package experiments

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metaids/metaids/eval"
)

// SuiteReport writes a Markdown report of many finished runs (a suite such as
// the one make reproduce runs) to path, with one grouped-bar plot per data
// set beside it. extra lines go under the title.
func SuiteReport(path, title string, runs []*RunSummary, extra ...string) error {
	if len(runs) == 0 {
		return fmt.Errorf("report: no finished runs")
	}
	dir := filepath.Dir(path)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, e := range extra {
		b.WriteString(e + "\n\n")
	}
	prov := runs[0].Provenance
	var wall float64
	for _, r := range runs {
		wall += r.Wall
	}
	fmt.Fprintf(&b, "Generated %s from %d runs. %s, %s, %s/%s with %d CPUs, backend %s (%s). "+
		"Compute time of the runs (sum of their wall times): %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), len(runs), commits(runs), prov.GoVersion, prov.OS, prov.Arch,
		prov.CPUs, runs[0].Backend, runs[0].Device, (time.Duration(wall) * time.Second).Round(time.Second))
	b.WriteString("Every figure is mean ± 95% confidence interval (1.96·sd/√n) over all test episodes of all seeds, in percent. " +
		"Meta-test classes are attack types absent from the training file (novel attacks).\n\n")

	byDataset := map[string][]*RunSummary{}
	for _, r := range runs {
		if r.Protocol != "supervised" {
			byDataset[r.Dataset] = append(byDataset[r.Dataset], r)
		}
	}
	names := make([]string, 0, len(byDataset))
	for d := range byDataset {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		rs := byDataset[d]
		fmt.Fprintf(&b, "## %s: few-shot novel-attack detection\n\n", d)
		for _, m := range []struct{ key, label string }{{"accuracy", "Accuracy"}, {"macro_f1", "Macro F1"}, {"detection_rate", "Detection rate"}, {"false_alarm_rate", "False-alarm rate"}} {
			t := gridTable(fmt.Sprintf("%s (%d-way, %d queries per way)", m.label, rs[0].Ways, rs[0].Queries), rs, func(r *RunSummary) (eval.Summary, bool) {
				v, ok := r.Metrics[m.key]
				return v, ok
			})
			if t == nil {
				continue
			}
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		for _, m := range []struct{ key, label string }{{"auroc", "AUROC"}, {"detection_rate", "detection rate"}, {"false_alarm_rate", "false-alarm rate"}} {
			t := gridTable("Open-set detection on every meta-test flow, "+m.label+" (mean ± CI over seeds)", rs, func(r *RunSummary) (eval.Summary, bool) {
				if r.Detection == nil {
					return eval.Summary{}, false
				}
				v, ok := r.Detection.Metrics[m.key]
				return v, ok
			})
			if t == nil {
				continue
			}
			if m.key == "auroc" {
				t.Notes = detectionNotes(rs)
			}
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		if t := robustTable(rs); t != nil {
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		if t := multitaskTable(rs); t != nil {
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		costTable(rs).Render(&b, eval.Markdown)
		b.WriteString("\n")
		stem := "fewshot-" + d
		if err := gridPlot(filepath.Join(dir, stem), d, rs); err != nil {
			return err
		}
		fmt.Fprintf(&b, "![%s accuracy by learner and shots](%s.png)\n\n", d, stem)
		b.WriteString("Per-run reports (written under results/ by the run, not committed): ")
		for i, r := range rs {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "[%s](%s/report.md)", r.Run, r.Run)
		}
		b.WriteString("\n\n")
	}
	if sec := SupervisedSection(runs); sec != "" {
		b.WriteString(sec)
		b.WriteString("\n")
	}
	return writeFileAtomic(path, []byte(b.String()))
}

// commits names the commit the runs were made with, or each commit and its
// run count when a suite was extended by later runs.
func commits(runs []*RunSummary) string {
	var order []string
	count := map[string]int{}
	for _, r := range runs {
		c := r.Provenance.Commit
		if count[c] == 0 {
			order = append(order, c)
		}
		count[c]++
	}
	if len(order) == 1 {
		return "Commit " + order[0]
	}
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s (%d runs)", c, count[c])
	}
	return "Commits " + strings.Join(parts, ", ")
}

// gridTable is learners (rows) by shots (columns) for one metric; nil when
// no run has the metric.
func gridTable(title string, runs []*RunSummary, metric func(*RunSummary) (eval.Summary, bool)) *eval.Table {
	algos, shots := gridAxes(runs)
	t := &eval.Table{Title: title, Header: []string{"learner"}}
	for _, k := range shots {
		t.Header = append(t.Header, strconv.Itoa(k)+"-shot")
	}
	found := false
	for _, a := range algos {
		row := []string{a}
		for _, k := range shots {
			cell := "-"
			if r := findRun(runs, a, k); r != nil {
				if m, ok := metric(r); ok {
					cell, found = m.Format(100, 2), true
				}
			}
			row = append(row, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	if !found {
		return nil
	}
	return t
}

// detectionNotes says how the runs in a detection table scored and
// thresholded: one note when they all agree, else one per setting, naming
// the runs that used it.
func detectionNotes(runs []*RunSummary) []string {
	var settings []string
	users := map[string][]string{}
	for _, r := range runs {
		if r.Detection == nil {
			continue
		}
		n := fmt.Sprintf("%s distance to normal traffic in the learner's embedding; threshold: %s", r.Detection.Method, thresholdWording(r.Detection.Rule))
		if _, ok := users[n]; !ok {
			settings = append(settings, n)
		}
		if l := r.Label(); !slices.Contains(users[n], l) {
			users[n] = append(users[n], l)
		}
	}
	if len(settings) == 1 {
		return settings
	}
	notes := make([]string, len(settings))
	for i, n := range settings {
		notes[i] = strings.Join(users[n], ", ") + ": " + n
	}
	return notes
}

// thresholdWording spells out a detection threshold rule ("f1", "far 0.05").
func thresholdWording(rule string) string {
	if far, ok := strings.CutPrefix(rule, "far "); ok {
		return "false-alarm rate " + far + " on held-out training-file normal flows"
	}
	if rule == "f1" {
		return "best F1 on held-out training-file normal flows and meta-val attack flows"
	}
	return rule
}

// robustTable is accuracy under attack of the runs at the middle shot count
// that have a robustness evaluation: learners by attack and budget. The
// columns are every (attack, budget) any of those runs measured, so runs with
// different budgets share the table and a run shows "-" where it has none.
func robustTable(runs []*RunSummary) *eval.Table {
	algos, shots := gridAxes(runs)
	k := shots[len(shots)/2]
	type column struct {
		attack string
		eps    float64
	}
	key := func(r RobustResult) column {
		if r.Eps == 0 {
			return column{} // the clean score, whatever attack it was stored under
		}
		return column{r.Attack, r.Eps}
	}
	var cols []column
	seen := map[column]bool{}
	for _, a := range algos {
		if r := findRun(runs, a, k); r != nil {
			for _, x := range r.Robustness {
				if c := key(x); !seen[c] {
					seen[c] = true
					cols = append(cols, c)
				}
			}
		}
	}
	if cols == nil {
		return nil
	}
	// Clean first, then each attack (in the order met) by rising budget.
	order := map[string]int{}
	for _, c := range cols {
		if _, ok := order[c.attack]; !ok {
			order[c.attack] = len(order)
		}
	}
	sort.SliceStable(cols, func(i, j int) bool {
		a, b := cols[i], cols[j]
		if (a.eps == 0) != (b.eps == 0) {
			return a.eps == 0
		}
		if a.attack != b.attack {
			return order[a.attack] < order[b.attack]
		}
		return a.eps < b.eps
	})
	t := &eval.Table{Title: fmt.Sprintf("Accuracy under attack, %d-shot (budgets in encoded units)", k), Header: []string{"learner"}}
	for _, c := range cols {
		if c.eps == 0 {
			t.Header = append(t.Header, "clean")
		} else {
			t.Header = append(t.Header, fmt.Sprintf("%s %g", c.attack, c.eps))
		}
	}
	for _, a := range algos {
		r := findRun(runs, a, k)
		if r == nil || len(r.Robustness) == 0 {
			continue
		}
		cell := map[column]string{}
		for _, x := range r.Robustness {
			cell[key(x)] = x.Accuracy.Format(100, 2)
		}
		row := []string{a}
		for _, c := range cols {
			if v, ok := cell[c]; ok {
				row = append(row, v)
			} else {
				row = append(row, "-")
			}
		}
		t.Rows = append(t.Rows, row)
	}
	t.Notes = []string{"mean ± 95% CI over the robustness episodes of all seeds; PGD: random start, step 2.5·budget/steps"}
	return t
}

// multitaskTable lists the auxiliary heads of the runs that train them:
// learner (with its variant) by shots, each head's scores on meta-test.
func multitaskTable(runs []*RunSummary) *eval.Table {
	algos, shots := gridAxes(runs)
	t := &eval.Table{Title: "Multi-task heads on meta-test query rows (mean ± CI over seeds)",
		Header: []string{"learner", "shots", "attack vs normal accuracy", "attack vs normal AUROC", "category accuracy", "category macro F1"}}
	for _, a := range algos {
		for _, k := range shots {
			r := findRun(runs, a, k)
			if r == nil || r.Multitask == nil {
				continue
			}
			row := []string{a, strconv.Itoa(k)}
			for _, name := range []string{"binary_accuracy", "binary_auroc", "category_accuracy", "category_macro_f1"} {
				cell := "-"
				if v, ok := r.Multitask.Metrics[name]; ok {
					cell = v.Format(100, 2)
				}
				row = append(row, cell)
			}
			t.Rows = append(t.Rows, row)
		}
	}
	if len(t.Rows) == 0 {
		return nil
	}
	t.Notes = []string{"heads read at the meta-parameters; the category head's classes are the meta-train categories, and novel-attack rows of other categories are not scored"}
	return t
}

// costTable lists each learner's model cost and measured speed: parameters,
// multiply-adds per flow (at the largest shot count; the model does not
// depend on it), and query flows classified per second with adaptation.
func costTable(runs []*RunSummary) *eval.Table {
	algos, shots := gridAxes(runs)
	t := &eval.Table{Title: "Model cost and speed", Header: []string{"learner", "parameters", "MACs per flow"}}
	for _, k := range shots {
		t.Header = append(t.Header, fmt.Sprintf("flows/s %d-shot", k))
	}
	for _, a := range algos {
		row := []string{a, "-", "-"}
		for _, k := range shots {
			cell := "-"
			if r := findRun(runs, a, k); r != nil {
				row[1], row[2] = strconv.Itoa(r.Cost.Params), strconv.Itoa(r.Cost.MACsPerFlow)
				cell = strconv.FormatFloat(r.FlowsPS, 'f', 0, 64)
			}
			row = append(row, cell)
		}
		t.Rows = append(t.Rows, row)
	}
	t.Notes = []string{"flows/s: meta-test query flows classified per second on one thread, adapting to each episode's support set included"}
	return t
}

func gridPlot(stem, dataset string, runs []*RunSummary) error {
	algos, shots := gridAxes(runs)
	var series []eval.BarSeries
	for _, k := range shots {
		s := eval.BarSeries{Name: strconv.Itoa(k) + "-shot"}
		for _, a := range algos {
			v, ci := math.NaN(), math.NaN()
			if r := findRun(runs, a, k); r != nil {
				if m, ok := r.Metrics["accuracy"]; ok {
					v, ci = 100*m.Mean, 100*m.HalfWidth
				}
			}
			s.Values, s.CI = append(s.Values, v), append(s.CI, ci)
		}
		series = append(series, s)
	}
	return eval.PlotBars(stem, dataset+": meta-test accuracy on novel attacks", "accuracy %", algos, series)
}

// gridAxes lists the learners (in the order of learnerOrder, then by name)
// and shot counts of the runs.
func gridAxes(runs []*RunSummary) (algos []string, shots []int) {
	for _, r := range runs {
		if !slices.Contains(algos, r.Label()) {
			algos = append(algos, r.Label())
		}
		if !slices.Contains(shots, r.Shots) {
			shots = append(shots, r.Shots)
		}
	}
	base := func(label string) string { return strings.SplitN(label, " + ", 2)[0] }
	sort.Slice(algos, func(i, j int) bool {
		oi, oj := slices.Index(learnerOrder, base(algos[i])), slices.Index(learnerOrder, base(algos[j]))
		if oi != oj {
			return uint(oi) < uint(oj) // unknown names (-1) last
		}
		return algos[i] < algos[j]
	})
	sort.Ints(shots)
	return algos, shots
}

var learnerOrder = []string{"protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "finetune", "nearest-centroid"}

func findRun(runs []*RunSummary, label string, shots int) *RunSummary {
	for _, r := range runs {
		if r.Label() == label && r.Shots == shots {
			return r
		}
	}
	return nil
}
