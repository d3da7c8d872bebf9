// Package cpu holds the plain-Go compute kernels behind the CPU backend.
//
// The functions are generic over float32 and float64 so that float64
// gradient checks can run the very code the float32 backend uses. They never
// allocate and never retain their arguments. Shape mismatches are programming
// errors and panic with the sizes involved.
//
// This package must not import kernels: kernels imports it.
package cpu

import (
	"fmt"
	"math"

	"github.com/metaids/metaids/kernels/argcheck"
)

// Float is the set of element types the kernels accept.
type Float interface {
	~float32 | ~float64
}

// PairwiseSqDist writes dst[b,q,n] = sum_d (x[b,q,d]-y[b,n,d])^2 for
// x [B,Q,D], y [B,N,D] and dst [B,Q,N]. The differences are formed
// explicitly rather than through |x|²+|y|²-2x·y, which cancels badly when
// points are close.
func PairwiseSqDist[T Float](dst, x, y []T, B, Q, N, D int) {
	argcheck.Pairwise("cpu.PairwiseSqDist", len(dst), len(x), len(y), B, Q, N, D)
	if D == 0 {
		clear(dst)
		return
	}
	for b := 0; b < B; b++ {
		yb := y[b*N*D : (b+1)*N*D]
		for q := 0; q < Q; q++ {
			row := (b*Q + q) * D
			xq := x[row : row+D]
			out := dst[(b*Q+q)*N : (b*Q+q+1)*N]
			for n := range out {
				out[n] = sqDist(xq, yb[n*D:(n+1)*D])
			}
		}
	}
}

// sqDist returns sum_i (a[i]-b[i])^2 for slices of equal length.
func sqDist[T Float](a, b []T) T {
	// Four independent accumulators hide the latency of the adds; unrolling
	// by eight halves the loop overhead. Testing every slice's length in the
	// loop condition lets the compiler drop the bounds checks in the body.
	var s0, s1, s2, s3 T
	for len(a) >= 8 && len(b) >= 8 {
		a8, b8 := a[:8:8], b[:8:8]
		d0 := a8[0] - b8[0]
		d1 := a8[1] - b8[1]
		d2 := a8[2] - b8[2]
		d3 := a8[3] - b8[3]
		d4 := a8[4] - b8[4]
		d5 := a8[5] - b8[5]
		d6 := a8[6] - b8[6]
		d7 := a8[7] - b8[7]
		s0 += d0*d0 + d4*d4
		s1 += d1*d1 + d5*d5
		s2 += d2*d2 + d6*d6
		s3 += d3*d3 + d7*d7
		a, b = a[8:], b[8:]
	}
	if len(a) >= 4 && len(b) >= 4 {
		a4, b4 := a[:4:4], b[:4:4]
		d0 := a4[0] - b4[0]
		d1 := a4[1] - b4[1]
		d2 := a4[2] - b4[2]
		d3 := a4[3] - b4[3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
		a, b = a[4:], b[4:]
	}
	b = b[:len(a)]
	for i, v := range a {
		d := v - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// PairwiseSqDistGrad accumulates into gx [B,Q,D] and gy [B,N,D] the gradient
// of sum_{b,q,n} gout[b,q,n]*dist[b,q,n]:
//
//	gx[b,q,d] += sum_n  2*gout[b,q,n]*(x[b,q,d]-y[b,n,d])
//	gy[b,n,d] += sum_q -2*gout[b,q,n]*(x[b,q,d]-y[b,n,d])
//
// Either gx or gy may be nil to skip it.
func PairwiseSqDistGrad[T Float](gx, gy, gout, x, y []T, B, Q, N, D int) {
	argcheck.PairwiseGrad("cpu.PairwiseSqDistGrad", argcheck.OptLen(gx), argcheck.OptLen(gy), len(gout), len(x), len(y), B, Q, N, D)
	if (gx == nil && gy == nil) || D == 0 {
		return
	}
	for b := 0; b < B; b++ {
		yb := y[b*N*D : (b+1)*N*D]
		var gyb []T
		if gy != nil {
			gyb = gy[b*N*D : (b+1)*N*D]
		}
		for q := 0; q < Q; q++ {
			row := (b*Q + q) * D
			xq := x[row : row+D]
			gq := gout[(b*Q+q)*N : (b*Q+q+1)*N]
			for n, g := range gq {
				c := 2 * g
				yn := yb[n*D : (n+1)*D]
				switch {
				case gx == nil:
					axpyDiff(gyb[n*D:(n+1)*D], -c, xq, yn)
				case gy == nil:
					axpyDiff(gx[row:row+D], c, xq, yn)
				default:
					axpyDiff2(gx[row:row+D], gyb[n*D:(n+1)*D], c, xq, yn)
				}
			}
		}
	}
}

// axpyDiff does dst += c*(a-b).
func axpyDiff[T Float](dst []T, c T, a, b []T) {
	for len(dst) >= 4 && len(a) >= 4 && len(b) >= 4 {
		d4, a4, b4 := dst[:4:4], a[:4:4], b[:4:4]
		d4[0] += c * (a4[0] - b4[0])
		d4[1] += c * (a4[1] - b4[1])
		d4[2] += c * (a4[2] - b4[2])
		d4[3] += c * (a4[3] - b4[3])
		dst, a, b = dst[4:], a[4:], b[4:]
	}
	a = a[:len(dst)]
	b = b[:len(dst)]
	for i := range dst {
		dst[i] += c * (a[i] - b[i])
	}
}

// axpyDiff2 does t = c*(a-b); da += t; db -= t, in one pass.
func axpyDiff2[T Float](da, db []T, c T, a, b []T) {
	for len(da) >= 4 && len(db) >= 4 && len(a) >= 4 && len(b) >= 4 {
		da4, db4, a4, b4 := da[:4:4], db[:4:4], a[:4:4], b[:4:4]
		t0 := c * (a4[0] - b4[0])
		t1 := c * (a4[1] - b4[1])
		t2 := c * (a4[2] - b4[2])
		t3 := c * (a4[3] - b4[3])
		da4[0] += t0
		da4[1] += t1
		da4[2] += t2
		da4[3] += t3
		db4[0] -= t0
		db4[1] -= t1
		db4[2] -= t2
		db4[3] -= t3
		da, db, a, b = da[4:], db[4:], a[4:], b[4:]
	}
	db = db[:len(da)]
	a = a[:len(da)]
	b = b[:len(da)]
	for i := range da {
		t := c * (a[i] - b[i])
		da[i] += t
		db[i] -= t
	}
}

// SGD applies p -= lr*(g + wd*p) in place.
func SGD[T Float](p, g []T, lr, wd T) {
	if len(g) != len(p) {
		panic(fmt.Sprintf("cpu.SGD: len(g)=%d, want len(p)=%d", len(g), len(p)))
	}
	g = g[:len(p)]
	if wd == 0 {
		for i := range p {
			p[i] -= lr * g[i]
		}
		return
	}
	for i, pi := range p {
		p[i] = pi - lr*(g[i]+wd*pi)
	}
}

// Adam applies one Adam step (t counts from 1) to p in place, updating the
// first and second moment buffers m and v:
//
//	m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g²
//	p -= lr * m̂ / (sqrt(v̂) + eps),  m̂ = m/(1-beta1^t), v̂ = v/(1-beta2^t)
//
// With decoupled false the weight decay is L2 (g += wd*p before the moments);
// with decoupled true it is AdamW's p -= lr*wd*p.
func Adam[T Float](p, g, m, v []T, t int, lr, beta1, beta2, eps, wd T, decoupled bool) {
	if len(g) != len(p) || len(m) != len(p) || len(v) != len(p) {
		panic(fmt.Sprintf("cpu.Adam: len(p)=%d len(g)=%d len(m)=%d len(v)=%d, want all equal",
			len(p), len(g), len(m), len(v)))
	}
	if t < 1 {
		panic(fmt.Sprintf("cpu.Adam: step t=%d, want t >= 1", t))
	}
	g = g[:len(p)]
	m = m[:len(p)]
	v = v[:len(p)]

	// Bias corrections in float64: 1-beta2^t is tiny for early steps and
	// loses most of its digits if formed in float32.
	bc1 := 1 - math.Pow(float64(beta1), float64(t))
	bc2 := 1 - math.Pow(float64(beta2), float64(t))
	step := T(float64(lr) / bc1)
	rbc2 := T(1 / math.Sqrt(bc2))
	b1, b2 := beta1, beta2
	c1, c2 := 1-beta1, 1-beta2

	var l2, decay T
	if decoupled {
		decay = 1 - lr*wd
	} else {
		l2 = wd
		decay = 1
	}
	for i, pi := range p {
		gi := g[i] + l2*pi
		mi := b1*m[i] + c1*gi
		vi := b2*v[i] + c2*gi*gi
		m[i] = mi
		v[i] = vi
		p[i] = decay*pi - step*mi/(sqrt(vi)*rbc2+eps)
	}
}

func sqrt[T Float](x T) T {
	return T(math.Sqrt(float64(x)))
}
