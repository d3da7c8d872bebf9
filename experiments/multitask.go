package experiments

import (
	"cmp"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// MultitaskResult is how one seed's auxiliary heads do on the meta-test
// query rows, read at the meta-parameters (no adaptation).
type MultitaskResult struct {
	BinaryWeight   float64 `json:"binary_weight"`
	CategoryWeight float64 `json:"category_weight"`
	// Categories are the category head's classes: the meta-train classes'
	// categories.
	Categories []string `json:"categories,omitempty"`
	// Metrics are named by multitaskNames: per-episode accuracies averaged
	// over episodes; AUROC, detection and false-alarm rates and macro F1
	// pooled over every scored row.
	Metrics map[string]float64 `json:"metrics"`
	// Binary and Category are the heads' pooled confusion matrices.
	Binary   *ConfusionTable `json:"binary_confusion,omitempty"`
	Category *ConfusionTable `json:"category_confusion,omitempty"`
	// UnknownRows are query rows whose category the head was not trained
	// on (a novel category); the category metrics leave them out.
	UnknownRows int `json:"unknown_category_rows"`
}

// multitaskNames are the heads' metrics, in report order.
var multitaskNames = []string{
	"binary_accuracy", "binary_auroc", "binary_detection_rate", "binary_false_alarm_rate",
	"category_accuracy", "category_macro_f1",
}

// multitaskEval accumulates the heads' predictions over test episodes.
type multitaskEval struct {
	ap                 train.AuxPredictor
	res                *MultitaskResult
	attack             []float32
	category           []int32
	binAcc, catAcc     []float64
	binConf, catConf   *eval.Confusion
	scores             []float64
	positive           []bool
	hasBinary, hasCats bool
}

// newMultitaskEval prepares the evaluation of l's heads, or returns nil
// when the learner has none.
func newMultitaskEval(l train.Learner, cfg train.Config, categories []string) (*multitaskEval, error) {
	if !cfg.Aux.Enabled() {
		return nil, nil
	}
	ap, ok := l.(train.AuxPredictor)
	if !ok {
		return nil, fmt.Errorf("multitask: learner %s cannot read its auxiliary heads", l.Name())
	}
	s := l.Shape()
	nq := s.Ways * s.Queries
	m := &multitaskEval{ap: ap, res: &MultitaskResult{BinaryWeight: cfg.Aux.BinaryWeight, CategoryWeight: cfg.Aux.CategoryWeight}}
	if cfg.Aux.BinaryWeight > 0 {
		m.hasBinary, m.attack, m.binConf = true, make([]float32, nq), eval.NewConfusion(2)
	}
	if cfg.Aux.CategoryWeight > 0 {
		m.hasCats, m.category, m.catConf = true, make([]int32, nq), eval.NewConfusion(len(categories))
		m.res.Categories = categories
	}
	return m, nil
}

// add scores the heads on one test episode.
func (m *multitaskEval) add(ep *datasets.Episode) error {
	if err := m.ap.PredictAux(ep, m.attack, m.category); err != nil {
		return err
	}
	if m.hasBinary {
		right := 0
		for r, way := range ep.QueryY {
			truth := int(way) != ep.NormalWay
			pred := m.attack[r] > 0.5
			if pred == truth {
				right++
			}
			m.binConf.Add(b2i(truth), b2i(pred))
			m.scores = append(m.scores, float64(m.attack[r]))
			m.positive = append(m.positive, truth)
		}
		m.binAcc = append(m.binAcc, float64(right)/float64(len(ep.QueryY)))
	}
	if m.hasCats {
		right, n := 0, 0
		for r, way := range ep.QueryY {
			truth := ep.WayCategory[way]
			if truth < 0 {
				m.res.UnknownRows++
				continue
			}
			if m.category[r] == truth {
				right++
			}
			m.catConf.Add(int(truth), int(m.category[r]))
			n++
		}
		if n > 0 {
			m.catAcc = append(m.catAcc, float64(right)/float64(n))
		}
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// result finishes the evaluation.
func (m *multitaskEval) result() *MultitaskResult {
	if m == nil {
		return nil
	}
	r := m.res
	r.Metrics = map[string]float64{}
	if m.hasBinary {
		r.Metrics["binary_accuracy"] = eval.MeanCI(m.binAcc).Mean
		// With one class only (no normal way in any test episode) AUROC is
		// undefined and left out: JSON has no NaN, and summaries skip it.
		if auc, err := eval.AUROC(m.scores, m.positive); err == nil {
			r.Metrics["binary_auroc"] = auc
		}
		if m.binConf.Support(1) > 0 {
			r.Metrics["binary_detection_rate"] = m.binConf.DetectionRate(0)
		}
		if m.binConf.Support(0) > 0 { // undefined without normal rows, like the AUROC
			r.Metrics["binary_false_alarm_rate"] = m.binConf.FalseAlarmRate(0)
		}
		t := confusionTable([]string{"normal", "attack"}, m.binConf)
		r.Binary = &t
	}
	if m.hasCats {
		if m.catConf.Total() > 0 { // else every row was of a category the head never saw
			r.Metrics["category_accuracy"] = eval.MeanCI(m.catAcc).Mean
			r.Metrics["category_macro_f1"] = m.catConf.MacroF1()
		}
		t := confusionTable(r.Categories, m.catConf)
		r.Category = &t
	}
	return r
}

// MultitaskSummary is a run's auxiliary heads over its seeds.
type MultitaskSummary struct {
	BinaryWeight   float64                 `json:"binary_weight"`
	CategoryWeight float64                 `json:"category_weight"`
	Categories     []string                `json:"categories,omitempty"`
	Metrics        map[string]eval.Summary `json:"metrics"` // mean ± 95% CI over seeds
	UnknownRows    int                     `json:"unknown_category_rows"`
	// Category is the category head's confusion pooled over seeds.
	Category *ConfusionTable `json:"category_confusion,omitempty"`
}

func summariseMultitask(seeds []*SeedResult) *MultitaskSummary {
	var ms []*MultitaskResult
	for _, r := range seeds {
		if r.Multitask != nil {
			ms = append(ms, r.Multitask)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	first := ms[0]
	out := &MultitaskSummary{BinaryWeight: first.BinaryWeight, CategoryWeight: first.CategoryWeight,
		Categories: first.Categories, Metrics: map[string]eval.Summary{}}
	for _, name := range multitaskNames {
		var xs []float64
		for _, m := range ms {
			if v, ok := m.Metrics[name]; ok && !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
		if len(xs) > 0 {
			out.Metrics[name] = eval.MeanCI(xs)
		}
	}
	if first.Category != nil {
		n := len(first.Categories)
		pooled := eval.NewConfusion(n)
		for _, m := range ms {
			out.UnknownRows += m.UnknownRows
			if m.Category == nil || len(m.Category.Counts) != n {
				continue
			}
			for i, row := range m.Category.Counts {
				for j, c := range row {
					pooled.Counts[i*n+j] += c
				}
			}
		}
		t := confusionTable(first.Categories, pooled)
		out.Category = &t
	}
	return out
}

// multitaskReport is the run report's section on the auxiliary heads.
func multitaskReport(s *MultitaskSummary) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Multi-task heads** (binary weight %g, category weight %g), read at the meta-parameters on every "+
		"meta-test query row. Mean ± 95%% CI over seeds, in percent.\n\n", s.BinaryWeight, s.CategoryWeight)
	t := &eval.Table{Title: "Auxiliary heads on meta-test", Header: []string{"head", "metric", "value %"}}
	labels := map[string][2]string{
		"binary_accuracy": {"attack vs normal", "accuracy"}, "binary_auroc": {"attack vs normal", "AUROC"},
		"binary_detection_rate": {"attack vs normal", "detection rate"}, "binary_false_alarm_rate": {"attack vs normal", "false-alarm rate"},
		"category_accuracy": {"category", "accuracy"}, "category_macro_f1": {"category", "macro F1"},
	}
	for _, name := range multitaskNames {
		if v, ok := s.Metrics[name]; ok {
			l := labels[name]
			t.Rows = append(t.Rows, []string{l[0], l[1], v.Format(100, 2)})
		}
	}
	if s.Category != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("category head classes: %s; %d query rows of categories absent from meta-training are not scored",
			strings.Join(s.Categories, ", "), s.UnknownRows))
	}
	t.Render(&b, eval.Markdown)
	if s.Category != nil {
		b.WriteString("\n![category head confusion](multitask_category.png)\n")
	}
	return b.String()
}

// writeMultitaskPlot draws the category head's pooled confusion matrix.
func writeMultitaskPlot(dir, run string, s *MultitaskSummary) error {
	if s == nil || s.Category == nil {
		return nil
	}
	n := len(s.Category.Classes)
	c := eval.NewConfusion(n)
	for i, row := range s.Category.Counts {
		for j, v := range row {
			c.Counts[i*n+j] = v
		}
	}
	if c.Total() == 0 {
		return nil // no scored row: nothing to plot
	}
	return eval.PlotConfusion(filepath.Join(dir, "multitask_category"), run+": category head on meta-test (row-normalised)", s.Category.Classes, c, true)
}

// auxCategories is the category list of a run's category head and samplers.
func auxCategories(p plan, split *datasets.Split) ([]string, error) {
	return MultitaskCategories(p.Learner.Aux, p.Episodes.NormalClass, split.Train)
}

// MultitaskCategories returns the category list of the auxiliary heads of
// aux, the categories of the meta-train pool (nil without heads), and
// checks that the heads can learn from it: the binary head needs the normal
// class (normalClass, "normal" when empty), the category head two
// categories.
func MultitaskCategories(aux train.AuxConfig, normalClass string, trainPool *datasets.Pool) ([]string, error) {
	if !aux.Enabled() {
		return nil, nil
	}
	if trainPool == nil {
		return nil, fmt.Errorf("multitask: the meta-train pool is empty")
	}
	normal := cmp.Or(normalClass, datasets.DefaultNormalClass)
	if aux.BinaryWeight > 0 && trainPool.ClassIndex(normal) < 0 {
		return nil, fmt.Errorf("multitask.binary_weight: the meta-train pool has no %q class, so the attack-vs-normal head has nothing to learn from", normal)
	}
	cats := trainPool.Categories()
	if aux.CategoryWeight > 0 && len(cats) < 2 {
		return nil, fmt.Errorf("multitask.category_weight: the meta-train classes span %d category (%s); the category head needs at least 2",
			len(cats), strings.Join(cats, ", "))
	}
	return cats, nil
}
