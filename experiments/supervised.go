package experiments

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/internal/progress"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
	"gopkg.in/yaml.v3"
)

// supervisedPlan is the supervised track of a plan: a classifier trained on
// the whole training file, tested on whole test files.
type supervisedPlan struct {
	Labels     string // binary or category
	TestFiles  []string
	Classifier train.ClassifierConfig
}

// categoryClasses are the classes of the 5-class labelling, normal first.
var categoryClasses = datasets.CategoryNames

// SupervisedEval is one test file's result.
type SupervisedEval struct {
	TestFile  string                  `json:"test_file"`
	Records   int                     `json:"records"`
	Metrics   map[string]eval.Summary `json:"metrics"` // one seed: n = 1; a run: over seeds
	PerClass  []eval.ClassScore       `json:"per_class"`
	Confusion ConfusionTable          `json:"confusion"`
}

// encodedFile is a file encoded with the training file's encoder, labelled.
type encodedFile struct {
	name    string
	m       *datasets.Matrix
	y       []int32
	repeats int // records left out as repeats (dataset.distinct)
}

// CheckSupervisedData loads, encodes and labels the files of a supervised
// spec, as its run would, and returns its classes and the warnings of its
// categories file (validate --deep).
func CheckSupervisedData(s Spec) (classes, warnings []string, err error) {
	p, err := planFor(s)
	if err != nil {
		return nil, nil, err
	}
	if p.Supervised == nil {
		return nil, nil, fmt.Errorf("run %s is not supervised (split.protocol %q)", s.Name, s.Split.Protocol)
	}
	d, err := loadSupervised(p)
	if err != nil {
		return nil, nil, err
	}
	return d.classes, d.warnings, nil
}

// cells are the test file's accuracy, macro precision, recall and F1,
// detection and false-alarm rates for a table, "-" for a rate the file
// cannot define (no attack, or no normal record, in it).
func (f SupervisedEval) cells() []string {
	return metricCells(f.Metrics, "accuracy", "macro_precision", "macro_recall", "macro_f1", "detection_rate", "false_alarm_rate")
}

// supervisedData is what the supervised track trains and tests on.
type supervisedData struct {
	enc     *datasets.Encoder // fitted on the training file
	train   *encodedFile
	tests   []*encodedFile
	classes []string
	// warnings name the categories file's names that label no record.
	warnings []string
}

// loadSupervised loads, encodes and labels the training and test files.
func loadSupervised(p plan) (*supervisedData, error) {
	sp := p.Supervised
	classes := []string{"normal", "attack"}
	if sp.Labels == "category" {
		classes = categoryClasses
	}
	cats := p.Protocol.Categories
	if cats == nil {
		cats = datasets.DefaultCategories()
	}
	label := func(r *datasets.Records) ([]int32, error) {
		y := make([]int32, r.N)
		for i, l := range r.Label {
			name := r.LabelNames[l]
			switch {
			case sp.Labels == "binary" && name == datasets.DefaultNormalClass:
				y[i] = 0
			case sp.Labels == "binary":
				y[i] = 1
			default:
				c := cats.Of(name)
				k := indexOf(categoryClasses, c)
				if k < 0 {
					return nil, fmt.Errorf("%s: label %q has category %q, not one of %s (see dataset.categories)", r.Name, name, c, strings.Join(categoryClasses, ", "))
				}
				y[i] = int32(k)
			}
		}
		return y, nil
	}
	var loaded []*datasets.Records
	var names []string
	load := func(file string, enc *datasets.Encoder) (*datasets.Encoder, *encodedFile, error) {
		opt := p.Protocol.TestLoad()
		if enc == nil { // the training file, which fits the encoder
			opt = p.Protocol.TrainLoad()
		}
		r, err := datasets.Load(p.Dataset, file, opt)
		if err != nil {
			return nil, nil, ExplainChecksum(err)
		}
		// Binary labels too: a typo of normal would be an attack.
		if err := cats.Check(r); err != nil {
			return nil, nil, ExplainCategories(err)
		}
		if enc == nil {
			if enc, err = datasets.FitEncoder(r, p.Protocol.Encoder); err != nil {
				return nil, nil, err
			}
		}
		y, err := label(r)
		if err != nil {
			return nil, nil, err
		}
		loaded, names = append(loaded, r), append(names, file)
		return enc, &encodedFile{name: file, m: enc.Transform(r), y: y, repeats: r.Repeats}, nil
	}
	trainFile := p.Protocol.TrainFile
	if trainFile == "" {
		trainFile = p.Dataset.Train
	}
	enc, tr, err := load(trainFile, nil)
	if err != nil {
		return nil, err
	}
	// A file of one class (a data_dir file of normal traffic alone, say)
	// trains a classifier that answers that class whatever it is given.
	if !slices.ContainsFunc(tr.y, func(y int32) bool { return y != tr.y[0] }) {
		return nil, fmt.Errorf("%s: every record is %s: a classifier needs records of at least two of its classes (%s)",
			tr.name, classes[tr.y[0]], strings.Join(classes, ", "))
	}
	var tests []*encodedFile
	for _, f := range sp.TestFiles {
		_, te, err := load(f, enc)
		if err != nil {
			return nil, err
		}
		tests = append(tests, te)
	}
	return &supervisedData{enc: enc, train: tr, tests: tests, classes: classes,
		warnings: p.Protocol.CategoryFile.Unmatched(names, loaded...)}, nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// runSupervised runs the supervised track of a plan for every seed.
func (r *Runner) runSupervised(ctx context.Context, p plan, dir string, since time.Time, be kernels.Backend) ([]*SeedResult, error) {
	start := time.Now()
	d, err := loadSupervised(p)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.opt.Log, "%s: loaded and encoded %s (%d records, %d features) and %d test file(s) in %s\n",
		p.Name, d.train.name, d.train.m.Rows, d.train.m.Dim, len(d.tests), time.Since(start).Round(time.Millisecond))
	tests := make([]fileRepeats, len(d.tests))
	for i, f := range d.tests {
		tests[i] = fileRepeats{f.name, f.repeats}
	}
	if note := repeatsNote(p.Protocol, fileRepeats{d.train.name, d.train.repeats}, tests...); note != "" {
		fmt.Fprintf(r.opt.Log, "%s: %s\n", p.Name, note)
	}
	for _, w := range d.warnings {
		fmt.Fprintf(r.opt.Log, "%s: warning: dataset.categories: %s\n", p.Name, w)
	}
	return r.eachSeed(ctx, p, dir, since, supervisedPools(d.train, d.classes), be.Name() != "cpu", func(ctx context.Context, seed uint64) (*SeedResult, error) {
		return r.supervisedSeed(ctx, p, d, be, seed)
	})
}

// supervisedPools describes what the classifier is trained on.
func supervisedPools(tr *encodedFile, classes []string) map[string]PoolInfo {
	return map[string]PoolInfo{"train": {File: tr.name, Classes: classes, Records: tr.m.Rows}}
}

func (r *Runner) supervisedSeed(ctx context.Context, p plan, d *supervisedData, be kernels.Backend, seed uint64) (*SeedResult, error) {
	tr, classes := d.train, d.classes
	if p.Threads > 0 && r.slots == nil {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(p.Threads))
	}
	start := time.Now()
	cfg := p.Supervised.Classifier
	cfg.InitSeed = seed
	clf, err := train.NewClassifier(cfg, tr.m.Dim, len(classes), be)
	if err != nil {
		return nil, err
	}
	res := &SeedResult{Run: p.Name, Seed: seed, Provenance: r.prov, Backend: be.Name(), Device: be.Device(), Jobs: r.jobs(), Cost: clf.Cost(),
		Started: start.UTC(), Spec: string(p.SpecYAML), Inputs: p.Inputs, Pools: supervisedPools(tr, classes)}
	bar := progress.New(r.opt.Log, fmt.Sprintf("%s seed %d: train", p.Name, seed), cfg.Epochs)
	trainStart := time.Now()
	err = clf.Fit(ctx, tr.m.X, tr.y, tr.m.Rows, func(epoch int, loss float64) {
		res.Curve = append(res.Curve, CurvePoint{Step: epoch, TrainLoss: loss, ValAccuracy: math.NaN(), ValCI: math.NaN()})
		bar.Update(epoch, fmt.Sprintf("loss %.4f", loss))
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		return nil, cmp.Or(diverged(err), err)
	}
	bar.Finish("")
	res.Train = TrainStats{Steps: cfg.Epochs, Seconds: time.Since(trainStart).Seconds(), BestStep: -1, BestValAccuracy: math.NaN()}
	res.Train.StepsPerSec = float64(cfg.Epochs) / res.Train.Seconds
	for _, te := range d.tests {
		labels := make([]int32, te.m.Rows)
		t0 := time.Now()
		if err := clf.Predict(te.m.X, te.m.Rows, labels, nil); err != nil {
			return nil, err
		}
		res.Test.Episodes++
		res.Test.Seconds += time.Since(t0).Seconds()
		res.Test.FlowsPerSec += float64(te.m.Rows)
		res.Supervised = append(res.Supervised, evaluateFile(te, labels, classes))
	}
	if res.Test.Seconds > 0 {
		res.Test.FlowsPerSec /= res.Test.Seconds
		res.Test.LatencyPerFlowUS = 1e6 / res.Test.FlowsPerSec
	}
	res.Metrics = res.Supervised[0].Metrics
	res.PerClass = res.Supervised[0].PerClass
	res.Confusion = res.Supervised[0].Confusion
	encoded, err := d.enc.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var ckpt strings.Builder
	if err := clf.Save(&ckpt, map[string][]byte{"encoder": encoded, "spec": p.SpecYAML, "provenance": res.provenanceJSON()}); err != nil {
		return nil, err
	}
	res.checkpoint = []byte(ckpt.String())
	res.Wall = time.Since(start).Seconds()
	return res, nil
}

// evaluateFile scores predictions on a whole test file: one "episode" whose
// figures have n = 1; normal is class 0 in both labellings.
func evaluateFile(te *encodedFile, pred []int32, classes []string) SupervisedEval {
	c := eval.NewConfusion(len(classes))
	c.AddAll(te.y, pred)
	one := func(v float64) eval.Summary { return eval.Summary{Mean: v, N: 1} }
	ev := eval.Evaluation{Classes: classes, Categories: classes, Pooled: c}
	metrics := map[string]eval.Summary{
		"accuracy": one(c.Accuracy()), "macro_precision": one(c.MacroPrecision()), "macro_recall": one(c.MacroRecall()),
		"macro_f1": one(c.MacroF1()),
	}
	// Undefined rates are left out, as the episodic track leaves out NaN.
	if normal := c.Support(0); c.Total() > normal {
		metrics["detection_rate"] = one(c.DetectionRate(0))
	}
	if c.Support(0) > 0 {
		metrics["false_alarm_rate"] = one(c.FalseAlarmRate(0))
	}
	return SupervisedEval{
		TestFile: te.name, Records: te.m.Rows,
		Metrics:   metrics,
		PerClass:  ev.PerClass(),
		Confusion: confusionTable(classes, c),
	}
}

// summariseSupervised pools the seeds of a supervised run: per test file,
// each metric's mean and 95% interval over seeds, and the pooled confusion.
func summariseSupervised(s *RunSummary, seeds []*SeedResult) {
	if len(seeds) == 0 {
		return
	}
	for f := range seeds[0].Supervised {
		first := seeds[0].Supervised[f]
		out := SupervisedEval{TestFile: first.TestFile, Records: first.Records, Metrics: map[string]eval.Summary{}}
		n := len(first.Confusion.Classes)
		pooled := eval.NewConfusion(n)
		for _, name := range eval.MetricNames {
			var xs []float64
			for _, r := range seeds {
				if m, ok := r.Supervised[f].Metrics[name]; ok {
					xs = append(xs, m.Mean)
				}
			}
			if len(xs) > 0 {
				out.Metrics[name] = eval.MeanCI(xs)
			}
		}
		for _, r := range seeds {
			for i, row := range r.Supervised[f].Confusion.Counts {
				for j, v := range row {
					pooled.Counts[i*n+j] += v
				}
			}
		}
		ev := eval.Evaluation{Classes: first.Confusion.Classes, Categories: first.Confusion.Classes, Pooled: pooled}
		out.PerClass = ev.PerClass()
		out.Confusion = confusionTable(first.Confusion.Classes, pooled)
		s.Supervised = append(s.Supervised, out)
	}
	s.Metrics = s.Supervised[0].Metrics
	s.SeedSpread = s.Supervised[0].Metrics
	s.PerClass = s.Supervised[0].PerClass
	s.Confusion = s.Supervised[0].Confusion
}

// literature are published accuracies (%) on KDDTest+ and KDDTest-21.
var literature = []struct {
	source, method, labels string
	plus, minus21          float64
}{
	{"Tavallaee et al. 2009", "J48", "", 81.05, 63.97},
	{"Tavallaee et al. 2009", "Naive Bayes", "", 76.56, 55.77},
	{"Tavallaee et al. 2009", "NB Tree", "", 82.02, 66.16},
	{"Tavallaee et al. 2009", "Random Forest", "", 80.67, 63.25},
	{"Tavallaee et al. 2009", "Random Tree", "", 81.59, 58.51},
	{"Tavallaee et al. 2009", "Multi-layer Perceptron", "", 77.41, 57.34},
	{"Tavallaee et al. 2009", "SVM", "", 69.52, 42.29},
	{"Yin et al. 2017", "RNN-IDS", "binary", 83.28, 68.55},
	{"Yin et al. 2017", "RNN-IDS", "category", 81.29, 64.67},
}

// SupervisedSection is the report section of supervised NSL-KDD runs beside
// the literature; "" when there are none.
func SupervisedSection(runs []*RunSummary) string {
	var sup, lit []*RunSummary
	for _, r := range runs {
		if r.Protocol != "supervised" {
			continue
		}
		sup = append(sup, r)
		// The published figures are for training on the whole KDDTrain+.
		if r.Dataset == "nsl-kdd" && trainFileOf(r) == "KDDTrain+" {
			lit = append(lit, r)
		}
	}
	if len(sup) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Supervised track\n\n")
	if len(lit) > 0 {
		t := &eval.Table{Title: "NSL-KDD, train on KDDTrain+: accuracy % (metaids: mean ± 95% CI over seeds)", Labels: 2,
			Header: []string{"method", "labels", "KDDTest+", "KDDTest-21", "source"}}
		for _, r := range lit {
			cells := map[string]string{}
			for _, f := range r.Supervised {
				cells[f.TestFile] = f.Metrics["accuracy"].Format(100, 2)
			}
			t.Rows = append(t.Rows, []string{fmt.Sprintf("MLP %v (%s)", r.Hidden, r.Algo), r.Labels, orDash(cells["KDDTest+"]), orDash(cells["KDDTest-21"]), "metaids, " + r.Run})
		}
		for _, l := range literature {
			labels := l.labels
			if labels == "" {
				labels = "as published"
			}
			t.Rows = append(t.Rows, []string{l.method, labels, strconv.FormatFloat(l.plus, 'f', 2, 64), strconv.FormatFloat(l.minus21, 'f', 2, 64), l.source})
		}
		t.Notes = []string{"labels: binary = normal vs attack; category = normal, dos, probe, r2l, u2r. Literature rows are the figures as published, not rerun here."}
		t.Render(&b, eval.Markdown)
		b.WriteString("\n")
	}
	d := &eval.Table{Title: "Every supervised run and test file, % (metaids: mean ± 95% CI over seeds)", Labels: 4,
		Header: []string{"run", "dataset", "labels", "test file", "accuracy", "macro precision", "macro recall", "macro F1", "detection rate", "false-alarm rate"}}
	for _, r := range sup {
		for _, f := range r.Supervised {
			d.Rows = append(d.Rows, append([]string{r.Run, r.DataName(), r.Labels, f.TestFile}, f.cells()...))
		}
	}
	d.Render(&b, eval.Markdown)
	return b.String()
}

// trainFileOf is the training file a run's recorded spec names, or "" when
// it names none. The resolved spec names it outright, so the key is read
// alone: the whole spec's checks (a cuda device, a data folder) depend on
// the machine reading it, not on the run.
func trainFileOf(r *RunSummary) string {
	var spec struct {
		Dataset struct {
			TrainFile string `yaml:"train_file"`
		} `yaml:"dataset"`
	}
	if yaml.Unmarshal([]byte(r.Spec), &spec) != nil {
		return ""
	}
	return spec.Dataset.TrainFile
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeSupervisedFiles writes per-test-file CSVs into a seed directory.
func writeSupervisedFiles(dir, note string, res *SeedResult) error {
	for _, f := range res.Supervised {
		var rows [][]string
		for _, c := range f.PerClass {
			rows = append(rows, []string{c.Class, ftoa(c.Precision), ftoa(c.Recall), ftoa(c.F1), strconv.FormatInt(c.Support, 10)})
		}
		if err := writeCSV(filepath.Join(dir, "per_class-"+f.TestFile+".csv"), note, []string{"class", "precision", "recall", "f1", "support"}, rows); err != nil {
			return err
		}
	}
	return nil
}
