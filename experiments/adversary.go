package experiments

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/metaids/metaids/adversarial"
	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// adversary carries a seed's adversarial training and evaluation; its zero
// value (nothing asked) does nothing.
type adversary struct {
	spec  AdversarialSpec
	l     train.Learner
	ig    train.InputGradienter
	space adversarial.Space
	rng   *rand.Rand
}

// newAdversary prepares the valid feature space (the training data's
// encoded range, numeric columns only) when the plan asks for adversarial
// training or evaluation.
func newAdversary(p plan, split *datasets.Split, l train.Learner, seed uint64) (*adversary, error) {
	a := &adversary{spec: p.Adversarial, l: l}
	if a.spec.TrainEps == 0 && len(a.spec.EvalBudgets) == 0 {
		return a, nil
	}
	ig, ok := l.(train.InputGradienter)
	if !ok {
		return nil, fmt.Errorf("adversarial: learner %s has no input gradients", l.Name())
	}
	m := &datasets.Matrix{Rows: len(split.Train.X) / split.Train.Dim, Dim: split.Train.Dim, X: split.Train.X}
	space, err := adversarial.SpaceFromData(split.Encoder, m)
	if err != nil {
		return nil, fmt.Errorf("adversarial: %w", err)
	}
	a.ig, a.space, a.rng = ig, space, rand.New(rand.NewPCG(seed, streamAdv))
	return a, nil
}

// perturb replaces a share of each episode's query rows by their FGSM
// perturbation before a meta-step.
func (a *adversary) perturb(b datasets.Batch) error {
	if a.spec.TrainEps == 0 {
		return nil
	}
	return adversarial.AdversarialBatch(a.ig, b, float32(a.spec.TrainEps), a.space, a.spec.TrainMix, a.rng)
}

// RobustResult is accuracy and macro F1 under one attack at one budget
// (budget 0: clean), mean ± 95% CI over episodes.
type RobustResult struct {
	Attack   string       `json:"attack"`
	Eps      float64      `json:"eps"`
	Accuracy eval.Summary `json:"accuracy"`
	MacroF1  eval.Summary `json:"macro_f1"`
}

// robustness scores the learner on fresh meta-test episodes, clean and
// under each attack and budget.
func (a *adversary) robustness(ctx context.Context, s *datasets.Sampler) ([]RobustResult, error) {
	var eps []*datasets.Episode
	for i := 0; i < a.spec.EvalEpisodes; i++ {
		e := s.NewEpisode()
		if err := s.Next(e); err != nil {
			return nil, err
		}
		eps = append(eps, e)
	}
	// Budget 0, the clean score, is always the baseline.
	budgets := []float32{0}
	for _, b := range a.spec.EvalBudgets {
		budgets = append(budgets, float32(b))
	}
	rs, err := adversarial.Robustness(ctx, a.l, eps, budgets, a.spec.EvalAttacks, a.spec.PGDSteps, a.space)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		return nil, fmt.Errorf("robustness: %w", err)
	}
	out := make([]RobustResult, len(rs))
	for i, r := range rs {
		// The float32 budget's shortest decimal, so files say 0.02, not 0.0199999995.
		e, _ := strconv.ParseFloat(strconv.FormatFloat(float64(r.Eps), 'g', -1, 32), 64)
		out[i] = RobustResult{Attack: r.Attack, Eps: e, Accuracy: r.Accuracy, MacroF1: r.MacroF1}
	}
	return out, nil
}

// summariseRobustness pools each attack and budget over the seeds.
func summariseRobustness(seeds []*SeedResult) []RobustResult {
	if len(seeds) == 0 || len(seeds[0].Robustness) == 0 {
		return nil
	}
	out := append([]RobustResult(nil), seeds[0].Robustness...)
	for _, r := range seeds[1:] {
		for i := range out {
			if i < len(r.Robustness) && r.Robustness[i].Attack == out[i].Attack && r.Robustness[i].Eps == out[i].Eps {
				out[i].Accuracy = poolSummaries(out[i].Accuracy, r.Robustness[i].Accuracy)
				out[i].MacroF1 = poolSummaries(out[i].MacroF1, r.Robustness[i].MacroF1)
			}
		}
	}
	return out
}

func toResults(rs []RobustResult) []adversarial.Result {
	out := make([]adversarial.Result, len(rs))
	for i, r := range rs {
		out[i] = adversarial.Result{Attack: r.Attack, Eps: float32(r.Eps), Accuracy: r.Accuracy, MacroF1: r.MacroF1}
	}
	return out
}

// robustnessReport is the run report's robustness section, with its plot
// written beside it.
func robustnessReport(dir, run string, rs []RobustResult) (string, error) {
	if len(rs) == 0 {
		return "", nil
	}
	if err := adversarial.Plot(filepath.Join(dir, "robustness"), run+": accuracy under attack", toResults(rs)); err != nil {
		return "", err
	}
	b := new(strings.Builder)
	adversarial.Table("Robustness on meta-test episodes (budgets in encoded units; numeric features only)", toResults(rs)).Render(b, eval.Markdown)
	b.WriteString("\n![accuracy under attack](robustness.png)\n")
	return b.String(), nil
}
