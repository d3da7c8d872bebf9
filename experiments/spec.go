// Package experiments loads experiment specs: YAML files that describe a run
// completely (data set and files, encoder, class split, episodes, model,
// learner, optimiser, backend, seeds). Loading is strict: every problem is
// reported with the file, the line and the dotted key. A spec may hold small
// grids (lists of ways, shots, queries, hidden widths or learners) that
// expand into one Spec per combination; command-line overrides (--set
// key=value) are applied before that. README.md documents every field.
package experiments

import (
	"cmp"
	"runtime"
	"slices"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/train"
)

// Spec is one fully resolved run. Run every seed in Seeds.
type Spec struct {
	Name        string          `yaml:"name"`
	Description string          `yaml:"description"`
	Dataset     DatasetSpec     `yaml:"dataset"`
	Encoder     EncoderSpec     `yaml:"encoder"`
	Split       SplitSpec       `yaml:"split"`
	Episodes    EpisodeSpec     `yaml:"episodes"`
	Model       ModelSpec       `yaml:"model"`
	Learner     LearnerSpec     `yaml:"learner"`
	Optimizer   OptimizerSpec   `yaml:"optimizer"`
	Supervised  SupervisedSpec  `yaml:"supervised"`
	Pretrain    PretrainSpec    `yaml:"pretrain"`
	Detection   DetectionSpec   `yaml:"detection"`
	Adversarial AdversarialSpec `yaml:"adversarial"`
	Multitask   MultitaskSpec   `yaml:"multitask"`
	Backend     BackendSpec     `yaml:"backend"`
	Seeds       []uint64        `yaml:"seeds"`
}

// DatasetSpec names the data set and where its files come from.
type DatasetSpec struct {
	Name       string `yaml:"name"`
	TrainFile  string `yaml:"train_file"`
	TestFile   string `yaml:"test_file"`
	DataDir    string `yaml:"data_dir"`
	Categories string `yaml:"categories"`
	NoChecksum bool   `yaml:"no_checksum"`
	Distinct   string `yaml:"distinct"` // none, train, test or both
}

// DataName is the data set as tables name it: "kddcup99 (distinct)" when
// the repeated records of both files are left out, "kddcup99 (distinct
// test)" when those of one file are.
func (d DatasetSpec) DataName() string { return dataName(d.Name, distinctOf(d.Distinct)) }

// EncoderSpec is datasets.EncoderOptions.
type EncoderSpec struct {
	Scaling string `yaml:"scaling"`
	Log1p   bool   `yaml:"log1p"`
}

// SplitSpec chooses the classes of the meta-train, meta-val and meta-test
// pools.
type SplitSpec struct {
	Protocol     string   `yaml:"protocol"`
	ValFraction  float64  `yaml:"val_fraction"`
	ValClasses   []string `yaml:"val_classes"`
	TrainExclude []string `yaml:"train_exclude"`
	TestInclude  []string `yaml:"test_include"`
	TestExclude  []string `yaml:"test_exclude"`
	Normal       bool     `yaml:"normal"`
	MinRecords   int      `yaml:"min_records"`
	Seed         uint64   `yaml:"seed"`
}

// EpisodeSpec is the episode shape and the length of training and
// evaluation.
type EpisodeSpec struct {
	Ways         int  `yaml:"ways"`
	Shots        int  `yaml:"shots"`
	Queries      int  `yaml:"queries"`
	MetaBatch    int  `yaml:"meta_batch"`
	NormalWay    bool `yaml:"normal_way"`
	Replacement  bool `yaml:"replacement"`
	TrainSteps   int  `yaml:"train_steps"`
	ValEvery     int  `yaml:"val_every"`
	ValEpisodes  int  `yaml:"val_episodes"`
	TestEpisodes int  `yaml:"test_episodes"`
}

// ModelSpec is the MLP every learner but nearest-centroid trains.
type ModelSpec struct {
	Hidden     []int  `yaml:"hidden"`
	Activation string `yaml:"activation"`
}

// LearnerSpec picks the learner and its options; each learner reads only
// the options it needs.
type LearnerSpec struct {
	Algo           string  `yaml:"algo"`
	Distance       string  `yaml:"distance"`
	CosineScale    float64 `yaml:"cosine_scale"`
	InnerSteps     int     `yaml:"inner_steps"`
	TestInnerSteps int     `yaml:"test_inner_steps"`
	InnerLR        float64 `yaml:"inner_lr"`
	FinetuneSteps  int     `yaml:"finetune_steps"`
	FinetuneLR     float64 `yaml:"finetune_lr"`
	Engine         string  `yaml:"engine"`
}

// OptimizerSpec is train.OptimConfig.
type OptimizerSpec struct {
	Name        string  `yaml:"name"`
	LR          float64 `yaml:"lr"`
	WeightDecay float64 `yaml:"weight_decay"`
	Decoupled   bool    `yaml:"decoupled"`
	ClipNorm    float64 `yaml:"clip_norm"`
	Beta1       float64 `yaml:"beta1"`
	Beta2       float64 `yaml:"beta2"`
	Eps         float64 `yaml:"eps"`
}

// SupervisedSpec configures the supervised track (split.protocol:
// supervised): a classifier (model.*, optimizer.*) trained on every record of
// the training file and tested on every record of each test file.
type SupervisedSpec struct {
	Labels       string   `yaml:"labels"`
	TestFiles    []string `yaml:"test_files"`
	Epochs       int      `yaml:"epochs"`
	BatchSize    int      `yaml:"batch_size"`
	ClassWeights string   `yaml:"class_weights"`
}

// PretrainSpec is self-supervised pre-training of the encoder (model.*) on
// the normal traffic of the training file, before meta-training.
type PretrainSpec struct {
	Objective string  `yaml:"objective"`
	Noise     float64 `yaml:"noise"`
	MaskRate  float64 `yaml:"mask_rate"`
	Epochs    int     `yaml:"epochs"`
	BatchSize int     `yaml:"batch_size"`
}

// DetectionSpec is open-set detection: a "not normal" score from the
// learner's embedding, a threshold chosen on meta-val data, and its
// evaluation on the novel attack types of meta-test.
type DetectionSpec struct {
	Method    string  `yaml:"method"`
	Shrinkage float64 `yaml:"shrinkage"`
	Threshold string  `yaml:"threshold"`
	TargetFAR float64 `yaml:"target_far"`
	MaxNormal int     `yaml:"max_normal"`
}

// AdversarialSpec is adversarial meta-training (FGSM perturbations of query
// rows mixed into every meta-batch) and robustness evaluation (accuracy and
// F1 under FGSM and PGD at several budgets). Budgets are in encoded units;
// only numeric features move, within their training range.
type AdversarialSpec struct {
	TrainEps     float64   `yaml:"train_eps"`
	TrainMix     float64   `yaml:"train_mix"`
	EvalBudgets  []float64 `yaml:"eval_budgets"`
	EvalAttacks  []string  `yaml:"eval_attacks"`
	PGDSteps     int       `yaml:"pgd_steps"`
	EvalEpisodes int       `yaml:"eval_episodes"`
}

// MultitaskSpec is multi-task learning: auxiliary heads on the learner's
// embedding, attack vs normal and attack category, trained jointly with the
// episodic loss with these weights (0: no head). See train.AuxConfig.
type MultitaskSpec struct {
	BinaryWeight   float64 `yaml:"binary_weight"`
	CategoryWeight float64 `yaml:"category_weight"`
}

// BackendSpec says where the learner computes.
type BackendSpec struct {
	Device  string `yaml:"device"`
	Threads int    `yaml:"threads"`
}

// ThreadCount is the threads a run of the spec uses by itself:
// backend.threads, or every core for 0.
func (b BackendSpec) ThreadCount() int {
	if b.Threads == 0 {
		return runtime.NumCPU()
	}
	return b.Threads
}

// Default returns the defaults of every field: what a spec gets for a key it
// leaves out. Name, Dataset.Name and the data set's files have no default
// here; Parse fills Name from the file name and the files from the data set.
// Model, learner and optimiser defaults are train.DefaultConfig's, so specs
// and the train package agree.
func Default() Spec {
	tc := train.DefaultConfig("protonet")
	tcc := train.DefaultClassifierConfig()
	tpc := train.DefaultPretrainConfig()
	return Spec{
		Dataset: DatasetSpec{Distinct: "none"},
		Encoder: EncoderSpec{Scaling: string(datasets.MinMax), Log1p: true},
		Split:   SplitSpec{Protocol: "novel", ValFraction: 0.25, Normal: true, Seed: 1},
		Episodes: EpisodeSpec{
			Ways: 5, Shots: 5, Queries: 15, MetaBatch: 4,
			TrainSteps: 2000, ValEvery: 250, ValEpisodes: 100, TestEpisodes: 600,
		},
		Model: ModelSpec{Hidden: slices.Clone(tc.Hidden), Activation: tc.Activation},
		Learner: LearnerSpec{
			Algo: tc.Algo, Distance: tc.Distance, CosineScale: tc.CosineScale,
			InnerSteps: tc.InnerSteps, TestInnerSteps: tc.TestInnerSteps, InnerLR: tc.InnerLR,
			FinetuneSteps: tc.FinetuneSteps, FinetuneLR: tc.FinetuneLR,
			Engine: cmp.Or(tc.Engine, "fused"),
		},
		Optimizer: OptimizerSpec{
			Name: tc.Optimizer.Name, LR: tc.Optimizer.LR, WeightDecay: tc.Optimizer.WeightDecay,
			Decoupled: tc.Optimizer.Decoupled, ClipNorm: tc.Optimizer.ClipNorm,
			Beta1: tc.Optimizer.Beta1, Beta2: tc.Optimizer.Beta2, Eps: tc.Optimizer.Eps,
		},
		Supervised:  SupervisedSpec{Labels: "binary", Epochs: tcc.Epochs, BatchSize: tcc.BatchSize, ClassWeights: tcc.ClassWeights},
		Pretrain:    PretrainSpec{Objective: "none", Noise: tpc.Noise, MaskRate: tpc.MaskRate, Epochs: tpc.Epochs, BatchSize: tpc.BatchSize},
		Detection:   DetectionSpec{Method: "none", Shrinkage: -1, Threshold: "far", TargetFAR: 0.05, MaxNormal: 20000},
		Adversarial: AdversarialSpec{TrainMix: 0.5, EvalAttacks: []string{"fgsm", "pgd"}, PGDSteps: 10, EvalEpisodes: 100},
		Backend:     BackendSpec{Device: "cpu", Threads: 1},
		Seeds:       []uint64{1},
	}
}

// Data returns the spec's data set.
func (s Spec) Data() (*datasets.Dataset, error) { return datasets.Lookup(s.Dataset.Name) }

// LearnerConfig is the learner's train.Config, its weights initialised from
// seed, adapting up to backend.threads tasks at once. PretrainClasses and
// Aux.Categories are left 0: they are the meta-train pool's class and
// category counts, which only the loaded split knows, so the runner sets
// them.
func (s Spec) LearnerConfig(seed uint64) train.Config {
	l, o := s.Learner, s.Optimizer
	return train.Config{
		Algo: l.Algo, Hidden: slices.Clone(s.Model.Hidden), Activation: s.Model.Activation, InitSeed: seed,
		Distance: l.Distance, CosineScale: l.CosineScale,
		InnerSteps: l.InnerSteps, TestInnerSteps: l.TestInnerSteps, InnerLR: l.InnerLR,
		FinetuneSteps: l.FinetuneSteps, FinetuneLR: l.FinetuneLR, Engine: l.Engine, Threads: s.Backend.ThreadCount(),
		Aux: train.AuxConfig{BinaryWeight: s.Multitask.BinaryWeight, CategoryWeight: s.Multitask.CategoryWeight},
		Optimizer: train.OptimConfig{
			Name: o.Name, LR: o.LR, WeightDecay: o.WeightDecay, Decoupled: o.Decoupled,
			ClipNorm: o.ClipNorm, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
		},
	}
}

// ClassifierConfig is the supervised track's classifier, its weights
// initialised from seed.
func (s Spec) ClassifierConfig(seed uint64) train.ClassifierConfig {
	o := s.Optimizer
	return train.ClassifierConfig{
		Hidden: slices.Clone(s.Model.Hidden), Activation: s.Model.Activation, InitSeed: seed,
		Optimizer: train.OptimConfig{
			Name: o.Name, LR: o.LR, WeightDecay: o.WeightDecay, Decoupled: o.Decoupled,
			ClipNorm: o.ClipNorm, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
		},
		Epochs: s.Supervised.Epochs, BatchSize: s.Supervised.BatchSize, ClassWeights: s.Supervised.ClassWeights,
	}
}

// PretrainConfig is the pre-training of the learner's encoder, seeded like
// its weights; nil when the spec asks for none.
func (s Spec) PretrainConfig(seed uint64) *train.PretrainConfig {
	p, o := s.Pretrain, s.Optimizer
	if p.Objective == "none" {
		return nil
	}
	return &train.PretrainConfig{
		Objective: p.Objective, Noise: p.Noise, MaskRate: p.MaskRate,
		Hidden: slices.Clone(s.Model.Hidden), Activation: s.Model.Activation,
		Epochs: p.Epochs, BatchSize: p.BatchSize, Seed: seed,
		Optimizer: train.OptimConfig{
			Name: o.Name, LR: o.LR, WeightDecay: o.WeightDecay, Decoupled: o.Decoupled,
			ClipNorm: o.ClipNorm, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
		},
	}
}

// Shape is the episode shape for encoded features of width dim.
func (s Spec) Shape(dim int) train.Shape {
	e := s.Episodes
	return train.Shape{Ways: e.Ways, Shots: e.Shots, Queries: e.Queries, MetaBatch: e.MetaBatch, Dim: dim}
}

// SamplerConfig is the sampler of one pool; give each pool (and each worker)
// its own stream.
func (s Spec) SamplerConfig(seed, stream uint64) datasets.SamplerConfig {
	e := s.Episodes
	return datasets.SamplerConfig{
		Ways: e.Ways, Shots: e.Shots, Queries: e.Queries, MetaBatch: e.MetaBatch,
		NormalWay: e.NormalWay, Replacement: e.Replacement, Seed: seed, Stream: stream,
	}
}

// MinRecords is the class size below which classes leave the pools:
// split.min_records, or shots+queries (1 with replacement) when that is 0.
func (s Spec) MinRecords() int {
	switch {
	case s.Split.MinRecords > 0:
		return s.Split.MinRecords
	case s.Episodes.Replacement:
		return 1
	}
	return s.Episodes.Shots + s.Episodes.Queries
}

// ProtocolOptions are the options of datasets.NovelAttackSplit. It reads the
// categories file, if the spec names one.
func (s Spec) ProtocolOptions() (datasets.ProtocolOptions, error) {
	cats, file, err := datasets.LoadCategories(s.Dataset.Categories)
	if err != nil {
		return datasets.ProtocolOptions{}, err
	}
	sp := s.Split
	distinctTrain, distinctTest := datasets.DistinctFiles(s.Dataset.Distinct)
	return datasets.ProtocolOptions{
		Load:          datasets.LoadOptions{DataDir: s.Dataset.DataDir, SkipChecksum: s.Dataset.NoChecksum},
		DistinctTrain: distinctTrain,
		DistinctTest:  distinctTest,
		TrainFile:     s.Dataset.TrainFile,
		TestFile:      s.Dataset.TestFile,
		Categories:    cats,
		CategoryFile:  file,
		Encoder:       datasets.EncoderOptions{Scaling: datasets.Scaling(s.Encoder.Scaling), NoLog1p: !s.Encoder.Log1p},
		MinRecords:    s.MinRecords(),
		NoNormal:      !sp.Normal,
		Val:           slices.Clone(sp.ValClasses), ValFraction: sp.ValFraction, Seed: sp.Seed,
		TrainExclude: slices.Clone(sp.TrainExclude),
		TestExclude:  slices.Clone(sp.TestExclude),
		TestInclude:  slices.Clone(sp.TestInclude),
	}, nil
}
