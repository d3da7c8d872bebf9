package adversarial

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/train"
)

// Attacks lists the attacks Robustness runs.
var Attacks = []string{"fgsm", "pgd"}

// PGDStepScale sets Robustness's PGD step size alpha = PGDStepScale·eps/steps,
// the usual choice (Madry et al.) that lets the iterate cross the ball
// and still settle on its boundary.
const PGDStepScale = 2.5

// Result is a learner's accuracy and macro-F1 under one attack at one
// budget: mean ± 95% interval over episodes. Eps 0 is the clean score.
type Result struct {
	Attack   string
	Eps      float32
	Accuracy eval.Summary
	MacroF1  eval.Summary
}

// Robustness scores l on the episodes, clean and under each attack ("fgsm",
// "pgd") at each budget (eps 0 is clean, shared by all attacks), returning
// one Result per attack and budget in that order. PGD runs pgdSteps steps
// of PGDStepScale·eps/pgdSteps from a random start drawn from a fixed seed
// per episode, so results are reproducible. The episodes are not modified.
func Robustness(ctx context.Context, l train.Learner, eps []*datasets.Episode, budgets []float32, attacks []string, pgdSteps int, s Space) ([]Result, error) {
	if len(eps) == 0 {
		return nil, fmt.Errorf("adversarial: no episodes")
	}
	attacked := false
	for _, b := range budgets {
		if err := checkBudget(b); err != nil {
			return nil, err
		}
		attacked = attacked || b > 0
	}
	for _, a := range attacks {
		switch a {
		case "fgsm":
		case "pgd":
			if pgdSteps < 1 && attacked {
				return nil, fmt.Errorf("adversarial: PGD with %d steps, want >= 1", pgdSteps)
			}
		default:
			return nil, fmt.Errorf("adversarial: unknown attack %q (want fgsm or pgd)", a)
		}
	}
	ig, ok := l.(train.InputGradienter)
	if attacked && !ok {
		return nil, fmt.Errorf("adversarial: learner %s has no input gradients", l.Name())
	}
	for i, ep := range eps {
		if err := fitsEpisode(ep, s); err != nil {
			return nil, fmt.Errorf("episode %d: %w", i, err)
		}
	}

	var clean *scores
	var out []Result
	for _, a := range attacks {
		for _, b := range budgets {
			var sc *scores
			var err error
			if b == 0 {
				if clean == nil {
					clean, err = score(ctx, l, eps, func(int, *datasets.Episode) error { return nil })
				}
				sc = clean
			} else {
				sc, err = score(ctx, l, eps, func(i int, ep *datasets.Episode) error {
					return attack(ctx, ig, ep, a, b, pgdSteps, s, i)
				})
			}
			if err != nil {
				return nil, fmt.Errorf("%s at eps %g: %w", a, b, err)
			}
			out = append(out, Result{Attack: a, Eps: b, Accuracy: eval.MeanCI(sc.acc), MacroF1: eval.MeanCI(sc.f1)})
		}
	}
	return out, nil
}

func attack(ctx context.Context, ig train.InputGradienter, ep *datasets.Episode, name string, eps float32, steps int, s Space, i int) error {
	if name == "pgd" {
		rng := rand.New(rand.NewPCG(uint64(i), uint64(math.Float32bits(eps))))
		return PGD(ctx, ig, ep, eps, PGDStepScale*eps/float32(steps), steps, s, rng)
	}
	g := make([]float32, len(ep.QueryX))
	if _, err := ig.QueryInputGrad(ep, g); err != nil {
		return err
	}
	FGSM(ep.QueryX, g, eps, s)
	return nil
}

type scores struct{ acc, f1 []float64 }

// score predicts every episode after perturb has changed a copy of its
// query rows.
func score(ctx context.Context, l train.Learner, eps []*datasets.Episode, perturb func(int, *datasets.Episode) error) (*scores, error) {
	sc := &scores{}
	for i, ep := range eps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		work := *ep
		work.QueryX = append([]float32(nil), ep.QueryX...)
		work.Source = nil
		if err := perturb(i, &work); err != nil {
			return nil, fmt.Errorf("episode %d: %w", i, err)
		}
		nq := len(ep.QueryY)
		labels, probs := make([]int32, nq), make([]float32, nq*ep.Ways)
		if err := l.Predict(&work, labels, probs); err != nil {
			return nil, fmt.Errorf("episode %d: %w", i, err)
		}
		c := eval.NewConfusion(ep.Ways)
		c.AddAll(ep.QueryY, labels)
		sc.acc = append(sc.acc, c.Accuracy())
		sc.f1 = append(sc.f1, c.MacroF1())
	}
	return sc, nil
}

// Table lays results out one row per attack and budget, scores in percent.
func Table(title string, results []Result) *eval.Table {
	t := &eval.Table{Title: title, Header: []string{"Attack", "Eps", "Accuracy (%)", "Macro-F1 (%)"}}
	for _, r := range results {
		t.Rows = append(t.Rows, []string{r.Attack, formatEps(r.Eps), r.Accuracy.Format(100, 2), r.MacroF1.Format(100, 2)})
	}
	t.Notes = []string{"Mean ± 95% interval over episodes; eps is the L∞ budget in encoded units (0 = clean)."}
	return t
}

// Plot writes stem.png and stem.svg: accuracy (percent, with 95% intervals)
// grouped by budget, one bar per attack.
func Plot(stem, title string, results []Result) error {
	var budgets []float32
	var names []string
	seenB, seenA := map[float32]bool{}, map[string]bool{}
	for _, r := range results {
		if !seenB[r.Eps] {
			seenB[r.Eps] = true
			budgets = append(budgets, r.Eps)
		}
		if !seenA[r.Attack] {
			seenA[r.Attack] = true
			names = append(names, r.Attack)
		}
	}
	groups := make([]string, len(budgets))
	for i, b := range budgets {
		groups[i] = "eps " + formatEps(b)
	}
	var series []eval.BarSeries
	for _, a := range names {
		s := eval.BarSeries{Name: a, Values: make([]float64, len(budgets)), CI: make([]float64, len(budgets))}
		for i := range s.Values {
			s.Values[i], s.CI[i] = math.NaN(), math.NaN()
		}
		for _, r := range results {
			if r.Attack != a {
				continue
			}
			for i, b := range budgets {
				if b == r.Eps {
					s.Values[i], s.CI[i] = 100*r.Accuracy.Mean, 100*r.Accuracy.HalfWidth
				}
			}
		}
		series = append(series, s)
	}
	return eval.PlotBars(stem, title, "accuracy (%)", groups, series)
}

func formatEps(e float32) string { return strconv.FormatFloat(float64(e), 'g', -1, 32) }
