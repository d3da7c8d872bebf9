package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/experiments"
)

func writeSummary(t *testing.T, dir, run string, acc, far eval.Summary) string {
	t.Helper()
	return writeRunSummary(t, dir, experiments.RunSummary{Run: run, Dataset: "nsl-kdd", Algo: run, Ways: 5, Shots: 5, Queries: 15,
		Seeds: []uint64{1}, Metrics: map[string]eval.Summary{"accuracy": acc, "false_alarm_rate": far}})
}

// writeRunSummary writes s as the summary.json of dir/<s.Run> and returns
// that folder.
func writeRunSummary(t *testing.T, dir string, s experiments.RunSummary) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, s.Run)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "summary.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompare(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.80, HalfWidth: 0.01, N: 100}, eval.Summary{Mean: 0.10, HalfWidth: 0.02, N: 100})
	b := writeSummary(t, dir, "b", eval.Summary{Mean: 0.75, HalfWidth: 0.01, N: 100}, eval.Summary{Mean: 0.11, HalfWidth: 0.02, N: 100})
	c := writeSummary(t, dir, "c", eval.Summary{Mean: 0.79, HalfWidth: 0.02, N: 100}, eval.Summary{Mean: 0.30, HalfWidth: 0.02, N: 100})
	code, out, stderr := run(t, "compare", a, b, c, "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(out, "\n")
	// accuracy: a best; b's [74,76] misses a's [79,81]; c's [77,81] overlaps.
	// false alarms (lower is better): a best; c's [28,32] misses a's [8,12].
	for _, want := range []string{"a,nsl-kdd,a,5w 5s 15q,1,80.00 ± 1.00 ▲", "b,nsl-kdd,b,5w 5s 15q,1,75.00 ± 1.00 ▼", "c,nsl-kdd,c,5w 5s 15q,1,79.00 ± 2.00,"} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Errorf("no line starting %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "10.00 ± 2.00 ▲") || !strings.Contains(out, "30.00 ± 2.00 ▼") || !strings.Contains(out, "11.00 ± 2.00,") {
		t.Errorf("false-alarm marks wrong:\n%s", out)
	}
	if code, _, stderr := run(t, "compare", filepath.Join(dir, "nope")); code != 1 || !strings.Contains(stderr, "not a finished run") {
		t.Errorf("missing dir: exit %d, %q", code, stderr)
	}
	if code, _, _ := run(t, "compare"); code != 2 {
		t.Errorf("no dirs: exit %d", code)
	}
	// A folder of runs gives its runs, as for report; a run also named on
	// its own is shown once, where it was first named.
	code, out, stderr = run(t, "compare", c, dir, "--format", "csv")
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		names = append(names, strings.SplitN(l, ",", 2)[0])
	}
	if code != 0 || strings.Join(names, " ") != "c a b" {
		t.Errorf("compare c and the folder: exit %d, runs %v (stderr %q), want c a b", code, names, stderr)
	}
}

func TestBrokenSummariesAreNamed(t *testing.T) {
	dir := t.TempDir()
	run1 := writeSummary(t, dir, "r", eval.Summary{Mean: 0.8, N: 10}, eval.Summary{Mean: 0.1, N: 10})
	if err := os.WriteFile(filepath.Join(run1, "spec.yaml"), []byte("name: r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	summary := filepath.Join(run1, "summary.json")
	for _, c := range []struct {
		content string // "" removes the file
		want    string
	}{
		{`{"run": "r"`, "summary.json: unexpected end of JSON input"},
		{`{}`, "summary.json: not a run summary: no run name, seeds or test metrics"},
		{`{"run": "r", "dataset": "nsl-kdd", "ways": -5, "shots": 5, "queries": 15, "seeds": [1], "metrics": {"accuracy": {"mean": 0.8, "n": 10}}}`,
			"summary.json: ways: -5, want at least 2"},
		{`{"run": "r", "dataset": "nsl-kdd", "protocol": "weird", "seeds": [1], "metrics": {"accuracy": {"mean": 0.8, "n": 10}}}`,
			`summary.json: protocol "weird", want novel or supervised`},
		{"", "is not finished (no summary.json)"},
	} {
		os.Remove(summary)
		if c.content != "" {
			if err := os.WriteFile(summary, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// The run folder itself, and the folder that holds it.
		for _, target := range []string{run1, dir} {
			code, _, stderr := run(t, "report", target, "--out", filepath.Join(t.TempDir(), "R.md"))
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("report %s with summary %q: exit %d, %q; want %q", target, c.content, code, stderr, c.want)
			}
		}
		if c.content != "" {
			if code, _, stderr := run(t, "compare", run1); code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("compare with summary %q: exit %d, %q; want %q", c.content, code, stderr, c.want)
			}
		}
	}
}

func TestCompareMarksNothingWithoutAnInterval(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.90, HalfWidth: 0.01, N: 100}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 100})
	one := writeSummary(t, dir, "one", eval.Summary{Mean: 0.50, N: 1}, eval.Summary{Mean: 0.1, N: 1})
	code, out, stderr := run(t, "compare", a, one, "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "one,nsl-kdd,one,5w 5s 15q,1,50.00 (n=1),") {
		t.Errorf("a one-episode run should show no interval and no mark:\n%s", out)
	}
}

// A one-episode figure has no interval: however high, it is not the best
// run, it hides no ▼ of the runs that have intervals, and the notes do not
// claim its interval overlaps.
func TestCompareRanksOnlyIntervals(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.80, HalfWidth: 0.01, N: 100}, eval.Summary{Mean: 0.10, HalfWidth: 0.01, N: 100})
	b := writeSummary(t, dir, "b", eval.Summary{Mean: 0.70, HalfWidth: 0.01, N: 100}, eval.Summary{Mean: 0.10, HalfWidth: 0.01, N: 100})
	one := writeSummary(t, dir, "one", eval.Summary{Mean: 0.95, N: 1}, eval.Summary{Mean: 0.01, N: 1})
	code, out, stderr := run(t, "compare", a, b, one, "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"a,nsl-kdd,a,5w 5s 15q,1,80.00 ± 1.00 ▲,",
		"b,nsl-kdd,b,5w 5s 15q,1,70.00 ± 1.00 ▼,",
		"one,nsl-kdd,one,5w 5s 15q,1,95.00 (n=1),",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The notes (in the text table).
	_, out, _ = run(t, "compare", a, b, one)
	if strings.Contains(out, "every interval overlaps") || !strings.Contains(out, "one: a figure over a single value (n=1) has no interval") {
		t.Errorf("notes:\n%s", out)
	}
	// Beside one run with an interval, a single value leaves nothing to rank
	// and no overlap to claim.
	_, csv, _ := run(t, "compare", a, one, "--format", "csv")
	code, out, _ = run(t, "compare", a, one)
	if code != 0 || strings.Contains(csv, "▲") || strings.Contains(out, "every interval overlaps") {
		t.Errorf("one interval and one single value: exit %d\n%s\n%s", code, csv, out)
	}
}

// A run named twice, or by its folder and the folder that holds it, is one
// run.
func TestReportAndCompareReadEachRunOnce(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.8, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	if err := os.WriteFile(filepath.Join(a, "spec.yaml"), []byte("name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "R.md")
	code, stdout, stderr := run(t, "report", a, a+string(filepath.Separator), dir, filepath.Join(dir, "..", filepath.Base(dir), "a"), "--out", out)
	if code != 0 || !strings.Contains(stdout, "(1 runs)") {
		t.Errorf("report of one run named four ways: exit %d, %q %q", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "compare", a, a, "--format", "csv")
	if code != 0 || strings.Count(stdout, "\na,") != 1 {
		t.Errorf("compare of one run named twice: exit %d, %q %q", code, stdout, stderr)
	}
}

// --out names a file in a folder that is or can be made: an empty name, a
// directory or a path through a file is a usage error that names --out,
// and leaves no plot behind.
func TestReportOutMustNameAFile(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.8, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	if err := os.Mkdir(filepath.Join(a, "seed-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	outDir := filepath.Join(parent, "weird")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file, broken := filepath.Join(t.TempDir(), "file"), filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(parent, "nothing"), broken); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo.md")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFO:", err)
	}
	for _, c := range []struct{ out, want string }{
		{"", "--out is empty"},
		{outDir, "--out " + outDir + " is a directory"},
		{filepath.Join(parent, "new") + "/", "is a directory"},
		{filepath.Join(parent, "fewshot-nsl-kdd.png"), "the report's own plots take that name"},
		// Inside a run folder it would overwrite the run's summary.json.
		{filepath.Join(a, "summary.json"), "is inside the run folder"},
		// So would it, one folder down, overwrite a seed's.
		{filepath.Join(a, "seed-1", "summary.json"), "is inside the run folder"},
		// A path through a file or a link to nothing, which mkdir cannot make.
		{filepath.Join(file, "x", "REPORT.md"), ": " + file + " is a file, not a folder"},
		{filepath.Join(broken, "REPORT.md"), ": " + broken + " is a link to "},
		// A link or a FIFO that the report would replace with a plain file
		// (as root, /dev/null too).
		{broken, "--out " + broken + " is a link, which the report would replace"},
		{fifo, "--out " + fifo + " is a device or other special file"},
	} {
		code, _, stderr := run(t, "report", a, "--out", c.out)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("--out %q: exit %d, %q; want %q", c.out, code, stderr, c.want)
		}
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Errorf("a refused report left %d files beside %s", len(entries)-1, outDir)
	}
	if _, err := os.Stat("fewshot-nsl-kdd.png"); err == nil {
		t.Error("a refused report left a plot in the working directory")
	}
	if fi, err := os.Lstat(broken); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link --out named is no longer a link (%v)", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(fifo)); len(entries) != 1 {
		t.Errorf("a refused report left %d files beside the FIFO", len(entries)-1)
	}
}

// The per-run links of a report lead from the report's folder to the runs.
func TestReportLinksRunsFromTheReportsFolder(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.8, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	out := filepath.Join(dir, "reports", "R.md")
	if code, _, stderr := run(t, "report", a, "--out", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "[a](../a/report.md)") {
		t.Errorf("link to run a is not relative to the report:\n%s", b)
	}
}

// Runs tied for best are each marked; a supervised run shows its labelling
// and the note says its interval is over seeds; run names that look like
// numbers stay strings in JSON.
func TestCompareTiesSupervisedAndNames(t *testing.T) {
	dir := t.TempDir()
	acc := func(m float64) eval.Summary { return eval.Summary{Mean: m, HalfWidth: 0.01, N: 10} }
	x := writeSummary(t, dir, "007", acc(0.9), acc(0.1))
	y := writeSummary(t, dir, "1e3", acc(0.9), acc(0.1))
	z := writeSummary(t, dir, "z", acc(0.5), acc(0.1))
	s := writeRunSummary(t, dir, experiments.RunSummary{Run: "sup", Dataset: "nsl-kdd", Algo: "classifier", Protocol: "supervised",
		Labels: "category", Seeds: []uint64{1, 2, 3}, Metrics: map[string]eval.Summary{"accuracy": acc(0.8)},
		Supervised: []experiments.SupervisedEval{{TestFile: "KDDTest+", Metrics: map[string]eval.Summary{"accuracy": acc(0.8)}}}})
	_, out, stderr := run(t, "compare", x, y, z, s, "--format", "csv")
	for _, want := range []string{"007,nsl-kdd,007,5w 5s 15q,1,90.00 ± 1.00 ▲", "1e3,nsl-kdd,1e3,5w 5s 15q,1,90.00 ± 1.00 ▲",
		"sup,nsl-kdd,classifier,\"supervised, category\",3,"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s%s", want, out, stderr)
		}
	}
	_, out, _ = run(t, "compare", x, y, s)
	if !strings.Contains(out, "supervised runs: the interval is over seeds") {
		t.Errorf("no note on supervised intervals:\n%s", out)
	}
	_, out, _ = run(t, "compare", x, y, "--format", "json")
	if !strings.Contains(out, `"run": "007"`) || !strings.Contains(out, `"run": "1e3"`) {
		t.Errorf("run names became numbers:\n%s", out)
	}
}

// A run folder in a folder of runs that holds its summary.json but not its
// spec.yaml (the summaries alone copied from elsewhere) is reported, not
// left out.
func TestReportReadsRunsWithoutTheirSpec(t *testing.T) {
	dir := t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.8, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	if err := os.WriteFile(filepath.Join(a, "spec.yaml"), []byte("name: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeSummary(t, dir, "b", eval.Summary{Mean: 0.7, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	code, stdout, stderr := run(t, "report", dir, "--out", filepath.Join(t.TempDir(), "R.md"))
	if code != 0 || !strings.Contains(stdout, "(2 runs)") {
		t.Errorf("report of a folder with a run lacking spec.yaml: exit %d, %q %q; want 2 runs", code, stdout, stderr)
	}
}

// A folder of runs may hold links to run folders: they are reported too.
func TestReportFollowsLinkedRuns(t *testing.T) {
	dir, links := t.TempDir(), t.TempDir()
	a := writeSummary(t, dir, "a", eval.Summary{Mean: 0.8, HalfWidth: 0.01, N: 10}, eval.Summary{Mean: 0.1, HalfWidth: 0.01, N: 10})
	for _, f := range []string{"spec.yaml"} {
		if err := os.WriteFile(filepath.Join(a, f), []byte("name: a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(a, filepath.Join(links, "a")); err != nil {
		t.Skip("no symbolic links here:", err)
	}
	code, stdout, stderr := run(t, "report", links, "--out", filepath.Join(t.TempDir(), "R.md"))
	if code != 0 || !strings.Contains(stdout, "(1 runs)") {
		t.Errorf("report of a folder of linked runs: exit %d, %q %q", code, stdout, stderr)
	}
}

// Runs of another data set or task are not ranked against each other: their
// chance levels differ.
func TestCompareRanksWithinOneTask(t *testing.T) {
	dir := t.TempDir()
	acc := func(m float64) eval.Summary { return eval.Summary{Mean: m, HalfWidth: 0.01, N: 10} }
	a := writeSummary(t, dir, "a", acc(0.9), acc(0.1))
	b := writeSummary(t, dir, "b", acc(0.7), acc(0.1))
	kd := writeRunSummary(t, dir, experiments.RunSummary{Run: "k", Dataset: "kddcup99", Algo: "k", Ways: 5, Shots: 5, Queries: 15,
		Seeds: []uint64{1}, Metrics: map[string]eval.Summary{"accuracy": acc(0.5)}})
	_, out, stderr := run(t, "compare", a, b, kd, "--format", "csv")
	for _, want := range []string{"a,nsl-kdd,a,5w 5s 15q,1,90.00 ± 1.00 ▲", "b,nsl-kdd,b,5w 5s 15q,1,70.00 ± 1.00 ▼", "k,kddcup99,k,5w 5s 15q,1,50.00 ± 1.00,"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s%s", want, out, stderr)
		}
	}
}

// A run on distinct records says so in the dataset column, its summary.json
// keeping the mark, and is ranked apart from runs on every record: its
// figures are of other data.
func TestCompareNamesDistinctRecords(t *testing.T) {
	dir := t.TempDir()
	mk := func(run, distinct string, acc float64) string {
		return writeRunSummary(t, dir, experiments.RunSummary{Run: run, Dataset: "kddcup99", Distinct: distinct, Algo: "protonet",
			Ways: 5, Shots: 5, Queries: 15, Seeds: []uint64{1}, Metrics: map[string]eval.Summary{"accuracy": {Mean: acc, HalfWidth: 0.01, N: 100}}})
	}
	code, out, stderr := run(t, "compare", mk("all", "", 0.9), mk("all2", "", 0.7), mk("once", "both", 0.8), "--format", "csv")
	for _, want := range []string{"\nall,kddcup99,protonet,5w 5s 15q,1,90.00 ± 1.00 ▲", "\nall2,kddcup99,protonet,5w 5s 15q,1,70.00 ± 1.00 ▼",
		"\nonce,kddcup99 (distinct),protonet,5w 5s 15q,1,80.00 ± 1.00,"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d (%s): no %q in:\n%s", code, stderr, want, out)
		}
	}
}
