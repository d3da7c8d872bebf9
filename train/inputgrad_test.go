package train

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// quantise rounds x to multiples of 2^-12 in [-7, 7], so that x ± 2^-14 is
// exact in float32 and finite differences see exactly the intended step.
func quantise(x []float32) {
	for i, v := range x {
		v = min(max(v, -7), 7)
		x[i] = float32(math.Round(float64(v)*4096) / 4096)
	}
}

func inputGradEpisode(t testing.TB, s Shape, seed uint64) *datasets.Episode {
	ep := tinyBatch(t, s, 1, seed)[0]
	quantise(ep.SupportX)
	quantise(ep.QueryX)
	return ep
}

// fdInputGrad is the central finite-difference gradient of the learner's
// query loss with respect to ep.QueryX.
func fdInputGrad(t *testing.T, ig InputGradienter, ep *datasets.Episode) []float64 {
	const h = 1.0 / (1 << 14)
	gx := make([]float32, len(ep.QueryX))
	loss := func() float64 {
		l, err := ig.QueryInputGrad(ep, gx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	fd := make([]float64, len(ep.QueryX))
	for i, v := range ep.QueryX {
		ep.QueryX[i] = v + h
		fp := loss()
		ep.QueryX[i] = v - h
		fm := loss()
		ep.QueryX[i] = v
		fd[i] = (fp - fm) / (2 * h)
	}
	return fd
}

func paramsOf(l Learner) []float64 {
	e := l.(engine)
	p := make([]float64, e.numParams())
	e.getParams(p)
	return p
}

type inputGradCase struct {
	algo, act, dist string
	testSteps       int
	deep            bool
}

func (c inputGradCase) config() Config {
	cfg := tinyConfig(c.algo, c.act, 2)
	cfg.TestInnerSteps = c.testSteps
	cfg.FinetuneSteps = 5
	cfg.FinetuneLR = 0.5
	if c.deep {
		cfg.Hidden = []int{5, 4}
	}
	if c.dist != "" {
		cfg.Distance = c.dist
	}
	return cfg
}

var inputGradCases = []inputGradCase{
	{"protonet", "tanh", "euclidean", 0, false},
	{"protonet", "relu", "euclidean", 0, true},
	{"protonet", "tanh", "cosine", 0, false},
	{"protonet", "sigmoid", "cosine", 0, true},
	{"nearest-centroid", "relu", "euclidean", 0, false},
	{"nearest-centroid", "relu", "cosine", 0, false},
	{"maml", "tanh", "", 3, false},
	{"maml", "tanh", "", 0, false},
	{"maml", "relu", "", 2, true},
	{"fomaml", "sigmoid", "", 2, false},
	{"reptile", "tanh", "", 2, false},
	{"anil", "leaky_relu", "", 2, true},
	{"metasgd", "tanh", "", 2, false},
	{"finetune", "tanh", "", 0, false},
	{"finetune", "relu", "", 0, true},
}

func TestQueryInputGradFiniteDifferences(t *testing.T) {
	for _, c := range inputGradCases {
		t.Run(fmt.Sprintf("%s/%s/%s/K%d/deep=%v", c.algo, c.act, c.dist, c.testSteps, c.deep), func(t *testing.T) {
			cfg := c.config()
			if c.algo == "nearest-centroid" {
				cfg.Hidden = nil
			}
			l := mustNew(t, cfg, tiny)
			ig, ok := l.(InputGradienter)
			if !ok {
				t.Fatalf("%s does not implement InputGradienter", c.algo)
			}
			ep := inputGradEpisode(t, tiny, 3)
			before := paramsOf(l)
			gx := make([]float32, len(ep.QueryX))
			loss, err := ig.QueryInputGrad(ep, gx)
			if err != nil {
				t.Fatal(err)
			}
			fd := fdInputGrad(t, ig, ep)
			g := make([]float64, len(gx))
			for i, v := range gx {
				g[i] = float64(v)
			}
			if r := relErr(g, fd); r > 1e-5 || math.IsNaN(r) {
				t.Fatalf("relative error %.3g between analytic and finite-difference input gradient\nanalytic %v\nfd       %v", r, g[:min(8, len(g))], fd[:min(8, len(fd))])
			}
			// The loss is the one Predict's scores imply.
			nq := tiny.Ways * tiny.Queries
			labels, scores := make([]int32, nq), make([]float32, nq*tiny.Ways)
			if err := l.Predict(ep, labels, scores); err != nil {
				t.Fatal(err)
			}
			var want float64
			for q, y := range ep.QueryY {
				want -= float64(scores[q*tiny.Ways+int(y)])
			}
			want /= float64(nq)
			if math.Abs(loss-want) > 1e-5*(1+math.Abs(want)) {
				t.Errorf("loss %g, Predict's scores give %g", loss, want)
			}
			after := paramsOf(l)
			for i := range before {
				if math.Float64bits(before[i]) != math.Float64bits(after[i]) {
					t.Fatalf("parameter %d changed from %g to %g", i, before[i], after[i])
				}
			}
		})
	}
}

// TestQueryInputGradFloat32 checks the float32 learners against the float64
// ones built from the same seed.
func TestQueryInputGradFloat32(t *testing.T) {
	for _, c := range inputGradCases {
		if c.algo == "nearest-centroid" {
			continue // always computed in float64
		}
		t.Run(fmt.Sprintf("%s/%s/%s/K%d/deep=%v", c.algo, c.act, c.dist, c.testSteps, c.deep), func(t *testing.T) {
			cfg := c.config()
			l64 := mustNew(t, cfg, tiny).(InputGradienter)
			cfg.Float64 = false
			l32 := mustNew(t, cfg, tiny).(InputGradienter)
			ep := inputGradEpisode(t, tiny, 4)
			g64, g32 := make([]float32, len(ep.QueryX)), make([]float32, len(ep.QueryX))
			loss64, err := l64.QueryInputGrad(ep, g64)
			if err != nil {
				t.Fatal(err)
			}
			loss32, err := l32.QueryInputGrad(ep, g32)
			if err != nil {
				t.Fatal(err)
			}
			a, b := make([]float64, len(g64)), make([]float64, len(g32))
			for i := range g64 {
				a[i], b[i] = float64(g64[i]), float64(g32[i])
			}
			if r := relErr(a, b); r > 1e-4 {
				t.Errorf("float32 input gradient differs from float64 by %.3g", r)
			}
			if math.Abs(loss64-loss32) > 1e-5*(1+loss64) {
				t.Errorf("float32 loss %g, float64 loss %g", loss32, loss64)
			}
		})
	}
}

func TestQueryInputGradErrors(t *testing.T) {
	cfg := tinyConfig("protonet", "tanh", 1)
	l := mustNew(t, cfg, tiny).(InputGradienter)
	ep := inputGradEpisode(t, tiny, 5)
	if _, err := l.QueryInputGrad(ep, make([]float32, 3)); err == nil {
		t.Error("short gradient buffer accepted")
	}
	other := inputGradEpisode(t, Shape{Ways: 2, Shots: 2, Queries: 2, MetaBatch: 1, Dim: 4}, 5)
	if _, err := l.QueryInputGrad(other, make([]float32, len(other.QueryX))); err == nil {
		t.Error("episode of another shape accepted")
	}
	cfg.Engine = "gorgonia"
	g := mustNew(t, cfg, tiny).(InputGradienter)
	_, err := g.QueryInputGrad(ep, make([]float32, len(ep.QueryX)))
	if err == nil || !strings.Contains(err.Error(), "input gradients are not implemented for protonet") {
		t.Errorf("gorgonia protonet: got error %v, want a not-implemented error", err)
	}
}
