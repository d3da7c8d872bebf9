package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/experiments"
)

func init() {
	register(command{name: "validate", summary: "check experiment specs (and their grids and overrides) without running them", run: runValidate})
}

const validateSynopsis = "validate SPEC|DIR... [--set key=value]... [--deep] [--format F]"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// specArgs are the flags and arguments of the commands that load specs:
// spec files or folders, repeatable --set overrides and --format.
type specArgs struct {
	sets   stringList
	format string
}

func addSpecFlags(fl *flag.FlagSet) *specArgs {
	a := &specArgs{}
	fl.Var(&a.sets, "set", "override a key of every spec, key=value with a YAML value (repeatable): episodes.shots=1, learner.algo=[maml,fomaml]")
	formatFlag(fl, &a.format)
	return a
}

// parse reads the command line of cmd: the spec files (folders expanded),
// the output format and the overrides.
func (a *specArgs) parse(e *env, fl *flag.FlagSet, args []string, cmd string) ([]string, eval.Format, []experiments.Override, error) {
	pos, err := parseFlags(e, fl, args)
	if err != nil {
		return nil, "", nil, err
	}
	if len(pos) == 0 {
		return nil, "", nil, usageErrorf("%s takes one or more spec files or folders of them", cmd)
	}
	f, err := eval.ParseFormat(a.format)
	if err != nil {
		return nil, "", nil, usageErrorf("--format: %v", err)
	}
	var overrides []experiments.Override
	for _, s := range a.sets {
		o, err := experiments.ParseOverride(s)
		if err != nil {
			return nil, "", nil, usageErrorf("%v", err)
		}
		overrides = append(overrides, o)
	}
	files, err := specFiles(pos)
	if err != nil {
		return nil, "", nil, err
	}
	return files, f, overrides, nil
}

func runValidate(ctx context.Context, e *env, args []string) error {
	fl := newFlags(e, "validate", validateSynopsis)
	sa := addSpecFlags(fl)
	deep := fl.Bool("deep", false, "also load the data, build each split and check that every pool can give the spec's episodes (about a second per data set)")
	files, f, overrides, err := sa.parse(e, fl, args, "validate")
	if err != nil {
		return err
	}

	t := &eval.Table{
		Title:  "experiment specs",
		Labels: 4,
		Header: []string{"file", "run", "dataset", "algo", "ways", "shots", "queries", "steps", "seeds"},
	}
	if *deep {
		t.Header = append(t.Header, "classes train/val/test")
	}
	t.Header = append(t.Header, "status")
	var problems, warnings []string
	warned := map[string]bool{} // a split shared by several runs warns once
	bad := map[string]bool{}
	row := func(file string, s *experiments.Spec, classes, status string) {
		r := []string{file, "", "", "", "", "", "", "", ""}
		if s != nil {
			ep := s.Episodes
			seeds := make([]string, len(s.Seeds))
			for i, v := range s.Seeds {
				seeds[i] = strconv.FormatUint(v, 10)
			}
			r = []string{file, s.Name, s.Dataset.DataName(), s.Learner.Algo, strconv.Itoa(ep.Ways), strconv.Itoa(ep.Shots),
				strconv.Itoa(ep.Queries), strconv.Itoa(ep.TrainSteps), strings.Join(seeds, ",")}
		}
		if *deep {
			r = append(r, classes)
		}
		t.Rows = append(t.Rows, append(r, status))
	}

	runs := 0
	owner := map[string]string{} // run name -> the file that defines it
	cache := map[string]deepResult{}
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		specs, err := experiments.Load(file, overrides...)
		if err != nil {
			bad[file] = true
			var list experiments.ErrorList
			if !errors.As(err, &list) {
				row(file, nil, "", "error: "+err.Error())
				problems = append(problems, err.Error())
				continue
			}
			for _, le := range list {
				row(file, nil, "", "error: "+localMessage(le))
				problems = append(problems, le.Error())
			}
			continue
		}
		for i := range specs {
			s := &specs[i]
			runs++
			status, classes := "ok", ""
			if prev, dup := owner[s.Name]; dup {
				msg := fmt.Sprintf("run %s is also defined by %s: both would write results/%s", s.Name, prev, s.Name)
				status = "error: " + msg
				problems = append(problems, file+": name: "+msg)
				bad[file] = true
			}
			owner[s.Name] = file
			if *deep && status == "ok" {
				var err error
				var ws []string
				classes, ws, err = deepCheck(s, cache)
				for _, w := range ws {
					if !warned[w] {
						warned[w] = true
						warnings = append(warnings, "warning: dataset.categories: "+w)
					}
				}
				if err != nil {
					status = "error: " + err.Error()
					problems = append(problems, fmt.Sprintf("%s: run %s: %v", file, s.Name, err))
					bad[file] = true
				}
			}
			row(file, s, classes, status)
		}
	}
	check := "values checked"
	if *deep {
		check = "values, splits and episode pools checked"
	}
	t.Notes = []string{fmt.Sprintf("%d runs from %d spec files (%s); files with errors: %d.", runs, len(files), check, len(bad))}
	if err := t.Render(e.stdout, f); err != nil {
		return err
	}
	for _, p := range append(problems, warnings...) {
		fmt.Fprintln(e.stderr, p)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d spec files have errors", len(bad), len(files))
	}
	return nil
}

// localMessage is an error without its file name, for a row that names the
// file already.
func localMessage(e *experiments.Error) string {
	c := *e
	c.File = ""
	msg := strings.TrimPrefix(c.Error(), ": ")
	if c.Line > 0 && c.Override == "" {
		msg = "line " + strings.TrimPrefix(msg, ":")
	}
	return msg
}

// specFiles expands folders into the .yaml and .yml files under them. A
// file named twice (or by itself and by its folder) is listed once: its runs
// are not two runs that would share a results folder.
func specFiles(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(files ...string) {
		for _, f := range files {
			if k := experiments.DirKey(f); !seen[k] {
				seen[k] = true
				out = append(out, f)
			}
		}
	}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil || !st.IsDir() {
			add(a) // a missing file is reported as that spec's error
			continue
		}
		var found []string
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s holds no .yaml spec files", a)
		}
		sort.Strings(found)
		add(found...)
	}
	return out, nil
}

type deepResult struct {
	split *datasets.Split
	err   error
}

// deepCheck builds the spec's split (once per distinct data set, encoder
// and split settings) and checks that every pool the run draws from can
// give its episodes. It returns the class counts of the pools and the
// split's warnings. A supervised spec has no episodes: its files are loaded
// and labelled instead.
func deepCheck(s *experiments.Spec, cache map[string]deepResult) (classes string, warnings []string, err error) {
	if s.Split.Protocol == "supervised" {
		names, warnings, err := experiments.CheckSupervisedData(*s)
		return fmt.Sprintf("%d/-/-", len(names)), warnings, err
	}
	key := fmt.Sprintf("%+v %+v %+v %d", s.Dataset, s.Encoder, s.Split, s.MinRecords())
	r, ok := cache[key]
	if !ok {
		r.err = func() error {
			d, err := s.Data()
			if err != nil {
				return err
			}
			opt, err := s.ProtocolOptions()
			if err != nil {
				return err
			}
			r.split, err = datasets.NovelAttackSplit(d, opt)
			return experiments.ExplainData(err)
		}()
		cache[key] = r
	}
	if r.err != nil {
		return "", nil, experiments.ExplainShortage(r.err, s.MinRecords())
	}
	sp := r.split
	warnings = sp.Warnings
	count := func(p *datasets.Pool) int {
		if p == nil {
			return 0
		}
		return len(p.Classes)
	}
	classes = fmt.Sprintf("%d/%d/%d", count(sp.Train), count(sp.Val), count(sp.Test))
	pools := []struct {
		name string
		p    *datasets.Pool
		used bool
	}{
		{"meta-train", sp.Train, s.Episodes.TrainSteps > 0},
		{"meta-val", sp.Val, s.Episodes.ValEvery > 0},
		{"meta-test", sp.Test, true},
	}
	for _, pl := range pools {
		if !pl.used {
			continue
		}
		if pl.p == nil {
			return classes, warnings, fmt.Errorf("%s pool is empty", pl.name)
		}
		if _, err := datasets.NewSampler(pl.p, s.SamplerConfig(1, 0)); err != nil {
			return classes, warnings, fmt.Errorf("%s pool: %w", pl.name, experiments.ExplainShortage(err, s.MinRecords()))
		}
	}
	if _, err := experiments.MultitaskCategories(s.LearnerConfig(0).Aux, "", sp.Train); err != nil {
		return classes, warnings, err
	}
	if s.Learner.Algo == "finetune" {
		if _, err := experiments.PretrainClasses(sp.Train); err != nil {
			return classes, warnings, experiments.ExplainShortage(err, s.MinRecords())
		}
	}
	return classes, warnings, nil
}
