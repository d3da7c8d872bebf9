package experiments

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// writeFileAtomic writes data so that a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	return eval.WriteFilesAtomic([]string{path}, [][]byte{data})
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeCSV(path, note string, header []string, rows [][]string) error {
	var sb strings.Builder
	if note != "" {
		sb.WriteString("# " + note + "\n")
	}
	w := csv.NewWriter(&sb)
	if err := w.Write(header); err != nil {
		return err
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(sb.String()))
}

// ftoa writes the shortest text that reads back as v exactly, so that a
// figure recomputed from a CSV is the one the run computed.
func ftoa(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// csvNote is the comment line that opens each of a seed's CSV files, so
// that a file taken out of its folder still says what made it: the run,
// seed, commit, Go version, backend, device and host kernels, and the
// sha256 of the resolved spec (the seed's summary.json holds its text).
func csvNote(res *SeedResult) string {
	p := res.Provenance
	return fmt.Sprintf("metaids run %s, seed %d; spec sha256:%x; commit %s; %s; backend %s (%s); kernels %s",
		res.Run, res.Seed, sha256.Sum256([]byte(res.Spec)), p.Commit, p.GoVersion, res.Backend, res.Device, p.Kernels)
}

// writeSeedResult writes one seed's files into a fresh directory next to
// dir and renames it into place, so an interrupted write leaves no
// half-finished seed behind.
func writeSeedResult(dir string, res *SeedResult) error {
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return err
	}
	note := csvNote(res)
	var rows [][]string
	for _, e := range res.episodes {
		row := []string{strconv.Itoa(e.Episode)}
		for _, v := range e.Values() {
			row = append(row, ftoa(v))
		}
		rows = append(rows, row)
	}
	// A supervised seed has no episodes, so no episodes.csv (rather than
	// one with no rows, as if its test had run none).
	if res.Supervised == nil {
		if err := writeCSV(filepath.Join(tmp, "episodes.csv"), note, append([]string{"episode"}, eval.MetricNames...), rows); err != nil {
			return fail(err)
		}
	}
	rows = rows[:0]
	for _, c := range res.PerClass {
		rows = append(rows, []string{c.Class, c.Category, ftoa(c.Precision), ftoa(c.Recall), ftoa(c.F1), strconv.FormatInt(c.Support, 10)})
	}
	if err := writeCSV(filepath.Join(tmp, "per_class.csv"), note, []string{"class", "category", "precision", "recall", "f1", "support"}, rows); err != nil {
		return fail(err)
	}
	rows = rows[:0]
	for i, name := range res.Confusion.Classes {
		row := []string{name}
		for _, n := range res.Confusion.Counts[i] {
			row = append(row, strconv.FormatInt(n, 10))
		}
		rows = append(rows, row)
	}
	if err := writeCSV(filepath.Join(tmp, "confusion.csv"), note, append([]string{"truth \\ predicted"}, res.Confusion.Classes...), rows); err != nil {
		return fail(err)
	}
	rows = rows[:0]
	for _, p := range res.Curve {
		rows = append(rows, []string{strconv.Itoa(p.Step), ftoa(p.TrainLoss), ftoa(p.ValAccuracy), ftoa(p.ValCI)})
	}
	if err := writeCSV(filepath.Join(tmp, "curve.csv"), note, []string{"step", "train_loss", "val_accuracy", "val_ci"}, rows); err != nil {
		return fail(err)
	}
	if err := writeSupervisedFiles(tmp, note, res); err != nil {
		return fail(err)
	}
	if len(res.checkpoint) > 0 {
		if err := writeFileAtomic(filepath.Join(tmp, "checkpoint.bin"), res.checkpoint); err != nil {
			return fail(err)
		}
	}
	if err := writePlots(tmp, res); err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(tmp, "summary.json"), res); err != nil {
		return fail(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fail(err)
	}
	return nil
}

// MarshalJSON writes NaN (no validation ran) as null: encoding/json rejects NaN.
func (t TrainStats) MarshalJSON() ([]byte, error) {
	type plain TrainStats
	return json.Marshal(struct {
		plain
		BestValAccuracy *float64 `json:"best_val_accuracy"`
	}{plain(t), eval.Nullable(t.BestValAccuracy)})
}

// UnmarshalJSON reads null back as NaN.
func (t *TrainStats) UnmarshalJSON(b []byte) error {
	type plain TrainStats
	var v struct {
		plain
		BestValAccuracy *float64 `json:"best_val_accuracy"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*t = TrainStats(v.plain)
	t.BestValAccuracy = eval.FromNullable(v.BestValAccuracy)
	return nil
}

// MarshalJSON writes NaN (no validation at this step) as null.
func (c CurvePoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Step        int      `json:"step"`
		TrainLoss   *float64 `json:"train_loss"`
		ValAccuracy *float64 `json:"val_accuracy"`
		ValCI       *float64 `json:"val_ci"`
	}{c.Step, eval.Nullable(c.TrainLoss), eval.Nullable(c.ValAccuracy), eval.Nullable(c.ValCI)})
}

// UnmarshalJSON reads null back as NaN.
func (c *CurvePoint) UnmarshalJSON(b []byte) error {
	var v struct {
		Step        int      `json:"step"`
		TrainLoss   *float64 `json:"train_loss"`
		ValAccuracy *float64 `json:"val_accuracy"`
		ValCI       *float64 `json:"val_ci"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = CurvePoint{Step: v.Step, TrainLoss: eval.FromNullable(v.TrainLoss), ValAccuracy: eval.FromNullable(v.ValAccuracy), ValCI: eval.FromNullable(v.ValCI)}
	return nil
}

// DirKey is what identifies a folder however its path is spelled: its
// absolute, cleaned path with symbolic links resolved (as far as they
// resolve).
func DirKey(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Clean(dir)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// readSeedResult reads a finished seed's summary. One that parses but is not
// the result of the folder's seed (an empty object, another seed's file) is
// an error, as one that does not parse: the seed is not finished.
func readSeedResult(dir string) (*SeedResult, error) {
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return nil, err
	}
	var res SeedResult
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if res.Run == "" || res.Metrics["accuracy"].N == 0 || filepath.Base(dir) != fmt.Sprintf("seed-%d", res.Seed) {
		return nil, fmt.Errorf("%s/summary.json: not the result of this seed: no run name or test metrics, or another seed's", dir)
	}
	if err := res.checkFigures(); err != nil {
		return nil, fmt.Errorf("%s/summary.json: %w", dir, err)
	}
	return &res, nil
}

// checkFigures reports a figure of a seed that no run writes (a summary.json
// edited by hand), which the run summary would pool into its own and show:
// those RunSummary.checkFigures refuses, and detection and multitask
// figures that are not shares. fits checks the counts against the spec.
func (r *SeedResult) checkFigures() error {
	if err := checkResultSummaries(r.Metrics, r.Supervised, r.Robustness); err != nil {
		return err
	}
	if d := r.Detection; d != nil && d.Report != nil {
		values := detectionValues(d)
		for i, name := range detectionNames {
			if v := values[i]; !(v >= 0 && v <= 1) {
				return fmt.Errorf("detection.report.%s: %g, want a share in [0, 1]", name, v)
			}
		}
	}
	if m := r.Multitask; m != nil {
		for _, name := range slices.Sorted(maps.Keys(m.Metrics)) {
			if v := m.Metrics[name]; !math.IsNaN(v) && !(v >= 0 && v <= 1) {
				return fmt.Errorf("multitask.metrics.%s: %g, want a share in [0, 1]", name, v)
			}
		}
	}
	return nil
}

// RunSummary is results/<run>/summary.json: the run over all its seeds.
type RunSummary struct {
	Run        string     `json:"run"`
	Dataset    string     `json:"dataset"`
	Distinct   string     `json:"distinct,omitempty"` // files whose repeated records were left out: train, test or both
	Protocol   string     `json:"protocol"`           // novel or supervised
	Algo       string     `json:"algo"`
	Variant    string     `json:"variant,omitempty"` // e.g. "pretrain-denoise"
	Hidden     []int      `json:"hidden"`
	Labels     string     `json:"labels,omitempty"` // supervised: binary or category
	Ways       int        `json:"ways"`
	Shots      int        `json:"shots"`
	Queries    int        `json:"queries"`
	Seeds      []uint64   `json:"seeds"`
	Provenance Provenance `json:"provenance"`
	Backend    string     `json:"backend"`
	Device     string     `json:"device"`
	Wall       float64    `json:"wall_seconds"`
	StepsPerS  float64    `json:"train_steps_per_sec"`
	EpisodesPS float64    `json:"test_episodes_per_sec"`
	Cost       train.Cost `json:"cost"`
	FlowsPS    float64    `json:"flows_per_sec"`
	LatencyUS  float64    `json:"latency_per_flow_us"`
	// Metrics are over all test episodes of all seeds; SeedSpread is the
	// mean and 95% interval of the per-seed means.
	Metrics    map[string]eval.Summary `json:"metrics"`
	SeedSpread map[string]eval.Summary `json:"seed_spread"`
	PerClass   []eval.ClassScore       `json:"per_class"`
	Confusion  ConfusionTable          `json:"confusion"`
	Spec       string                  `json:"spec"`
	Inputs     map[string]string       `json:"inputs,omitempty"` // as SeedResult's
	// Supervised holds, per test file, the supervised track's results; the
	// fields above then describe the first test file.
	Supervised []SupervisedEval `json:"supervised,omitempty"`
	// Detection is the open-set detection over seeds, when the spec asks.
	Detection *DetectionSummary `json:"detection,omitempty"`
	// Robustness is accuracy under attack over the seeds' episodes.
	Robustness []RobustResult `json:"robustness,omitempty"`
	// Multitask is how the auxiliary heads do over seeds, when the spec
	// trains them.
	Multitask *MultitaskSummary `json:"multitask,omitempty"`
	// Phases adds up the seeds' phase times, when every seed has them.
	Phases *PhaseSeconds `json:"phase_seconds,omitempty"`
}

// summarise pools the seeds of a run.
func summarise(p plan, seeds []*SeedResult) *RunSummary {
	s := &RunSummary{Run: p.Name, Dataset: p.Dataset.Name, Distinct: distinctFiles(p.Protocol), Protocol: "novel", Algo: p.Learner.Algo, Hidden: p.Learner.Hidden, Variant: variantOf(p),
		Ways: p.Episodes.Ways, Shots: p.Episodes.Shots, Queries: p.Episodes.Queries,
		Spec: string(p.SpecYAML), Inputs: p.Inputs, Metrics: map[string]eval.Summary{}, SeedSpread: map[string]eval.Summary{}}
	if len(seeds) == 0 {
		return s
	}
	s.Provenance, s.Backend, s.Device, s.Cost = seeds[0].Provenance, seeds[0].Backend, seeds[0].Device, seeds[0].Cost
	// Seeds resumed with another build, Go, machine or backend: name each.
	add := func(all *string, v string) {
		if !slices.Contains(strings.Split(*all, ", "), v) {
			*all += ", " + v
		}
	}
	for _, r := range seeds[1:] {
		add(&s.Provenance.Commit, r.Provenance.Commit)
		add(&s.Provenance.GoVersion, r.Provenance.GoVersion)
		add(&s.Provenance.OS, r.Provenance.OS)
		add(&s.Provenance.Arch, r.Provenance.Arch)
		add(&s.Provenance.Kernels, r.Provenance.Kernels)
		add(&s.Backend, r.Backend)
		add(&s.Device, r.Device)
	}
	if p.Supervised != nil {
		s.Protocol, s.Algo, s.Labels = "supervised", "classifier", p.Supervised.Labels
		s.Ways, s.Shots, s.Queries = 0, 0, 0
		for _, r := range seeds {
			s.Seeds = append(s.Seeds, r.Seed)
			s.Wall += r.Wall
			s.FlowsPS += r.Test.FlowsPerSec / float64(len(seeds))
		}
		if s.FlowsPS > 0 {
			s.LatencyUS = 1e6 / s.FlowsPS
		}
		summariseSupervised(s, seeds)
		return s
	}
	classes := seeds[0].Confusion.Classes
	pooled := eval.NewConfusion(len(classes))
	defer func() {
		if s.FlowsPS > 0 {
			s.LatencyUS = 1e6 / s.FlowsPS
		}
	}()
	s.Phases = addPhases(seeds)
	for _, r := range seeds {
		s.Seeds = append(s.Seeds, r.Seed)
		s.Wall += r.Wall
		s.StepsPerS += r.Train.StepsPerSec / float64(len(seeds))
		s.EpisodesPS += r.Test.EpisodesPerSec / float64(len(seeds))
		s.FlowsPS += r.Test.FlowsPerSec / float64(len(seeds))
		for i := range r.Confusion.Counts {
			for j, n := range r.Confusion.Counts[i] {
				pooled.Counts[i*pooled.N+j] += n
			}
		}
	}
	for _, name := range eval.MetricNames {
		var means []float64
		var all eval.Summary
		for _, r := range seeds {
			m, ok := r.Metrics[name]
			if !ok {
				continue
			}
			means = append(means, m.Mean)
			all = poolSummaries(all, m)
		}
		if len(means) > 0 {
			s.Metrics[name] = all
			s.SeedSpread[name] = eval.MeanCI(means)
		}
	}
	s.Detection = summariseDetection(seeds)
	s.Robustness = summariseRobustness(seeds)
	s.Multitask = summariseMultitask(seeds)
	ev := eval.Evaluation{Classes: classes, Pooled: pooled}
	cats := map[string]string{}
	for _, c := range seeds[0].PerClass {
		cats[c.Class] = c.Category
	}
	for _, c := range classes {
		ev.Categories = append(ev.Categories, cats[c])
	}
	s.PerClass = ev.PerClass()
	s.Confusion = confusionTable(classes, pooled)
	return s
}

// poolSummaries combines two summaries of disjoint samples into the summary
// of their union (exact mean and sample variance from the moments).
func poolSummaries(a, b eval.Summary) eval.Summary {
	if a.N == 0 {
		return b
	}
	n := a.N + b.N
	mean := (a.Mean*float64(a.N) + b.Mean*float64(b.N)) / float64(n)
	ss := a.SD*a.SD*float64(a.N-1) + b.SD*b.SD*float64(b.N-1) +
		float64(a.N)*(a.Mean-mean)*(a.Mean-mean) + float64(b.N)*(b.Mean-mean)*(b.Mean-mean)
	out := eval.Summary{Mean: mean, N: n}
	if n > 1 {
		out.SD = math.Sqrt(ss / float64(n-1))
		out.HalfWidth = eval.CIHalfWidth(out.SD, n)
	}
	return out
}

// ReadRunSummary reads a finished run's summary.json.
func ReadRunSummary(dir string) (*RunSummary, error) {
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return nil, err
	}
	var s RunSummary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s/summary.json: %w", dir, err)
	}
	if s.Run == "" || len(s.Seeds) == 0 || s.Metrics["accuracy"].N == 0 {
		return nil, fmt.Errorf("%s/summary.json: %w", dir, errNotSummary)
	}
	// The data set names a report's sections and plot files: one that is
	// not a data set (say, with a "/" in it) is no run of this program.
	if d, err := datasets.Lookup(s.Dataset); err != nil || d.Name != s.Dataset {
		return nil, fmt.Errorf("%s/summary.json: data set %q is not one of %s", dir, s.Dataset, strings.Join(datasets.Names(), ", "))
	}
	if err := s.checkFields(); err != nil {
		return nil, fmt.Errorf("%s/summary.json: %w", dir, err)
	}
	if err := s.checkFigures(); err != nil {
		return nil, fmt.Errorf("%s/summary.json: %w", dir, err)
	}
	return &s, nil
}

// checkFields reports a field that no run writes (a summary.json edited by
// hand), which tables would show as a run: a run name no spec can have (it
// goes raw into Markdown and CSV), a protocol other than summarise's, an
// episode shape the spec check refuses, or, supervised, one that is not the
// zero shape summarise writes, without its test files or labelling.
func (s *RunSummary) checkFields() error {
	if len(s.Run) > maxRunName || !runNameRE.MatchString(s.Run) {
		return fmt.Errorf("run %s: want letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit, at most %d characters, as the name of a spec",
			shorten(s.Run, strconv.Quote), maxRunName)
	}
	switch s.Protocol {
	case "novel", "": // none: written before the supervised track
		if len(s.Supervised) > 0 {
			return fmt.Errorf("supervised: test results, but protocol %q: want supervised", s.Protocol)
		}
		if s.Labels != "" {
			return fmt.Errorf("labels %q, but protocol %q: want supervised", s.Labels, s.Protocol)
		}
		for _, f := range []struct {
			key      string
			v, least int
		}{{"ways", s.Ways, 2}, {"shots", s.Shots, 1}, {"queries", s.Queries, 1}} {
			if f.v < f.least {
				return fmt.Errorf("%s: %d, want at least %d, as episodes.%[1]s of a spec", f.key, f.v, f.least)
			}
		}
	case "supervised":
		if s.Ways != 0 || s.Shots != 0 || s.Queries != 0 {
			return fmt.Errorf("ways, shots and queries %d, %d and %d: want 0 for protocol supervised, which has no episodes", s.Ways, s.Shots, s.Queries)
		}
		if len(s.Supervised) == 0 {
			return errors.New("supervised: no test results, which protocol supervised has")
		}
		if !slices.Contains(labelSets, s.Labels) {
			return fmt.Errorf("labels %q, want %s for protocol supervised", s.Labels, strings.Join(labelSets, " or "))
		}
	default:
		return fmt.Errorf("protocol %q, want novel or supervised", s.Protocol)
	}
	return nil
}

// checkFigures reports a figure that no run writes (a summary.json edited
// by hand), which tables and plots would show as a result: a summary of
// fewer than one value, a negative spread or one wider than shares can
// have, or a mean outside [0, 1], as every metric is a share.
func (s *RunSummary) checkFigures() error {
	if err := checkResultSummaries(s.Metrics, s.Supervised, s.Robustness); err != nil {
		return err
	}
	if err := checkSummaries("seed_spread", s.SeedSpread); err != nil {
		return err
	}
	if s.Detection != nil {
		if err := checkSummaries("detection.metrics", s.Detection.Metrics); err != nil {
			return err
		}
	}
	if s.Multitask != nil {
		return checkSummaries("multitask.metrics", s.Multitask.Metrics)
	}
	return nil
}

// checkResultSummaries checks the summaries a seed's and a run's
// summary.json both hold: the test metrics, those of each supervised test
// file and the robustness scores.
func checkResultSummaries(metrics map[string]eval.Summary, supervised []SupervisedEval, robustness []RobustResult) error {
	if err := checkSummaries("metrics", metrics); err != nil {
		return err
	}
	for i, f := range supervised {
		if err := checkSummaries(fmt.Sprintf("supervised[%d].metrics", i), f.Metrics); err != nil {
			return err
		}
	}
	for i, r := range robustness {
		if err := checkSummaries(fmt.Sprintf("robustness[%d]", i), map[string]eval.Summary{"accuracy": r.Accuracy, "macro_f1": r.MacroF1}); err != nil {
			return err
		}
	}
	return nil
}

// checkSummaries reports the first of m's summaries (key names the map)
// that no run writes: one of fewer than one value, a negative spread, a
// mean outside [0, 1], or a spread wider than shares can have.
func checkSummaries(key string, m map[string]eval.Summary) error {
	for _, name := range slices.Sorted(maps.Keys(m)) {
		v := m[name]
		sd, hw := shareSpread(v.N)
		switch {
		case v.N < 1:
			return fmt.Errorf("%s.%s: n = %d, want at least 1", key, name, v.N)
		case !(v.SD >= 0 && v.HalfWidth >= 0):
			return fmt.Errorf("%s.%s: sd %g and half-width %g, want both at least 0", key, name, v.SD, v.HalfWidth)
		case !(v.Mean >= 0 && v.Mean <= 1):
			return fmt.Errorf("%s.%s: mean %g, want a share in [0, 1]", key, name, v.Mean)
		case v.SD > sd || v.HalfWidth > hw:
			return fmt.Errorf("%s.%s: sd %g and half-width %g, wider than n = %d values in [0, 1] can give (at most %.4g and %.4g)",
				key, name, v.SD, v.HalfWidth, v.N, sd, hw)
		}
	}
	return nil
}

// shareSpread is the largest sample SD and 95% half-width of n values in
// [0, 1] (half at 0, half at 1: the sum of squares is at most n/4), with
// room for rounding; 0 and 0 for one value, as eval.MeanCI writes it.
// Intervals written before Student's t was used (1.96·sd/√n) are narrower.
func shareSpread(n int) (sd, halfWidth float64) {
	if n < 2 {
		return 0, 0
	}
	sd = math.Sqrt(float64(n)/float64(n-1)) / 2 * (1 + 1e-9)
	return sd, eval.CIHalfWidth(sd, n)
}

// errNotSummary is a summary.json that parses but lacks what every run
// writes, so that reports do not show it as an empty run.
var errNotSummary = errors.New("not a run summary: no run name, seeds or test metrics")

// writeRunSummary writes the run-level files; summary.json goes last, as its
// presence marks the run finished.
func writeRunSummary(dir string, s *RunSummary, seeds []*SeedResult) error {
	robust, err := robustnessReport(dir, s.Run, s.Robustness)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "report.md"), []byte(runReport(s, seeds)+robust+specSection(s.Spec))); err != nil {
		return err
	}
	if err := writeRunPlots(dir, s, seeds); err != nil {
		return err
	}
	if err := writeDetectionPlot(dir, s.Run, seeds); err != nil {
		return err
	}
	if err := writeMultitaskPlot(dir, s.Run, s.Multitask); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "summary.json"), s)
}

// metricCells are the named metrics in percent with their intervals, "-"
// for one that is missing (undefined, or not measured).
func metricCells(m map[string]eval.Summary, names ...string) []string {
	cells := make([]string, len(names))
	for i, n := range names {
		cells[i] = "-"
		if v, ok := m[n]; ok {
			cells[i] = v.Format(100, 2)
		}
	}
	return cells
}

// MetricTable renders runs side by side: metric mean ± 95% CI in percent.
func MetricTable(title string, runs []*RunSummary) *eval.Table {
	t := &eval.Table{Title: title, Labels: 4, Header: []string{"run", "algo", "episodes", "seeds", "accuracy %", "precision %", "recall %", "F1 %", "detection %", "false alarm %", "AUROC %"}}
	for _, r := range runs {
		t.Rows = append(t.Rows, append([]string{r.Run, r.Algo, r.Shape(), seedList(r.Seeds)},
			metricCells(r.Metrics, "accuracy", "macro_precision", "macro_recall", "macro_f1", "detection_rate", "false_alarm_rate", "auroc")...))
	}
	supervised := 0
	for _, r := range runs {
		if r.Protocol == "supervised" {
			supervised++
		}
	}
	const ci = "mean ± 95% confidence interval (t·sd/√n, Student's t with n−1 degrees of freedom)"
	switch {
	case supervised > 0 && supervised == len(runs):
		t.Notes = []string{ci + " over seeds, on the first test file (report.md has every test file)",
			"precision, recall and F1: macro averages over the classes of the test file"}
	default:
		t.Notes = []string{ci + " over all test episodes of all seeds",
			"precision, recall and F1: macro averages over the classes of each episode"}
		if supervised > 0 {
			t.Notes = append(t.Notes, "supervised runs: over seeds, on the first test file (report.md has every test file)")
		}
	}
	return t
}

// variantOf names what a plan adds to its plain learner.
func variantOf(p plan) string {
	var parts []string
	if p.Pretrain != nil {
		parts = append(parts, "pretrain-"+p.Pretrain.Objective)
	}
	if p.Adversarial.TrainEps > 0 {
		parts = append(parts, "adversarial-"+strconv.FormatFloat(p.Adversarial.TrainEps, 'g', -1, 64))
	}
	if a := p.Learner.Aux; a.Enabled() {
		var heads []string
		if a.BinaryWeight > 0 {
			heads = append(heads, "b"+weightName(a.BinaryWeight))
		}
		if a.CategoryWeight > 0 {
			heads = append(heads, "c"+weightName(a.CategoryWeight))
		}
		parts = append(parts, "multitask-"+strings.Join(heads, "-"))
	}
	return strings.Join(parts, " + ")
}

// DataName is the data set, marked when repeated records were left out:
// runs on other records do not share a table or plot of a report.
func (r *RunSummary) DataName() string { return dataName(r.Dataset, r.Distinct) }

// dataName is a data set's name with the files whose repeats were left out
// ("", train, test or both): "kddcup99 (distinct test)".
func dataName(dataset, distinct string) string {
	switch distinct {
	case "":
		return dataset
	case "both":
		return dataset + " (distinct)"
	}
	return dataset + " (distinct " + distinct + ")"
}

// distinctOf is dataset.distinct as summaries record it: "" for none.
func distinctOf(key string) string {
	if key == "none" {
		return ""
	}
	return key
}

// distinctFiles says which files of a protocol leave out their repeats:
// "", train, test or both.
func distinctFiles(o datasets.ProtocolOptions) string {
	train, test := o.TrainLoad().Distinct, o.TestLoad().Distinct
	switch {
	case train && test:
		return "both"
	case train:
		return "train"
	case test:
		return "test"
	}
	return ""
}

// Label is the learner and its variant, as reports name it.
func (r *RunSummary) Label() string {
	if r.Variant == "" {
		return r.Algo
	}
	return r.Algo + " + " + r.Variant
}

// Shape describes the run's episodes ("5w 5s 15q"), or its supervised
// labelling.
func (r *RunSummary) Shape() string {
	if r.Protocol == "supervised" {
		return "supervised, " + r.Labels
	}
	return fmt.Sprintf("%dw %ds %dq", r.Ways, r.Shots, r.Queries)
}

func seedList(seeds []uint64) string {
	s := make([]string, len(seeds))
	for i, v := range seeds {
		s[i] = strconv.FormatUint(v, 10)
	}
	return strings.Join(s, ",")
}

// addPhases sums the seeds' phase times; nil when a seed has none (one
// written before they were recorded), as a partial sum would mislead.
func addPhases(seeds []*SeedResult) *PhaseSeconds {
	var sum PhaseSeconds
	for _, r := range seeds {
		p := r.Phases
		if p == nil {
			return nil
		}
		sum.Pretrain += p.Pretrain
		sum.MetaTrain += p.MetaTrain
		sum.Validation += p.Validation
		sum.MetaTest += p.MetaTest
		sum.Robustness += p.Robustness
		sum.Detection += p.Detection
		sum.Other += p.Other
	}
	return &sum
}

// phaseText says where the wall time went, largest phase first, each with
// its share; phases that did not run are left out.
func phaseText(p *PhaseSeconds) string {
	if p == nil {
		return ""
	}
	type part struct {
		name string
		sec  float64
	}
	parts := []part{{"pre-training", p.Pretrain}, {"meta-training", p.MetaTrain}, {"validation", p.Validation},
		{"meta-test", p.MetaTest}, {"robustness", p.Robustness}, {"detection", p.Detection}, {"other", p.Other}}
	total := 0.0
	for _, q := range parts {
		total += q.sec
	}
	if !(total > 0) {
		return ""
	}
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].sec > parts[j].sec })
	var out []string
	for _, q := range parts {
		if q.sec > 0 {
			out = append(out, fmt.Sprintf("%s %.1f s (%.0f%%)", q.name, q.sec, 100*q.sec/total))
		}
	}
	return "Where the wall time went, all seeds: " + strings.Join(out, ", ") + ".\n\n"
}

// backendText is the backend, its device and the host's kernels, as reports
// name them: "cpu (AMD EPYC (amd64); avx2-fma kernels)".
func (r *RunSummary) backendText() string {
	if r.Provenance.Kernels == "" { // recorded before kernels were
		return fmt.Sprintf("%s (%s)", r.Backend, r.Device)
	}
	return fmt.Sprintf("%s (%s; %s kernels)", r.Backend, r.Device, r.Provenance.Kernels)
}

// specSection closes a run report with the resolved spec it was run with,
// so that the report alone says what was run.
func specSection(spec string) string {
	if spec == "" {
		return ""
	}
	return "\n## Spec\n\nThe resolved spec, every default written out (`spec.yaml` beside this report):\n\n```yaml\n" +
		strings.TrimRight(spec, "\n") + "\n```\n"
}

// runReport is the Markdown report of one run.
func runReport(s *RunSummary, seeds []*SeedResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", s.Run)
	fmt.Fprintf(&b, "%s, %s, %s; seeds %s; commit %s, %s, backend %s; wall time %.1f s.\n\n",
		s.DataName(), s.Algo, s.Shape(), seedList(s.Seeds), s.Provenance.Commit, s.Provenance.GoVersion, s.backendText(), s.Wall)
	fmt.Fprintf(&b, "Model cost: %d parameters, %d multiply-adds per flow; %.0f flows/s classified (%.1f µs per flow, adaptation included).\n\n",
		s.Cost.Params, s.Cost.MACsPerFlow, s.FlowsPS, s.LatencyUS)
	b.WriteString(phaseText(s.Phases))
	MetricTable("Test metrics", []*RunSummary{s}).Render(&b, eval.Markdown)
	b.WriteString("\n")
	if len(s.Supervised) > 0 {
		ft := &eval.Table{Title: "Per test file (mean ± 95% CI over seeds)", Header: []string{"test file", "records", "accuracy %", "precision %", "recall %", "F1 %", "detection %", "false alarm %"}}
		for _, f := range s.Supervised {
			ft.Rows = append(ft.Rows, append([]string{f.TestFile, strconv.Itoa(f.Records)}, f.cells()...))
		}
		ft.Render(&b, eval.Markdown)
		b.WriteString("\n")
	}
	spread := &eval.Table{Title: "Per seed", Header: []string{"seed", "accuracy %", "macro F1 %", "best val acc %", "best step", "train steps/s", "test episodes/s"}}
	if s.Protocol == "supervised" {
		// No validation and no episodes: a training step is an epoch.
		spread.Header = []string{"seed", "accuracy %", "macro F1 %", "train epochs/s"}
	}
	for _, r := range seeds {
		row := []string{strconv.FormatUint(r.Seed, 10), r.Metrics["accuracy"].Format(100, 2), r.Metrics["macro_f1"].Format(100, 2)}
		if s.Protocol == "supervised" {
			row = append(row, fmt.Sprintf("%.2f", r.Train.StepsPerSec))
		} else {
			row = append(row, pct(r.Train.BestValAccuracy), strconv.Itoa(r.Train.BestStep), fmt.Sprintf("%.1f", r.Train.StepsPerSec), fmt.Sprintf("%.1f", r.Test.EpisodesPerSec))
		}
		spread.Rows = append(spread.Rows, row)
	}
	if sp, ok := s.SeedSpread["accuracy"]; ok && len(seeds) > 1 {
		spread.Notes = append(spread.Notes, fmt.Sprintf("spread of the per-seed mean accuracy: %s", sp.Format(100, 2)))
	}
	spread.Render(&b, eval.Markdown)
	b.WriteString("\n")
	pcTitle := "Per class (pooled over episodes and seeds)"
	if len(s.Supervised) > 0 { // no episodes: the first test file's rows
		pcTitle = "Per class on " + s.Supervised[0].TestFile + " (pooled over seeds)"
	}
	pc := &eval.Table{Title: pcTitle, Labels: 2, Header: []string{"class", "category", "precision %", "recall %", "F1 %", "support"}}
	classes := append([]eval.ClassScore(nil), s.PerClass...)
	// Best F1 first; classes without one (never present nor predicted) last.
	sort.SliceStable(classes, func(i, j int) bool {
		a, b := classes[i].F1, classes[j].F1
		return a > b || (!math.IsNaN(a) && math.IsNaN(b))
	})
	for _, c := range classes {
		pc.Rows = append(pc.Rows, []string{c.Class, c.Category, pct(c.Precision), pct(c.Recall), pct(c.F1), strconv.FormatInt(c.Support, 10)})
	}
	pc.Render(&b, eval.Markdown)
	b.WriteString("\n")
	b.WriteString(detectionReport(s.Detection))
	if sec := multitaskReport(s.Multitask); sec != "" {
		b.WriteString("\n" + sec)
	}
	b.WriteString("\n![learning curve](seed-" + strconv.FormatUint(s.Seeds[0], 10) + "/curve.png)\n![per-class F1](per_class_f1.png)\n![confusion matrix](confusion.png)\n")
	return b.String()
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64)
}
