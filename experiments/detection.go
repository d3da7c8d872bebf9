package experiments

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/detect"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// DetectionResult is one seed's open-set detection: a "not normal" score from
// the learner's embedding, its threshold, and how it does on meta-test.
type DetectionResult struct {
	Method     string         `json:"method"`
	Shrinkage  float64        `json:"shrinkage"` // the λ used (Mahalanobis)
	Rule       string         `json:"threshold_rule"`
	FitNormal  int            `json:"fit_normal_flows"`
	TuneFlows  int            `json:"threshold_flows"`
	TuneF1     float64        `json:"threshold_f1,omitempty"`
	TestNormal int            `json:"test_normal_flows"`
	TestAttack int            `json:"test_attack_flows"`
	Report     *detect.Report `json:"report"`
}

// maxROCPoints bounds the ROC kept in result files; the AUROC is computed on
// the full curve.
const maxROCPoints = 200

var errF1WithoutVal = errors.New("detection.threshold f1 needs meta-val attack classes (split.val_fraction or split.val_classes)")

// runDetection fits the normal model on embeddings of half of a seeded sample
// of the training file's normal flows, sets the threshold on the other half
// (target false-alarm rate) or on it and the meta-val attack flows (best F1),
// and scores every flow of the meta-test pool.
func runDetection(p plan, split *datasets.Split, l train.Learner, seed uint64) (*DetectionResult, error) {
	det := p.Detection
	emb, ok := l.(train.Embedder)
	if !ok || emb.EmbedDim() == 0 {
		return nil, fmt.Errorf("detection: learner %s has no embedding", l.Name())
	}
	normal, normalAll, err := normalRows(p, split)
	if err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0xd7ec7))
	rows := sample(rng, normalAll, det.MaxNormal)
	half := len(rows) / 2
	embed := func(pool *datasets.Pool, rows []int32) ([]float32, error) {
		x := gather(pool, rows)
		out := make([]float32, len(rows)*emb.EmbedDim())
		return out, emb.Embed(x, len(rows), out)
	}
	fitX, err := embed(split.Train, rows[:half])
	if err != nil {
		return nil, err
	}
	model, err := detect.Fit(detect.Method(det.Method), fitX, half, emb.EmbedDim(), det.Shrinkage)
	if err != nil {
		return nil, fitError(err, det.Shrinkage)
	}
	score := func(pool *datasets.Pool, rows []int32) ([]float64, error) {
		z, err := embed(pool, rows)
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(rows))
		return out, model.Score(z, len(rows), out)
	}
	tuneNormal, err := score(split.Train, rows[half:])
	if err != nil {
		return nil, err
	}
	res := &DetectionResult{Method: det.Method, Shrinkage: model.Shrinkage(), Rule: det.Threshold, FitNormal: half, TuneFlows: len(tuneNormal)}
	var threshold float64
	if det.Threshold == "far" {
		res.Rule = "far " + strconv.FormatFloat(det.TargetFAR, 'g', -1, 64)
		if threshold, err = detect.ThresholdAtFAR(tuneNormal, det.TargetFAR); err != nil {
			return nil, fmt.Errorf("detection threshold: %w", err)
		}
	} else {
		if split.Val == nil {
			return nil, errF1WithoutVal
		}
		scores, attack := tuneNormal, make([]bool, len(tuneNormal))
		for _, vc := range split.Val.Classes {
			if vc.Name == normal {
				continue
			}
			s, err := score(split.Val, sample(rng, vc.Rows, det.MaxNormal))
			if err != nil {
				return nil, err
			}
			scores = append(scores, s...)
			for range s {
				attack = append(attack, true)
			}
		}
		if threshold, res.TuneF1, err = detect.ThresholdBestF1(scores, attack); err != nil {
			return nil, fmt.Errorf("detection threshold: %w", err)
		}
		res.TuneFlows = len(scores)
	}
	var all []float64
	var labels []string
	for _, tc := range split.Test.Classes {
		s, err := score(split.Test, tc.Rows)
		if err != nil {
			return nil, err
		}
		all = append(all, s...)
		for range s {
			labels = append(labels, tc.Name)
		}
		if tc.Name == normal {
			res.TestNormal += len(s)
		} else {
			res.TestAttack += len(s)
		}
	}
	if res.Report, err = detect.Evaluate(all, labels, normal, threshold); err != nil {
		return nil, fmt.Errorf("detection: %w", err)
	}
	res.Report.ROC = thinROC(res.Report.ROC, maxROCPoints)
	return res, nil
}

// normalRows names the normal class and returns its rows in the meta-train
// pool (the training file's normal traffic).
func normalRows(p plan, split *datasets.Split) (string, []int32, error) {
	normal := p.Episodes.NormalClass
	if normal == "" {
		normal = datasets.DefaultNormalClass
	}
	c := split.Train.ClassIndex(normal)
	if c < 0 {
		return "", nil, fmt.Errorf("the meta-train pool has no %q class", normal)
	}
	return normal, split.Train.Classes[c].Rows, nil
}

// sample returns up to n of rows, a seeded draw without replacement.
func sample(rng *rand.Rand, rows []int32, n int) []int32 {
	out := append([]int32(nil), rows...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func gather(p *datasets.Pool, rows []int32) []float32 {
	x := make([]float32, len(rows)*p.Dim)
	for i, r := range rows {
		copy(x[i*p.Dim:(i+1)*p.Dim], p.X[int(r)*p.Dim:(int(r)+1)*p.Dim])
	}
	return x
}

// thinROC keeps at most n points of a curve, its ends included.
func thinROC(r detect.ROC, n int) detect.ROC {
	if len(r.FPR) <= n {
		return r
	}
	var out detect.ROC
	for i := 0; i < n; i++ {
		k := i * (len(r.FPR) - 1) / (n - 1)
		out.FPR = append(out.FPR, r.FPR[k])
		out.TPR = append(out.TPR, r.TPR[k])
	}
	return out
}

// detectionNames are the detection metrics summarised over seeds.
var detectionNames = []string{"auroc", "detection_rate", "false_alarm_rate", "f1"}

func detectionValues(d *DetectionResult) []float64 {
	return []float64{d.Report.AUROC, d.Report.DetectionRate, d.Report.FalseAlarmRate, d.Report.F1}
}

// DetectionSummary is a run's open-set detection over its seeds.
type DetectionSummary struct {
	Method  string                  `json:"method"`
	Rule    string                  `json:"threshold_rule"`
	Metrics map[string]eval.Summary `json:"metrics"`
	// PerType is each attack type's detection rate and AUROC over seeds.
	PerType []TypeSummary `json:"per_type"`
}

// TypeSummary is one attack type's detection over seeds.
type TypeSummary struct {
	Type          string       `json:"type"`
	N             int          `json:"n"`
	DetectionRate eval.Summary `json:"detection_rate"`
	AUROC         eval.Summary `json:"auroc"`
}

func summariseDetection(seeds []*SeedResult) *DetectionSummary {
	var ds []*DetectionResult
	for _, r := range seeds {
		if r.Detection != nil {
			ds = append(ds, r.Detection)
		}
	}
	if len(ds) == 0 {
		return nil
	}
	out := &DetectionSummary{Method: ds[0].Method, Rule: ds[0].Rule, Metrics: map[string]eval.Summary{}}
	for i, name := range detectionNames {
		var xs []float64
		for _, d := range ds {
			xs = append(xs, detectionValues(d)[i])
		}
		out.Metrics[name] = eval.MeanCI(xs)
	}
	for k, t := range ds[0].Report.PerType {
		var dr, auc []float64
		for _, d := range ds {
			if k < len(d.Report.PerType) && d.Report.PerType[k].Type == t.Type {
				dr = append(dr, d.Report.PerType[k].DetectionRate)
				auc = append(auc, d.Report.PerType[k].AUROC)
			}
		}
		out.PerType = append(out.PerType, TypeSummary{Type: t.Type, N: t.N, DetectionRate: eval.MeanCI(dr), AUROC: eval.MeanCI(auc)})
	}
	return out
}

// detectionReport is the run report's detection section.
func detectionReport(s *DetectionSummary) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Open-set detection** (%s distance to normal traffic in the learner's embedding; threshold: %s). "+
		"Mean ± 95%% CI over seeds, in percent: AUROC %s, detection rate %s, false-alarm rate %s, F1 %s.\n\n",
		s.Method, s.Rule, s.Metrics["auroc"].Format(100, 2), s.Metrics["detection_rate"].Format(100, 2),
		s.Metrics["false_alarm_rate"].Format(100, 2), s.Metrics["f1"].Format(100, 2))
	t := &eval.Table{Title: "Detection per novel attack type", Header: []string{"attack type", "flows", "detection rate %", "AUROC %"}}
	for _, p := range s.PerType {
		t.Rows = append(t.Rows, []string{p.Type, strconv.Itoa(p.N), p.DetectionRate.Format(100, 2), p.AUROC.Format(100, 2)})
	}
	t.Render(&b, eval.Markdown)
	b.WriteString("\n![ROC of attack against normal](roc.png)\n")
	return b.String()
}

// writeDetectionPlot draws the seeds' ROC curves into dir/roc.{png,svg}.
func writeDetectionPlot(dir, run string, seeds []*SeedResult) error {
	var curves []eval.ROCCurve
	for _, r := range seeds {
		if r.Detection == nil {
			continue
		}
		roc := r.Detection.Report.ROC
		curves = append(curves, eval.ROCCurve{Name: fmt.Sprintf("seed %d", r.Seed), FPR: roc.FPR, TPR: roc.TPR, AUC: r.Detection.Report.AUROC})
	}
	if len(curves) == 0 {
		return nil
	}
	return eval.PlotROC(filepath.Join(dir, "roc"), run+": novel attacks against normal traffic", curves)
}

// fitError names the spec key that mends an ill-conditioned covariance,
// which only the trained embeddings can show (dead units have no variance),
// and, when every unit is dead or saturated, the keys that can mend that.
func fitError(err error, shrinkage float64) error {
	if errors.Is(err, detect.ErrNoVariance) {
		return fmt.Errorf("detection.method mahalanobis: %w, which no detection.shrinkage mends: the trained model embeds "+
			"every normal flow alike (dead or saturated units); use detection.method: euclidean, or change model.hidden, "+
			"model.activation or optimizer.lr", err)
	}
	if !errors.Is(err, detect.ErrIllConditioned) {
		return fmt.Errorf("detection: %w", err)
	}
	value := strconv.FormatFloat(shrinkage, 'g', -1, 64)
	if shrinkage < 0 {
		value += " (Ledoit-Wolf)"
	}
	return fmt.Errorf("detection.shrinkage %s: %w", value, err)
}
