package experiments

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/internal/progress"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
)

// plan is everything one run needs, resolved from a spec.
type plan struct {
	Name     string
	SpecYAML []byte
	Inputs   map[string]string // see SeedResult.Inputs
	Dataset  *datasets.Dataset
	Protocol datasets.ProtocolOptions
	Learner  train.Config
	Episodes episodePlan
	Device   string
	Threads  int
	Seeds    []uint64

	// Supervised is set for the supervised track (no episodes).
	Supervised *supervisedPlan
	// Pretrain, when set, pre-trains the encoder before meta-training (its
	// seed is the run's); Detection, when its method is not none, adds
	// open-set detection.
	Pretrain    *train.PretrainConfig
	Detection   DetectionSpec
	Adversarial AdversarialSpec
}

type episodePlan struct {
	Ways, Shots, Queries, MetaBatch int
	NormalWay, Replacement          bool
	NormalClass                     string
	TrainSteps, ValEvery            int
	ValEpisodes, TestEpisodes       int
}

// Sampler streams: one per purpose, so that changing the number of
// validation episodes does not change the training or test episodes.
const (
	streamTrain = 1
	streamVal   = 2
	streamTest  = 3
	// streamRobust draws the robustness evaluation's episodes; streamAdv
	// seeds the choice of perturbed rows in adversarial training.
	streamRobust = 4
	streamAdv    = 5
)

// RunOptions control where and how runs execute.
type RunOptions struct {
	OutDir string    // results root (default "results")
	Force  bool      // run again even if finished results exist
	Device string    // overrides the spec's backend.device when set
	Seeds  []uint64  // override the spec's seeds when set
	Log    io.Writer // progress and log lines (default os.Stderr)
	// Jobs is how many seeds RunAll runs at once (default 1). Above 1, the
	// spec's backend.threads is not applied (GOMAXPROCS is the process's),
	// progress comes as log lines, and a run on a GPU runs its seeds one at
	// a time and no other GPU run beside it.
	Jobs int
}

// Runner runs specs, caching data splits between runs that share them.
type Runner struct {
	opt     RunOptions
	splitMu sync.Mutex // held while a split is looked up or built
	splits  map[string]*datasets.Split
	prov    Provenance
	slots   chan struct{} // one per seed running when Jobs > 1; nil for one at a time
	gpu     sync.Mutex    // held through a run on a GPU backend when Jobs > 1

	finishedMu sync.Mutex
	finished   []string // folders of the runs finished, whose force.json goes when the command ends

	seedsKept atomic.Int64 // seeds finished by this runner or earlier and kept
}

// SeedsKept is how many seeds this runner has finished or kept as finished
// earlier: none, and a stopped command kept nothing.
func (r *Runner) SeedsKept() int { return int(r.seedsKept.Load()) }

// jobs is what a seed records of Jobs: 0 when seeds ran one at a time.
func (r *Runner) jobs() int {
	if r.slots == nil {
		return 0
	}
	return cap(r.slots)
}

// NewRunner returns a runner.
func NewRunner(opt RunOptions) *Runner {
	if opt.OutDir == "" {
		opt.OutDir = "results"
	}
	if opt.Log == nil {
		opt.Log = os.Stderr
	}
	r := &Runner{opt: opt, splits: map[string]*datasets.Split{}, prov: CurrentProvenance()}
	if opt.Jobs > 1 {
		r.opt.Log = &lockedWriter{w: opt.Log}
		r.slots = make(chan struct{}, min(opt.Jobs, MaxJobs))
	}
	return r
}

// CurvePoint is one point of the learning curve: the mean meta-train loss
// over the steps since the previous point, and the meta-val accuracy when
// validation ran at this step (NaN otherwise).
type CurvePoint struct {
	Step        int     `json:"step"`
	TrainLoss   float64 `json:"train_loss"`
	ValAccuracy float64 `json:"val_accuracy"`
	ValCI       float64 `json:"val_ci"`
}

// PoolInfo describes one pool of a run.
type PoolInfo struct {
	File    string   `json:"file"`
	Classes []string `json:"classes"`
	Records int      `json:"records"`
}

// SeedResult is the outcome of one run with one seed: results/<run>/seed-<n>/summary.json.
type SeedResult struct {
	Run        string     `json:"run"`
	Seed       uint64     `json:"seed"`
	Provenance Provenance `json:"provenance"`
	Backend    string     `json:"backend"`
	Device     string     `json:"device"`
	Started    time.Time  `json:"started"`
	Wall       float64    `json:"wall_seconds"`
	// Jobs is the --jobs the seed ran under when above 1: its throughput
	// figures are then those of a machine it shared with other seeds.
	Jobs       int                     `json:"jobs,omitempty"`
	Cost       train.Cost              `json:"cost"`
	Pretrain   *PretrainStats          `json:"pretrain,omitempty"`
	Detection  *DetectionResult        `json:"detection,omitempty"`
	Robustness []RobustResult          `json:"robustness,omitempty"`
	Multitask  *MultitaskResult        `json:"multitask,omitempty"`
	Train      TrainStats              `json:"train"`
	Test       TestStats               `json:"test"`
	Pools      map[string]PoolInfo     `json:"pools"`
	Metrics    map[string]eval.Summary `json:"metrics"`
	PerClass   []eval.ClassScore       `json:"per_class"`
	Confusion  ConfusionTable          `json:"confusion"`
	Curve      []CurvePoint            `json:"curve"`
	Spec       string                  `json:"spec"`
	// Inputs fingerprints files the spec names only by path (the
	// categories CSV), so that an edited file is not taken for the same run.
	Inputs     map[string]string `json:"inputs,omitempty"`
	Supervised []SupervisedEval  `json:"supervised,omitempty"`
	// Phases is where the wall time went (episodic runs; absent from
	// results written before it was recorded).
	Phases *PhaseSeconds `json:"phase_seconds,omitempty"`

	episodes   []eval.EpisodeScore
	checkpoint []byte // the selected learner, with its encoder and spec
}

// CheckpointProvenance is the "provenance" blob of a seed's checkpoint: the
// seed and what made it, as its summary.json records them.
type CheckpointProvenance struct {
	Run        string     `json:"run"`
	Seed       uint64     `json:"seed"`
	Provenance Provenance `json:"provenance"`
	Backend    string     `json:"backend"`
	Device     string     `json:"device"`
}

func (r *SeedResult) provenanceJSON() []byte {
	b, _ := json.Marshal(CheckpointProvenance{r.Run, r.Seed, r.Provenance, r.Backend, r.Device}) // plain strings and numbers: cannot fail
	return b
}

// PretrainStats summarise self-supervised pre-training.
type PretrainStats struct {
	Objective string    `json:"objective"`
	Rows      int       `json:"rows"`
	Epochs    int       `json:"epochs"`
	Losses    []float64 `json:"losses"`
	Seconds   float64   `json:"seconds"`
}

// PhaseSeconds splits a seed's wall time by phase, so that a slow run
// shows what to shorten: validation and the robustness evaluation are in
// no throughput figure. Other is the rest: setting up the learner and
// samplers, checkpoints, and the meta-val episodes drawn once.
type PhaseSeconds struct {
	Pretrain   float64 `json:"pretrain"`
	MetaTrain  float64 `json:"meta_train"`
	Validation float64 `json:"validation"`
	MetaTest   float64 `json:"meta_test"`
	Robustness float64 `json:"robustness"`
	Detection  float64 `json:"detection"`
	Other      float64 `json:"other"`
}

// TrainStats summarise meta-training.
type TrainStats struct {
	Steps           int     `json:"steps"`
	Seconds         float64 `json:"seconds"`
	StepsPerSec     float64 `json:"steps_per_sec"`
	TasksPerSec     float64 `json:"tasks_per_sec"`
	BestStep        int     `json:"best_step"`
	BestValAccuracy float64 `json:"best_val_accuracy"`
	// TaskThreads is how many tasks of a meta-batch were adapted at once
	// (train.TaskThreads; omitted when one), which the rates depend on.
	TaskThreads int `json:"task_threads,omitempty"`
}

// TestStats summarise meta-test evaluation.
type TestStats struct {
	Episodes       int     `json:"episodes"`
	Seconds        float64 `json:"seconds"`
	EpisodesPerSec float64 `json:"episodes_per_sec"`
	// FlowsPerSec are query flows classified per second, adaptation to
	// each episode's support set included; LatencyPerFlowUS is its inverse.
	FlowsPerSec      float64 `json:"flows_per_sec"`
	LatencyPerFlowUS float64 `json:"latency_per_flow_us"`
}

// ConfusionTable is a confusion matrix with class names (rows: truth).
type ConfusionTable struct {
	Classes []string  `json:"classes"`
	Counts  [][]int64 `json:"counts"`
}

// errInterrupted is returned when the context ends a run early.
var errInterrupted = errors.New("interrupted")

// checkRunDir explains a run folder's path that cannot be the run's folder:
// a file, a link to nothing (which os.Stat calls absent and mkdir calls
// existing), or a folder of other files. An absent path or an empty folder
// is fine: the run makes or fills it.
func checkRunDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		if fi, err = os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s is a link to %s, which does not exist", dir, target)
		} else if err != nil {
			return err
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is a file, not a folder: move it, or run with --out DIR elsewhere", dir)
	}
	// A folder of someone else's files that happens to bear the run's name
	// is not written into (nor, with --force, cleared of its report.md).
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	others := 0
	for _, e := range entries {
		if n := e.Name(); n == "spec.yaml" || n == "summary.json" || isSeedDir(n) {
			return nil
		}
		if !isLeftover(e.Name()) {
			others++
		}
	}
	if others > 0 {
		return fmt.Errorf("%s is a folder that holds no run (no spec.yaml, summary.json or seed-N folder): move it, or run with --out DIR elsewhere", dir)
	}
	return nil
}

// isLeftover reports whether name, in a run folder, is what a command
// killed outright while writing there leaves: the temporary file of one of
// the run's files (".spec.yaml.<random>.tmp", as eval.WriteFilesAtomic
// names them) or a seed's folder not yet renamed into place.
func isLeftover(name string) bool {
	if n, ok := strings.CutSuffix(name, ".partial"); ok {
		return isSeedDir(n)
	}
	n, ok := strings.CutPrefix(name, ".")
	n, ok2 := strings.CutSuffix(n, ".tmp")
	i := strings.LastIndexByte(n, '.')
	if !ok || !ok2 || i < 0 {
		return false
	}
	if _, err := strconv.ParseUint(n[i+1:], 10, 32); err != nil {
		return false
	}
	return n[:i] == "spec.yaml" || n[:i] == forceFile || slices.Contains(runLevelFiles, n[:i])
}

// removeLeftovers removes the leftovers (isLeftover) of a command killed
// outright while writing into a run folder, before the run writes there.
func removeLeftovers(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isLeftover(e.Name()) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// seedsReadable reports whether every seed of a run folder has a
// summary.json that reads as a result of that seed and, under --force, one
// that the --force run taken up again made (forceKeeps).
func (r *Runner) seedsReadable(dir string, seeds []uint64, since time.Time) bool {
	for _, seed := range seeds {
		res, err := readSeedResult(filepath.Join(dir, fmt.Sprintf("seed-%d", seed)))
		if err != nil || (r.opt.Force && !r.forceKeeps(res, since)) {
			return false
		}
	}
	return true
}

// Run runs one plan for every seed, writing results/<run>/. A seed whose
// results exist is skipped unless Force (then only those made by the --force
// run it takes up again are, forceKeeps); so is a whole finished run.
func (r *Runner) runPlan(ctx context.Context, p plan) (sum *RunSummary, err error) {
	dir := filepath.Join(r.opt.OutDir, p.Name)
	if err := checkRunDir(dir); err != nil {
		return nil, fmt.Errorf("run %s: %w", p.Name, err)
	}
	defer func() {
		if err == nil {
			r.finishedMu.Lock()
			r.finished = append(r.finished, dir)
			r.finishedMu.Unlock()
		}
	}()
	since := r.forceSince(dir)
	if !r.opt.Force {
		if err := checkRecordedSpec(dir, p); err != nil {
			return nil, err
		}
	}
	if !r.opt.Force || !since.IsZero() {
		// The summary must be of this spec too: a --force run stopped
		// before its end leaves the new spec.yaml beside the old summary.
		// So must its seeds' summaries: one damaged since is run again.
		if s, err := ReadRunSummary(dir); err == nil && sameSeeds(s.Seeds, p.Seeds) && p.differenceFrom(s.Spec, s.Inputs) == "" && r.seedsReadable(dir, p.Seeds, since) {
			if r.opt.Force {
				fmt.Fprintf(r.opt.Log, "run %s: finished by the --force run stopped earlier (%s), kept\n", p.Name, dir)
			} else {
				fmt.Fprintf(r.opt.Log, "run %s: finished earlier (%s); --force runs it again\n", p.Name, dir)
			}
			r.seedsKept.Add(int64(len(p.Seeds)))
			return s, nil
		}
	}
	if _, statErr := os.Stat(dir); errors.Is(statErr, fs.ErrNotExist) {
		// A run that fails before any seed finishes leaves no folder of
		// its own behind (finished seeds stay, to be resumed).
		defer func() {
			if err != nil {
				removeIfOnlySpec(dir)
			}
		}()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	removeLeftovers(dir)
	if r.opt.Force {
		// The run's summary, report and plots describe the results being
		// replaced; if this run stops early, or leaves out a plot (no
		// detection now, say), none must claim to be its.
		for _, name := range runLevelFiles {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		if since.IsZero() {
			if since, err = markForced(dir); err != nil {
				return nil, err
			}
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, "spec.yaml"), p.SpecYAML); err != nil {
		return nil, err
	}
	be, err := kernels.Open(p.Device, func(msg string) { fmt.Fprintln(r.opt.Log, msg) })
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", p.Name, err)
	}
	if c, ok := be.(io.Closer); ok {
		defer c.Close() // a GPU backend's context, module and staging memory
	}
	if r.slots != nil && be.Name() != "cpu" {
		// One GPU run at a time, its seeds one after another: runs beside
		// it would share the device's memory and time.
		r.gpu.Lock()
		defer r.gpu.Unlock()
	}
	var results []*SeedResult
	if p.Supervised != nil {
		if results, err = r.runSupervised(ctx, p, dir, since, be); err != nil {
			return nil, err
		}
	} else if results, err = r.runEpisodic(ctx, p, dir, since, be); err != nil {
		return nil, err
	}
	// Seeds listed in any order are the same run (sameSeeds): pooled in
	// seed order, they give the same numbers bit for bit.
	slices.SortFunc(results, func(a, b *SeedResult) int { return cmp.Compare(a.Seed, b.Seed) })
	sum = summarise(p, results)
	if err := writeRunSummary(dir, sum, results); err != nil {
		return nil, err
	}
	return sum, nil
}

// runLevelFiles are what a finished run writes beside its seed folders,
// spec.yaml aside.
var runLevelFiles = func() []string {
	names := []string{"summary.json", "report.md"}
	for _, stem := range []string{"per_class_f1", "confusion", "roc", "robustness", "multitask_category"} {
		names = append(names, stem+".png", stem+".svg")
	}
	return names
}()

// removeIfOnlySpec removes a run folder that holds nothing but its
// spec.yaml (and the force.json of a --force run).
func removeIfOnlySpec(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() != "spec.yaml" && e.Name() != forceFile {
			return
		}
	}
	os.RemoveAll(dir)
}

// runEpisodic meta-trains and tests a plan for every seed (since as in
// eachSeed).
func (r *Runner) runEpisodic(ctx context.Context, p plan, dir string, since time.Time, be kernels.Backend) ([]*SeedResult, error) {
	split, err := r.split(p)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", p.Name, ExplainShortage(err, p.Protocol.MinRecords))
	}
	if why := train.HostReason(p.Learner, be); why != "" {
		fmt.Fprintf(r.opt.Log, "run %s: %s runs on the host (%s); its optimiser steps use the GPU\n", p.Name, p.Learner.Algo, why)
	}
	if n := train.TaskWorkers(p.Learner, train.Shape{MetaBatch: p.Episodes.MetaBatch}); n > 1 && r.slots == nil && (be.Name() == "cpu" || train.HostReason(p.Learner, be) != "") {
		fmt.Fprintf(r.opt.Log, "run %s: adapting up to %d tasks of a meta-batch at once (backend.threads); the numbers are those of one\n", p.Name, n)
	}
	// Caught before any seed trains rather than after its test episodes.
	if det := p.Detection; det.Method != "none" && det.Threshold == "f1" && split.Val == nil {
		return nil, fmt.Errorf("run %s: %w", p.Name, errF1WithoutVal)
	}
	return r.eachSeed(ctx, p, dir, since, poolInfos(split), be.Name() != "cpu", func(ctx context.Context, seed uint64) (*SeedResult, error) {
		return r.runSeed(ctx, p, split, be, seed)
	})
}

// eachSeed runs the seeds of a plan, keeping seeds finished earlier unless
// Force (then those made since since, when the --force run it takes up
// again, or this one, began: forceKeeps), and writes each seed's files as
// soon as it is done. A seed is kept only if it was run on
// the same pools, since the files of a data_dir may have changed (with
// no_checksum) under the same spec. With Jobs above 1 the seeds run at
// once, as slots allow, unless oneAtATime; the first to fail stops the
// others, which keep nothing.
func (r *Runner) eachSeed(ctx context.Context, p plan, dir string, since time.Time, pools map[string]PoolInfo, oneAtATime bool,
	run func(ctx context.Context, seed uint64) (*SeedResult, error)) ([]*SeedResult, error) {
	results := make([]*SeedResult, len(p.Seeds))
	var todo []int
	for i, seed := range p.Seeds {
		seedDir := filepath.Join(dir, fmt.Sprintf("seed-%d", seed))
		res, err := readSeedResult(seedDir)
		if err == nil {
			diff := p.differenceFrom(res.Spec, res.Inputs)
			if diff == "" {
				diff = poolsDifference(res.Pools, pools)
			}
			if r.opt.Force && (diff != "" || !r.forceKeeps(res, since)) {
				todo = append(todo, i) // what --force was asked to replace
				continue
			}
			if diff != "" {
				return nil, otherSpecError(p.Name, seedDir, diff)
			}
			if err = res.fits(p, pools); err != nil {
				err = fmt.Errorf("%s/summary.json: %w", seedDir, err)
			}
		}
		if err == nil {
			if r.opt.Force {
				fmt.Fprintf(r.opt.Log, "run %s seed %d: finished by the --force run stopped earlier, kept\n", p.Name, seed)
			} else {
				fmt.Fprintf(r.opt.Log, "run %s seed %d: finished earlier, kept\n", p.Name, seed)
			}
			results[i] = res
			r.seedsKept.Add(1)
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(r.opt.Log, "run %s seed %d: %v: not a finished result, running the seed again\n", p.Name, seed, err)
		}
		todo = append(todo, i)
	}
	one := func(ctx context.Context, i int) (err error) {
		seed := p.Seeds[i]
		defer func() {
			if err != nil {
				err = fmt.Errorf("run %s seed %d: %w", p.Name, seed, err)
			}
		}()
		res, err := run(ctx, seed)
		if err != nil {
			return err
		}
		if err := writeSeedResult(filepath.Join(dir, fmt.Sprintf("seed-%d", seed)), res); err != nil {
			return err
		}
		results[i] = res
		r.seedsKept.Add(1)
		return nil
	}
	// A slot is taken before a seed starts, so the seeds start in order.
	takeSlot := func(ctx context.Context) error {
		if r.slots == nil {
			return nil
		}
		select {
		case r.slots <- struct{}{}:
			return nil
		case <-ctx.Done():
			return errInterrupted
		}
	}
	freeSlot := func() {
		if r.slots != nil {
			<-r.slots
		}
	}
	if r.slots == nil || oneAtATime || len(todo) < 2 {
		for _, i := range todo {
			if err := takeSlot(ctx); err != nil {
				return nil, fmt.Errorf("run %s seed %d: %w", p.Name, p.Seeds[i], err)
			}
			err := one(ctx, i)
			freeSlot()
			if err != nil {
				return nil, err
			}
		}
		return results, nil
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for k, i := range todo {
		if err := takeSlot(ctx); err != nil {
			errs[k] = fmt.Errorf("run %s seed %d: %w", p.Name, p.Seeds[i], err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer freeSlot()
			if errs[k] = one(ctx, i); errs[k] != nil {
				stop()
			}
		}()
	}
	wg.Wait()
	if err := firstFailure(errs); err != nil {
		return nil, err
	}
	return results, nil
}

// split builds (or reuses) the data split of a plan.
func (r *Runner) split(p plan) (*datasets.Split, error) {
	key, err := json.Marshal(struct {
		D string
		P datasets.ProtocolOptions
	}{p.Dataset.Name, p.Protocol})
	if err != nil {
		return nil, err
	}
	r.splitMu.Lock()
	defer r.splitMu.Unlock()
	if s, ok := r.splits[string(key)]; ok {
		return s, nil
	}
	start := time.Now()
	s, err := datasets.NovelAttackSplit(p.Dataset, p.Protocol)
	if err != nil {
		return nil, ExplainData(err)
	}
	distinct := ""
	if note := repeatsNote(p.Protocol, fileRepeats{s.TrainFile, s.TrainRepeats}, fileRepeats{s.TestFile, s.TestRepeats}); note != "" {
		distinct = " (" + note + ")"
	}
	fmt.Fprintf(r.opt.Log, "%s: loaded, encoded (%d features) and split in %s%s: meta-train %d classes, meta-val %d, meta-test %d\n",
		p.Dataset.Name, s.Encoder.Dim(), time.Since(start).Round(time.Millisecond), distinct,
		classCount(s.Train), classCount(s.Val), classCount(s.Test))
	for _, w := range s.Warnings {
		fmt.Fprintf(r.opt.Log, "%s: warning: dataset.categories: %s\n", p.Dataset.Name, w)
	}
	r.splits[string(key)] = s
	return s, nil
}

// fileRepeats is how many repeats were left out of a file.
type fileRepeats struct {
	file string
	n    int
}

// repeatsNote says how many repeats were left out of each file the protocol
// makes distinct ("repeated records left out: 348435 of
// kddcup.data_10_percent, 233738 of corrected"), or "" when it makes none.
func repeatsNote(o datasets.ProtocolOptions, train fileRepeats, tests ...fileRepeats) string {
	var left []string
	if o.TrainLoad().Distinct {
		left = append(left, fmt.Sprintf("%d of %s", train.n, train.file))
	}
	if o.TestLoad().Distinct {
		for _, t := range tests {
			left = append(left, fmt.Sprintf("%d of %s", t.n, t.file))
		}
	}
	if len(left) == 0 {
		return ""
	}
	return "repeated records left out: " + strings.Join(left, ", ")
}

func classCount(p *datasets.Pool) int {
	if p == nil {
		return 0
	}
	return len(p.Classes)
}

// PretrainClasses is the class count of fine-tuning's pre-training head,
// that of the meta-train pool, which must give it two classes to tell apart
// even when no episode is drawn from it (episodes.train_steps: 0).
func PretrainClasses(trainPool *datasets.Pool) (int, error) {
	var names []string
	if trainPool != nil {
		for _, c := range trainPool.Classes {
			names = append(names, c.Name)
		}
	}
	if len(names) < 2 {
		return 0, shortageError{fmt.Sprintf("learner.algo: finetune pre-trains a head over the meta-train classes and needs at least 2; "+
			"the meta-train pool has %d: %s", len(names), strings.Join(names, ", "))}
	}
	return len(names), nil
}

// runSeed meta-trains with periodic validation (keeping the best
// checkpoint), then evaluates on meta-test episodes.
func (r *Runner) runSeed(ctx context.Context, p plan, split *datasets.Split, be kernels.Backend, seed uint64) (*SeedResult, error) {
	if p.Threads > 0 && r.slots == nil {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(p.Threads))
	}
	start := time.Now()
	ep := p.Episodes
	cfg := p.Learner
	cfg.InitSeed = seed
	if r.slots != nil {
		cfg.Threads = 1 // seeds side by side fill the cores
	}
	if cfg.Algo == "finetune" {
		n, err := PretrainClasses(split.Train)
		if err != nil {
			return nil, ExplainShortage(err, p.Protocol.MinRecords)
		}
		cfg.PretrainClasses = n
	}
	categories, err := auxCategories(p, split)
	if err != nil {
		return nil, err
	}
	if cfg.Aux.CategoryWeight > 0 {
		cfg.Aux.Categories = len(categories)
	}
	shape := train.Shape{Ways: ep.Ways, Shots: ep.Shots, Queries: ep.Queries, MetaBatch: ep.MetaBatch, Dim: split.Encoder.Dim()}
	learner, err := train.New(cfg, shape, be)
	if err != nil {
		return nil, err
	}
	if c, ok := learner.(io.Closer); ok {
		defer c.Close() // a device learner's GPU memory
	}
	var pre *PretrainStats
	if p.Pretrain != nil {
		if pre, err = r.pretrain(ctx, p, split, learner, be, seed); err != nil {
			return nil, err
		}
	}
	// A device learner reads the meta-train rows from the matrix it keeps
	// (UsePool below): the sampler need not copy them, unless adversarial
	// training perturbs them on the host. Same draws either way.
	pu, onDevice := learner.(train.PoolUser)
	rowsOnly := onDevice && p.Adversarial.TrainEps == 0
	sampler := func(pool *datasets.Pool, name string, stream uint64) (*datasets.Sampler, error) {
		if pool == nil {
			return nil, fmt.Errorf("the %s pool is empty", name)
		}
		s, err := datasets.NewSampler(pool, datasets.SamplerConfig{
			Ways: ep.Ways, Shots: ep.Shots, Queries: ep.Queries, MetaBatch: ep.MetaBatch,
			NormalWay: ep.NormalWay, NormalClass: ep.NormalClass, Replacement: ep.Replacement,
			Categories: categories, Seed: seed, Stream: stream,
			RowsOnly: rowsOnly && stream == streamTrain,
		})
		if err != nil {
			return nil, fmt.Errorf("%s pool: %w", name, ExplainShortage(err, p.Protocol.MinRecords))
		}
		return s, nil
	}
	// With no training steps the meta-train pool gives no episodes, so it
	// need not be able to (validate --deep checks the same pools).
	var trainS *datasets.Sampler
	if ep.TrainSteps > 0 {
		if trainS, err = sampler(split.Train, "meta-train", streamTrain); err != nil {
			return nil, err
		}
	}
	testS, err := sampler(split.Test, "meta-test", streamTest)
	if err != nil {
		return nil, err
	}
	var valEpisodes []*datasets.Episode
	if ep.ValEpisodes > 0 && ep.ValEvery > 0 {
		valS, err := sampler(split.Val, "meta-val", streamVal)
		if err != nil {
			return nil, fmt.Errorf("%w (set split.val_fraction or split.val_classes so that meta-val has %d classes, or episodes.val_every: 0)", err, ep.Ways)
		}
		// The same validation episodes at every check, so checks compare.
		for i := 0; i < ep.ValEpisodes; i++ {
			e := valS.NewEpisode()
			if err := valS.Next(e); err != nil {
				return nil, err
			}
			valEpisodes = append(valEpisodes, e)
		}
	}

	res := &SeedResult{Run: p.Name, Seed: seed, Provenance: r.prov, Backend: be.Name(), Device: be.Device(), Jobs: r.jobs(),
		Started: start.UTC(), Spec: string(p.SpecYAML), Inputs: p.Inputs, Pools: poolInfos(split), Cost: train.ModelCost(cfg, shape), Pretrain: pre}
	labels := make([]int32, ep.Ways*ep.Queries)
	scores := make([]float32, ep.Ways*ep.Queries*ep.Ways)

	if onDevice {
		// A device learner keeps the training file's matrix on the device
		// and receives the meta-train episodes as row numbers.
		if err := pu.UsePool(split.Train.X); err != nil {
			return nil, err
		}
	}
	adv, err := newAdversary(p, split, learner, seed)
	if err != nil {
		return nil, err
	}

	// Meta-training.
	bar := progress.New(r.opt.Log, fmt.Sprintf("%s seed %d: train", p.Name, seed), ep.TrainSteps)
	var batch datasets.Batch
	if trainS != nil {
		batch = trainS.NewBatch()
	}
	var best bytes.Buffer
	res.Train.BestStep, res.Train.BestValAccuracy = -1, math.NaN()
	logEvery := max(1, ep.TrainSteps/100)
	var lossSum float64
	lossN := 0
	lastVal := math.NaN()
	// A Pipeliner's losses arrive after their steps, in order; lossStep
	// numbers them. Its steps are all in before a curve point is taken, so
	// the curve is what MetaStep would have given.
	pl, _ := learner.(train.Pipeliner)
	lossStep := 0
	addLosses := func(losses ...float64) error {
		for _, loss := range losses {
			lossStep++
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				if lossStep == 1 {
					return fmt.Errorf("meta-train loss is %v at step 1, before any update, so not the optimiser's doing; %s", loss, firstLossAdvice(cfg))
				}
				return fmt.Errorf("meta-train loss is %v at step %d: training diverged; %s", loss, lossStep, divergence(cfg, false))
			}
			lossSum += loss
			lossN++
		}
		return nil
	}
	drain := func() error {
		losses, err := pl.Drain()
		return cmp.Or(addLosses(losses...), err)
	}
	trainStart := time.Now()
	var trainTime, valTime time.Duration
	for step := 1; step <= ep.TrainSteps; step++ {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		if err := trainS.NextBatch(batch); err != nil {
			return nil, err
		}
		if err := adv.perturb(batch); err != nil {
			return nil, err
		}
		if pl != nil {
			losses, err := pl.QueueStep(batch)
			if err := cmp.Or(addLosses(losses...), err); err != nil {
				return nil, err
			}
		} else {
			loss, err := learner.MetaStep(batch)
			if err != nil {
				if math.IsNaN(loss) || math.IsInf(loss, 0) {
					err = addLosses(loss) // the same error, naming the keys to change
				}
				return nil, err
			}
			if err := addLosses(loss); err != nil {
				return nil, err
			}
		}
		validate := len(valEpisodes) > 0 && (step%ep.ValEvery == 0 || step == ep.TrainSteps)
		if step%logEvery == 0 || validate {
			if pl != nil {
				if err := drain(); err != nil {
					return nil, err
				}
			}
			pt := CurvePoint{Step: step, TrainLoss: lossSum / float64(lossN), ValAccuracy: math.NaN(), ValCI: math.NaN()}
			lossSum, lossN = 0, 0
			if validate {
				valStart := time.Now()
				trainTime += valStart.Sub(trainStart)
				acc, err := accuracyOn(learner, valEpisodes, labels, scores)
				if errors.Is(err, errScores) {
					err = fmt.Errorf("validation at step %d: %w; %s", step, err, divergence(cfg, true))
				}
				if err != nil {
					return nil, err
				}
				pt.ValAccuracy, pt.ValCI = acc.Mean, acc.HalfWidth
				lastVal = acc.Mean
				if !(acc.Mean <= res.Train.BestValAccuracy) { // NaN-safe: the first check always wins
					res.Train.BestStep, res.Train.BestValAccuracy = step, acc.Mean
					best.Reset()
					if err := learner.SaveCheckpoint(&best, nil); err != nil {
						return nil, err
					}
				}
				trainStart = time.Now()
				valTime += trainStart.Sub(valStart)
			}
			res.Curve = append(res.Curve, pt)
			status := fmt.Sprintf("loss %.4f", pt.TrainLoss)
			if !math.IsNaN(res.Train.BestValAccuracy) {
				status += fmt.Sprintf("  val acc %.3f (best %.3f @%d)", lastVal, res.Train.BestValAccuracy, res.Train.BestStep)
			}
			bar.Update(step, status)
		}
	}
	if pl != nil {
		if err := drain(); err != nil {
			return nil, err
		}
	}
	trainTime += time.Since(trainStart)
	bar.Finish("")
	res.Train.Steps = ep.TrainSteps
	if n := train.TaskThreads(learner); n > 1 {
		res.Train.TaskThreads = n
	}
	res.Train.Seconds = trainTime.Seconds()
	if trainTime > 0 {
		res.Train.StepsPerSec = float64(ep.TrainSteps) / trainTime.Seconds()
		res.Train.TasksPerSec = res.Train.StepsPerSec * float64(ep.MetaBatch)
	}
	if best.Len() > 0 {
		if _, err := learner.LoadCheckpoint(bytes.NewReader(best.Bytes())); err != nil {
			return nil, fmt.Errorf("restore best checkpoint: %w", err)
		}
	}
	encoder, err := split.Encoder.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var ckpt bytes.Buffer
	if err := learner.SaveCheckpoint(&ckpt, map[string][]byte{"encoder": encoder, "spec": p.SpecYAML, "provenance": res.provenanceJSON()}); err != nil {
		return nil, err
	}
	res.checkpoint = ckpt.Bytes()

	// Meta-test.
	names, cats := make([]string, len(split.Test.Classes)), make([]string, len(split.Test.Classes))
	for i, c := range split.Test.Classes {
		names[i], cats[i] = c.Name, c.Category
	}
	ev := eval.NewEvaluation(names, cats)
	mt, err := newMultitaskEval(learner, cfg, categories)
	if err != nil {
		return nil, err
	}
	testEp := testS.NewEpisode()
	bar = progress.New(r.opt.Log, fmt.Sprintf("%s seed %d: test", p.Name, seed), ep.TestEpisodes)
	testStart := time.Now()
	for i := 0; i < ep.TestEpisodes; i++ {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		if err := testS.Next(testEp); err != nil {
			return nil, err
		}
		if err := learner.Predict(testEp, labels, scores); err != nil {
			return nil, err
		}
		if err := checkScores(scores); err != nil {
			return nil, fmt.Errorf("meta-test episode %d: %w; %s", i+1, err, divergence(cfg, true))
		}
		if _, err := ev.Add(eval.EpisodeInput{Ways: ep.Ways, Classes: testEp.Classes, NormalWay: testEp.NormalWay,
			Truth: testEp.QueryY, Pred: labels, Scores: scores}); err != nil {
			return nil, err
		}
		if mt != nil {
			if err := mt.add(testEp); err != nil {
				return nil, err
			}
		}
		if (i+1)%max(1, ep.TestEpisodes/20) == 0 {
			bar.Update(i+1, fmt.Sprintf("acc %.3f", ev.Summaries()["accuracy"].Mean))
		}
	}
	testTime := time.Since(testStart)
	bar.Finish("")
	res.Test = TestStats{Episodes: ep.TestEpisodes, Seconds: testTime.Seconds()}
	if testTime > 0 {
		res.Test.EpisodesPerSec = float64(ep.TestEpisodes) / testTime.Seconds()
		res.Test.FlowsPerSec = res.Test.EpisodesPerSec * float64(ep.Ways*ep.Queries)
		res.Test.LatencyPerFlowUS = 1e6 / res.Test.FlowsPerSec
	}
	phases := &PhaseSeconds{MetaTrain: trainTime.Seconds(), Validation: valTime.Seconds(), MetaTest: testTime.Seconds()}
	if pre != nil {
		phases.Pretrain = pre.Seconds
	}
	if len(p.Adversarial.EvalBudgets) > 0 {
		robStart := time.Now()
		robS, err := sampler(split.Test, "meta-test", streamRobust)
		if err != nil {
			return nil, err
		}
		if res.Robustness, err = adv.robustness(ctx, robS); err != nil {
			return nil, err
		}
		phases.Robustness = time.Since(robStart).Seconds()
	}
	if p.Detection.Method != "" && p.Detection.Method != "none" {
		detStart := time.Now()
		if res.Detection, err = runDetection(p, split, learner, seed); err != nil {
			return nil, err
		}
		phases.Detection = time.Since(detStart).Seconds()
	}
	res.Multitask = mt.result()
	res.Metrics = ev.Summaries()
	res.PerClass = ev.PerClass()
	res.Confusion = confusionTable(names, ev.Pooled)
	res.episodes = ev.Episodes
	res.Wall = time.Since(start).Seconds()
	phases.Other = max(0, res.Wall-phases.Pretrain-phases.MetaTrain-phases.Validation-phases.MetaTest-phases.Robustness-phases.Detection)
	res.Phases = phases
	return res, nil
}

// pretrain fits the self-supervised autoencoder on the normal traffic of the
// meta-train pool and copies its encoder into the fresh learner.
func (r *Runner) pretrain(ctx context.Context, p plan, split *datasets.Split, l train.Learner, be kernels.Backend, seed uint64) (*PretrainStats, error) {
	_, rows, err := normalRows(p, split)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	dim := split.Train.Dim
	x := gather(split.Train, rows)
	cfg := *p.Pretrain
	cfg.Seed = seed
	start := time.Now()
	bar := progress.New(r.opt.Log, fmt.Sprintf("%s seed %d: pretrain", p.Name, seed), cfg.Epochs)
	pt, err := train.Pretrain(ctx, cfg, x, len(rows), dim, be, func(epoch int, loss float64) {
		bar.Update(epoch, fmt.Sprintf("reconstruction loss %.5f", loss))
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		// The first batch's loss comes before any update: the noise added
		// to the inputs, or the model as initialised, gave it.
		if d := (*train.DivergedError)(nil); errors.As(err, &d) && d.Epoch == 1 && d.Batch == 1 {
			advice := fmt.Sprintf("the model as initialised gives it: check model.hidden (now %v) and model.activation (now %s)", cfg.Hidden, cfg.Activation)
			if cfg.Objective == "denoise" {
				advice = fmt.Sprintf("lower pretrain.noise (now %g)", cfg.Noise)
			}
			return nil, fmt.Errorf("pretrain: %s, before any update, so not the optimiser's doing; %s", d.Where(), advice)
		}
		return nil, fmt.Errorf("pretrain: %w", cmp.Or(diverged(err), err))
	}
	bar.Finish("")
	if err := pt.InitLearner(l); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	return &PretrainStats{Objective: cfg.Objective, Rows: len(rows), Epochs: cfg.Epochs, Losses: pt.Losses(), Seconds: time.Since(start).Seconds()}, nil
}

// errScores is wrapped by the error about a learner's scores that are not
// finite: its predictions would be arbitrary, and its metrics silently
// wrong.
var errScores = errors.New("the learner's scores are not finite")

// checkScores returns an error wrapping errScores when a score is NaN or
// infinite.
func checkScores(scores []float32) error {
	for _, v := range scores {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("%w (a query's score is %v)", errScores, v)
		}
	}
	return nil
}

// mamlFamily are the learners that adapt to an episode's support set with
// gradient steps of learner.inner_lr.
var mamlFamily = []string{"maml", "fomaml", "reptile", "anil", "metasgd"}

// divergence names the spec keys to change, with their values, when a
// meta-train loss or (adapting to an episode's support set) a score is not
// finite.
func divergence(cfg train.Config, adapting bool) string {
	outer := outerAdvice(cfg.Optimizer)
	switch {
	case slices.Contains(mamlFamily, cfg.Algo):
		return fmt.Sprintf("lower learner.inner_lr (now %g) or %s", cfg.InnerLR, outer)
	case cfg.Algo == "finetune" && adapting:
		return fmt.Sprintf("lower learner.finetune_lr (now %g) or %s", cfg.FinetuneLR, outer)
	}
	return "lower " + outer
}

// firstLossAdvice names the keys behind a first meta-train loss that is
// not finite: the model as initialised, and whatever a step does before
// its update (the inner loop, the cosine logits' scale).
func firstLossAdvice(cfg train.Config) string {
	var keys []string
	if slices.Contains(mamlFamily, cfg.Algo) {
		keys = append(keys, fmt.Sprintf("learner.inner_lr (now %g)", cfg.InnerLR))
	}
	if cfg.Distance == "cosine" && cfg.Algo == "protonet" {
		keys = append(keys, fmt.Sprintf("learner.cosine_scale (now %g)", cfg.CosineScale))
	}
	if len(keys) == 0 {
		return fmt.Sprintf("the model as initialised gives it: check model.hidden (now %v) and model.activation (now %s)", cfg.Hidden, cfg.Activation)
	}
	return "lower " + strings.Join(keys, " or ")
}

// diverged restates a train.DivergedError, whose message names Config
// fields, with the spec keys to change; nil for any other error.
func diverged(err error) error {
	var d *train.DivergedError
	if !errors.As(err, &d) {
		return nil
	}
	return fmt.Errorf("%s: training diverged; lower %s", d.Where(), outerAdvice(d.Optimizer))
}

// outerAdvice names the outer optimiser's keys to change, with their
// values: the rate, a weight decay if any, and the clipping (set, or
// lowered when set).
func outerAdvice(o train.OptimConfig) string {
	keys := []string{fmt.Sprintf("optimizer.lr (now %g)", o.LR)}
	if o.WeightDecay > 0 {
		keys = append(keys, fmt.Sprintf("optimizer.weight_decay (now %g)", o.WeightDecay))
	}
	if o.ClipNorm > 0 {
		return strings.Join(append(keys, fmt.Sprintf("optimizer.clip_norm (now %g)", o.ClipNorm)), " or ")
	}
	return strings.Join(keys, " or ") + ", or set optimizer.clip_norm"
}

// accuracyOn is the mean accuracy (and CI) of the learner on fixed
// episodes; scores that are not finite are an error wrapping errScores.
func accuracyOn(l train.Learner, eps []*datasets.Episode, labels []int32, scores []float32) (eval.Summary, error) {
	accs := make([]float64, len(eps))
	for i, e := range eps {
		if err := l.Predict(e, labels, scores); err != nil {
			return eval.Summary{}, err
		}
		if err := checkScores(scores); err != nil {
			return eval.Summary{}, fmt.Errorf("meta-val episode %d: %w", i+1, err)
		}
		right := 0
		for q, y := range e.QueryY {
			if labels[q] == y {
				right++
			}
		}
		accs[i] = float64(right) / float64(len(e.QueryY))
	}
	return eval.MeanCI(accs), nil
}

func poolInfos(s *datasets.Split) map[string]PoolInfo {
	out := map[string]PoolInfo{}
	for name, pl := range map[string]struct {
		p    *datasets.Pool
		file string
	}{"meta-train": {s.Train, s.TrainFile}, "meta-val": {s.Val, s.TrainFile}, "meta-test": {s.Test, s.TestFile}} {
		if pl.p == nil {
			continue
		}
		info := PoolInfo{File: pl.file}
		for _, c := range pl.p.Classes {
			info.Classes = append(info.Classes, c.Name)
			info.Records += len(c.Rows)
		}
		out[name] = info
	}
	return out
}

// fits reports a kept seed's result that the run summary cannot pool with
// the other seeds' (a summary.json edited by hand): one result per test
// file of the supervised track, each figure over that one file (n = 1),
// or the spec's test episodes, with accuracy over every one of them and
// no metric over more; and confusion matrices that are square over their
// classes, the main one over the classes of the meta-test pool (or,
// supervised, of the training labels), with no negative count.
func (r *SeedResult) fits(p plan, pools map[string]PoolInfo) error {
	classes := pools["meta-test"].Classes
	if p.Supervised != nil {
		classes = pools["train"].Classes
		if len(r.Supervised) != len(p.Supervised.TestFiles) {
			return fmt.Errorf("%d supervised test results, but the spec has %d test files", len(r.Supervised), len(p.Supervised.TestFiles))
		}
		for i, f := range append([]SupervisedEval{{Metrics: r.Metrics}}, r.Supervised...) {
			key := "metrics"
			if i > 0 {
				key = fmt.Sprintf("supervised[%d].metrics", i-1)
			}
			for _, name := range eval.MetricNames { // the metrics the summary pools
				if v, ok := f.Metrics[name]; ok && v.N != 1 {
					return fmt.Errorf("%s.%s: n = %d, want 1 (one seed on one test file)", key, name, v.N)
				}
			}
		}
	} else {
		eps := p.Episodes.TestEpisodes
		if r.Test.Episodes != eps {
			return fmt.Errorf("test.episodes = %d, but the spec has %d test episodes", r.Test.Episodes, eps)
		}
		// Accuracy is defined in every episode; a rate may not be.
		if n := r.Metrics["accuracy"].N; n != eps {
			return fmt.Errorf("metrics.accuracy: n = %d, want one per test episode, %d", n, eps)
		}
		for _, name := range eval.MetricNames {
			if n := r.Metrics[name].N; n > eps {
				return fmt.Errorf("metrics.%s: n = %d, more than the %d test episodes", name, n, eps)
			}
		}
	}
	if err := r.Confusion.check(classes); err != nil {
		return fmt.Errorf("confusion: %w", err)
	}
	for i := range r.Supervised {
		if err := r.Supervised[i].Confusion.check(classes); err != nil {
			return fmt.Errorf("supervised[%d].confusion: %w", i, err)
		}
	}
	if m := r.Multitask; m != nil {
		for _, h := range []struct {
			name string
			t    *ConfusionTable
		}{{"binary_confusion", m.Binary}, {"category_confusion", m.Category}} {
			if h.t == nil {
				continue
			}
			if err := h.t.check(nil); err != nil {
				return fmt.Errorf("multitask.%s: %w", h.name, err)
			}
		}
	}
	return nil
}

// check reports a confusion matrix that is not one count per pair of its
// classes, none negative, or (when classes is given) not over classes.
func (t ConfusionTable) check(classes []string) error {
	if classes != nil && !slices.Equal(t.Classes, classes) {
		return fmt.Errorf("classes %s, want those of the run's pool, %s", shortList(t.Classes), shortList(classes))
	}
	n := len(t.Classes)
	if len(t.Counts) != n {
		return fmt.Errorf("%d rows for %d classes", len(t.Counts), n)
	}
	for i, row := range t.Counts {
		if len(row) != n {
			return fmt.Errorf("row %d holds %d counts for %d classes", i, len(row), n)
		}
		for _, c := range row {
			if c < 0 {
				return fmt.Errorf("row %d holds the negative count %d", i, c)
			}
		}
	}
	return nil
}

// shortList is a list of names for a message: the first few and how many.
func shortList(names []string) string {
	if len(names) <= 6 {
		return fmt.Sprintf("%v", names)
	}
	return fmt.Sprintf("%v... (%d)", names[:6], len(names))
}

// poolsDifference names the first pool whose file, classes or record count
// differ from those recorded ("" when none does, or none was recorded).
func poolsDifference(recorded, now map[string]PoolInfo) string {
	if recorded == nil {
		return ""
	}
	for _, name := range unionKeys(recorded, now) {
		was, is := recorded[name], now[name]
		if was.File != is.File || was.Records != is.Records || !slices.Equal(was.Classes, is.Classes) {
			return fmt.Sprintf("the %s pool is %s there and %s now: the data changed", name, was.describe(), is.describe())
		}
	}
	return ""
}

func (p PoolInfo) describe() string {
	if p.File == "" {
		return "absent"
	}
	return fmt.Sprintf("%d records of %d classes from %s", p.Records, len(p.Classes), p.File)
}

func confusionTable(names []string, c *eval.Confusion) ConfusionTable {
	t := ConfusionTable{Classes: names, Counts: make([][]int64, c.N)}
	for i := range t.Counts {
		t.Counts[i] = append([]int64(nil), c.Counts[i*c.N:(i+1)*c.N]...)
	}
	return t
}

// Run runs a spec for every seed (RunOptions.Seeds, when set, replaces the
// spec's), writing results/<name>/, and returns the run's summary.
func (r *Runner) Run(ctx context.Context, s Spec) (*RunSummary, error) {
	sum, err := r.run(ctx, s)
	if err == nil {
		r.clearForceMarks()
	}
	return sum, err
}

// run is Run, leaving the force.json of a --force run in place for RunAll,
// which removes them all once every run has finished.
func (r *Runner) run(ctx context.Context, s Spec) (*RunSummary, error) {
	// The options go into the spec, so that the spec.yaml and result files
	// record what ran.
	if len(r.opt.Seeds) > 0 {
		s.Seeds = r.opt.Seeds
	}
	if r.opt.Device != "" {
		s.Backend.Device = r.opt.Device
	}
	p, err := planFor(s)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", s.Name, err)
	}
	return r.runPlan(ctx, p)
}

// planFor resolves a spec into a plan.
func planFor(s Spec) (plan, error) {
	d, err := s.Data()
	if err != nil {
		return plan{}, err
	}
	proto, err := s.ProtocolOptions()
	if err != nil {
		return plan{}, err
	}
	y, err := s.YAML()
	if err != nil {
		return plan{}, err
	}
	inputs, err := inputFingerprints(s)
	if err != nil {
		return plan{}, err
	}
	e := s.Episodes
	var sup *supervisedPlan
	if s.Split.Protocol == "supervised" {
		sup = &supervisedPlan{Labels: s.Supervised.Labels, TestFiles: s.Supervised.TestFiles, Classifier: s.ClassifierConfig(0)}
	}
	return plan{
		Name: s.Name, SpecYAML: y, Inputs: inputs, Dataset: d, Protocol: proto, Supervised: sup,
		Pretrain: s.PretrainConfig(0), Detection: s.Detection, Adversarial: s.Adversarial,
		Learner: s.LearnerConfig(0),
		Episodes: episodePlan{Ways: e.Ways, Shots: e.Shots, Queries: e.Queries, MetaBatch: e.MetaBatch,
			NormalWay: e.NormalWay, Replacement: e.Replacement, NormalClass: proto.NormalClass,
			TrainSteps: e.TrainSteps, ValEvery: e.ValEvery, ValEpisodes: e.ValEpisodes, TestEpisodes: e.TestEpisodes},
		Device: s.Backend.Device, Threads: s.Backend.Threads, Seeds: s.Seeds,
	}, nil
}
