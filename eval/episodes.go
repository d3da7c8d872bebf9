package eval

import (
	"encoding/json"
	"fmt"
	"math"
)

// EpisodeScore holds the metrics of one test episode, computed on its ways.
// The attack-vs-normal figures are NaN when normal traffic is not a way.
type EpisodeScore struct {
	Episode        int
	Accuracy       float64
	MacroPrecision float64
	MacroRecall    float64
	MacroF1        float64
	DetectionRate  float64
	FalseAlarmRate float64
	AUROC          float64 // attack-vs-normal, from the normal way's probability
}

// Metric names, in report order, as used in summaries and files.
var MetricNames = []string{"accuracy", "macro_precision", "macro_recall", "macro_f1", "detection_rate", "false_alarm_rate", "auroc"}

// Values returns the episode's metrics in MetricNames order.
func (s EpisodeScore) Values() []float64 {
	return []float64{s.Accuracy, s.MacroPrecision, s.MacroRecall, s.MacroF1, s.DetectionRate, s.FalseAlarmRate, s.AUROC}
}

// Evaluation accumulates test episodes drawn from one pool: the scores of
// each episode, and a confusion matrix over the pool's classes pooled over
// all episodes (so per-class figures carry class names, not way indices).
type Evaluation struct {
	Classes    []string // pool class names
	Categories []string // their categories
	Pooled     *Confusion
	Episodes   []EpisodeScore

	ways *Confusion // scratch, reused per episode
}

// NewEvaluation starts an evaluation over a pool's classes.
func NewEvaluation(classes, categories []string) *Evaluation {
	return &Evaluation{Classes: classes, Categories: categories, Pooled: NewConfusion(len(classes))}
}

// EpisodeInput is what Add needs of one predicted episode.
type EpisodeInput struct {
	Ways      int
	Classes   []int   // pool class of each way
	NormalWay int     // way of normal traffic, or -1
	Truth     []int32 // true way of each query
	Pred      []int32 // predicted way of each query
	// Scores are per-way log-probabilities [len(Truth)*Ways]; optional, used
	// for the attack-vs-normal AUROC.
	Scores []float32
}

// Add scores one episode and pools it.
func (e *Evaluation) Add(in EpisodeInput) (EpisodeScore, error) {
	if len(in.Truth) != len(in.Pred) || len(in.Classes) != in.Ways {
		return EpisodeScore{}, fmt.Errorf("eval: episode with %d truths, %d predictions, %d classes for %d ways",
			len(in.Truth), len(in.Pred), len(in.Classes), in.Ways)
	}
	for _, c := range in.Classes {
		if c < 0 || c >= len(e.Classes) {
			return EpisodeScore{}, fmt.Errorf("eval: pool class %d out of range (pool has %d)", c, len(e.Classes))
		}
	}
	if in.NormalWay < -1 || in.NormalWay >= in.Ways {
		return EpisodeScore{}, fmt.Errorf("eval: normal way %d, want -1 (none) or 0..%d", in.NormalWay, in.Ways-1)
	}
	if len(in.Scores) != 0 && len(in.Scores) != len(in.Truth)*in.Ways {
		return EpisodeScore{}, fmt.Errorf("eval: %d scores for %d queries of %d ways, want %d or none",
			len(in.Scores), len(in.Truth), in.Ways, len(in.Truth)*in.Ways)
	}
	for i := range in.Truth {
		if in.Truth[i] < 0 || int(in.Truth[i]) >= in.Ways || in.Pred[i] < 0 || int(in.Pred[i]) >= in.Ways {
			return EpisodeScore{}, fmt.Errorf("eval: query %d has way %d predicted as %d, want 0..%d", i, in.Truth[i], in.Pred[i], in.Ways-1)
		}
	}
	if e.ways == nil || e.ways.N != in.Ways {
		e.ways = NewConfusion(in.Ways)
	}
	clear(e.ways.Counts)
	e.ways.AddAll(in.Truth, in.Pred)
	for i := range in.Truth {
		e.Pooled.Add(in.Classes[in.Truth[i]], in.Classes[in.Pred[i]])
	}
	c := e.ways
	s := EpisodeScore{
		Episode:        len(e.Episodes),
		Accuracy:       c.Accuracy(),
		MacroPrecision: c.MacroPrecision(),
		MacroRecall:    c.MacroRecall(),
		MacroF1:        c.MacroF1(),
		DetectionRate:  math.NaN(),
		FalseAlarmRate: math.NaN(),
		AUROC:          math.NaN(),
	}
	if in.NormalWay >= 0 {
		s.DetectionRate = c.DetectionRate(in.NormalWay)
		s.FalseAlarmRate = c.FalseAlarmRate(in.NormalWay)
		if len(in.Scores) == len(in.Truth)*in.Ways {
			s.AUROC = attackAUROC(in)
		}
	}
	e.Episodes = append(e.Episodes, s)
	return s, nil
}

// attackAUROC scores each query as an attack by -log p(normal), which ranks
// the queries as 1 - p(normal) does without rounding confident ones to a tie
// at 1; NaN when the episode has only one of attack and normal queries.
func attackAUROC(in EpisodeInput) float64 {
	scores := make([]float64, len(in.Truth))
	attack := make([]bool, len(in.Truth))
	for i, t := range in.Truth {
		scores[i] = -float64(in.Scores[i*in.Ways+in.NormalWay])
		attack[i] = int(t) != in.NormalWay
	}
	a, err := AUROC(scores, attack)
	if err != nil {
		return math.NaN()
	}
	return a
}

// Summaries returns each metric's mean and 95% confidence interval over the
// episodes, keyed by MetricNames; NaN episodes (no normal way) are skipped.
func (e *Evaluation) Summaries() map[string]Summary {
	cols := make([][]float64, len(MetricNames))
	for _, ep := range e.Episodes {
		for m, v := range ep.Values() {
			if !math.IsNaN(v) {
				cols[m] = append(cols[m], v)
			}
		}
	}
	out := make(map[string]Summary, len(MetricNames))
	for m, name := range MetricNames {
		if len(cols[m]) > 0 {
			out[name] = MeanCI(cols[m])
		}
	}
	return out
}

// ClassScore is one class's figures from the pooled confusion matrix. A
// figure with a zero denominator is NaN (null in JSON): precision of a class
// never predicted, recall of a class never present, F1 of a class neither.
type ClassScore struct {
	Class     string  `json:"class"`
	Category  string  `json:"category"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int64   `json:"support"`
}

// classScoreJSON is ClassScore with its figures nullable.
type classScoreJSON struct {
	Class     string   `json:"class"`
	Category  string   `json:"category"`
	Precision *float64 `json:"precision"`
	Recall    *float64 `json:"recall"`
	F1        *float64 `json:"f1"`
	Support   int64    `json:"support"`
}

func (c ClassScore) MarshalJSON() ([]byte, error) {
	return json.Marshal(classScoreJSON{c.Class, c.Category, Nullable(c.Precision), Nullable(c.Recall), Nullable(c.F1), c.Support})
}

func (c *ClassScore) UnmarshalJSON(b []byte) error {
	var v classScoreJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = ClassScore{v.Class, v.Category, FromNullable(v.Precision), FromNullable(v.Recall), FromNullable(v.F1), v.Support}
	return nil
}

// Nullable is v for a JSON field that is null when v is not finite (JSON
// has no NaN or infinity).
func Nullable(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// FromNullable reads a Nullable field back: null is NaN.
func FromNullable(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// PerClass returns per-class precision, recall and F1 over all episodes.
func (e *Evaluation) PerClass() []ClassScore {
	out := make([]ClassScore, len(e.Classes))
	undefined := func(denominator int64, v float64) float64 {
		if denominator == 0 {
			return math.NaN()
		}
		return v
	}
	for k, name := range e.Classes {
		support, predicted := e.Pooled.Support(k), e.Pooled.predicted(k)
		out[k] = ClassScore{Class: name, Support: support,
			Precision: undefined(predicted, e.Pooled.Precision(k)),
			Recall:    undefined(support, e.Pooled.Recall(k)),
			F1:        undefined(support+predicted, e.Pooled.F1(k))}
		if k < len(e.Categories) {
			out[k].Category = e.Categories[k]
		}
	}
	return out
}
