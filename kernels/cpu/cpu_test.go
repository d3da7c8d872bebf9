package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

type shape struct{ B, Q, N, D int }

var shapes = []shape{
	{0, 3, 2, 4}, {2, 0, 2, 4}, {2, 3, 0, 4}, {2, 3, 2, 0},
	{1, 1, 1, 1}, {1, 1, 1, 3}, {1, 2, 3, 5}, {2, 3, 1, 7},
	{3, 4, 5, 8}, {2, 75, 5, 64}, {1, 9, 4, 130}, {4, 7, 6, 127},
}

func randSlice[T Float](r *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(r.NormFloat64())
	}
	return s
}

func to64[T Float](s []T) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

// refDist is the textbook triple loop in float64.
func refDist(x, y []float64, B, Q, N, D int) []float64 {
	dst := make([]float64, B*Q*N)
	for b := 0; b < B; b++ {
		for q := 0; q < Q; q++ {
			for n := 0; n < N; n++ {
				s := 0.0
				for d := 0; d < D; d++ {
					diff := x[(b*Q+q)*D+d] - y[(b*N+n)*D+d]
					s += diff * diff
				}
				dst[(b*Q+q)*N+n] = s
			}
		}
	}
	return dst
}

// refGrad returns the gradients and, per element, the sum of the absolute
// values of the terms, the scale rounding errors are measured against.
func refGrad(gout, x, y []float64, B, Q, N, D int) (gx, gy, sx, sy []float64) {
	gx, sx = make([]float64, B*Q*D), make([]float64, B*Q*D)
	gy, sy = make([]float64, B*N*D), make([]float64, B*N*D)
	for b := 0; b < B; b++ {
		for q := 0; q < Q; q++ {
			for n := 0; n < N; n++ {
				for d := 0; d < D; d++ {
					xi, yi := (b*Q+q)*D+d, (b*N+n)*D+d
					t := 2 * gout[(b*Q+q)*N+n] * (x[xi] - y[yi])
					gx[xi] += t
					gy[yi] -= t
					sx[xi] += math.Abs(t)
					sy[yi] += math.Abs(t)
				}
			}
		}
	}
	return
}

// checkClose requires |got-want| <= tol*max(scale,tiny) element-wise.
func checkClose[T Float](t *testing.T, what string, got []T, want, scale []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		s := math.Max(scale[i], 1e-30)
		if e := math.Abs(float64(got[i])-want[i]) / s; !(e <= tol) {
			t.Fatalf("%s[%d] = %v, want %v (relative error %.3g > %.3g)", what, i, got[i], want[i], e, tol)
		}
	}
}

func tolFor[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 1e-5
	}
	return 1e-13
}

func testDist[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			x := randSlice[T](r, s.B*s.Q*s.D)
			y := randSlice[T](r, s.B*s.N*s.D)
			dst := randSlice[T](r, s.B*s.Q*s.N) // stale contents must be overwritten
			PairwiseSqDist(dst, x, y, s.B, s.Q, s.N, s.D)
			want := refDist(to64(x), to64(y), s.B, s.Q, s.N, s.D)
			checkClose(t, "dst", dst, want, want, tolFor[T]())
		})
	}
}

func TestPairwiseSqDist32(t *testing.T) { testDist[float32](t) }
func TestPairwiseSqDist64(t *testing.T) { testDist[float64](t) }

func TestPairwiseSqDistClosePoints(t *testing.T) {
	// Nearly equal points: the expansion |x|²+|y|²-2x·y would lose every digit.
	const D = 64
	x := make([]float32, D)
	y := make([]float32, D)
	for i := range x {
		x[i] = 1000 + float32(i)
		y[i] = x[i] + 1.0/64
	}
	dst := make([]float32, 1)
	PairwiseSqDist(dst, x, y, 1, 1, 1, D)
	if want := float32(D) / (64 * 64); dst[0] != want {
		t.Fatalf("dist = %v, want %v", dst[0], want)
	}
}

func testGrad[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			x := randSlice[T](r, s.B*s.Q*s.D)
			y := randSlice[T](r, s.B*s.N*s.D)
			gout := randSlice[T](r, s.B*s.Q*s.N)
			wx, wy, sx, sy := refGrad(to64(gout), to64(x), to64(y), s.B, s.Q, s.N, s.D)

			// Accumulation: start from random contents and expect them added.
			gx0 := randSlice[T](r, len(x))
			gy0 := randSlice[T](r, len(y))
			for i := range wx {
				wx[i] += float64(gx0[i])
				sx[i] += math.Abs(float64(gx0[i]))
			}
			for i := range wy {
				wy[i] += float64(gy0[i])
				sy[i] += math.Abs(float64(gy0[i]))
			}
			tol := tolFor[T]()

			gx := append([]T(nil), gx0...)
			gy := append([]T(nil), gy0...)
			PairwiseSqDistGrad(gx, gy, gout, x, y, s.B, s.Q, s.N, s.D)
			checkClose(t, "gx", gx, wx, sx, tol)
			checkClose(t, "gy", gy, wy, sy, tol)

			gx = append(gx[:0], gx0...)
			PairwiseSqDistGrad(gx, nil, gout, x, y, s.B, s.Q, s.N, s.D)
			checkClose(t, "gx (gy nil)", gx, wx, sx, tol)

			gy = append(gy[:0], gy0...)
			PairwiseSqDistGrad(nil, gy, gout, x, y, s.B, s.Q, s.N, s.D)
			checkClose(t, "gy (gx nil)", gy, wy, sy, tol)

			PairwiseSqDistGrad(nil, nil, gout, x, y, s.B, s.Q, s.N, s.D)
		})
	}
}

func TestPairwiseSqDistGrad32(t *testing.T) { testGrad[float32](t) }
func TestPairwiseSqDistGrad64(t *testing.T) { testGrad[float64](t) }

// TestPairwiseSqDistGradFiniteDiff checks the gradient of
// L = sum gout*PairwiseSqDist(x,y) against central differences. L is
// quadratic in each coordinate, so central differences are exact up to
// rounding and the tolerance can be tight.
func TestPairwiseSqDistGradFiniteDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, s := range []shape{{1, 1, 1, 1}, {2, 3, 2, 5}, {1, 4, 3, 9}} {
		x := randSlice[float64](r, s.B*s.Q*s.D)
		y := randSlice[float64](r, s.B*s.N*s.D)
		gout := randSlice[float64](r, s.B*s.Q*s.N)
		dst := make([]float64, len(gout))
		loss := func() float64 {
			PairwiseSqDist(dst, x, y, s.B, s.Q, s.N, s.D)
			l := 0.0
			for i, v := range dst {
				l += gout[i] * v
			}
			return l
		}
		gx := make([]float64, len(x))
		gy := make([]float64, len(y))
		PairwiseSqDistGrad(gx, gy, gout, x, y, s.B, s.Q, s.N, s.D)

		const h = 1e-5
		check := func(name string, p, g []float64) {
			for i := range p {
				orig := p[i]
				p[i] = orig + h
				lp := loss()
				p[i] = orig - h
				lm := loss()
				p[i] = orig
				fd := (lp - lm) / (2 * h)
				if math.Abs(fd-g[i]) > 1e-7*(1+math.Abs(fd)) {
					t.Errorf("%+v %s[%d]: analytic %v, finite difference %v", s, name, i, g[i], fd)
				}
			}
		}
		check("x", x, gx)
		check("y", y, gy)
	}
}

func TestSGDTwoSteps(t *testing.T) {
	// lr 0.1, wd 0.01, p0 = 1:
	// step 1, g = 0.5: p = 1 - 0.1*(0.5 + 0.01*1)        = 0.949
	// step 2, g = -1:  p = 0.949 - 0.1*(-1 + 0.01*0.949) = 1.048051
	for _, wd := range []float64{0.01, 0} {
		p := []float64{1}
		SGD(p, []float64{0.5}, 0.1, wd)
		SGD(p, []float64{-1}, 0.1, wd)
		want := 1.048051
		if wd == 0 {
			want = 1 - 0.05 + 0.1
		}
		if math.Abs(p[0]-want) > 1e-15 {
			t.Errorf("wd=%v: p = %v, want %v", wd, p[0], want)
		}
	}
	p32 := []float32{1}
	SGD(p32, []float32{0.5}, 0.1, 0.01)
	SGD(p32, []float32{-1}, 0.1, 0.01)
	if math.Abs(float64(p32[0])-1.048051) > 1e-6 {
		t.Errorf("float32: p = %v, want 1.048051", p32[0])
	}
}

func TestAdamTwoSteps(t *testing.T) {
	// beta1 0.5, beta2 0.75, eps 0, lr 0.1, p0 = 1, gradients 2 then 1.
	// Bias corrections: step 1: 0.5, 0.25; step 2: 0.75, 0.4375.
	//
	// No decay: step 1 moves by lr*sign(g), p = 0.9.
	//   m = 0.25*2 + 0.5*1 = 1, v = 0.75*0.25*4 + 0.25*1 = 1
	//   m̂ = 4/3, v̂ = 16/7, p = 0.9 - 0.1*(4/3)/(4/√7) = 0.9 - 0.1*√7/3
	// L2 0.5: g' = 2.5 then 1 + 0.5*0.9 = 1.45; step 1 again gives p = 0.9.
	//   m = 0.25*2.5 + 0.5*1.45 = 1.35, m̂ = 1.8
	//   v = 0.1875*6.25 + 0.25*1.45² = 1.6975, v̂ = 3.88
	//   p = 0.9 - 0.1*1.8/√3.88
	// AdamW 0.5: p = 1 - 0.1*0.5*1 - 0.1 = 0.85,
	//   then 0.85 - 0.1*0.5*0.85 - 0.1*√7/3 (moments as without decay).
	cases := []struct {
		name      string
		wd        float64
		decoupled bool
		want      float64
	}{
		{"plain", 0, false, 0.9 - 0.1*math.Sqrt(7)/3},
		{"L2", 0.5, false, 0.9 - 0.1*1.8/math.Sqrt(3.88)},
		{"AdamW", 0.5, true, 0.85 - 0.0425 - 0.1*math.Sqrt(7)/3},
	}
	for _, c := range cases {
		p, m, v := []float64{1}, []float64{0}, []float64{0}
		Adam(p, []float64{2}, m, v, 1, 0.1, 0.5, 0.75, 0, c.wd, c.decoupled)
		Adam(p, []float64{1}, m, v, 2, 0.1, 0.5, 0.75, 0, c.wd, c.decoupled)
		if math.Abs(p[0]-c.want) > 1e-15 {
			t.Errorf("%s: p = %.17g, want %.17g", c.name, p[0], c.want)
		}

		p32, m32, v32 := []float32{1}, []float32{0}, []float32{0}
		Adam(p32, []float32{2}, m32, v32, 1, 0.1, 0.5, 0.75, 0, float32(c.wd), c.decoupled)
		Adam(p32, []float32{1}, m32, v32, 2, 0.1, 0.5, 0.75, 0, float32(c.wd), c.decoupled)
		if math.Abs(float64(p32[0])-c.want) > 1e-6 {
			t.Errorf("%s float32: p = %v, want %v", c.name, p32[0], c.want)
		}
	}
}

// refAdam is Adam written straight from the paper, in float64.
func refAdam(p, g, m, v []float64, t int, lr, b1, b2, eps, wd float64, decoupled bool) {
	for i := range p {
		gi := g[i]
		if !decoupled {
			gi += wd * p[i]
		}
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		mh := m[i] / (1 - math.Pow(b1, float64(t)))
		vh := v[i] / (1 - math.Pow(b2, float64(t)))
		if decoupled {
			p[i] -= lr * wd * p[i]
		}
		p[i] -= lr * mh / (math.Sqrt(vh) + eps)
	}
}

func testAdamRandom[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 5, 1003} {
		for _, decoupled := range []bool{false, true} {
			p := randSlice[T](r, n)
			m := make([]T, n)
			v := make([]T, n)
			rp, rm, rv := to64(p), to64(m), to64(v)
			for step := 1; step <= 5; step++ {
				g := randSlice[T](r, n)
				Adam(p, g, m, v, step, 1e-3, 0.9, 0.999, 1e-8, 0.01, decoupled)
				refAdam(rp, to64(g), rm, rv, step, float64(T(1e-3)), float64(T(0.9)), float64(T(0.999)), float64(T(1e-8)), float64(T(0.01)), decoupled)
			}
			// p moves by about lr per step, so measure against |p|+1.
			scale := make([]float64, n)
			for i := range scale {
				scale[i] = math.Abs(rp[i]) + 1
			}
			checkClose(t, fmt.Sprintf("p n=%d decoupled=%v", n, decoupled), p, rp, scale, tolFor[T]())
		}
	}
}

func TestAdamRandom32(t *testing.T) { testAdamRandom[float32](t) }
func TestAdamRandom64(t *testing.T) { testAdamRandom[float64](t) }

func testSGDRandom[T Float](t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 1, 7, 1001} {
		for _, wd := range []T{0, 0.01} {
			p := randSlice[T](r, n)
			g := randSlice[T](r, n)
			want := to64(p)
			scale := make([]float64, n)
			for i := range want {
				lr, w := float64(T(0.05)), float64(wd)
				want[i] -= lr * (float64(g[i]) + w*want[i])
				scale[i] = math.Abs(want[i]) + 1
			}
			SGD(p, g, 0.05, wd)
			checkClose(t, fmt.Sprintf("p n=%d wd=%v", n, wd), p, want, scale, tolFor[T]())
		}
	}
}

func TestSGDRandom32(t *testing.T) { testSGDRandom[float32](t) }
func TestSGDRandom64(t *testing.T) { testSGDRandom[float64](t) }

func TestShapePanics(t *testing.T) {
	f := make([]float32, 10)
	cases := []struct {
		name, msg string
		call      func()
	}{
		{"dist dst", "len(dst)=10, want 1*2*3=6", func() { PairwiseSqDist(f, f[:2], f[:3], 1, 2, 3, 1) }},
		{"dist x", "len(x)=10, want 1*2*1=2", func() { PairwiseSqDist(f[:6], f, f[:3], 1, 2, 3, 1) }},
		{"dist negative", "negative size", func() { PairwiseSqDist(f[:0], f[:0], f[:0], -1, 2, 3, 1) }},
		{"grad gx", "len(gx)=10, want 1*2*1=2", func() { PairwiseSqDistGrad(f, nil, f[:6], f[:2], f[:3], 1, 2, 3, 1) }},
		{"grad gy", "len(gy)=10, want 1*3*1=3", func() { PairwiseSqDistGrad(nil, f, f[:6], f[:2], f[:3], 1, 2, 3, 1) }},
		{"sgd", "len(g)=3, want len(p)=10", func() { SGD(f, f[:3], 1, 0) }},
		{"adam len", "len(v)=9", func() { Adam(f, f, f, f[:9], 1, 1, 0.9, 0.9, 0, 0, false) }},
		{"adam t", "step t=0", func() { Adam(f, f, f, f, 0, 1, 0.9, 0.9, 0, 0, false) }},
	}
	for _, c := range cases {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, c.msg) {
					t.Errorf("%s: panic %v, want one containing %q", c.name, r, c.msg)
				}
			}()
			c.call()
		}()
	}
}

func TestNoAllocs(t *testing.T) {
	const B, Q, N, D = 2, 7, 5, 13
	x := make([]float32, B*Q*D)
	y := make([]float32, B*N*D)
	dst := make([]float32, B*Q*N)
	gx := make([]float32, B*Q*D)
	gy := make([]float32, B*N*D)
	p := make([]float32, 100)
	allocs := testing.AllocsPerRun(10, func() {
		PairwiseSqDist(dst, x, y, B, Q, N, D)
		PairwiseSqDistGrad(gx, gy, dst, x, y, B, Q, N, D)
		SGD(p, p, 0.1, 0.1)
		Adam(p, p, p, p, 3, 0.1, 0.9, 0.999, 1e-8, 0.1, true)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}
