package train

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// activation is a hidden-layer nonlinearity. Its first derivative is written
// in terms of the pre-activation z or the output a, and its second derivative
// only enters through curv (see below), which is what MAML's
// Hessian-vector products need.
type activation int

const (
	actReLU activation = iota
	actLeakyReLU
	actTanh
	actSigmoid
)

var activations = map[string]activation{
	"relu":       actReLU,
	"leaky_relu": actLeakyReLU,
	"tanh":       actTanh,
	"sigmoid":    actSigmoid,
}

const leakySlope = 0.01

// layer is one affine map, weights [in,out] row-major at w and bias [out] at b
// in the flat parameter vector; act says whether the nonlinearity follows.
type layer struct {
	in, out, w, b int
	act           bool
}

// mlp is the parameter layout of the network: hidden layers with the
// activation and, when head > 0, a final linear layer with head outputs.
type mlp struct {
	layers []layer
	nParam int
	body   int // parameters before the head (all of them without a head)
	act    activation
	width  int // widest layer input or output
}

func newMLP(dim int, hidden []int, head int, act activation) *mlp {
	m := &mlp{act: act, width: dim}
	in := dim
	add := func(out int, a bool) {
		m.layers = append(m.layers, layer{in: in, out: out, w: m.nParam, b: m.nParam + in*out, act: a})
		m.nParam += in*out + out
		m.width = max(m.width, out)
		in = out
	}
	for _, h := range hidden {
		add(h, true)
	}
	m.body = m.nParam
	if head > 0 {
		add(head, false)
	}
	return m
}

func (m *mlp) outDim() int { return m.layers[len(m.layers)-1].out }

// init fills p with the initial weights: He-uniform for ReLU-like
// activations, Glorot-uniform for saturating ones, zero biases. Draws are in
// float64 so float32 and float64 models with one seed start from the same
// point.
func (m *mlp) init(p []float64, rng *rand.Rand) {
	for _, l := range m.layers {
		var lim float64
		switch m.act {
		case actReLU, actLeakyReLU:
			lim = math.Sqrt(6 / float64(l.in))
		default:
			lim = math.Sqrt(6 / float64(l.in+l.out))
		}
		for i := l.w; i < l.b; i++ {
			p[i] = (2*rng.Float64() - 1) * lim
		}
		for i := l.b; i < l.b+l.out; i++ {
			p[i] = 0
		}
	}
}

// pass holds one forward/backward evaluation of the network on rows inputs:
// pre-activations z, outputs a (aliasing z for the linear head) and the loss
// gradient dz with respect to z, per layer. MAML keeps one per inner step so
// the Hessian-vector products of the backward sweep reuse them.
type pass[T Float] struct {
	rows     int
	z, a, dz [][]T
}

func newPass[T Float](m *mlp, rows int) *pass[T] {
	p := &pass[T]{rows: rows}
	p.z, p.a, p.dz = layerBuffers[T](m, rows)
	return p
}

// layerBuffers allocates per layer a buffer for pre-activations, one for
// outputs (the same buffer for the linear head, which has no activation)
// and one for gradients, rows by the layer's width each: a pass, or the
// R-op derivatives of one.
func layerBuffers[T Float](m *mlp, rows int) (pre, post, grad [][]T) {
	for _, l := range m.layers {
		z := make([]T, rows*l.out)
		a := z
		if l.act {
			a = make([]T, rows*l.out)
		}
		pre, post, grad = append(pre, z), append(post, a), append(grad, make([]T, rows*l.out))
	}
	return pre, post, grad
}

func (p *pass[T]) out() []T { return p.a[len(p.a)-1] }

// scratch is per-learner working memory shared by passes: back-propagated
// activations, R-op (directional derivative) buffers and a transpose buffer.
type scratch[T Float] struct {
	da, rda   []T
	rz, ra    [][]T
	rdz       [][]T
	wt        []T
	rowsLimit int
}

func newScratch[T Float](m *mlp, rows int, rop bool) *scratch[T] {
	s := &scratch[T]{rowsLimit: rows}
	s.da = make([]T, rows*m.width)
	s.wt = make([]T, m.width*m.width)
	if rop {
		s.rda = make([]T, rows*m.width)
		s.rz, s.ra, s.rdz = layerBuffers[T](m, rows)
	}
	return s
}

// forward evaluates the network with parameters w on x [rows, dim].
func forward[T Float](m *mlp, w, x []T, ps *pass[T], s *scratch[T]) {
	in := x
	n := ps.rows
	for i, l := range m.layers {
		z := ps.z[i][:n*l.out]
		matMulW(z, in[:n*l.in], w[l.w:l.b], s.wt, n, l.in, l.out, false)
		addBias(z, w[l.b:l.b+l.out], n, l.out)
		if l.act {
			activate(m.act, ps.a[i][:n*l.out], z)
		}
		in = ps.a[i]
	}
}

// backward back-propagates dout (the loss gradient with respect to the
// network output) and accumulates the parameter gradient into g. It leaves
// dz in ps for later R-op passes.
func backward[T Float](m *mlp, w, x []T, ps *pass[T], s *scratch[T], dout, g []T) {
	backprop(m, w, x, ps, s, dout, g, false)
}

// backprop is backward with a choice: the parameter gradient accumulates
// into g unless g is nil, and with toInput the gradient is carried through
// the first layer to the input and returned, dX [rows, in], which lives in
// s.da until the scratch is used again.
func backprop[T Float](m *mlp, w, x []T, ps *pass[T], s *scratch[T], dout, g []T, toInput bool) []T {
	n := ps.rows
	d := dout
	for i := len(m.layers) - 1; i >= 0; i-- {
		l := m.layers[i]
		dz := ps.dz[i][:n*l.out]
		if l.act {
			actGrad(m.act, dz, d[:n*l.out], ps.z[i], ps.a[i])
		} else {
			copy(dz, d[:n*l.out])
		}
		if g != nil {
			in := x
			if i > 0 {
				in = ps.a[i-1]
			}
			matMulTAW(g[l.w:l.b], in[:n*l.in], dz, s.wt, n, l.in, l.out)
			colSum(g[l.b:l.b+l.out], dz, n, l.out)
		}
		if i > 0 || toInput {
			// dz is a copy, so writing s.da (which d may alias) is safe.
			matMulTB(s.da[:n*l.in], dz, w[l.w:l.b], s.wt, n, l.out, l.in, false)
			d = s.da
		}
	}
	if !toInput {
		return nil
	}
	return d[:n*m.layers[0].in]
}

// rForward computes the directional derivatives rz, ra of the pre-activations
// and outputs along the parameter direction v (Pearlmutter's R-operator), at
// the point ps was evaluated at. The output's derivative is s.ra[last].
func rForward[T Float](m *mlp, w, v, x []T, ps *pass[T], s *scratch[T]) {
	n := ps.rows
	for i, l := range m.layers {
		rz := s.rz[i][:n*l.out]
		in := x
		if i > 0 {
			in = ps.a[i-1]
		}
		matMulW(rz, in[:n*l.in], v[l.w:l.b], s.wt, n, l.in, l.out, false)
		if i > 0 {
			matMulW(rz, s.ra[i-1][:n*l.in], w[l.w:l.b], s.wt, n, l.in, l.out, true)
		}
		addBias(rz, v[l.b:l.b+l.out], n, l.out)
		if l.act {
			actGrad(m.act, s.ra[i][:n*l.out], rz, ps.z[i], ps.a[i])
		}
	}
}

// rBackward differentiates backward along v, given rdout (the directional
// derivative of dout), and accumulates the Hessian-vector product into hv.
// It needs rForward's buffers and the dz left by backward.
func rBackward[T Float](m *mlp, w, v, x []T, ps *pass[T], s *scratch[T], rdout, hv []T) {
	n := ps.rows
	rd := rdout
	for i := len(m.layers) - 1; i >= 0; i-- {
		l := m.layers[i]
		rdz := s.rdz[i][:n*l.out]
		if l.act {
			// R{dz} = R{da}*f'(z) + da*f''(z)*R{z}, and da*f''(z) = dz*curv.
			actGrad(m.act, rdz, rd[:n*l.out], ps.z[i], ps.a[i])
			actCurv(m.act, rdz, ps.dz[i][:n*l.out], ps.a[i], s.rz[i])
		} else {
			copy(rdz, rd[:n*l.out])
		}
		in := x
		if i > 0 {
			in = ps.a[i-1]
		}
		dz := ps.dz[i][:n*l.out]
		matMulTAW(hv[l.w:l.b], in[:n*l.in], rdz, s.wt, n, l.in, l.out)
		if i > 0 {
			matMulTAW(hv[l.w:l.b], s.ra[i-1][:n*l.in], dz, s.wt, n, l.in, l.out)
		}
		colSum(hv[l.b:l.b+l.out], rdz, n, l.out)
		if i > 0 {
			matMulTB(s.rda[:n*l.in], rdz, w[l.w:l.b], s.wt, n, l.out, l.in, false)
			matMulTB(s.rda[:n*l.in], dz, v[l.w:l.b], s.wt, n, l.out, l.in, true)
			rd = s.rda
		}
	}
}

func addBias[T Float](z, b []T, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := z[r*cols : r*cols+cols]
		for j := range row {
			row[j] += b[j]
		}
	}
}

func colSum[T Float](dst, x []T, rows, cols int) {
	dst = dst[:cols]
	for r := 0; r < rows; r++ {
		row := x[r*cols : r*cols+cols]
		for j, v := range row {
			dst[j] += v
		}
	}
}

func activate[T Float](f activation, a, z []T) {
	a = a[:len(z)]
	switch f {
	case actReLU:
		for i, v := range z {
			a[i] = max(v, 0)
		}
	case actLeakyReLU:
		for i, v := range z {
			if v < 0 {
				v *= leakySlope
			}
			a[i] = v
		}
	case actTanh:
		for i, v := range z {
			a[i] = T(math.Tanh(float64(v)))
		}
	case actSigmoid:
		for i, v := range z {
			a[i] = T(1 / (1 + math.Exp(-float64(v))))
		}
	}
}

// actGrad sets dst = d * f'(z), f' taken from z (ReLU) or a (tanh, sigmoid).
func actGrad[T Float](f activation, dst, d, z, a []T) {
	d = d[:len(dst)]
	switch f {
	case actReLU:
		if d32, ok := any(d).([]float32); ok {
			reluGrad32(any(dst).([]float32), d32, any(z).([]float32))
			return
		}
		z = z[:len(dst)]
		for i, v := range d {
			if z[i] > 0 {
				dst[i] = v
			} else {
				dst[i] = 0
			}
		}
	case actLeakyReLU:
		z = z[:len(dst)]
		for i, v := range d {
			if z[i] < 0 {
				v *= leakySlope
			}
			dst[i] = v
		}
	case actTanh:
		a = a[:len(dst)]
		for i, v := range d {
			dst[i] = v * (1 - a[i]*a[i])
		}
	case actSigmoid:
		a = a[:len(dst)]
		for i, v := range d {
			dst[i] = v * a[i] * (1 - a[i])
		}
	}
}

// actCurv adds dz*curv*rz to dst, where curv = f”/f' as a function of a:
// zero for piecewise-linear activations, -2a for tanh, 1-2a for sigmoid.
func actCurv[T Float](f activation, dst, dz, a, rz []T) {
	dz = dz[:len(dst)]
	switch f {
	case actTanh:
		for i, v := range dz {
			dst[i] += v * (-2 * a[i]) * rz[i]
		}
	case actSigmoid:
		for i, v := range dz {
			dst[i] += v * (1 - 2*a[i]) * rz[i]
		}
	}
}

func parseActivation(name string) (activation, error) {
	f, ok := activations[name]
	if !ok {
		return 0, fmt.Errorf("unknown activation %q (want relu, leaky_relu, tanh or sigmoid)", name)
	}
	return f, nil
}

// reluGrad32 sets dst = d where z > 0, else 0, without branches: the signs
// of the pre-activations are random, so a branch mispredicts half the time.
func reluGrad32(dst, d, z []float32) {
	d = d[:len(dst)]
	z = z[:len(dst)]
	for i, v := range d {
		b := int32(math.Float32bits(z[i]))
		mask := uint32(-b>>31) &^ uint32(b>>31) // all ones iff b > 0, i.e. z > 0
		dst[i] = math.Float32frombits(math.Float32bits(v) & mask)
	}
}
