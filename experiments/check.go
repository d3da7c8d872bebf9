package experiments

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
)

// Choices of the string fields that train and datasets do not list.
var (
	scalings    = []string{string(datasets.MinMax), string(datasets.ZScore)}
	protocols   = []string{"novel", "supervised"}
	labelSets   = []string{"binary", "category"}
	weightings  = []string{"none", "balanced"}
	objectives  = []string{"none", "denoise", "mask"}
	detectors   = []string{"none", "euclidean", "mahalanobis"}
	thresholds  = []string{"far", "f1"}
	activations = []string{"relu", "leaky_relu", "tanh", "sigmoid"}
	distances   = []string{"euclidean", "cosine"}
	optimizers  = []string{"adam", "sgd"}
	devices     = []string{"auto", "cpu", "cuda"}
)

// finish fills the defaults that depend on other fields, names the run and
// checks every value and combination. It needs no data: data-set files are
// only looked up in the registry (and on disk for data_dir).
func (d *decoder) finish(s *Spec, varied map[string]bool) {
	cats := d.resolveDataset(s)
	named := d.errs.n
	d.name(s, varied)
	if d.errs.n == named {
		d.checkNameLength(s)
	}
	before := d.errs.n
	d.checkEncoder(s)
	d.checkSplit(s, cats)
	d.checkEpisodes(s)
	d.checkLearner(s)
	d.checkSupervised(s)
	d.checkSupervisedGrid(s, varied)
	d.checkThreatOptions(s)
	d.checkAdversarial(s)
	d.checkMultitask(s)
	d.checkBackend(s)
	if d.errs.n == before {
		// train.Config.Validate is the learners' own word; it should agree
		// with the checks above, which name keys and lines.
		cfg := s.LearnerConfig(1)
		if cfg.Algo == "finetune" {
			cfg.PretrainClasses = 2 // set by the runner from the split
		}
		if cfg.Aux.CategoryWeight > 0 {
			cfg.Aux.Categories = 2 // likewise
		}
		if err := cfg.Validate(); err != nil {
			d.fail("learner", "%v", err)
		} else {
			d.checkMemory(s, cfg)
		}
		// Likewise for pre-training and the supervised track's classifier.
		if pc := s.PretrainConfig(1); pc != nil {
			if err := pc.Validate(); err != nil {
				d.fail("pretrain", "%v", err)
			}
		}
		if s.Split.Protocol == "supervised" {
			if err := s.ClassifierConfig(1).Validate(); err != nil {
				d.fail("supervised", "%v", err)
			}
		}
	}
}

// maxRunName is the longest run name: it names the run's folder under
// results/ (grid suffixes included), and a path element holds at most 255
// bytes. Names are ASCII, so bytes are characters.
const maxRunName = 255

// checkNameLength refuses a resolved run name too long for a folder name.
func (d *decoder) checkNameLength(s *Spec) {
	if len(s.Name) > maxRunName {
		d.fail("name", "%s: want at most %d characters (it names the results folder)", shorten(s.Name, strconv.Quote), maxRunName)
	}
}

// cudaCompiled reports whether this build has the cuda backend (the
// metaids_cuda tag); a variable so that tests can pretend either way.
var cudaCompiled = kernels.Compiled("cuda")

// checkMemory refuses, before anything runs, a model, episode, meta-batch
// or set of stored episodes that with the learner's working buffers
// (train.MemoryFloor) exceed the machine's memory (train.New refuses the
// first three too, with the encoded width known), naming the key that makes
// it so: model.hidden only when the model alone does not fit.
func (d *decoder) checkMemory(s *Spec, cfg train.Config) {
	e := s.Episodes
	shape := train.Shape{Ways: e.Ways, Shots: e.Shots, Queries: e.Queries, MetaBatch: e.MetaBatch, Dim: datasets.MinEncodedDim}
	floor := func(metaBatch int) float64 {
		sh := shape
		sh.MetaBatch = metaBatch
		return train.MemoryFloor(cfg, sh)
	}
	batch := floor(e.MetaBatch)
	// A lower bound on the memory of one episode the runner keeps.
	stored := datasets.BatchBytes(e.Ways, e.Shots, e.Queries, 1, datasets.MinEncodedDim)
	rows := uint64(e.Shots) + uint64(e.Queries) // each at least 1 here, and their sum may pass the largest int
	episodic := s.Split.Protocol != "supervised"
	have := train.GiB(train.MachineMemory())
	part, need := train.MemoryShortfall(cfg, shape)
	switch {
	case part == "model":
		d.fail("model.hidden", "hidden layers %v need at least %s for the model alone; this machine has %s",
			cfg.Hidden, train.GiB(need), have)
	case part == "threads":
		d.fail("backend.threads", "%d, but each task adapted at once keeps its own inner-loop buffers: %d at once need at least %s; this machine has %s",
			s.Backend.Threads, train.TaskWorkers(cfg, shape), train.GiB(need), have)
	case part == "inner-steps":
		d.fail("learner.inner_steps", "%d, but the inner loop keeps %s: at least %s; this machine has %s",
			cfg.InnerSteps, train.InnerStepsKeep(cfg), train.GiB(need), have)
	case part == "episode":
		keys := []string{"episodes.ways", "episodes.shots", "episodes.queries"}
		values := []int{e.Ways, e.Shots, e.Queries}
		i := 0 // ways, when the output layer alone is too large
		if train.FitsMemory(floor(0)) {
			for j := range values {
				if values[j] > values[i] {
					i = j
				}
			}
		}
		keys[0], keys[i] = keys[i], keys[0]
		d.failCombo(keys, "%d, but one episode of %d×%d rows needs at least %s with the model; this machine has %s",
			values[i], e.Ways, rows, train.GiB(need), have)
	case part == "meta-batch":
		d.fail("episodes.meta_batch", "%d episodes of %d×%d rows need at least %s with the model; this machine has %s",
			e.MetaBatch, e.Ways, rows, train.GiB(need), have)
	case episodic && datasets.BatchBytes(e.Ways, e.Shots, e.Queries, e.MetaBatch, datasets.MinEncodedDim) > datasets.MaxBatchBytes:
		d.fail("episodes.meta_batch", "%d episodes of %d×%d rows take at least %s, more than a sampler's limit of %s (datasets.MaxBatchBytes)",
			e.MetaBatch, e.Ways, rows, train.GiB(datasets.BatchBytes(e.Ways, e.Shots, e.Queries, e.MetaBatch, datasets.MinEncodedDim)),
			train.GiB(datasets.MaxBatchBytes))
	case episodic && e.ValEvery > 0 && !train.FitsMemory(batch+float64(e.ValEpisodes)*stored):
		// Drawn once and kept through training, so every validation
		// compares the same episodes.
		d.fail("episodes.val_episodes", "%d meta-val episodes of %d×%d rows need at least %s with the model and a meta-batch; this machine has %s",
			e.ValEpisodes, e.Ways, rows, train.GiB(batch+float64(e.ValEpisodes)*stored), have)
	case episodic && len(s.Adversarial.EvalBudgets) > 0 && !train.FitsMemory(floor(0)+float64(s.Adversarial.EvalEpisodes)*stored):
		// Drawn before the evaluation, all of them.
		n := s.Adversarial.EvalEpisodes
		d.fail("adversarial.eval_episodes", "%d robustness episodes of %d×%d rows need at least %s with the model; this machine has %s",
			n, e.Ways, rows, train.GiB(floor(0)+float64(n)*stored), have)
	}
}

// resolveDataset checks the data set and its files, filling in the default
// files, and returns the category map (nil if it could not be read).
func (d *decoder) resolveDataset(s *Spec) datasets.Categories {
	ds := &s.Dataset
	if err := datasets.CheckDataDir(ds.DataDir); err != nil {
		d.fail("dataset.data_dir", "%v", err)
	}
	d.choice("dataset.distinct", ds.Distinct, datasets.DistinctChoices)
	cats, _, err := datasets.LoadCategories(ds.Categories)
	if err != nil {
		d.fail("dataset.categories", "%v", err)
		cats = nil
	}
	if ds.Name == "" {
		d.fail("dataset.name", "required: one of %s", strings.Join(datasets.Names(), ", "))
		return cats
	}
	data, err := datasets.Lookup(ds.Name)
	if err != nil {
		d.fail("dataset.name", "unknown data set %q; %s", ds.Name, oneOf(ds.Name, datasets.Names()))
		return cats
	}
	ds.Name = data.Name
	var files []string
	for _, f := range data.Files {
		files = append(files, f.Name)
	}
	for _, f := range []struct {
		key  string
		name *string
		def  string
	}{{"dataset.train_file", &ds.TrainFile, data.Train}, {"dataset.test_file", &ds.TestFile, data.Test}} {
		if *f.name == "" {
			*f.name = f.def
		}
		info, err := data.File(*f.name)
		if err != nil {
			d.fail(f.key, "%s has no file %q; %s", data.Name, *f.name, oneOf(*f.name, files))
			continue
		}
		*f.name = info.Name
		if !info.Shipped {
			if ds.DataDir == "" {
				d.fail(f.key, "%s is not shipped: set dataset.data_dir to a folder holding %s or %s.gz", info.Name, info.DiskName, info.DiskName)
			} else if datasets.CheckDataDir(ds.DataDir) != nil {
				// dataset.data_dir's error says it already.
			} else if _, err := datasets.Locate(data, info, datasets.LoadOptions{DataDir: ds.DataDir}); err != nil {
				d.fail(f.key, "%v", err)
			}
		}
	}
	switch {
	case s.Split.Protocol == "supervised":
	case ds.TrainFile == ds.TestFile:
		d.failCombo([]string{"dataset.test_file", "dataset.train_file"}, "%s is also the training file; the novel-attack protocol needs a test file with attack types the training file lacks", ds.TestFile)
	case data.SharesRecords(ds.TrainFile, ds.TestFile):
		d.failCombo([]string{"dataset.test_file", "dataset.train_file"}, "%s and the training file %s share records (one is a subset of the other), so meta-test episodes would hold training records", ds.TestFile, ds.TrainFile)
	}
	return cats
}

func (d *decoder) atLeast(key string, v, lo int) bool {
	if v < lo {
		d.fail(key, "%d, want at least %d", v, lo)
		return false
	}
	return true
}

func (d *decoder) positive(key string, v float64) {
	if !(v > 0) {
		d.fail(key, "%g, want more than 0", v)
		return
	}
	d.float32Range(key, v)
}

func (d *decoder) nonNegative(key string, v float64) {
	if !(v >= 0) {
		d.fail(key, "%g, want at least 0", v)
		return
	}
	d.float32Range(key, v)
}

// float32Range refuses a rate, scale or weight that the learners, which
// compute in float32, would not hold: one past 3.4e38 becomes infinite and
// one below 1.2e-38 all but 0 (optimizer.eps: 1e-300 divided by zero).
func (d *decoder) float32Range(key string, v float64) {
	switch a := math.Abs(v); {
	case a > math.MaxFloat32:
		d.fail(key, "%g, want at most 3.4e38: the learners compute in float32", v)
	case a > 0 && a < 0x1p-126:
		d.fail(key, "%g, below 1.2e-38, the least normal float32: the learners compute in float32", v)
	}
}

func (d *decoder) unitInterval(key string, v float64) {
	if !(v >= 0 && v < 1) {
		d.fail(key, "%g, want a value in [0, 1)", v)
	}
}

// betaRange checks an Adam decay rate: in [0, 1), and below 1 in float32 as
// well, where the learners compute; one that rounds to 1 there makes the
// bias correction 1 - beta^t zero, and every parameter NaN.
func (d *decoder) betaRange(key string, v float64) {
	switch {
	case !(v >= 0 && v < 1):
		d.fail(key, "%g, want a value in [0, 1)", v)
	case float32(v) >= 1:
		d.fail(key, "%g, which is 1 in float32, in which the learners compute (Adam's bias correction would divide by 0): want at most %g", v, float64(math.Nextafter32(1, 0)))
	}
}

func (d *decoder) atMost(key string, v, hi int) bool {
	if v > hi {
		d.fail(key, "%d, want at most %d", v, hi)
		return false
	}
	return true
}

func (d *decoder) choice(key, v string, valid []string) bool {
	if !slices.Contains(valid, v) {
		d.fail(key, "%q; %s", v, oneOf(v, valid))
		return false
	}
	return true
}

func (d *decoder) checkEncoder(s *Spec) {
	d.choice("encoder.scaling", s.Encoder.Scaling, scalings)
}

func (d *decoder) checkSplit(s *Spec, cats datasets.Categories) {
	sp := &s.Split
	d.choice("split.protocol", sp.Protocol, protocols)
	d.unitInterval("split.val_fraction", sp.ValFraction)
	d.atLeast("split.min_records", sp.MinRecords, 0)

	// Class names are checked against the category map, which lists every
	// attack type of the known files; whether a class is in the right file
	// only the data can tell (validate --deep).
	var known []string
	for name := range cats {
		known = append(known, name)
	}
	sort.Strings(known)
	lists := []struct {
		key   string
		names []string
	}{
		{"split.val_classes", sp.ValClasses}, {"split.train_exclude", sp.TrainExclude},
		{"split.test_include", sp.TestInclude}, {"split.test_exclude", sp.TestExclude},
	}
	for _, l := range lists {
		seen := map[string]int{}
		for i, n := range l.names {
			key := fmt.Sprintf("%s[%d]", l.key, i)
			switch j, dup := seen[n]; {
			case n == datasets.DefaultNormalClass:
				d.fail(key, "normal traffic is not listed here: split.normal puts it in every pool or none")
			case dup:
				d.fail(key, "%q is listed twice (also %s[%d])", n, l.key, j)
			case cats != nil && !slices.Contains(known, n):
				d.fail(key, "unknown class %q%s", n, didYouMean(n, known))
			}
			seen[n] = i
		}
	}
	for i, n := range sp.ValClasses {
		if slices.Contains(sp.TrainExclude, n) {
			d.fail(fmt.Sprintf("split.val_classes[%d]", i), "%q is also in split.train_exclude", n)
		}
	}
	for i, n := range sp.TestExclude {
		if slices.Contains(sp.TestInclude, n) {
			d.fail(fmt.Sprintf("split.test_exclude[%d]", i), "%q is also in split.test_include", n)
		}
	}
	if len(sp.ValClasses) > 0 {
		if d.present("split.val_fraction") && sp.ValFraction != 0 {
			d.fail("split.val_fraction", "%g, but split.val_classes lists the meta-val classes: give one or the other", sp.ValFraction)
		}
		sp.ValFraction = 0
	}
}

// listedTwice fails list[i] when its value v (shown as shown) was listed
// before, naming where, and records index i as v's latest.
func listedTwice[T comparable](d *decoder, list string, i int, v T, shown string, seen map[T]int) {
	if j, dup := seen[v]; dup {
		d.fail(fmt.Sprintf("%s[%d]", list, i), "%s is listed twice (also %s[%d])", shown, list, j)
	}
	seen[v] = i
}

// checkSupervisedGrid refuses a grid over a key the supervised track does
// not read: its runs would be the same run under different names.
func (d *decoder) checkSupervisedGrid(s *Spec, varied map[string]bool) {
	if s.Split.Protocol != "supervised" {
		return
	}
	for _, key := range []string{"learner.algo", "episodes.ways", "episodes.shots", "episodes.queries"} {
		if varied[key] {
			d.failCombo([]string{key, "split.protocol"}, "a grid, but the supervised track trains one classifier on every record and does not read %s: every run of the grid would be the same", key)
		}
	}
}

// checkSupervised checks the supervised track's section; its test files
// default to the data set's test file.
func (d *decoder) checkSupervised(s *Spec) {
	sv := &s.Supervised
	d.choice("supervised.labels", sv.Labels, labelSets)
	d.atLeast("supervised.epochs", sv.Epochs, 1)
	d.atLeast("supervised.batch_size", sv.BatchSize, 1)
	d.atMost("supervised.batch_size", sv.BatchSize, train.MaxClassifierBatch)
	d.choice("supervised.class_weights", sv.ClassWeights, weightings)
	data, err := datasets.Lookup(s.Dataset.Name)
	if err != nil {
		return // reported under dataset.name
	}
	if len(sv.TestFiles) == 0 && s.Split.Protocol == "supervised" {
		sv.TestFiles = []string{s.Dataset.TestFile}
	}
	seen := map[string]int{}
	for i, f := range sv.TestFiles {
		key := fmt.Sprintf("supervised.test_files[%d]", i)
		info, err := data.File(f)
		if err != nil {
			d.fail(key, "%s has no file %q", data.Name, f)
			continue
		}
		sv.TestFiles[i] = info.Name
		listedTwice(d, "supervised.test_files", i, info.Name, strconv.Quote(f), seen)
		if s.Split.Protocol == "supervised" && data.SharesRecords(info.Name, s.Dataset.TrainFile) {
			d.fail(key, "%s shares records with the training file %s (the same file, or one a subset of the other): its score would not be a test score", info.Name, s.Dataset.TrainFile)
		}
		if datasets.CheckDataDir(s.Dataset.DataDir) != nil {
			continue // dataset.data_dir's error says it already
		}
		if _, err := datasets.Locate(data, info, datasets.LoadOptions{DataDir: s.Dataset.DataDir}); err != nil {
			d.fail(key, "%v", err)
		}
	}
}

// checkThreatOptions checks pre-training and open-set detection, which need
// a learner with an encoder and the episodic protocol.
func (d *decoder) checkThreatOptions(s *Spec) {
	p, det := s.Pretrain, s.Detection
	if d.choice("pretrain.objective", p.Objective, objectives) && p.Objective != "none" {
		switch {
		case p.Objective == "denoise" && !(p.Noise > 0):
			d.fail("pretrain.noise", "%g, want more than 0 for the denoise objective", p.Noise)
		case p.Objective == "denoise":
			d.float32Range("pretrain.noise", p.Noise)
		case p.Objective == "mask" && !(p.MaskRate > 0 && p.MaskRate < 1):
			d.fail("pretrain.mask_rate", "%g, want a value in (0, 1) for the mask objective", p.MaskRate)
		}
		d.atLeast("pretrain.epochs", p.Epochs, 1)
		d.atLeast("pretrain.batch_size", p.BatchSize, 1)
		d.atMost("pretrain.batch_size", p.BatchSize, train.MaxPretrainBatch)
		switch {
		case s.Learner.Algo == "nearest-centroid":
			d.failCombo([]string{"pretrain.objective", "learner.algo"}, "%q, but nearest-centroid has no encoder to pre-train", p.Objective)
		case s.Split.Protocol == "supervised":
			d.failCombo([]string{"pretrain.objective", "split.protocol"}, "%q: pre-training is for the episodic (novel) protocol", p.Objective)
		case !s.Split.Normal:
			d.failCombo([]string{"pretrain.objective", "split.normal"}, "%q, but split.normal is false: pre-training learns from normal traffic", p.Objective)
		}
	}
	if d.choice("detection.method", det.Method, detectors) && det.Method != "none" {
		if !(det.Shrinkage == -1 || (det.Shrinkage >= 0 && det.Shrinkage <= 1)) {
			d.fail("detection.shrinkage", "%g, want a value in [0, 1], or -1 for the Ledoit-Wolf estimate", det.Shrinkage)
		}
		if d.choice("detection.threshold", det.Threshold, thresholds) && det.Threshold == "far" && !(det.TargetFAR > 0 && det.TargetFAR < 1) {
			d.fail("detection.target_far", "%g, want a value in (0, 1)", det.TargetFAR)
		}
		d.atLeast("detection.max_normal", det.MaxNormal, 10)
		if det.Threshold == "f1" && len(s.Split.ValClasses) == 0 && s.Split.ValFraction == 0 {
			d.failCombo([]string{"detection.threshold", "split.val_fraction"}, "f1, but there are no meta-val attack classes to tune it on: set split.val_fraction or split.val_classes, or use detection.threshold: far")
		}
		switch {
		case s.Split.Protocol == "supervised":
			d.failCombo([]string{"detection.method", "split.protocol"}, "%q: open-set detection is for the episodic (novel) protocol", det.Method)
		case !s.Split.Normal:
			d.failCombo([]string{"detection.method", "split.normal"}, "%q, but split.normal is false: detection scores distance from normal traffic", det.Method)
		}
	}
}

// checkAdversarial checks adversarial training and robustness evaluation,
// which need input gradients (the fused engine, an episodic run).
func (d *decoder) checkAdversarial(s *Spec) {
	a := s.Adversarial
	// The attacks compute in float32: a budget that is 0 there is no attack.
	if !(a.TrainEps >= 0 && a.TrainEps <= 1) {
		d.fail("adversarial.train_eps", "%g, want a budget in [0, 1] (0: no adversarial training)", a.TrainEps)
	} else {
		d.float32Range("adversarial.train_eps", a.TrainEps)
	}
	if !(a.TrainMix > 0 && a.TrainMix <= 1) {
		d.fail("adversarial.train_mix", "%g, want a share in (0, 1]", a.TrainMix)
	} else if rows := float64(s.Episodes.Ways) * float64(s.Episodes.Queries); a.TrainEps > 0 && rows > 0 && math.Round(a.TrainMix*rows) == 0 {
		// AdversarialBatch perturbs round(train_mix·rows) rows: none would be.
		d.failCombo([]string{"adversarial.train_mix", "episodes.ways", "episodes.queries"},
			"%g of an episode's %g query rows rounds to none, so adversarial training would perturb nothing: want at least half a row, 1/%g",
			a.TrainMix, rows, 2*rows)
	}
	// Keyed by the float32 budget the attacks run with, so that two budgets
	// that round to one are one.
	budgets := map[float32]int{}
	for i, e := range a.EvalBudgets {
		key := fmt.Sprintf("adversarial.eval_budgets[%d]", i)
		if !(e > 0 && e <= 1) {
			d.fail(key, "%g, want a budget in (0, 1]", e)
		} else {
			d.float32Range(key, e)
		}
		shown := strconv.FormatFloat(e, 'g', -1, 64)
		if f := strconv.FormatFloat(e, 'g', -1, 32); f != shown {
			shown += " (" + f + " in float32, in which the attacks compute)"
		}
		listedTwice(d, "adversarial.eval_budgets", i, float32(e), shown, budgets)
	}
	attacks := map[string]int{}
	for i, at := range a.EvalAttacks {
		key := fmt.Sprintf("adversarial.eval_attacks[%d]", i)
		d.choice(key, at, []string{"fgsm", "pgd"})
		listedTwice(d, "adversarial.eval_attacks", i, at, at, attacks)
	}
	d.atLeast("adversarial.pgd_steps", a.PGDSteps, 1)
	d.atLeast("adversarial.eval_episodes", a.EvalEpisodes, 1)
	if a.TrainEps == 0 && len(a.EvalBudgets) == 0 {
		return
	}
	switch {
	case s.Split.Protocol == "supervised":
		d.failCombo([]string{"adversarial", "split.protocol"}, "adversarial training and evaluation are for the episodic (novel) protocol")
	case s.Learner.Engine == "gorgonia":
		d.failCombo([]string{"adversarial", "learner.engine"}, "input gradients come from the fused engine; set learner.engine: fused")
	case len(a.EvalBudgets) > 0 && len(a.EvalAttacks) == 0:
		d.fail("adversarial.eval_attacks", "empty, but eval_budgets asks for a robustness evaluation")
	}
}

// checkMultitask checks the auxiliary heads, which need an encoder, the
// fused engine, an episodic run and, for the binary head, normal traffic.
func (d *decoder) checkMultitask(s *Spec) {
	m := s.Multitask
	for _, w := range []struct {
		key string
		v   float64
	}{{"multitask.binary_weight", m.BinaryWeight}, {"multitask.category_weight", m.CategoryWeight}} {
		if !(w.v >= 0) || math.IsInf(w.v, 0) {
			d.fail(w.key, "%g, want a finite weight >= 0 (0: no head)", w.v)
		} else {
			d.float32Range(w.key, w.v)
		}
	}
	if !(m.BinaryWeight > 0 || m.CategoryWeight > 0) {
		return
	}
	switch {
	case s.Split.Protocol == "supervised":
		d.failCombo([]string{"multitask", "split.protocol"}, "auxiliary heads are for the episodic (novel) protocol")
	case s.Learner.Algo == "nearest-centroid":
		d.failCombo([]string{"multitask", "learner.algo"}, "nearest-centroid has no encoder for auxiliary heads")
	case s.Learner.Engine == "gorgonia":
		d.failCombo([]string{"multitask", "learner.engine"}, "auxiliary heads are implemented by the fused engine; set learner.engine: fused")
	case m.BinaryWeight > 0 && !s.Split.Normal:
		d.failCombo([]string{"multitask.binary_weight", "split.normal"}, "%g, but split.normal is false: the attack-vs-normal head needs normal traffic in meta-training", m.BinaryWeight)
	}
}

func (d *decoder) checkEpisodes(s *Spec) {
	e, sp := s.Episodes, s.Split
	d.atLeast("episodes.ways", e.Ways, 2)
	shots := d.atLeast("episodes.shots", e.Shots, 1)
	queries := d.atLeast("episodes.queries", e.Queries, 1)
	d.atLeast("episodes.meta_batch", e.MetaBatch, 1)
	d.atLeast("episodes.train_steps", e.TrainSteps, 0)
	d.atLeast("episodes.val_every", e.ValEvery, 0)
	d.atLeast("episodes.val_episodes", e.ValEpisodes, 0)
	d.atLeast("episodes.test_episodes", e.TestEpisodes, 1)

	normal := 0
	if sp.Normal {
		normal = 1
	}
	if e.NormalWay && !sp.Normal {
		d.failCombo([]string{"episodes.normal_way", "split.normal"}, "true, but split.normal is false: there is no normal traffic in the pools to make a way of")
	}
	if shots && queries && sp.MinRecords > 0 && !e.Replacement && uint64(sp.MinRecords) < uint64(e.Shots)+uint64(e.Queries) {
		d.failCombo([]string{"split.min_records", "episodes.shots", "episodes.queries"}, "%d, below shots+queries = %d: classes that small cannot give an episode unless episodes.replacement is true",
			sp.MinRecords, uint64(e.Shots)+uint64(e.Queries))
	}
	if n := len(sp.TestInclude); n > 0 && n+normal < e.Ways {
		d.failCombo([]string{"split.test_include", "episodes.ways"}, "%d meta-test classes%s, fewer than episodes.ways = %d", n+normal, withNormalClass(normal), e.Ways)
	}
	if e.ValEvery > 0 {
		switch n := len(sp.ValClasses); {
		case e.ValEvery > e.TrainSteps:
			d.failCombo([]string{"episodes.val_every", "episodes.train_steps"}, "%d, more than train_steps = %d, so validation would never run (0 turns it off)", e.ValEvery, e.TrainSteps)
		case n == 0 && sp.ValFraction == 0:
			d.failCombo([]string{"episodes.val_every", "split.val_fraction"}, "%d, but there are no meta-val classes: set split.val_fraction or split.val_classes, or val_every to 0", e.ValEvery)
		case n > 0 && n+normal < e.Ways:
			d.failCombo([]string{"split.val_classes", "episodes.ways"}, "%d meta-val classes%s, fewer than episodes.ways = %d", n+normal, withNormalClass(normal), e.Ways)
		}
		if e.ValEpisodes < 1 {
			d.failCombo([]string{"episodes.val_episodes", "episodes.val_every"}, "%d, but val_every is %d: want at least 1 (or val_every 0)", e.ValEpisodes, e.ValEvery)
		}
	}
}

func withNormalClass(n int) string {
	if n > 0 {
		return " with normal"
	}
	return ""
}

func (d *decoder) checkLearner(s *Spec) {
	m, l, o := s.Model, s.Learner, s.Optimizer
	algoOK := d.choice("learner.algo", l.Algo, train.Names())
	for i, w := range m.Hidden {
		d.atLeast(fmt.Sprintf("model.hidden[%d]", i), w, 1)
	}
	if algoOK && len(m.Hidden) == 0 && l.Algo != "nearest-centroid" {
		d.failCombo([]string{"model.hidden", "learner.algo"}, "empty, but %s needs at least one hidden layer (only nearest-centroid has none)", l.Algo)
	}
	d.choice("model.activation", m.Activation, activations)
	d.choice("learner.distance", l.Distance, distances)
	d.positive("learner.cosine_scale", l.CosineScale)
	d.atLeast("learner.inner_steps", l.InnerSteps, 1)
	d.atLeast("learner.test_inner_steps", l.TestInnerSteps, 0)
	d.positive("learner.inner_lr", l.InnerLR)
	d.atLeast("learner.finetune_steps", l.FinetuneSteps, 1)
	d.positive("learner.finetune_lr", l.FinetuneLR)
	// The graph engine implements only these learners (train.Config.Validate).
	graphAlgos := []string{"protonet", "maml", "fomaml"}
	if d.choice("learner.engine", l.Engine, train.Engines) && algoOK && l.Engine == "gorgonia" && !slices.Contains(graphAlgos, l.Algo) {
		d.failCombo([]string{"learner.engine", "learner.algo"}, "gorgonia implements %s, not %s; use fused", strings.Join(graphAlgos, ", "), l.Algo)
	}

	if d.choice("optimizer.name", o.Name, optimizers) && o.Decoupled && o.Name != "adam" {
		d.failCombo([]string{"optimizer.decoupled", "optimizer.name"}, "true, but only adam has decoupled weight decay (%s adds it to the gradient)", o.Name)
	}
	d.positive("optimizer.lr", o.LR)
	d.nonNegative("optimizer.weight_decay", o.WeightDecay)
	d.nonNegative("optimizer.clip_norm", o.ClipNorm)
	d.betaRange("optimizer.beta1", o.Beta1)
	d.betaRange("optimizer.beta2", o.Beta2)
	d.positive("optimizer.eps", o.Eps)
}

func (d *decoder) checkBackend(s *Spec) {
	if s.Backend.Device == "gpu" {
		d.fail("backend.device", "%q; want one of %s; did you mean cuda?", s.Backend.Device, strings.Join(devices, ", "))
	} else if d.choice("backend.device", s.Backend.Device, devices) && s.Backend.Device == "cuda" && !cudaCompiled {
		d.fail("backend.device", "cuda, but this build has no cuda backend (build with -tags metaids_cuda); use cpu, or auto for cuda where it is compiled in and working")
	}
	if d.atLeast("backend.threads", s.Backend.Threads, 0) {
		d.atMost("backend.threads", s.Backend.Threads, train.MaxThreads)
	}
	if len(s.Seeds) == 0 {
		d.fail("seeds", "empty: want at least one seed")
	}
	seen := map[uint64]int{}
	for i, v := range s.Seeds {
		listedTwice(d, "seeds", i, v, strconv.FormatUint(v, 10), seen)
	}
}
