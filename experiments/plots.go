package experiments

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/metaids/metaids/eval"
)

// writePlots draws a seed's learning curve: meta-train loss and meta-val
// accuracy (with its interval) against step, or a supervised seed's
// training loss against epoch.
func writePlots(dir string, res *SeedResult) error {
	var steps, valSteps []int
	var loss, acc, ci []float64
	for _, p := range res.Curve {
		steps = append(steps, p.Step)
		loss = append(loss, p.TrainLoss)
		if !math.IsNaN(p.ValAccuracy) {
			valSteps = append(valSteps, p.Step)
			acc = append(acc, p.ValAccuracy)
			ci = append(ci, p.ValCI)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	title := fmt.Sprintf("%s, seed %d", res.Run, res.Seed)
	if len(res.Supervised) > 0 {
		return eval.PlotEpochLoss(filepath.Join(dir, "curve"), title, steps, loss)
	}
	return eval.PlotLearningCurve(filepath.Join(dir, "curve"), title, steps, loss, valSteps, acc, ci)
}

// writeRunPlots draws a run's per-class F1 and its confusion matrix, pooled
// over episodes and seeds.
func writeRunPlots(dir string, s *RunSummary, _ []*SeedResult) error {
	if len(s.PerClass) == 0 {
		return nil
	}
	classes := make([]string, len(s.PerClass))
	f1 := make([]float64, len(s.PerClass))
	for i, c := range s.PerClass {
		classes[i], f1[i] = c.Class, c.F1
	}
	on := "meta-test"
	if len(s.Supervised) > 0 { // its per-class figures are the first test file's
		on = s.Supervised[0].TestFile
	}
	if err := eval.PlotPerClassF1(filepath.Join(dir, "per_class_f1"), s.Run+": per-class F1 on "+on, classes, f1, nil); err != nil {
		return err
	}
	n := len(s.Confusion.Classes)
	c := eval.NewConfusion(n)
	for i, row := range s.Confusion.Counts {
		copy(c.Counts[i*n:(i+1)*n], row)
	}
	return eval.PlotConfusion(filepath.Join(dir, "confusion"), s.Run+": confusion (rows: true class)", s.Confusion.Classes, c, true)
}
