package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/metaids/metaids/datasets"
)

// AuxConfig configures multi-task auxiliary heads: linear classifiers on the
// learner's embedding (what Embedder returns) trained jointly with the
// episodic loss. A meta-batch's objective becomes
//
//	L_episodic + BinaryWeight·CE(attack vs normal) + CategoryWeight·CE(category)
//
// where each cross-entropy is the mean over every support and query row of
// the batch, taken at the meta-parameters (before any inner-loop
// adaptation), so the heads shape the shared representation rather than
// each task's adapted copy. Binary labels come from Episode.NormalWay (the
// normal way is "normal", every other way "attack"), category labels from
// Episode.WayCategory. A head whose weight is 0 does not exist. Predict does
// not use the heads; PredictAux reads them.
type AuxConfig struct {
	BinaryWeight   float64 // weight of the attack-vs-normal head, >= 0
	CategoryWeight float64 // weight of the category head, >= 0
	Categories     int     // outputs of the category head; >= 2 when CategoryWeight > 0
}

// Enabled reports whether the learner has any auxiliary head.
func (a AuxConfig) Enabled() bool { return a.BinaryWeight > 0 || a.CategoryWeight > 0 }

// check reports the first invalid field through bad.
func (a AuxConfig) check(bad func(field, format string, args ...any) error) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"BinaryWeight", a.BinaryWeight}, {"CategoryWeight", a.CategoryWeight}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return bad("Aux."+f.name, "%g, want a finite weight >= 0", f.v)
		}
	}
	if a.CategoryWeight > 0 && a.Categories < 2 {
		return bad("Aux.Categories", "%d, the category head needs >= 2 categories", a.Categories)
	}
	if a.Categories < 0 {
		return bad("Aux.Categories", "%d, want >= 0", a.Categories)
	}
	return nil
}

// auxLayout describes the heads of a, which is what the parameter layout
// depends on (the weights themselves may differ between checkpoint and
// learner).
func auxLayout(a AuxConfig) string {
	switch {
	case a.BinaryWeight > 0 && a.CategoryWeight > 0:
		return fmt.Sprintf("binary and %d-category heads", a.Categories)
	case a.BinaryWeight > 0:
		return "binary head"
	case a.CategoryWeight > 0:
		return fmt.Sprintf("%d-category head", a.Categories)
	}
	return "no heads"
}

// AuxPredictor reads the auxiliary heads of a learner built with an enabled
// AuxConfig. Every learner with an encoder implements it.
type AuxPredictor interface {
	// PredictAux embeds the query rows of ep with the meta-parameters and
	// writes, per query row, the binary head's probability that the row is
	// an attack into attack [Ways*Queries] and the category head's arg-max
	// (an index into the category list of the training sampler) into
	// category [Ways*Queries]. A nil slice skips its head; asking for a head
	// the learner does not have is an error.
	PredictAux(ep *datasets.Episode, attack []float32, category []int32) error
}

// The binary head's classes.
const (
	auxNormal = 0
	auxAttack = 1
)

// auxHead is one linear head on the embedding.
type auxHead[T Float] struct {
	weight     T
	m          *mlp // a single linear layer, embedding -> classes
	off        int  // where its parameters start in the learner's vector
	ps         *pass[T]
	sc         *scratch[T]
	y          []int32
	prob, dlog []T
}

func (h *auxHead[T]) classes() int { return h.m.outDim() }

// params returns the head's slice of a parameter (or gradient) vector.
func (h *auxHead[T]) params(p []T) []T { return p[h.off : h.off+h.m.nParam] }

// forward evaluates the head on n embedding rows.
func (h *auxHead[T]) forward(p, emb []T, n int) []T {
	h.ps.rows = n
	forward(h.m, h.params(p), emb, h.ps, h.sc)
	return h.ps.out()[:n*h.classes()]
}

// auxHeads are a learner's auxiliary heads and the encoder pass that feeds
// them. Their parameters follow every other parameter of the learner, so the
// rest of the layout does not depend on them.
type auxHeads[T Float] struct {
	cfg    AuxConfig
	enc    *mlp // the learner's encoder: a prefix of its parameter vector
	binary *auxHead[T]
	cat    *auxHead[T]
	list   []*auxHead[T] // the heads that exist, binary first
	x      []T           // stacked inputs
	ps     *pass[T]
	sc     *scratch[T]
	demb   []T
}

// auxParamCount is the number of parameters the heads of cfg add to an
// encoder of output width h.
func auxParamCount(cfg AuxConfig, h int) int {
	n := 0
	if cfg.BinaryWeight > 0 {
		n += h*2 + 2
	}
	if cfg.CategoryWeight > 0 {
		n += h*cfg.Categories + cfg.Categories
	}
	return n
}

// newAuxHeads lays the heads of cfg out from parameter off on, for batches
// of up to rows rows; nil when cfg has no head.
func newAuxHeads[T Float](cfg AuxConfig, enc *mlp, off, rows int) *auxHeads[T] {
	if !cfg.Enabled() {
		return nil
	}
	a := &auxHeads[T]{cfg: cfg, enc: enc}
	h := enc.outDim()
	head := func(weight float64, classes int) *auxHead[T] {
		m := newMLP(h, nil, classes, enc.act)
		hd := &auxHead[T]{
			weight: T(weight), m: m, off: off,
			ps: newPass[T](m, rows),
			// A single linear layer needs only the transpose buffer.
			sc: &scratch[T]{wt: make([]T, m.width*m.width), rowsLimit: rows},
			y:  make([]int32, rows), prob: make([]T, rows*classes), dlog: make([]T, rows*classes),
		}
		off += m.nParam
		return hd
	}
	if cfg.BinaryWeight > 0 {
		a.binary = head(cfg.BinaryWeight, 2)
		a.list = append(a.list, a.binary)
	}
	if cfg.CategoryWeight > 0 {
		a.cat = head(cfg.CategoryWeight, cfg.Categories)
		a.list = append(a.list, a.cat)
	}
	a.x = make([]T, rows*enc.layers[0].in)
	a.ps = newPass[T](enc, rows)
	a.sc = newScratch[T](enc, rows, false)
	a.demb = make([]T, rows*h)
	return a
}

// init draws the heads' initial weights from their own stream of seed, so
// that the rest of the model starts where it would without them.
func (a *auxHeads[T]) init(p []T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x61757868656164)) // "auxhead"
	for _, h := range a.list {
		tmp := make([]float64, h.m.nParam)
		h.m.init(tmp, rng)
		for i, v := range tmp {
			h.params(p)[i] = T(v)
		}
	}
}

// labels writes each head's label for every row of b, stacked as stack
// stacks them (per episode, support rows then query rows), and returns the
// row count.
func (a *auxHeads[T]) labels(b datasets.Batch) (int, error) {
	n := 0
	for i, ep := range b {
		for _, ys := range [][]int32{ep.SupportY, ep.QueryY} {
			for _, way := range ys {
				if a.binary != nil {
					a.binary.y[n] = auxAttack
					if int(way) == ep.NormalWay {
						a.binary.y[n] = auxNormal
					}
				}
				if a.cat != nil {
					if int(way) >= len(ep.WayCategory) {
						return 0, fmt.Errorf("aux heads: episode %d has no category for way %d: %w", i, way, ErrShape)
					}
					c := ep.WayCategory[way]
					if c < 0 || int(c) >= a.cfg.Categories {
						return 0, fmt.Errorf("aux heads: episode %d way %d has category %d, outside the category head's [0,%d) (the sampler's Categories must list every meta-train category)",
							i, way, c, a.cfg.Categories)
					}
					a.cat.y[n] = c
				}
				n++
			}
		}
	}
	return n, nil
}

// lossGrad evaluates the weighted head losses on the n embedding rows emb
// (labelled by labels), accumulates the heads' gradients into g and the
// embedding gradient into demb, and returns the weighted loss.
func (a *auxHeads[T]) lossGrad(emb []T, n int, p, g, demb []T) float64 {
	var loss float64
	e := a.enc.outDim()
	for _, h := range a.list {
		C := h.classes()
		logits := h.forward(p, emb, n)
		dlog := h.dlog[:n*C]
		loss += float64(h.weight) * softmaxCE(logits, h.y[:n], n, C, h.prob, dlog)
		for i := range dlog {
			dlog[i] *= h.weight
		}
		backward(h.m, h.params(p), emb, h.ps, h.sc, dlog, h.params(g))
		// demb += dlog·Wᵀ, W the head's [e, C] weights.
		matMulTB(demb[:n*e], dlog, h.params(p)[:e*C], h.sc.wt, n, C, e, true)
	}
	return loss
}

// step adds the heads' loss gradient on every row of b, through the
// encoder, into g and returns the weighted loss: for learners whose own
// loss does not already embed every row.
func (a *auxHeads[T]) step(b datasets.Batch, p, g []T) (float64, error) {
	n, err := a.labels(b)
	if err != nil {
		return 0, err
	}
	x := stack(a.x, b)
	a.ps.rows = n
	forward(a.enc, p, x, a.ps, a.sc)
	demb := a.demb[:n*a.enc.outDim()]
	clear(demb)
	loss := a.lossGrad(a.ps.out(), n, p, g, demb)
	backward(a.enc, p, x, a.ps, a.sc, demb, g)
	return loss, nil
}

// predict embeds ep's query rows at p and writes the heads' outputs (see
// AuxPredictor.PredictAux).
func (a *auxHeads[T]) predict(ep *datasets.Episode, p []T, attack []float32, category []int32) error {
	nq := ep.Ways * ep.Queries
	if attack != nil && a.binary == nil {
		return fmt.Errorf("PredictAux: the learner has no binary head (its BinaryWeight is 0)")
	}
	if category != nil && a.cat == nil {
		return fmt.Errorf("PredictAux: the learner has no category head (its CategoryWeight is 0)")
	}
	if attack != nil && len(attack) != nq || category != nil && len(category) != nq {
		return fmt.Errorf("PredictAux: got %d attack and %d category slots, want %d (one per query row)", len(attack), len(category), nq)
	}
	x := convert(a.x, ep.QueryX)
	a.ps.rows = nq
	forward(a.enc, p, x, a.ps, a.sc)
	emb := a.ps.out()
	if attack != nil {
		logits := a.binary.forward(p, emb, nq)
		for r := range attack {
			// P(attack) = sigmoid(l_attack − l_normal).
			d := float64(logits[2*r+auxAttack] - logits[2*r+auxNormal])
			attack[r] = float32(1 / (1 + math.Exp(-d)))
		}
	}
	if category != nil {
		C := a.cat.classes()
		logits := a.cat.forward(p, emb, nq)
		for r := range category {
			category[r] = int32(argmax(logits[r*C : r*C+C]))
		}
	}
	return nil
}

// auxStep adds the heads' loss gradient on every row of b, through the
// encoder, into g and returns their weighted loss (0 without heads): for
// learners whose own pass does not embed every row.
func (l *base[T]) auxStep(b datasets.Batch, g []T) (float64, error) {
	if l.aux == nil {
		return 0, nil
	}
	return l.aux.step(b, l.params, g)
}

// PredictAux implements AuxPredictor for every learner with an encoder.
func (l *base[T]) PredictAux(ep *datasets.Episode, attack []float32, category []int32) error {
	if l.aux == nil {
		return fmt.Errorf("%s: PredictAux: the learner has no auxiliary heads (AuxConfig weights are 0)", l.name)
	}
	if err := checkEpisode(ep, l.shape); err != nil {
		return fmt.Errorf("%s: PredictAux: %w", l.name, err)
	}
	return l.aux.predict(ep, l.params, attack, category)
}
