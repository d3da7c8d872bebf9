package train

import "math"

// softmaxCE returns the mean cross-entropy of logits [rows,C] against labels
// and writes the softmax into prob and the loss gradient into dlogits.
func softmaxCE[T Float](logits []T, labels []int32, rows, C int, prob, dlogits []T) float64 {
	var loss float64
	inv := 1 / T(rows)
	for r := 0; r < rows; r++ {
		l := logits[r*C : r*C+C]
		p := prob[r*C : r*C+C]
		mx, sum := softmaxRow(l, p)
		y := labels[r]
		loss += -(float64(l[y]-mx) - math.Log(sum))
		d := dlogits[r*C : r*C+C]
		for j := range d {
			d[j] = p[j] * inv
		}
		d[y] -= inv
	}
	return loss / float64(rows)
}

// softmaxRow writes the softmax of the logits l into p and returns the
// largest logit and the sum of exp(l-max) (the row's log-sum-exp is
// max + log(sum)).
func softmaxRow[T Float](l, p []T) (mx T, sum float64) {
	mx = l[0]
	for _, v := range l[1:] {
		mx = max(mx, v)
	}
	for j, v := range l {
		e := math.Exp(float64(v - mx))
		p[j] = T(e)
		sum += e
	}
	is := 1 / sum
	for j := range p {
		p[j] = T(float64(p[j]) * is)
	}
	return mx, sum
}

// softmaxCERop writes the directional derivative of dlogits given that of
// the logits: R{d} = p*(R{l} - <p,R{l}>)/rows.
func softmaxCERop[T Float](prob, rlogits, rd []T, rows, C int) {
	inv := 1 / T(rows)
	for r := 0; r < rows; r++ {
		p := prob[r*C : r*C+C]
		rl := rlogits[r*C : r*C+C]
		var dot T
		for j, v := range p {
			dot += v * rl[j]
		}
		d := rd[r*C : r*C+C]
		for j, v := range p {
			d[j] = v * (rl[j] - dot) * inv
		}
	}
}

// logSoftmax writes log-probabilities of logits [rows,C] as float32 scores
// and the arg-max labels. The top way's log-probability is -log1p of the
// others' odds against it rather than mx - (mx + log(sum)): once the others
// are more than about 37 nats behind, sum rounds to 1 and that would be 0
// for every confident query, a tie where the ranking by p(normal) (AUROC)
// needs their order.
func logSoftmax[T Float](logits []T, rows, C int, scores []float32, labels []int32) {
	for r := 0; r < rows; r++ {
		l := logits[r*C : r*C+C]
		best := argmax(l)
		mx := float64(l[best])
		var sum, rest float64
		for j, v := range l {
			e := math.Exp(float64(v) - mx)
			sum += e
			if j != best {
				rest += e
			}
		}
		ls := mx + math.Log(sum)
		for j, v := range l {
			scores[r*C+j] = float32(float64(v) - ls)
		}
		scores[r*C+best] = float32(-math.Log1p(rest))
		labels[r] = int32(best)
	}
}

// argmax is the index of the first largest value of x.
func argmax[T Float](x []T) int {
	best := 0
	for j, v := range x {
		if v > x[best] {
			best = j
		}
	}
	return best
}

// protoState holds the prototype computation of one episode.
type protoState[T Float] struct {
	proto  []T // [ways,h]
	dproto []T // [ways,h]
	count  []int
	dots   []T // [nq,ways] query-prototype inner products
	logits []T // [nq,ways]
	prob   []T
	dlog   []T
	coef   []T // [nq,ways] logit gradient weights
	qq, pp []T // squared norms (Euclidean) or smoothed norms (cosine)
	wsum   []T // [max(nq,ways)] per-row gradient weight sums
	pc, ec []T // Euclidean: prototypes and queries translated by center
	center []T // [h]
}

func newProtoState[T Float](ways, nq, h int) *protoState[T] {
	return &protoState[T]{
		proto: make([]T, ways*h), dproto: make([]T, ways*h), count: make([]int, ways),
		dots: make([]T, nq*ways), logits: make([]T, nq*ways), prob: make([]T, nq*ways), dlog: make([]T, nq*ways),
		coef: make([]T, nq*ways), qq: make([]T, nq), pp: make([]T, ways), wsum: make([]T, max(nq, ways)),
		pc: make([]T, ways*h), ec: make([]T, nq*h), center: make([]T, h),
	}
}

// cosEps smooths the norms so an all-zero embedding (possible after ReLU)
// has a finite gradient.
const cosEps = 1e-8

// protoLoss computes prototypes from the support embeddings es [ns,h] with
// labels ys, logits for the query embeddings eq [nq,h] (negative squared
// Euclidean distance, or scale*cosine similarity) and the mean query
// cross-entropy. With des/deq non-nil it also accumulates their gradients.
//
// Distances use |e|²+|p|²−2e·p so that the work is inner products and two
// small matrix products in the backward pass:
//
//	Euclidean, A = 2G:           dE = A·P − rowsum(A)∘E,  dP = Aᵀ·E − colsum(A)∘P
//	cosine, A = sG/(|e||p|):     dE = A·P − (Σ_w A∘D)/|e|²∘E, dP likewise
//
// with G the logit gradient and D the inner products.
func protoLoss[T Float](st *protoState[T], es, eq []T, ys, yq []int32, ways, h int, cosine bool, scale T, des, deq []T) float64 {
	nq := len(eq) / h
	clear(st.proto)
	clear(st.count)
	for i, y := range ys {
		st.count[y]++
		p := st.proto[int(y)*h : int(y)*h+h]
		for j, v := range es[i*h : i*h+h] {
			p[j] += v
		}
	}
	for w := 0; w < ways; w++ {
		p := st.proto[w*h : w*h+h]
		if c := st.count[w]; c > 0 {
			inv := 1 / T(c)
			for j := range p {
				p[j] *= inv
			}
		}
	}
	// Euclidean logits and gradients are invariant under a common
	// translation of queries and prototypes, and the expansion
	// |e|²+|p|²−2e·p cancels catastrophically when they share a large
	// offset: translate both by the prototypes' mean first.
	P, E := st.proto, eq
	if !cosine {
		c := st.center[:h]
		clear(c)
		for w := 0; w < ways; w++ {
			axpy(1/T(ways), st.proto[w*h:w*h+h], c)
		}
		P, E = st.pc[:ways*h], st.ec[:nq*h]
		subRows(P, st.proto[:ways*h], c)
		subRows(E, eq[:nq*h], c)
	}
	for w := 0; w < ways; w++ {
		st.pp[w] = sqNorm(P[w*h:w*h+h], cosine)
	}
	for q := 0; q < nq; q++ {
		e := E[q*h : q*h+h]
		st.qq[q] = sqNorm(e, cosine)
		for w := 0; w < ways; w++ {
			d := dot(e, P[w*h:w*h+h])
			st.dots[q*ways+w] = d
			if cosine {
				st.logits[q*ways+w] = scale * d / (st.qq[q] * st.pp[w])
			} else {
				st.logits[q*ways+w] = 2*d - st.qq[q] - st.pp[w]
			}
		}
	}
	loss := softmaxCE(st.logits, yq, nq, ways, st.prob, st.dlog)
	if des == nil && deq == nil {
		return loss
	}
	A := st.coef[:nq*ways]
	for q := 0; q < nq; q++ {
		for w := 0; w < ways; w++ {
			g := st.dlog[q*ways+w]
			if cosine {
				A[q*ways+w] = g * scale / (st.qq[q] * st.pp[w])
			} else {
				A[q*ways+w] = 2 * g
			}
		}
	}
	// Query side: dE += A·P − r∘E.
	gemm(nq, h, ways, A, ways, 1, P, h, deq, h)
	for q := 0; q < nq; q++ {
		var r T
		for w := 0; w < ways; w++ {
			if cosine {
				r += A[q*ways+w] * st.dots[q*ways+w]
			} else {
				r += A[q*ways+w]
			}
		}
		if cosine {
			r /= st.qq[q] * st.qq[q]
		}
		axpy(-r, E[q*h:q*h+h], deq[q*h:q*h+h])
	}
	// Prototype side: dP = Aᵀ·E − c∘P, then spread over the support rows.
	clear(st.dproto)
	gemm(ways, h, nq, A, 1, ways, E, h, st.dproto, h)
	for w := 0; w < ways; w++ {
		var c T
		for q := 0; q < nq; q++ {
			if cosine {
				c += A[q*ways+w] * st.dots[q*ways+w]
			} else {
				c += A[q*ways+w]
			}
		}
		if cosine {
			c /= st.pp[w] * st.pp[w]
		}
		axpy(-c, P[w*h:w*h+h], st.dproto[w*h:w*h+h])
	}
	for i, y := range ys {
		axpy(1/T(st.count[y]), st.dproto[int(y)*h:int(y)*h+h], des[i*h:i*h+h])
	}
	return loss
}

// sqNorm is |x|² for Euclidean logits, or the smoothed norm sqrt(|x|²+eps)
// for cosine ones.
func sqNorm[T Float](x []T, smooth bool) T {
	s := dot(x, x)
	if smooth {
		return T(math.Sqrt(float64(s) + cosEps))
	}
	return s
}

// subRows sets each h-wide row of dst to the same row of src minus c.
func subRows[T Float](dst, src, c []T) {
	h := len(c)
	for r := 0; r+h <= len(src); r += h {
		d, s := dst[r:r+h], src[r:r+h]
		for j, v := range c {
			d[j] = s[j] - v
		}
	}
}

// axpy sets y += a*x.
func axpy[T Float](a T, x, y []T) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}
