package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/metaids/metaids/experiments"
)

func init() {
	register(command{name: "report", summary: "write a Markdown report (tables and plots) of many finished runs", run: runReport})
}

func runReport(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "report", "report RESULT_DIR... [--out FILE] [--title T] [--note TEXT]")
	out := fl.String("out", "results/REPORT.md", "report file; plots go beside it")
	title := fl.String("title", "metaids report", "report title")
	note := fl.String("note", "", "a line placed under the title (e.g. how long the suite took)")
	pos, err := parseFlags(e, fl, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("report takes result directories: runs (results/<run>) or folders of runs (results)")
	}
	if *out == "" {
		return usageErrorf("--out is empty: name the report file (e.g. results/REPORT.md)")
	}
	if fi, err := os.Stat(*out); (err == nil && fi.IsDir()) || strings.HasSuffix(*out, "/") || strings.HasSuffix(*out, string(filepath.Separator)) {
		return usageErrorf("--out %s is a directory: name the report file (e.g. %s)", *out, filepath.Join(*out, "REPORT.md"))
	}
	// The report is renamed over --out from a file written beside it, which
	// would put a plain file in the place of a link or a device (/dev/null)
	// and the plots beside that.
	if fi, err := os.Lstat(*out); err == nil && !fi.Mode().IsRegular() {
		what := "a device or other special file"
		if fi.Mode()&fs.ModeSymlink != 0 {
			what = "a link"
		}
		return usageErrorf("--out %s is %s, which the report would replace: name a plain file (e.g. results/REPORT.md)", *out, what)
	}
	if d, problem := folderProblem(filepath.Dir(*out)); problem != "" {
		return usageErrorf("--out %s: %s %s", *out, d, problem)
	}
	if base := filepath.Base(*out); strings.HasPrefix(base, "fewshot-") && (strings.HasSuffix(base, ".png") || strings.HasSuffix(base, ".svg")) {
		return usageErrorf("--out %s: the report's own plots take that name", *out)
	}
	runs, dirs, err := findRuns(pos)
	if err != nil {
		return err
	}
	// A report inside a run folder, or a folder of it, would overwrite that
	// run's files (summary.json, report.md, a seed's summary.json) or be
	// taken for them.
	outDir := experiments.DirKey(filepath.Dir(*out))
	for _, d := range dirs {
		if k := experiments.DirKey(d); outDir == k || strings.HasPrefix(outDir, k+string(filepath.Separator)) {
			return usageErrorf("--out %s is inside the run folder %s: write the report beside the runs (e.g. %s)", *out, d, filepath.Join(filepath.Dir(d), "REPORT.md"))
		}
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	var extra []string
	if *note != "" {
		extra = append(extra, *note)
	}
	if err := experiments.SuiteReport(*out, *title, runs, dirs, extra...); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d runs)\n", *out, len(runs))
	return nil
}

// findRuns reads the finished runs among dirs, and the folder each was read
// from: each of dirs is a run directory or a folder whose sub-directories are
// runs. Unfinished runs are an error, so a report never silently leaves one
// out; a run named twice (or by its folder and the folder holding it) is
// read once.
func findRuns(dirs []string) ([]*experiments.RunSummary, []string, error) {
	type found struct {
		s   *experiments.RunSummary
		dir string
	}
	var runs []found
	seen := map[string]bool{}
	add := func(dir string, s *experiments.RunSummary) {
		if k := experiments.DirKey(dir); !seen[k] {
			seen[k] = true
			runs = append(runs, found{s, dir})
		}
	}
	for _, d := range dirs {
		if s, err := experiments.ReadRunSummary(d); err == nil {
			add(d, s)
			continue
		} else if isRunDir(d) {
			return nil, nil, unfinished(d, err)
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: not a finished run nor a folder of runs: %w", d, err)
		}
		n := 0
		for _, en := range entries {
			sub := filepath.Join(d, en.Name())
			if st, err := os.Stat(sub); err != nil || !st.IsDir() { // a link to a run folder counts
				continue
			}
			if !isRunDir(sub) {
				continue
			}
			s, err := experiments.ReadRunSummary(sub)
			if err != nil {
				return nil, nil, unfinished(sub, err)
			}
			add(sub, s)
			n++
		}
		if n == 0 {
			return nil, nil, fmt.Errorf("%s holds no finished runs", d)
		}
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].s.Run < runs[j].s.Run })
	summaries, folders := make([]*experiments.RunSummary, len(runs)), make([]string, len(runs))
	for i, r := range runs {
		summaries[i], folders[i] = r.s, r.dir
	}
	return summaries, folders, nil
}

// isRunDir reports whether dir is a run's folder: metaids run writes its
// spec.yaml first and its summary.json last, and a run's summaries may have
// been copied without their specs.
func isRunDir(dir string) bool {
	for _, name := range []string{"spec.yaml", "summary.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// unfinished explains why a run folder cannot be reported.
func unfinished(dir string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not finished (no summary.json): run it, or leave it out", dir)
	}
	return fmt.Errorf("%s cannot be reported: %w", dir, err)
}
