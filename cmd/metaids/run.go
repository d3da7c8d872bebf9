package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/metaids/metaids/experiments"
)

func init() {
	register(command{name: "run", summary: "meta-train and evaluate the runs of experiment specs, writing results/<run>/", run: runRun})
}

const runSynopsis = "run SPEC... [--set key=value]... [--seeds 1,2,3] [--device auto|cpu|cuda] [--jobs N] [--out DIR] [--force] [--format F]"

func runRun(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "run", runSynopsis)
	sa := addSpecFlags(fl)
	seedList := fl.String("seeds", "", "comma-separated seeds replacing every spec's seeds")
	device := fl.String("device", "", "auto, cpu or cuda, replacing every spec's backend.device")
	out := fl.String("out", "results", "directory the runs write into (<out>/<run>/)")
	force := fl.Bool("force", false, "run again runs and seeds whose results exist")
	jobs := fl.Int("jobs", 1, "seeds (of one run or several) to run at once; the numbers do not depend on it")
	files, f, overrides, err := sa.parse(e, fl, args, "run")
	if err != nil {
		return err
	}
	// An empty --seeds or --device (an unset shell variable, say) is not
	// taken for the flag left out.
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["seeds"] && *seedList == "" {
		return usageErrorf("--seeds is empty: want comma-separated seeds, e.g. 1,2,3")
	}
	seeds, err := parseSeeds(*seedList)
	if err != nil {
		return usageErrorf("--seeds: %v", err)
	}
	if len(seeds) > 0 {
		// Applied as an override too, as --device is below, so that the
		// specs are checked with the seeds they will run (a spec with no
		// seeds of its own runs with --seeds).
		list := make([]string, len(seeds))
		for i, s := range seeds {
			list[i] = strconv.FormatUint(s, 10)
		}
		o, err := experiments.ParseOverride("seeds=[" + strings.Join(list, ",") + "]")
		if err != nil {
			return err
		}
		overrides = append(overrides, o)
	}
	if given["device"] {
		if err := checkDeviceFlag(*device); err != nil {
			return err
		}
	}
	if *device != "" {
		// Applied as an override, so that the specs are checked with the
		// device they will run on (a cuda spec runs with --device cpu on a
		// build without cuda).
		o, err := experiments.ParseOverride("backend.device=" + *device)
		if err != nil {
			return err
		}
		overrides = append(overrides, o)
	}
	if *out == "" {
		return usageErrorf("--out is empty: want the folder the runs write into (default results)")
	}
	if *jobs < 1 || *jobs > experiments.MaxJobs {
		return usageErrorf("--jobs must be 1 to %d (got %d)", experiments.MaxJobs, *jobs)
	}
	if err := checkOutDir(*out); err != nil {
		return err
	}
	// Runs written into another run's folder would be taken for its files,
	// and a --force run of it would remove them with its seed folders.
	if run := enclosingRun(*out); run != "" {
		return usageErrorf("--out %s is inside the run folder %s: write the runs beside it (e.g. --out %s)", *out, run, filepath.Dir(run))
	}
	// Every spec is loaded and checked before any run starts, so a typo in
	// the last file does not surface after an hour of training.
	var specs []experiments.Spec
	var problems []string
	names := map[string]string{}
	for _, file := range files {
		ss, err := experiments.Load(file, overrides...)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, s := range ss {
			if prev, dup := names[s.Name]; dup {
				problems = append(problems, fmt.Sprintf("%s: run name %q is also a run of %s (results would collide); give one a different name", file, s.Name, prev))
				continue
			}
			names[s.Name] = file
			specs = append(specs, s)
		}
	}
	if len(problems) > 0 {
		return errors.New("specs with errors, nothing was run:\n" + strings.Join(problems, "\n"))
	}

	opt := experiments.RunOptions{OutDir: *out, Force: *force, Device: *device, Seeds: seeds, Log: e.stderr, Jobs: *jobs}
	if err := experiments.CheckJobs(opt, specs); err != nil {
		return usageErrorf("--jobs %d: %v: lower --jobs", *jobs, err)
	}

	runner := experiments.NewRunner(opt)
	made := missingAncestors(*out)
	done, err := runner.RunAll(ctx, specs)
	if err != nil {
		// Made by this command and left empty: no trace (a folder with
		// results stays), the parents it made for it included.
		removed := 0
		for _, d := range made {
			if os.Remove(d) != nil {
				break
			}
			removed++
		}
		if len(done) > 0 {
			experiments.MetricTable("Finished runs", done).Render(e.stdout, f)
		}
		if ctx.Err() == nil {
			return err
		}
		switch {
		case removed > 0:
			return errors.New("interrupted before any run or seed finished: nothing was kept")
		case runner.SeedsKept() == 0:
			// An --out that was there before may hold results of earlier
			// commands, but this one kept none.
			return errors.New("interrupted before any run or seed finished; run the same command again to resume")
		}
		return fmt.Errorf("interrupted: finished runs and seeds are kept under %s; run the same command again to resume", *out)
	}
	t := experiments.MetricTable("Results", done)
	dirs := make([]string, len(done))
	for i, s := range done {
		dirs[i] = filepath.Join(*out, s.Run)
	}
	where := strings.Join(dirs, ", ")
	if len(dirs) > 3 {
		where = fmt.Sprintf("%s/<run>/ for the %d runs", *out, len(dirs))
	}
	t.Notes = append(t.Notes, "reports, per-episode metrics, confusion matrices and plots: "+where)
	return t.Render(e.stdout, f)
}

// checkOutDir is a usage error for an --out that cannot be a folder: a
// file, a link to nothing, or a path through either (mkdir and open would
// say "file exists" or "not a directory" about a path --out does not name).
func checkOutDir(out string) error {
	d, problem := folderProblem(out)
	if problem == "" {
		return nil
	}
	what := d
	if d != filepath.Clean(out) {
		what = fmt.Sprintf("%s: %s", out, d)
	}
	return usageErrorf("--out %s %s", what, problem)
}

// folderProblem says why dir cannot be made a folder, checking the nearest
// part of its path that exists: it is a file, or a link to nothing. The
// problem is "" when there is none, or none can be seen (left to mkdir).
func folderProblem(dir string) (part, problem string) {
	d := filepath.Clean(dir)
	if missing := missingAncestors(dir); len(missing) > 0 {
		d = filepath.Dir(missing[len(missing)-1])
	}
	fi, err := os.Lstat(d)
	if err != nil {
		return d, ""
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(d)
		if fi, err = os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			return d, fmt.Sprintf("is a link to %s, which does not exist", target)
		} else if err != nil {
			return d, ""
		}
	}
	if !fi.IsDir() {
		return d, "is a file, not a folder"
	}
	return d, ""
}

// enclosingRun returns the folder of a run with results that dir is, or
// lies inside, as far as it exists; "" when there is none.
func enclosingRun(dir string) string {
	for d := experiments.DirKey(dir); ; d = filepath.Dir(d) {
		if experiments.IsRunFolder(d) {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// missingAncestors lists dir and those of its parents that do not exist
// yet, dir first: what making dir makes (a path through a file counts as
// missing up to the file, which checkOutDir then names).
func missingAncestors(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

func parseSeeds(s string) ([]uint64, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint64
	seen := map[uint64]bool{}
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("seed %s is out of range (at most %d)", strings.TrimSpace(f), uint64(math.MaxUint64))
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not a list of non-negative integers", s)
		}
		if seen[v] {
			return nil, fmt.Errorf("seed %d given twice", v)
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, nil
}
