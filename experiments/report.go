package experiments

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metaids/metaids/eval"
)

// SuiteReport writes a Markdown report of many finished runs (a suite such as
// the one make reproduce runs) to path, with one grouped-bar plot per section
// beside it. A section is the runs of one data set at one episode shape (ways
// and queries per way). dirs, when given, are the folders the runs were read
// from (dirs[i] holds runs[i]), and each per-run link points there, relative
// to the report's folder; without them a run is taken to sit beside the
// report in a folder named after it. extra lines go under the title.
//
// The report and its plots are written together: when the report cannot be
// written, no plot is left behind either.
func SuiteReport(path, title string, runs []*RunSummary, dirs []string, extra ...string) error {
	if len(runs) == 0 {
		return fmt.Errorf("report: no finished runs")
	}
	if dirs != nil && len(dirs) != len(runs) {
		return fmt.Errorf("report: %d runs but %d run folders", len(runs), len(dirs))
	}
	if path == "" {
		return fmt.Errorf("report: no report file named")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("report: %s is a directory, not a report file", path)
	}
	dir := filepath.Dir(path)
	runDir := func(i int) string {
		if dirs == nil {
			return filepath.Join(dir, runs[i].Run)
		}
		return dirs[i]
	}
	// Plots are drawn into a scratch folder first and moved beside the
	// report only with it.
	scratch, err := os.MkdirTemp("", "metaids-report-")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer os.RemoveAll(scratch)
	var plots []string

	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for _, e := range extra {
		b.WriteString(e + "\n\n")
	}
	var wall float64
	for _, r := range runs {
		wall += r.Wall
	}
	fmt.Fprintf(&b, "Generated %s from %d runs. %s, %s. "+
		"Compute time of the runs (sum of their wall times): %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), len(runs), commits(runs), machines(runs),
		time.Duration(wall*float64(time.Second)).Round(time.Second))
	b.WriteString("Every figure is mean ± 95% confidence interval (t·sd/√n, Student's t with n−1 degrees of freedom) over all test episodes of all seeds, in percent; tables marked \"over seeds\" (open-set detection, multi-task heads, the supervised track) are over the seeds' own figures. " +
		"Meta-test classes are attack types absent from the training file (novel attacks).\n\n")

	index := map[*RunSummary]int{}
	for i, r := range runs {
		index[r] = i
	}
	folder := map[*RunSummary]string{} // the folder holding each run, however its path was spelled
	for i, r := range runs {
		folder[r] = filepath.Dir(DirKey(runDir(i)))
	}
	for _, s := range sections(runs, folder) {
		fmt.Fprintf(&b, "## %s: few-shot novel-attack detection\n\n", s.name)
		for _, m := range []struct{ key, label string }{{"accuracy", "Accuracy"}, {"macro_precision", "Macro precision"}, {"macro_f1", "Macro F1"}, {"detection_rate", "Detection rate"}, {"false_alarm_rate", "False-alarm rate"}} {
			t := gridTable(fmt.Sprintf("%s (%d-way, %d queries per way)", m.label, s.ways, s.queries), s, func(r *RunSummary) (eval.Summary, bool) {
				v, ok := r.Metrics[m.key]
				return v, ok
			})
			if t == nil {
				continue
			}
			if m.key == "accuracy" {
				// Macro recall is the mean over ways of correct/queries, which,
				// every way having the same number of queries, is accuracy.
				t.Notes = append(t.Notes, "macro recall equals accuracy: every way of an episode has the same number of queries")
			}
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		for _, m := range []struct{ key, label string }{{"auroc", "AUROC"}, {"detection_rate", "detection rate"}, {"false_alarm_rate", "false-alarm rate"}} {
			t := gridTable("Open-set detection on every meta-test flow, "+m.label+" (mean ± CI over seeds)", s, func(r *RunSummary) (eval.Summary, bool) {
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
				t.Notes = detectionNotes(s)
			}
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		if t := robustTable(s); t != nil {
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		if t := multitaskTable(s); t != nil {
			t.Render(&b, eval.Markdown)
			b.WriteString("\n")
		}
		costTable(s).Render(&b, eval.Markdown)
		b.WriteString("\n")
		if err := gridPlot(filepath.Join(scratch, s.stem), s); err != nil {
			return err
		}
		plots = append(plots, s.stem+".png", s.stem+".svg")
		fmt.Fprintf(&b, "![%s accuracy by learner and shots](%s.png)\n\n", s.name, s.stem)
		b.WriteString("Per-run reports (written under results/ by the run, not committed): ")
		for i, r := range s.runs {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "[%s](%s)", r.Run, runLink(dir, runDir(index[r])))
		}
		b.WriteString("\n\n")
	}
	if sec := SupervisedSection(runs); sec != "" {
		b.WriteString(sec)
		b.WriteString("\n")
	}
	// The report first: if it cannot be put in place, neither is any plot.
	paths, data := []string{path}, [][]byte{[]byte(b.String())}
	for _, name := range plots {
		d, err := os.ReadFile(filepath.Join(scratch, name))
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		paths, data = append(paths, filepath.Join(dir, name)), append(data, d)
	}
	return eval.WriteFilesAtomic(paths, data)
}

// runLink is the link from a report in reportDir to the report.md of the run
// in runDir: relative to the report's folder, with forward slashes.
func runLink(reportDir, runDir string) string {
	link := filepath.Join(runDir, "report.md")
	if from, err := filepath.Abs(reportDir); err == nil {
		if to, err := filepath.Abs(runDir); err == nil {
			if rel, err := filepath.Rel(from, to); err == nil {
				link = filepath.Join(rel, "report.md")
			}
		}
	}
	return (&url.URL{Path: filepath.ToSlash(link)}).EscapedPath()
}

// section is the runs a report shows in one set of tables and one plot: the
// few-shot runs of one data set at one episode shape.
type section struct {
	dataset       string // RunSummary.DataName
	ways, queries int
	name, stem    string // heading ("nsl-kdd", or "nsl-kdd, 3-way, 15 queries per way" beside other shapes) and plot file stem
	runs          []*RunSummary
	// label is each run's row: its learner (and variant), with the run's
	// name (less its shot-count suffix) added where runs of one learner and
	// shot count differ in other settings, so that every run has its own
	// cell and runs of a grid that differ only in shots share a row.
	label map[*RunSummary]string
	rows  map[string]row // by row label, for the row order
}

// row is what orders a section's rows: learner, then learner and variant,
// the plain row before those named by run, then the order met.
type row struct {
	algo, plain string
	named       bool
	first       int
}

// sections groups the few-shot runs by data set (its distinct records
// apart), ways and queries, in that order. A data set seen at one shape only
// keeps its plain name.
func sections(runs []*RunSummary, folder map[*RunSummary]string) []*section {
	type key struct {
		dataset       string
		ways, queries int
	}
	byKey := map[key]*section{}
	var keys []key
	shapes := map[string]int{}
	for _, r := range runs {
		if r.Protocol == "supervised" {
			continue
		}
		k := key{r.DataName(), r.Ways, r.Queries}
		s, ok := byKey[k]
		if !ok {
			s = &section{dataset: r.DataName(), ways: r.Ways, queries: r.Queries}
			byKey[k] = s
			keys = append(keys, k)
			shapes[r.DataName()]++
		}
		s.runs = append(s.runs, r)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.dataset != b.dataset {
			return a.dataset < b.dataset
		}
		if a.ways != b.ways {
			return a.ways < b.ways
		}
		return a.queries < b.queries
	})
	out := make([]*section, len(keys))
	for i, k := range keys {
		s := byKey[k]
		// "kddcup99 (distinct test)" becomes kddcup99-distinct-test in file names.
		slug := strings.NewReplacer(" (", "-", " ", "-", ")", "").Replace(s.dataset)
		s.name, s.stem = s.dataset, "fewshot-"+slug
		if shapes[s.dataset] > 1 {
			s.name = fmt.Sprintf("%s, %d-way, %d queries per way", s.dataset, s.ways, s.queries)
			s.stem = fmt.Sprintf("fewshot-%s-%dway-%dq", slug, s.ways, s.queries)
		}
		s.labelRows(folder)
		out[i] = s
	}
	return out
}

// labelRows gives every run of the section its row label. Runs that would
// share a (learner, shots) cell are told apart by their run names rather
// than one hiding the others, and so are the other runs of that learner:
// the name less the "-5shot" suffix a grid gives it (see rowName), so that
// g-h64-1shot and g-h64-5shot make one row "protonet (g-h64)", and a number
// where the names still agree.
func (s *section) labelRows(folder map[*RunSummary]string) {
	type cell struct {
		label string
		shots int
	}
	count := map[cell]int{}
	for _, r := range s.runs {
		count[cell{r.Label(), r.Shots}]++
	}
	// A learner with two runs in any cell has all its runs named, so that
	// a grid with a shot count missing for one setting still lines up.
	split := map[string]bool{}
	for c, n := range count {
		if n > 1 {
			split[c.label] = true
		}
	}
	// Runs of one name share a row unless their shot counts collide; then
	// the later one takes a numbered row, the one its own folder's runs
	// already use where there is one, so that two suites of the same names
	// keep their own rows and a suite extended in another folder keeps one.
	type group struct {
		folders map[string]bool
		shots   map[int]bool
	}
	type named struct{ label, name string }
	groups := map[named][]*group{}
	s.label, s.rows = map[*RunSummary]string{}, map[string]row{}
	for i, r := range s.runs {
		l := r.Label()
		if split[l] {
			name := rowName(r)
			gs := groups[named{l, name}]
			n := -1
			for j, g := range gs { // its folder's row first
				if g.folders[folder[r]] && !g.shots[r.Shots] {
					n = j
					break
				}
			}
			for j, g := range gs {
				if n < 0 && !g.shots[r.Shots] {
					n = j
				}
			}
			if n < 0 {
				gs = append(gs, &group{folders: map[string]bool{}, shots: map[int]bool{}})
				groups[named{l, name}] = gs
				n = len(gs) - 1
			}
			gs[n].folders[folder[r]], gs[n].shots[r.Shots] = true, true
			l = fmt.Sprintf("%s (%s)", r.Label(), name)
			if n > 0 {
				l = fmt.Sprintf("%s (%s #%d)", r.Label(), name, n+1)
			}
		}
		s.label[r] = l
		if _, ok := s.rows[l]; !ok {
			s.rows[l] = row{algo: r.Algo, plain: r.Label(), named: l != r.Label(), first: i}
		}
	}
}

// rowName is the run's name without the shot-count suffix a grid over
// episodes.shots gives it ("g-h64-5shot" and "g-h64-5shot-15query" are
// "g-h64" and "g-h64-15query" at 5 shots), or the whole name when it has no
// such suffix. The suffix is taken only as a whole "-" part of the name and
// only for the run's own shot count; of several, the last is the grid's.
func rowName(r *RunSummary) string {
	suffix := fmt.Sprintf("-%dshot", r.Shots)
	for i := len(r.Run); i > 0; {
		i = strings.LastIndex(r.Run[:i], suffix)
		if i <= 0 {
			break
		}
		if rest := r.Run[i+len(suffix):]; rest == "" || rest[0] == '-' {
			return r.Run[:i] + rest
		}
	}
	return r.Run
}

// find is the section's run in row label at shots; nil when there is none.
func (s *section) find(label string, shots int) *RunSummary {
	for _, r := range s.runs {
		if s.label[r] == label && r.Shots == shots {
			return r
		}
	}
	return nil
}

// commits names the commit the runs were made with, or each commit and its
// run count when a suite was extended by later runs.
func commits(runs []*RunSummary) string {
	return tally(runs, "Commit ", "Commits ", ", ", func(r *RunSummary) string { return r.Provenance.Commit })
}

// machines names the Go version, machine and backend the runs were made
// with, or each and its run count when they differ.
func machines(runs []*RunSummary) string {
	return tally(runs, "", "", "; ", func(r *RunSummary) string {
		p := r.Provenance
		return fmt.Sprintf("%s, %s/%s with %d CPUs, backend %s", p.GoVersion, p.OS, p.Arch, p.CPUs, r.backendText())
	})
}

// tally is the runs' value after the prefix one when every run has the
// same, else after many each value with its run count, in order of first
// use, joined by sep.
func tally(runs []*RunSummary, one, many, sep string, value func(*RunSummary) string) string {
	var order []string
	count := map[string]int{}
	for _, r := range runs {
		v := value(r)
		if count[v] == 0 {
			order = append(order, v)
		}
		count[v]++
	}
	if len(order) == 1 {
		return one + order[0]
	}
	parts := make([]string, len(order))
	for i, v := range order {
		parts[i] = fmt.Sprintf("%s (%d runs)", v, count[v])
	}
	return many + strings.Join(parts, sep)
}

// gridTable is learners (rows) by shots (columns) for one metric; nil when
// no run has the metric.
func gridTable(title string, s *section, metric func(*RunSummary) (eval.Summary, bool)) *eval.Table {
	algos, shots := gridAxes(s)
	t := &eval.Table{Title: title, Header: []string{"learner"}}
	for _, k := range shots {
		t.Header = append(t.Header, strconv.Itoa(k)+"-shot")
	}
	found := false
	for _, a := range algos {
		row := []string{a}
		for _, k := range shots {
			cell := "-"
			if r := s.find(a, k); r != nil {
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
func detectionNotes(s *section) []string {
	var settings []string
	users := map[string][]string{}
	for _, r := range s.runs {
		if r.Detection == nil {
			continue
		}
		n := fmt.Sprintf("%s distance to normal traffic in the learner's embedding; threshold: %s", r.Detection.Method, thresholdWording(r.Detection.Rule))
		if _, ok := users[n]; !ok {
			settings = append(settings, n)
		}
		if l := s.label[r]; !slices.Contains(users[n], l) {
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
func robustTable(s *section) *eval.Table {
	algos, shots := gridAxes(s)
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
		if r := s.find(a, k); r != nil {
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
		r := s.find(a, k)
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
func multitaskTable(s *section) *eval.Table {
	algos, shots := gridAxes(s)
	t := &eval.Table{Title: "Multi-task heads on meta-test query rows (mean ± CI over seeds)",
		Header: []string{"learner", "shots", "attack vs normal accuracy", "attack vs normal AUROC", "category accuracy", "category macro F1"}}
	for _, a := range algos {
		for _, k := range shots {
			r := s.find(a, k)
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
func costTable(s *section) *eval.Table {
	algos, shots := gridAxes(s)
	t := &eval.Table{Title: "Model cost and speed", Header: []string{"learner", "parameters", "MACs per flow"}}
	for _, k := range shots {
		t.Header = append(t.Header, fmt.Sprintf("flows/s %d-shot", k))
	}
	for _, a := range algos {
		row := []string{a, "-", "-"}
		for _, k := range shots {
			cell := "-"
			if r := s.find(a, k); r != nil {
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

// gridPlot draws the section's accuracy as bars: learners by shots.
func gridPlot(stem string, s *section) error {
	algos, shots := gridAxes(s)
	var series []eval.BarSeries
	for _, k := range shots {
		bars := eval.BarSeries{Name: strconv.Itoa(k) + "-shot"}
		for _, a := range algos {
			v, ci := math.NaN(), math.NaN()
			if r := s.find(a, k); r != nil {
				if m, ok := r.Metrics["accuracy"]; ok {
					v, ci = 100*m.Mean, 100*m.HalfWidth
				}
			}
			bars.Values, bars.CI = append(bars.Values, v), append(bars.CI, ci)
		}
		series = append(series, bars)
	}
	return eval.PlotBars(stem, s.name+": meta-test accuracy on novel attacks", "accuracy %", algos, series)
}

// gridAxes lists the section's row labels (by learner in the order of
// learnerOrder, then by label; rows named by run after the plain one, in
// the order of the runs) and shot counts.
func gridAxes(s *section) (algos []string, shots []int) {
	for _, r := range s.runs {
		if l := s.label[r]; !slices.Contains(algos, l) {
			algos = append(algos, l)
		}
		if !slices.Contains(shots, r.Shots) {
			shots = append(shots, r.Shots)
		}
	}
	sort.Slice(algos, func(i, j int) bool {
		a, b := s.rows[algos[i]], s.rows[algos[j]]
		oi, oj := slices.Index(learnerOrder, a.algo), slices.Index(learnerOrder, b.algo)
		if oi != oj {
			return uint(oi) < uint(oj) // unknown names (-1) last
		}
		if a.plain != b.plain {
			return a.plain < b.plain
		}
		if a.named != b.named {
			return !a.named
		}
		return a.first < b.first
	})
	sort.Ints(shots)
	return algos, shots
}

var learnerOrder = []string{"protonet", "maml", "fomaml", "reptile", "anil", "metasgd", "finetune", "nearest-centroid"}
