package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

func init() {
	register(command{name: "split", summary: "show the class-disjoint meta-train/val/test split of a data set and draw episodes from it", run: runSplit})
}

const splitSynopsis = "split DATASET [--ways N --shots K --queries Q --meta-batch B] [--normal-way] [--replacement] [--distinct none|train|test|both] [--val-fraction F] [--episodes E] [--seed S] [--data-dir D [--no-checksum]] [--categories CSV] [--format F]"

func runSplit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "split", splitSynopsis)
	ways := fs.Int("ways", 5, "ways (classes) per episode")
	shots := fs.Int("shots", 5, "support examples per way")
	queries := fs.Int("queries", 15, "query examples per way")
	metaBatch := fs.Int("meta-batch", 4, "episodes per meta-batch")
	normalWay := fs.Bool("normal-way", false, "normal traffic is always one of the ways")
	replacement := fs.Bool("replacement", false, "keep classes with fewer than shots+queries records and sample them with replacement")
	distinct := fs.String("distinct", "none", "files whose records that repeat an earlier one are left out: none, train, test or both")
	valFraction := fs.Float64("val-fraction", 0.25, "fraction of the meta-train attack types held out for meta-val")
	episodes := fs.Int("episodes", 20000, "episodes to draw from each pool (0: none)")
	seed := fs.Uint64("seed", 1, "seed of the meta-val draw and the episode sampler")
	src := addDataSource(fs)
	var format string
	formatFlag(fs, &format)
	pos, err := parseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("split takes one data set (%s)", strings.Join(datasets.Names(), ", "))
	}
	if err := checkNotEmpty(fs); err != nil {
		return err
	}
	if _, err := eval.ParseFormat(format); err != nil {
		return usageErrorf("--format: %v", err)
	}
	// Checked before the data load, and not reported per pool as an
	// episode that cannot be drawn.
	if err := checkMins(intFlag{"--ways", *ways, 2}, intFlag{"--shots", *shots, 1}, intFlag{"--queries", *queries, 1},
		intFlag{"--meta-batch", *metaBatch, 1}, intFlag{"--episodes", *episodes, 0}); err != nil {
		return err
	}
	if !slices.Contains(datasets.DistinctChoices, *distinct) {
		return usageErrorf("--distinct must be none, train, test or both (got %q)", *distinct)
	}
	if !(*valFraction >= 0 && *valFraction < 1) {
		return usageErrorf("--val-fraction must be in [0, 1) (got %v)", *valFraction)
	}
	// The meta-batch must fit before anything is loaded: the encoded width
	// is not known yet, but no file encodes to fewer features.
	if err := checkBatchSize(*ways, *shots, *queries, *metaBatch, datasets.MinEncodedDim, false); err != nil {
		return err
	}
	d, err := lookupDataset(pos[0])
	if err != nil {
		return err
	}
	if err := checkDataDir(src.dir); err != nil {
		return err
	}
	cats, catFile, err := src.loadCategories()
	if err != nil {
		return err
	}
	min := *shots + *queries // checkBatchSize bounds both
	if *replacement {
		min = 1
	}
	distinctTrain, distinctTest := datasets.DistinctFiles(*distinct)
	start := time.Now()
	s, err := datasets.NovelAttackSplit(d, datasets.ProtocolOptions{
		Load: src.options(), Categories: cats, CategoryFile: catFile,
		DistinctTrain: distinctTrain, DistinctTest: distinctTest,
		MinRecords: min, ValFraction: *valFraction, Seed: *seed,
	})
	if err != nil {
		return explainShortage(categoriesHint(checksumHint(err)), min, *valFraction)
	}
	warnCategories(e, s.Warnings)
	if err := checkBatchSize(*ways, *shots, *queries, *metaBatch, s.Encoder.Dim(), true); err != nil {
		return err
	}
	loaded := time.Since(start)

	pools := []struct {
		name, file string
		p          *datasets.Pool
	}{{"meta-train", s.TrainFile, s.Train}, {"meta-val", s.TrainFile, s.Val}, {"meta-test", s.TestFile, s.Test}}
	classes := &eval.Table{
		Title:  fmt.Sprintf("%s novel-attack split (encoder fitted on %s, %d features%s)", d.Name, s.TrainFile, s.Encoder.Dim(), distinctNote(s)),
		Labels: 4,
		Header: []string{"pool", "file", "class", "category", "records"},
	}
	for _, pl := range pools {
		if pl.p == nil {
			continue
		}
		for _, c := range pl.p.Classes {
			classes.Rows = append(classes.Rows, []string{pl.name, pl.file, c.Name, c.Category, strconv.Itoa(len(c.Rows))})
		}
	}
	for _, key := range []string{"train", "test"} {
		file := s.TrainFile
		if key == "test" {
			file = s.TestFile
		}
		for _, dr := range s.Dropped[key] {
			classes.Rows = append(classes.Rows, []string{"dropped", file, dr.Name, cats.Of(dr.Name), strconv.Itoa(dr.Records) + " (" + dr.Reason + ")"})
		}
	}
	summary := &eval.Table{
		Title:  fmt.Sprintf("%d-way %d-shot %d-query episodes, meta-batch %d", *ways, *shots, *queries, *metaBatch),
		Labels: 1,
		Header: []string{"pool", "classes", "records", "episodes drawn", "episodes/s", "status"},
	}
	for _, pl := range pools {
		if pl.p == nil {
			summary.Rows = append(summary.Rows, []string{pl.name, "0", "0", "0", "-", "empty (no meta-val classes)"})
			continue
		}
		recs := 0
		for _, c := range pl.p.Classes {
			recs += len(c.Rows)
		}
		if ctx.Err() != nil {
			summary.Rows = append(summary.Rows, []string{pl.name, strconv.Itoa(len(pl.p.Classes)), strconv.Itoa(recs), "0", "-", "not drawn (interrupted)"})
			continue
		}
		drawn, rate, status := drawEpisodes(ctx, pl.p, datasets.SamplerConfig{
			Ways: *ways, Shots: *shots, Queries: *queries, MetaBatch: *metaBatch,
			NormalWay: *normalWay, Replacement: *replacement, Seed: *seed,
		}, *episodes)
		summary.Rows = append(summary.Rows, []string{pl.name, strconv.Itoa(len(pl.p.Classes)), strconv.Itoa(recs), strconv.Itoa(drawn), rate, status})
	}
	summary.Notes = []string{fmt.Sprintf("loading, encoding and pooling took %s; meta-test classes are the attack types of %s that %s lacks.",
		loaded.Round(time.Millisecond), s.TestFile, s.TrainFile)}
	if err := renderTables(e, format, classes, summary); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted: the episode counts are partial (%w)", ctx.Err())
	}
	return nil
}

// checkBatchSize is a usage error, naming the flags, for a meta-batch whose
// buffers would pass datasets.MaxBatchBytes or the machine's memory: the
// sizes are multiplied in float64, so that flags near the int limit are
// refused rather than overflowing. dim is the encoded width when exact, else
// a lower bound on it.
func checkBatchSize(ways, shots, queries, metaBatch, dim int, exact bool) error {
	limit, what := float64(datasets.MaxBatchBytes), "the sampler's limit"
	if m := train.MachineMemory(); m > 0 && m < limit {
		limit, what = m, "this machine's memory"
	}
	features := fmt.Sprintf("%d features", dim)
	if !exact {
		features = fmt.Sprintf("at least %d features", dim)
	}
	if one := datasets.BatchBytes(ways, shots, queries, 1, dim); one > limit {
		return usageErrorf("--ways %d × (--shots %d + --queries %d) rows of %s take %s for one episode, more than %s (%s): lower --ways, --shots or --queries",
			ways, shots, queries, features, train.GiB(one), what, train.GiB(limit))
	}
	if all := datasets.BatchBytes(ways, shots, queries, metaBatch, dim); all > limit {
		return usageErrorf("--meta-batch %d: %d episodes of %d×%d rows of %s take %s, more than %s (%s)",
			metaBatch, metaBatch, ways, shots+queries, features, train.GiB(all), what, train.GiB(limit))
	}
	return nil
}

// explainShortage adds to an error about too few classes the rule of this
// command that left classes out, naming its flags.
func explainShortage(err error, minRecords int, valFraction float64) error {
	if minRecords <= 1 || !errors.Is(err, datasets.ErrTooFewClasses) {
		return err
	}
	val := ""
	if valFraction > 0 {
		val = "; --val-fraction 0 holds no classes out for meta-val"
	}
	return fmt.Errorf("%w (classes with fewer than --shots + --queries = %d records are left out: lower --shots or --queries, "+
		"or pass --replacement to keep them and sample them with replacement%s)", err, minRecords, val)
}

// drawEpisodes draws n episodes in meta-batches, the last one trimmed to what
// is left, and reports the rate, or why no episode can be drawn from the
// pool, or that ctx stopped the drawing.
func drawEpisodes(ctx context.Context, p *datasets.Pool, cfg datasets.SamplerConfig, n int) (int, string, string) {
	if cfg.NormalWay && p.ClassIndex(datasets.DefaultNormalClass) < 0 {
		return 0, "-", fmt.Sprintf("cannot draw: --normal-way, but the pool has no %s class", datasets.DefaultNormalClass)
	}
	smp, err := datasets.NewSampler(p, cfg)
	if err != nil {
		if errors.Is(err, datasets.ErrTooFewClasses) {
			err = fmt.Errorf("%w (--ways)", err)
		}
		return 0, "-", "cannot draw: " + err.Error()
	}
	b := smp.NewBatch()
	start := time.Now()
	drawn := 0
	for drawn < n && ctx.Err() == nil {
		if left := n - drawn; left < len(b) {
			// Next draws as NextBatch does, episode by episode.
			for _, ep := range b[:left] {
				if err := smp.Next(ep); err != nil {
					return drawn, "-", err.Error()
				}
				drawn++
			}
			break
		}
		if err := smp.NextBatch(b); err != nil {
			return drawn, "-", err.Error()
		}
		drawn += len(b)
	}
	status := "ok"
	if ctx.Err() != nil && drawn < n {
		status = "interrupted"
	}
	if drawn == 0 {
		return 0, "-", status
	}
	return drawn, strconv.FormatFloat(float64(drawn)/time.Since(start).Seconds(), 'f', 0, 64), status
}

// distinctNote says how many repeats --distinct left out.
func distinctNote(s *datasets.Split) string {
	var left []string
	if s.TrainRepeats > 0 {
		left = append(left, fmt.Sprintf("%d of %s", s.TrainRepeats, s.TrainFile))
	}
	if s.TestRepeats > 0 {
		left = append(left, fmt.Sprintf("%d of %s", s.TestRepeats, s.TestFile))
	}
	if len(left) == 0 {
		return ""
	}
	return "; repeated records left out: " + strings.Join(left, ", ")
}
