package train

import (
	"math"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// TestPredictReadsNoQueryLabels checks that a prediction depends on the
// support set and the query features only: with the query rows reversed and
// their labels changed, every query row keeps its scores. A learner that read
// the query labels, or the way-major order of the query rows, would score
// better on meta-test than it can.
func TestPredictReadsNoQueryLabels(t *testing.T) {
	type learnerCase struct{ name, algo, engine string }
	var cases []learnerCase
	for _, algo := range allAlgos {
		cases = append(cases, learnerCase{algo, algo, ""})
	}
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		cases = append(cases, learnerCase{algo + "-gorgonia", algo, "gorgonia"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := smallConfig(c.algo)
			cfg.Engine = c.engine
			l := mustNew(t, cfg, small)
			for i := range 3 {
				if _, err := l.MetaStep(tinyBatch(t, small, small.MetaBatch, uint64(10+i))); err != nil {
					t.Fatal(err)
				}
			}
			ep := tinyBatch(t, small, 1, 99)[0]
			nq, ways, d := small.Ways*small.Queries, small.Ways, small.Dim
			labels, scores := make([]int32, nq), make([]float32, nq*ways)
			if err := l.Predict(ep, labels, scores); err != nil {
				t.Fatal(err)
			}
			rev := datasets.NewEpisode(ways, small.Shots, small.Queries, d)
			copy(rev.SupportX, ep.SupportX)
			copy(rev.SupportY, ep.SupportY)
			for i := range nq {
				j := nq - 1 - i
				copy(rev.QueryX[i*d:(i+1)*d], ep.QueryX[j*d:(j+1)*d])
				rev.QueryY[i] = (ep.QueryY[j] + 1) % int32(ways)
			}
			revLabels, revScores := make([]int32, nq), make([]float32, nq*ways)
			if err := l.Predict(rev, revLabels, revScores); err != nil {
				t.Fatal(err)
			}
			for i := range nq {
				j := nq - 1 - i
				if revLabels[i] != labels[j] {
					t.Errorf("query row %d predicted %d, %d before its row and labels moved", j, revLabels[i], labels[j])
				}
				for w := range ways {
					a, b := float64(revScores[i*ways+w]), float64(scores[j*ways+w])
					if math.Abs(a-b) > 1e-5*max(1, math.Abs(b)) {
						t.Errorf("query row %d way %d: score %v, %v before its row and labels moved", j, w, a, b)
					}
				}
			}
		})
	}
}
