package train

import (
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// Embedder maps input rows into the representation a learner compares them
// in, for scores built outside the learner (e.g. open-set detection by the
// distance to a class prototype).
//
// What the embedding is, per learner:
//   - protonet: the encoder's output, the space its prototypes live in;
//   - maml, fomaml, reptile, anil, metasgd: the last hidden layer of the
//     meta-learned initialisation, before any adaptation (the input of the
//     head, which is left out);
//   - finetune: the pre-trained encoder (the head is left out);
//   - nearest-centroid: the input rows themselves.
//
// All but nearest-centroid use the learner's current parameters, so an
// embedding reflects every MetaStep or LoadCheckpoint before it. An Embedder
// keeps working buffers across calls and is not safe for concurrent use,
// nor for use concurrently with the learner's other methods.
type Embedder interface {
	// EmbedDim is the width of one embedding (0 for a learner that has no
	// encoder; Embed then fails).
	EmbedDim() int
	// Embed writes the embeddings of the rows rows of x [rows*Dim] into
	// out [rows*EmbedDim()]. Rows go through the encoder in bounded chunks,
	// so any number of rows is fine.
	Embed(x []float32, rows int, out []float32) error
}

// embedChunk is the number of rows per forward pass in Embed: enough to
// amortise the per-pass overhead, small enough to bound the buffers.
const embedChunk = 256

// embedLearners lists the learners whose parameter vector starts with the
// encoder newMLP(Dim, Hidden, 0, act): hidden layers first, then (for all
// but protonet) the head and, for metasgd, the learned inner rates.
var embedLearners = map[string]bool{
	"protonet": true, "maml": true, "fomaml": true, "reptile": true,
	"anil": true, "metasgd": true, "finetune": true,
}

// embedState is the working memory of one learner's Embed.
type embedState[T Float] struct {
	m  *mlp
	ps *pass[T]
	sc *scratch[T]
	x  []T // float32 inputs converted to T (nil for float32)
}

// embedStates holds each learner's embedState, keyed by a weak pointer to
// its base so that the state does not keep the learner alive; a cleanup
// drops the entry once the learner is collected. Kept outside the learners
// so that those that never embed carry no buffers.
var embedStates sync.Map // weak.Pointer[base[T]] -> *embedState[T]

func (l *base[T]) embedState() *embedState[T] {
	k := weak.Make(l)
	if v, ok := embedStates.Load(k); ok {
		return v.(*embedState[T])
	}
	act, _ := parseActivation(l.cfg.Activation)
	m := newMLP(l.shape.Dim, l.cfg.Hidden, 0, act)
	st := &embedState[T]{
		m:  m,
		ps: newPass[T](m, embedChunk),
		// forward only needs the transpose buffer of a scratch.
		sc: &scratch[T]{wt: make([]T, m.width*m.width), rowsLimit: embedChunk},
	}
	if dtypeOf[T]() != "float32" {
		st.x = make([]T, embedChunk*l.shape.Dim)
	}
	if v, loaded := embedStates.LoadOrStore(k, st); loaded {
		return v.(*embedState[T])
	}
	runtime.AddCleanup(l, func(k weak.Pointer[base[T]]) { embedStates.Delete(k) }, k)
	return st
}

// EmbedDim is the last hidden width for learners with an encoder, else 0.
func (l *base[T]) EmbedDim() int {
	if !embedLearners[l.name] || len(l.cfg.Hidden) == 0 {
		return 0
	}
	return l.cfg.Hidden[len(l.cfg.Hidden)-1]
}

// Embed runs the encoder prefix of the parameters on x (see Embedder).
func (l *base[T]) Embed(x []float32, rows int, out []float32) error {
	h := l.EmbedDim()
	if h == 0 {
		return fmt.Errorf("embed: learner %s has no encoder", l.name)
	}
	d := l.shape.Dim
	if err := checkEmbedArgs(x, rows, out, d, h); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	st := l.embedState()
	if len(l.params) < st.m.nParam {
		return fmt.Errorf("embed: %s has %d parameters, its encoder needs %d", l.name, len(l.params), st.m.nParam)
	}
	w := l.params[:st.m.nParam]
	for lo := 0; lo < rows; lo += embedChunk {
		n := min(embedChunk, rows-lo)
		st.ps.rows = n
		forward(st.m, w, asT(st.x, x[lo*d:(lo+n)*d]), st.ps, st.sc)
		emb, dst := st.ps.out()[:n*h], out[lo*h:(lo+n)*h]
		if e32, ok := any(emb).([]float32); ok {
			copy(dst, e32)
		} else {
			for i, v := range emb {
				dst[i] = float32(v)
			}
		}
	}
	return nil
}

// EmbedDim is the input width: nearest-centroid compares raw rows.
func (l *nearestCentroid) EmbedDim() int { return l.shape.Dim }

// Embed copies x into out: the identity embedding.
func (l *nearestCentroid) Embed(x []float32, rows int, out []float32) error {
	if err := checkEmbedArgs(x, rows, out, l.shape.Dim, l.shape.Dim); err != nil {
		return err
	}
	copy(out, x)
	return nil
}

func checkEmbedArgs(x []float32, rows int, out []float32, dim, h int) error {
	if rows < 0 {
		return fmt.Errorf("embed: %d rows, want >= 0", rows)
	}
	// Dividing rather than multiplying keeps a huge rows from overflowing.
	if len(x)%dim != 0 || len(x)/dim != rows {
		return fmt.Errorf("embed: %d input values for %d rows of width %d", len(x), rows, dim)
	}
	if len(out)%h != 0 || len(out)/h != rows {
		return fmt.Errorf("embed: output has %d values, want %d rows of width %d", len(out), rows, h)
	}
	return nil
}
