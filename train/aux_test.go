package train

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// auxCategories is the category count of the auxiliary-head tests.
const auxCategories = 3

// withAuxLabels gives b's episodes the labels the heads learn from: a normal
// way in the first episode only (so both binary classes occur), and each
// way's category its pool class modulo auxCategories.
func withAuxLabels(b datasets.Batch) datasets.Batch {
	for i, ep := range b {
		ep.NormalWay = -1
		if i == 0 {
			ep.NormalWay = 1
		}
		for w, c := range ep.Classes {
			ep.WayCategory[w] = int32(c % auxCategories)
		}
	}
	return b
}

func auxConfig(algo, act string, inner int) Config {
	c := tinyConfig(algo, act, inner)
	c.Aux = AuxConfig{BinaryWeight: 0.7, CategoryWeight: 1.3, Categories: auxCategories}
	return c
}

// TestAuxMetaGradientFiniteDifferences checks the whole objective (episodic
// loss plus both weighted heads) of every learner whose meta-gradient is a
// true gradient against central finite differences, in float64.
func TestAuxMetaGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		algo, act, dist string
		inner           int
		hidden          []int
	}{
		{"protonet", "tanh", "euclidean", 1, []int{5, 4}},
		{"protonet", "relu", "cosine", 1, nil},
		{"maml", "tanh", "", 2, []int{5, 4}},
		{"anil", "sigmoid", "", 2, nil},
		{"metasgd", "tanh", "", 2, nil},
		{"finetune", "tanh", "", 1, nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", c.algo, c.act, c.dist), func(t *testing.T) {
			cfg := auxConfig(c.algo, c.act, c.inner)
			if c.hidden != nil {
				cfg.Hidden = c.hidden
			}
			if c.dist != "" {
				cfg.Distance = c.dist
			}
			g := checkMetaGradFD(t, mustNew(t, cfg, tiny).(engine), withAuxLabels(tinyBatch(t, tiny, 2, 3)))
			// The heads' own parameters get gradient too.
			plain := ModelCost(tinyConfig(c.algo, c.act, c.inner), tiny).Params
			if c.hidden != nil {
				cfg.Aux = AuxConfig{}
				plain = ModelCost(cfg, tiny).Params
			}
			var head float64
			for _, v := range g[plain:] {
				head += v * v
			}
			if len(g) <= plain || head == 0 {
				t.Errorf("heads have %d parameters with gradient norm² %g", len(g)-plain, head)
			}
		})
	}
}

// auxAndPlain builds the learner of cfg (with heads) and the same learner
// without them, set to the parameters they share; p holds the first's.
func auxAndPlain(t *testing.T, cfg Config) (with, plain engine, p []float64) {
	t.Helper()
	with = mustNew(t, cfg, tiny).(engine)
	plainCfg := cfg
	plainCfg.Aux = AuxConfig{}
	plain = mustNew(t, plainCfg, tiny).(engine)
	p = make([]float64, with.numParams())
	with.getParams(p)
	plain.setParams(p[:plain.numParams()])
	return with, plain, p
}

// TestAuxGradientAddsToFirstOrderLearners checks FOMAML and Reptile, whose
// meta-"gradients" are not gradients of their losses: the heads must add
// exactly the finite-difference gradient of the auxiliary loss.
func TestAuxGradientAddsToFirstOrderLearners(t *testing.T) {
	for _, algo := range []string{"fomaml", "reptile"} {
		t.Run(algo, func(t *testing.T) {
			with, plain, p := auxAndPlain(t, auxConfig(algo, "tanh", 2))
			b := withAuxLabels(tinyBatch(t, tiny, 2, 5))
			np := plain.numParams()
			gw, gp := make([]float64, len(p)), make([]float64, np)
			if _, err := with.metaGrad(b, gw); err != nil {
				t.Fatal(err)
			}
			if _, err := plain.metaGrad(b, gp); err != nil {
				t.Fatal(err)
			}
			// The auxiliary loss alone: the total less the plain learner's
			// loss at the same shared parameters.
			lossWith, lossPlain := metaLoss(t, with, b), metaLoss(t, plain, b)
			fd := fdGrad(p, func(q []float64) float64 { return lossWith(q) - lossPlain(q[:np]) })
			diff := make([]float64, len(p))
			for i := range diff {
				diff[i] = gw[i]
				if i < np {
					diff[i] -= gp[i]
				}
			}
			if r := relErr(diff, fd); r > 1e-5 || math.IsNaN(r) {
				t.Fatalf("heads add a gradient %.3g away from the auxiliary loss's", r)
			}
		})
	}
}

// TestAuxObjectiveByDefinition recomputes the documented objective of a
// meta-batch: the plain learner's loss at the same shared parameters, plus
// BinaryWeight times the binary head's mean cross-entropy and CategoryWeight
// times the category head's, over every support and query row, at the
// meta-parameters, with labels from NormalWay and WayCategory.
func TestAuxObjectiveByDefinition(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "reptile", "finetune"} {
		t.Run(algo, func(t *testing.T) {
			cfg := auxConfig(algo, "tanh", 2)
			cfg.Hidden = []int{5, 4}
			with, plain, p := auxAndPlain(t, cfg)
			b := withAuxLabels(tinyBatch(t, tiny, 2, 9))
			np := plain.numParams()
			got := metaLoss(t, with, b)(p)
			want := metaLoss(t, plain, b)(p[:np])

			enc := newMLP(tiny.Dim, cfg.Hidden, 0, actTanh)
			h := enc.outDim()
			// ce is the mean cross-entropy of the linear head w [h,C] then
			// bias [C] on the embeddings emb of labelled rows.
			ce := func(w []float64, C int, emb []float64, ys []int32) float64 {
				var sum float64
				for r, y := range ys {
					logits := make([]float64, C)
					mx := math.Inf(-1)
					for j := range logits {
						logits[j] = w[h*C+j]
						for k := 0; k < h; k++ {
							logits[j] += emb[r*h+k] * w[k*C+j]
						}
						mx = max(mx, logits[j])
					}
					var z float64
					for _, v := range logits {
						z += math.Exp(v - mx)
					}
					sum += mx + math.Log(z) - logits[y]
				}
				return sum / float64(len(ys))
			}
			var emb []float64
			var bin, cat []int32
			for _, ep := range b {
				for _, part := range []struct {
					x []float32
					y []int32
				}{{ep.SupportX, ep.SupportY}, {ep.QueryX, ep.QueryY}} {
					emb = append(emb, hiddenOut(enc, p, part.x, len(part.y), len(cfg.Hidden))...)
					for _, way := range part.y {
						bin = append(bin, int32(b2i(int(way) != ep.NormalWay)))
						cat = append(cat, ep.WayCategory[way])
					}
				}
			}
			heads := p[np:]
			want += cfg.Aux.BinaryWeight*ce(heads, 2, emb, bin) +
				cfg.Aux.CategoryWeight*ce(heads[2*h+2:], auxCategories, emb, cat)
			if math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
				t.Errorf("objective %.15g, by definition %.15g", got, want)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestAuxHeadsLeaveTheModelAlone checks that heads are appended: the shared
// parameters start where they would without heads, and zero weights mean
// no heads at all.
func TestAuxHeadsLeaveTheModelAlone(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "metasgd", "finetune"} {
		cfg := auxConfig(algo, "relu", 1)
		with := mustNew(t, cfg, tiny).(engine)
		cfg.Aux = AuxConfig{}
		plain := mustNew(t, cfg, tiny).(engine)
		pw, pp := make([]float64, with.numParams()), make([]float64, plain.numParams())
		with.getParams(pw)
		plain.getParams(pp)
		h := 5
		if want := len(pp) + h*2 + 2 + h*auxCategories + auxCategories; len(pw) != want {
			t.Errorf("%s: %d parameters with heads, want %d", algo, len(pw), want)
		}
		for i := range pp {
			if pw[i] != pp[i] {
				t.Fatalf("%s: parameter %d is %g with heads, %g without", algo, i, pw[i], pp[i])
			}
		}
		if got := ModelCost(auxConfig(algo, "relu", 1), tiny).Params; got != len(pw) {
			t.Errorf("%s: ModelCost counts %d parameters, the learner has %d", algo, got, len(pw))
		}
	}
	cfg := auxConfig("protonet", "relu", 1)
	cfg.Aux.BinaryWeight, cfg.Aux.CategoryWeight = 0, 0
	if l := mustNew(t, cfg, tiny); l.(*protoNet[float64]).aux != nil {
		t.Error("zero weights built heads")
	}
}

// TestPredictAuxMatchesHeads recomputes PredictAux from the embedding and
// the head parameters by hand.
func TestPredictAuxMatchesHeads(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "finetune"} {
		cfg := auxConfig(algo, "tanh", 1)
		l := mustNew(t, cfg, tiny)
		ep := withAuxLabels(tinyBatch(t, tiny, 1, 17))[0]
		nq := tiny.Ways * tiny.Queries
		attack, cat := make([]float32, nq), make([]int32, nq)
		if err := l.(AuxPredictor).PredictAux(ep, attack, cat); err != nil {
			t.Fatal(err)
		}
		e := l.(Embedder)
		h := e.EmbedDim()
		emb := make([]float32, nq*h)
		if err := e.Embed(ep.QueryX, nq, emb); err != nil {
			t.Fatal(err)
		}
		p := make([]float64, l.(engine).numParams())
		l.(engine).getParams(p)
		off := len(p) - (h*2 + 2 + h*auxCategories + auxCategories)
		logits := func(w []float64, C, r int) []float64 {
			out := make([]float64, C)
			for j := range out {
				out[j] = w[h*C+j]
				for k := 0; k < h; k++ {
					out[j] += float64(emb[r*h+k]) * w[k*C+j]
				}
			}
			return out
		}
		for r := 0; r < nq; r++ {
			bl := logits(p[off:], 2, r)
			want := 1 / (1 + math.Exp(bl[0]-bl[1]))
			if math.Abs(float64(attack[r])-want) > 1e-6 {
				t.Fatalf("%s row %d: P(attack) %g, by hand %g", algo, r, attack[r], want)
			}
			cl := logits(p[off+h*2+2:], auxCategories, r)
			best := 0
			for j, v := range cl {
				if v > cl[best] {
					best = j
				}
			}
			if int(cat[r]) != best {
				t.Fatalf("%s row %d: category %d, by hand %d (logits %v)", algo, r, cat[r], best, cl)
			}
		}
	}
}

// TestAuxHeadsLearn trains ProtoNet and MAML with heads on synthetic
// classes whose category is their index modulo 3 and whose class 0 is
// "normal", then checks the heads on held-out episodes of those classes.
func TestAuxHeadsLearn(t *testing.T) {
	s := Shape{Ways: 4, Shots: 3, Queries: 6, MetaBatch: 4, Dim: 12}
	syn, err := NewSynthetic(12, s.Dim, 6, 2, 1, 9)
	if err != nil {
		t.Fatal(err)
	}
	fill := func(ep *datasets.Episode) {
		if err := syn.Fill(ep, 0, syn.Classes()); err != nil {
			t.Fatal(err)
		}
		for w, c := range ep.Classes {
			ep.WayCategory[w] = int32(c % auxCategories)
			if c == 0 {
				ep.NormalWay = w
			}
		}
	}
	for _, algo := range []string{"protonet", "maml"} {
		cfg := DefaultConfig(algo)
		cfg.Hidden = []int{32}
		cfg.InnerLR = 0.1
		cfg.InnerSteps = 1
		cfg.Optimizer.LR = 3e-3
		cfg.Aux = AuxConfig{BinaryWeight: 1, CategoryWeight: 1, Categories: auxCategories}
		l := mustNew(t, cfg, s)
		batch := make(datasets.Batch, s.MetaBatch)
		for i := range batch {
			batch[i] = datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
		}
		for range 600 {
			for _, ep := range batch {
				fill(ep)
			}
			if _, err := l.MetaStep(batch); err != nil {
				t.Fatal(err)
			}
		}
		nq := s.Ways * s.Queries
		attack, cat := make([]float32, nq), make([]int32, nq)
		var binRight, catRight, all int
		ep := datasets.NewEpisode(s.Ways, s.Shots, s.Queries, s.Dim)
		for range 50 {
			fill(ep)
			if err := l.(AuxPredictor).PredictAux(ep, attack, cat); err != nil {
				t.Fatal(err)
			}
			for r, way := range ep.QueryY {
				isAttack := int(way) != ep.NormalWay
				if (attack[r] > 0.5) == isAttack {
					binRight++
				}
				if cat[r] == ep.WayCategory[way] {
					catRight++
				}
				all++
			}
		}
		bin, catAcc := float64(binRight)/float64(all), float64(catRight)/float64(all)
		t.Logf("%s: binary head %.3f, category head %.3f", algo, bin, catAcc)
		// Normal is a way in a third of the episodes, so a constant "attack"
		// scores about 0.92; a constant category about 1/3.
		if bin < 0.95 || catAcc < 0.8 {
			t.Errorf("%s: held-out binary accuracy %.3f, category accuracy %.3f: the heads did not learn", algo, bin, catAcc)
		}
	}
}

func TestAuxErrors(t *testing.T) {
	bad := []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Aux.BinaryWeight = -1 }, "Aux.BinaryWeight"},
		{func(c *Config) { c.Aux.CategoryWeight = math.Inf(1) }, "Aux.CategoryWeight"},
		{func(c *Config) { c.Aux.CategoryWeight, c.Aux.Categories = 1, 1 }, "Aux.Categories"},
		{func(c *Config) { c.Algo = "nearest-centroid" }, "Aux"},
		{func(c *Config) { c.Engine = "gorgonia" }, "Aux"},
	}
	for _, b := range bad {
		cfg := auxConfig("protonet", "relu", 1)
		b.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "config "+b.field+":") {
			t.Errorf("want an error naming %s, got %v", b.field, err)
		}
	}

	l := mustNew(t, auxConfig("maml", "relu", 1), tiny)
	b := withAuxLabels(tinyBatch(t, tiny, 2, 3))
	b[1].WayCategory[2] = auxCategories
	if _, err := l.MetaStep(b); err == nil || !strings.Contains(err.Error(), "episode 1 way 2 has category 3") {
		t.Errorf("category outside the head: %v", err)
	}
	b[1].WayCategory[2] = -1
	if _, err := l.MetaStep(b); err == nil || !strings.Contains(err.Error(), "category -1") {
		t.Errorf("unknown category: %v", err)
	}

	cfg := auxConfig("protonet", "relu", 1)
	cfg.Aux.CategoryWeight = 0
	l = mustNew(t, cfg, tiny)
	nq := tiny.Ways * tiny.Queries
	ep := withAuxLabels(tinyBatch(t, tiny, 1, 3))[0]
	if err := l.(AuxPredictor).PredictAux(ep, nil, make([]int32, nq)); err == nil || !strings.Contains(err.Error(), "no category head") {
		t.Errorf("category head asked of a binary-only learner: %v", err)
	}
	if err := l.(AuxPredictor).PredictAux(ep, make([]float32, nq-1), nil); err == nil {
		t.Error("short attack slice: no error")
	}
	cfg.Aux = AuxConfig{}
	l = mustNew(t, cfg, tiny)
	if err := l.(AuxPredictor).PredictAux(ep, make([]float32, nq), nil); err == nil || !strings.Contains(err.Error(), "no auxiliary heads") {
		t.Errorf("PredictAux without heads: %v", err)
	}
}

func TestAuxCheckpoint(t *testing.T) {
	cfg := auxConfig("protonet", "relu", 1)
	cfg.Float64 = false
	l := mustNew(t, cfg, tiny)
	b := withAuxLabels(tinyBatch(t, tiny, 2, 3))
	for range 3 {
		if _, err := l.MetaStep(b); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := l.SaveCheckpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	fresh := mustNew(t, cfg, tiny)
	if _, err := fresh.LoadCheckpoint(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	nq := tiny.Ways * tiny.Queries
	a1, a2 := make([]float32, nq), make([]float32, nq)
	c1, c2 := make([]int32, nq), make([]int32, nq)
	if err := l.(AuxPredictor).PredictAux(b[0], a1, c1); err != nil {
		t.Fatal(err)
	}
	if err := fresh.(AuxPredictor).PredictAux(b[0], a2, c2); err != nil {
		t.Fatal(err)
	}
	for i := range a1 {
		if a1[i] != a2[i] || c1[i] != c2[i] {
			t.Fatalf("restored heads differ at row %d: %g/%d vs %g/%d", i, a1[i], c1[i], a2[i], c2[i])
		}
	}
	// A learner with other heads refuses the checkpoint.
	other := cfg
	other.Aux.Categories = 4
	if _, err := mustNew(t, other, tiny).LoadCheckpoint(bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "auxiliary heads differ") {
		t.Errorf("checkpoint with 3-category heads loaded into 4-category learner: %v", err)
	}
}

func TestAuxSteadyStateDoesNotAllocate(t *testing.T) {
	for _, algo := range []string{"protonet", "maml", "reptile", "finetune"} {
		cfg := smallConfig(algo)
		cfg.Aux = AuxConfig{BinaryWeight: 0.5, CategoryWeight: 0.5, Categories: auxCategories}
		l := mustNew(t, cfg, small)
		b := withAuxLabels(tinyBatch(t, small, 2, 1))
		if _, err := l.MetaStep(b); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { l.MetaStep(b) }); n != 0 {
			t.Errorf("%s: MetaStep with heads allocates %.1f times per step", algo, n)
		}
		nq := small.Ways * small.Queries
		attack, cat := make([]float32, nq), make([]int32, nq)
		if n := testing.AllocsPerRun(20, func() { l.(AuxPredictor).PredictAux(b[0], attack, cat) }); n != 0 {
			t.Errorf("%s: PredictAux allocates %.1f times per call", algo, n)
		}
	}
}
