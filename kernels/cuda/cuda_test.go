//go:build metaids_cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/cpu"
	"gorgonia.org/cu"
)

// The tests compare every kernel with kernels/cpu or with a float64
// reference on random inputs. Errors are relative to the larger of the
// result and the magnitude of the terms summed into it: a sum that cancels
// to near zero can only be as exact as its terms.
const tol = 1e-5

var (
	testOnce sync.Once
	testBE   *Backend
	testErr  error
)

// gpu returns the shared backend, or skips the test saying why there is none.
func gpu(t testing.TB) *Backend {
	t.Helper()
	testOnce.Do(func() { testBE, testErr = Open() })
	if testErr != nil {
		t.Skipf("no usable GPU, skipping: %v", testErr)
	}
	return testBE
}

// TestOpen runs with or without a GPU: Open either works or names its
// reason, and kernels.Open agrees.
func TestOpen(t *testing.T) {
	testOnce.Do(func() { testBE, testErr = Open() })
	var logged []string
	auto, err := kernels.Open("auto", func(m string) { logged = append(logged, m) })
	if err != nil {
		t.Fatalf("Open(auto): %v", err)
	}
	if testErr != nil {
		t.Logf("Open: %v", testErr)
		if !errors.Is(testErr, ErrNoDriver) && !errors.Is(testErr, ErrNoDevice) && !errors.Is(testErr, ErrOutOfMemory) {
			t.Errorf("Open's error %q wraps none of ErrNoDriver, ErrNoDevice, ErrOutOfMemory", testErr)
		}
		if _, err := kernels.Open("cuda", nil); err == nil || !strings.Contains(err.Error(), testErr.Error()) {
			t.Errorf("kernels.Open(cuda) = %v, want an error with %q", err, testErr)
		}
		if auto.Name() != "cpu" {
			t.Errorf("auto without a GPU gave %q", auto.Name())
		}
		if len(logged) != 1 || !strings.Contains(logged[0], testErr.Error()) {
			t.Errorf("auto logged %q, want the reason %q once", logged, testErr)
		}
		return
	}
	if b, ok := auto.(*Backend); ok {
		defer b.Close()
	}
	t.Logf("device: %s", testBE.Device())
	if testBE.Name() != "cuda" || testBE.Device() == "" {
		t.Errorf("Name, Device = %q, %q", testBE.Name(), testBE.Device())
	}
	if auto.Name() != "cuda" {
		t.Errorf("auto with a GPU gave %q", auto.Name())
	}
}

func randn(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// compare reports got against want; mag, if not nil, holds each element's
// magnitude of terms (see tol).
func compare(t *testing.T, what string, got, want []float32, mag []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) {
			if math.IsNaN(g) != math.IsNaN(w) {
				worst, at = math.Inf(1), i
				break
			}
			continue
		}
		den := math.Abs(w)
		if mag != nil {
			den = max(den, mag[i])
		}
		if den == 0 {
			den = 1
		}
		if e := math.Abs(g-w) / den; e > worst {
			worst, at = e, i
		}
	}
	if worst > tol {
		t.Errorf("%s: relative error %.3g at %d: got %g, want %g", what, worst, at, got[at], want[at])
	}
}

type shape struct{ B, Q, N, D int }

var pairShapes = []shape{
	{1, 1, 1, 1}, {3, 7, 5, 33}, {2, 75, 5, 64}, {1, 17, 19, 1}, {4, 33, 31, 17}, {2, 100, 130, 122},
	{0, 3, 4, 5}, {2, 0, 4, 5}, {2, 3, 0, 5}, {2, 3, 4, 0}, {0, 0, 0, 0},
}

func TestPairwiseSqDist(t *testing.T) {
	be := gpu(t)
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range pairShapes {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			x, y := randn(r, s.B*s.Q*s.D), randn(r, s.B*s.N*s.D)
			want := randn(r, s.B*s.Q*s.N)
			got := append([]float32(nil), want...) // stale contents must be overwritten
			cpu.PairwiseSqDist(want, x, y, s.B, s.Q, s.N, s.D)
			be.PairwiseSqDist(got, x, y, s.B, s.Q, s.N, s.D)
			compare(t, "dst", got, want, nil)
		})
	}
}

func TestPairwiseSqDistGrad(t *testing.T) {
	be := gpu(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range pairShapes {
		for _, which := range []string{"both", "gx", "gy", "neither"} {
			t.Run(fmt.Sprint(s, which), func(t *testing.T) {
				B, Q, N, D := s.B, s.Q, s.N, s.D
				x, y, gout := randn(r, B*Q*D), randn(r, B*N*D), randn(r, B*Q*N)
				var gx, gy, wx, wy []float32
				if which == "both" || which == "gx" {
					gx = randn(r, B*Q*D)
					wx = append([]float32(nil), gx...)
				}
				if which == "both" || which == "gy" {
					gy = randn(r, B*N*D)
					wy = append([]float32(nil), gy...)
				}
				// Magnitudes: the accumulated values plus every term's size.
				mx, my := make([]float64, len(wx)), make([]float64, len(wy))
				for i := range wx {
					mx[i] = math.Abs(float64(wx[i]))
				}
				for i := range wy {
					my[i] = math.Abs(float64(wy[i]))
				}
				for b := 0; b < B; b++ {
					for q := 0; q < Q; q++ {
						for n := 0; n < N; n++ {
							c := 2 * math.Abs(float64(gout[(b*Q+q)*N+n]))
							for d := 0; d < D; d++ {
								term := c * math.Abs(float64(x[(b*Q+q)*D+d]-y[(b*N+n)*D+d]))
								if wx != nil {
									mx[(b*Q+q)*D+d] += term
								}
								if wy != nil {
									my[(b*N+n)*D+d] += term
								}
							}
						}
					}
				}
				cpu.PairwiseSqDistGrad(wx, wy, gout, x, y, B, Q, N, D)
				be.PairwiseSqDistGrad(gx, gy, gout, x, y, B, Q, N, D)
				compare(t, "gx", gx, wx, mx)
				compare(t, "gy", gy, wy, my)
			})
		}
	}
}

var stepLens = []int{0, 1, 255, 1000, 100003}

func TestSGDStep(t *testing.T) {
	be := gpu(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range stepLens {
		for _, wd := range []float32{0, 1e-2} {
			t.Run(fmt.Sprint(n, wd), func(t *testing.T) {
				const lr = 0.05
				p, g := randn(r, n), randn(r, n)
				want := append([]float32(nil), p...)
				mag := make([]float64, n)
				for i := range mag {
					mag[i] = math.Abs(float64(p[i])) + lr*(math.Abs(float64(g[i]))+float64(wd)*math.Abs(float64(p[i])))
				}
				cpu.SGD(want, g, lr, wd)
				be.SGDStep(p, g, lr, wd)
				compare(t, "p", p, want, mag)
			})
		}
	}
}

func TestAdamStep(t *testing.T) {
	be := gpu(t)
	r := rand.New(rand.NewPCG(7, 8))
	for _, n := range stepLens {
		for _, hp := range []kernels.AdamParams{
			{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
			{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1},
			{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Decoupled: true},
		} {
			t.Run(fmt.Sprint(n, hp), func(t *testing.T) {
				p := randn(r, n)
				m, v := make([]float32, n), make([]float32, n)
				wp, wm, wv := append([]float32(nil), p...), make([]float32, n), make([]float32, n)
				for step := 1; step <= 3; step++ {
					g := randn(r, n)
					mp, mm, mv := adamMags(wp, g, wm, wv, step, hp)
					cpu.Adam(wp, g, wm, wv, step, hp.LR, hp.Beta1, hp.Beta2, hp.Eps, hp.WeightDecay, hp.Decoupled)
					be.AdamStep(p, g, m, v, step, hp)
					compare(t, fmt.Sprintf("p after step %d", step), p, wp, mp)
					compare(t, fmt.Sprintf("m after step %d", step), m, wm, mm)
					compare(t, fmt.Sprintf("v after step %d", step), v, wv, mv)
				}
			})
		}
	}
}

// TestStepsSkipANonFiniteLoss gives the optimiser steps the step's loss:
// NaN or infinite, p, m and v stay as they are, bit for bit; finite (the
// largest float32 too), the step is the one taken without a loss. The
// length spans many blocks, each of which must read the loss.
func TestStepsSkipANonFiniteLoss(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(29, 30))
	const n, lr, wd = 100003, 0.05, 1e-2
	hp := kernels.AdamParams{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	p0, g, m0, v0 := randn(r, n), d.buf(randn(r, n)), randn(r, n), randn(r, n)
	for i, x := range v0 {
		v0[i] = x * x
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, loss := range []float32{nan, inf, -inf, 1.5, math.MaxFloat32} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			d := dev{d.Dev, t}
			skip := loss != loss || loss == inf || loss == -inf
			l := d.buf([]float32{loss})
			p, wp := d.buf(p0), d.buf(p0)
			d.ok(d.SGDStep(p, g, l, lr, wd))
			if !skip {
				d.ok(d.SGDStep(wp, g, Buffer{}, lr, wd))
			}
			sameBits(t, "SGD: p", d.get(p), d.get(wp))
			p, m, v := d.buf(p0), d.buf(m0), d.buf(v0)
			wp, wm, wv := d.buf(p0), d.buf(m0), d.buf(v0)
			d.ok(d.AdamStep(p, g, m, v, l, 3, hp))
			if !skip {
				d.ok(d.AdamStep(wp, g, wm, wv, Buffer{}, 3, hp))
			}
			sameBits(t, "Adam: p", d.get(p), d.get(wp))
			sameBits(t, "Adam: m", d.get(m), d.get(wm))
			sameBits(t, "Adam: v", d.get(v), d.get(wv))
		})
	}
}

// sameBits fails unless got is want, bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i, x := range got {
		if math.Float32bits(x) != math.Float32bits(want[i]) {
			t.Errorf("%s: element %d is %g, want %g", what, i, x, want[i])
			return
		}
	}
}

// TestHostMethodsDoNotAllocate holds the kernels.Backend methods to the
// interface's promise of no allocation on the hot path.
func TestHostMethodsDoNotAllocate(t *testing.T) {
	be := gpu(t)
	r := rand.New(rand.NewPCG(27, 28))
	const B, Q, N, D = 2, 75, 5, 64
	x, y, dst := randn(r, B*Q*D), randn(r, B*N*D), make([]float32, B*Q*N)
	gx, gy := make([]float32, B*Q*D), make([]float32, B*N*D)
	p, g, m, v := randn(r, 1000), randn(r, 1000), make([]float32, 1000), make([]float32, 1000)
	hp := kernels.AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	for name, f := range map[string]func(){
		"PairwiseSqDist":     func() { be.PairwiseSqDist(dst, x, y, B, Q, N, D) },
		"PairwiseSqDistGrad": func() { be.PairwiseSqDistGrad(gx, gy, dst, x, y, B, Q, N, D) },
		"SGDStep":            func() { be.SGDStep(p, g, 1e-3, 0) },
		"AdamStep":           func() { be.AdamStep(p, g, m, v, 1, hp) },
	} {
		f() // sizes the staging buffers
		if n := testing.AllocsPerRun(10, f); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

// adamMags returns the magnitudes of the terms of one Adam step's p, m, v.
func adamMags(p, g, m, v []float32, t int, hp kernels.AdamParams) (mp, mm, mv []float64) {
	n := len(p)
	mp, mm, mv = make([]float64, n), make([]float64, n), make([]float64, n)
	b1, b2 := float64(hp.Beta1), float64(hp.Beta2)
	bc1, bc2 := 1-math.Pow(b1, float64(t)), 1-math.Pow(b2, float64(t))
	l2, decay := float64(hp.WeightDecay), 1.0
	if hp.Decoupled {
		l2, decay = 0, 1-float64(hp.LR)*float64(hp.WeightDecay)
	}
	step, eps := float64(hp.LR)/bc1, float64(hp.Eps)
	for i := range p {
		pi := float64(p[i])
		gi := float64(g[i]) + l2*pi
		ga := math.Abs(float64(g[i])) + math.Abs(l2*pi) // g+l2*p may cancel
		mi := b1*float64(m[i]) + (1-b1)*gi
		vi := b2*float64(v[i]) + (1-b2)*gi*gi
		den := math.Sqrt(vi/bc2) + eps
		mm[i] = math.Abs(b1*float64(m[i])) + (1-b1)*ga
		mv[i] = b2*float64(v[i]) + (1-b2)*ga*ga
		// The update's size, and that of its numerator's terms over the
		// same denominator: where g+l2*p cancels to about eps, the step
		// is as uncertain as that sum.
		mp[i] = math.Abs(decay*pi) + step*(math.Abs(mi)+mm[i])/den
	}
	return mp, mm, mv
}

// dev uploads host slices and frees what it allocated when the test ends.
type dev struct {
	Dev
	t testing.TB
}

func newDev(t testing.TB) dev {
	d := dev{gpu(t).Dev(), t}
	return d
}

func (d dev) buf(src []float32) Buffer {
	d.t.Helper()
	x, err := d.Alloc(len(src))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = d.Free(x) })
	if err := d.Upload(x, src); err != nil {
		d.t.Fatal(err)
	}
	return x
}

func (d dev) ints(src []int32) Buffer {
	d.t.Helper()
	x, err := d.Alloc(len(src))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = d.Free(x) })
	if err := d.UploadInt32(x, src); err != nil {
		d.t.Fatal(err)
	}
	return x
}

func (d dev) get(x Buffer) []float32 {
	d.t.Helper()
	out := make([]float32, x.Len())
	if err := d.Download(out, x); err != nil {
		d.t.Fatal(err)
	}
	return out
}

func (d dev) ok(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
}

func TestBuffers(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(9, 10))
	src := randn(r, 1001)
	x := d.buf(src)
	compare(t, "round trip", d.get(x), src, nil)
	y := d.buf(make([]float32, 1001))
	d.ok(d.Copy(y, x))
	compare(t, "copy", d.get(y), src, nil)
	d.ok(d.Zero(y.Slice(1, 1000)))
	got := d.get(y)
	if got[0] != src[0] || got[1000] != src[1000] || got[1] != 0 || got[999] != 0 {
		t.Errorf("Zero of a slice: got %v...%v", got[:2], got[999:])
	}
	e, err := d.Alloc(0)
	d.ok(err)
	if !e.IsNil() || e.Len() != 0 {
		t.Errorf("Alloc(0) = %+v", e)
	}
	d.ok(d.Upload(e, nil))
	d.ok(d.Download(nil, e))
	d.ok(d.Sync())
}

func TestGemm(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(11, 12))
	type gcase struct {
		M, N, K, batch int
		pad            int  // extra columns in every leading dimension
		shareB         bool // StrideB 0
		beta           float32
	}
	cases := []gcase{
		{1, 1, 1, 1, 0, false, 0}, {33, 65, 17, 1, 0, false, 0}, {75, 64, 122, 1, 0, false, 1},
		{25, 64, 122, 3, 0, true, 0}, {31, 5, 64, 4, 3, false, 0.5}, {64, 122, 300, 2, 1, false, 1},
		{5, 3, 0, 2, 0, false, 0.5}, {0, 3, 4, 2, 0, false, 0}, {3, 0, 4, 2, 0, false, 0}, {3, 4, 5, 0, 0, false, 0},
		// Long K over few output tiles: split into chunks (with a shorter
		// last one), unless C is padded or beta is neither 0 nor 1.
		{5, 7, 3000, 1, 0, false, 0}, {122, 64, 2049, 1, 0, false, 1}, {3, 3, 700, 1, 2, false, 0}, {4, 4, 800, 1, 0, false, 0.5},
	}
	for _, c := range cases {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				t.Run(fmt.Sprintf("%+v/tA=%v/tB=%v", c, ta, tb), func(t *testing.T) {
					ar, ac := c.M, c.K
					if ta {
						ar, ac = c.K, c.M
					}
					br, bc := c.K, c.N
					if tb {
						br, bc = c.N, c.K
					}
					lda, ldb, ldc := ac+c.pad, bc+c.pad, c.N+c.pad
					sa, sb, sc := ar*lda, br*ldb, c.M*ldc
					if c.shareB {
						sb = 0
					}
					nb := max(c.batch, 1)
					a := randn(r, nb*sa)
					bm := randn(r, max(sb*nb, br*ldb))
					c0 := randn(r, nb*sc)
					if c.beta == 0 {
						for i := range c0 {
							c0[i] = float32(math.NaN()) // must not be read
						}
					}
					const alpha = 1.5
					want, mag := append([]float32(nil), c0...), make([]float64, len(c0))
					for z := 0; z < c.batch; z++ {
						for i := 0; i < c.M; i++ {
							for j := 0; j < c.N; j++ {
								var s, m float64
								for p := 0; p < c.K; p++ {
									ai := z*sa + i*lda + p
									if ta {
										ai = z*sa + p*lda + i
									}
									bi := z*sb + p*ldb + j
									if tb {
										bi = z*sb + j*ldb + p
									}
									s += float64(a[ai]) * float64(bm[bi])
									m += math.Abs(float64(a[ai]) * float64(bm[bi]))
								}
								k := z*sc + i*ldc + j
								v, mv := alpha*s, alpha*m
								if c.beta != 0 {
									v += float64(c.beta) * float64(c0[k])
									mv += math.Abs(float64(c.beta) * float64(c0[k]))
								}
								want[k], mag[k] = float32(v), mv
							}
						}
					}
					C := d.buf(c0)
					d.ok(d.GemmBatched(Gemm{
						TransA: ta, TransB: tb, M: c.M, N: c.N, K: c.K, Alpha: alpha, Beta: c.beta,
						A: d.buf(a), B: d.buf(bm), C: C, LDA: lda, LDB: ldb, LDC: ldc,
						StrideA: sa, StrideB: sb, StrideC: sc, Batch: c.batch,
					}))
					got := d.get(C)
					// Padding columns are outside C's matrices: untouched.
					for k := range got {
						if c.pad > 0 && k%sc%ldc >= c.N && !(math.IsNaN(float64(got[k])) && math.IsNaN(float64(c0[k]))) && got[k] != c0[k] {
							t.Fatalf("padding element %d changed: %g, was %g", k, got[k], c0[k])
						}
					}
					compare(t, "C", got, want, mag)
				})
			}
		}
	}
}

// TestGemmEpilogue checks that a product with its bias and activation fused
// gives, to the bit, what the product, BiasAdd and Activate give one after
// another: shared and per-task biases, every activation, transposes, a
// split reduction, and no activation.
func TestGemmEpilogue(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(13, 14))
	for _, c := range []struct{ M, N, K, batch, biasStride int }{
		{33, 65, 17, 1, 0}, {25, 64, 122, 3, 0}, {31, 5, 64, 4, 9}, {1, 1, 1, 1, 0}, {11, 7, 700, 1, 0},
	} {
		for _, f := range []Activation{ReLU, LeakyReLU, Tanh, Sigmoid, -1} {
			for _, ta := range []bool{false, true} {
				g := Gemm{TransA: ta, M: c.M, N: c.N, K: c.K, Alpha: 1, LDA: c.K, LDB: c.N, LDC: c.N,
					StrideA: c.M * c.K, StrideB: c.K * c.N, StrideC: c.M * c.N, Batch: c.batch}
				if ta {
					g.LDA = c.M
				}
				g.A, g.B = d.buf(randn(r, c.batch*c.M*c.K)), d.buf(randn(r, c.batch*c.K*c.N))
				bias := d.buf(randn(r, max(c.biasStride*(c.batch-1), 0)+c.N))
				n := c.batch * c.M * c.N
				plain, fused := g, g
				plain.C, fused.C = d.buf(make([]float32, n)), d.buf(make([]float32, n))
				fused.Bias, fused.BiasStride = bias, c.biasStride
				aPlain, aFused := d.buf(make([]float32, n)), d.buf(make([]float32, n))
				if f >= 0 {
					fused.Act, fused.ActOut = f, aFused
				}
				d.ok(d.GemmBatched(plain))
				d.ok(d.BiasAdd(plain.C, bias, c.batch, c.M, c.N, c.biasStride))
				if f >= 0 {
					d.ok(d.Activate(f, aPlain, plain.C))
				}
				d.ok(d.GemmBatched(fused))
				what := fmt.Sprintf("%+v act %d transA %v", c, f, ta)
				if got, want := d.get(fused.C), d.get(plain.C); !slices.Equal(got, want) {
					t.Errorf("%s: fused pre-activations differ from the separate calls'", what)
				}
				if got, want := d.get(aFused), d.get(aPlain); !slices.Equal(got, want) {
					t.Errorf("%s: fused activations differ from the separate calls'", what)
				}
			}
		}
	}
	if splitK(Gemm{M: 11, N: 7, K: 700, LDC: 7, Batch: 1}) < 2 {
		t.Error("no case splits its reduction")
	}
}

func TestBiasAddColSum(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(13, 14))
	for _, batch := range []int{0, 1, 3} {
		for _, stride := range []int{0, 40} {
			const rows, cols = 7, 33
			z, bias := randn(r, batch*rows*cols), randn(r, max(batch, 1)*40)
			want := append([]float32(nil), z...)
			for i := range want {
				b, c := i/(rows*cols), i%cols
				want[i] += bias[b*stride+c]
			}
			zd := d.buf(z)
			d.ok(d.BiasAdd(zd, d.buf(bias), batch, rows, cols, stride))
			compare(t, fmt.Sprint("BiasAdd ", batch, stride), d.get(zd), want, nil)
		}
	}
	for _, rows := range []int{0, 1, 9, 1000} {
		for _, acc := range []bool{false, true} {
			const batch, cols, stride = 2, 70, 80
			x, dst := randn(r, batch*rows*cols), randn(r, batch*stride)
			want, mag := append([]float32(nil), dst...), make([]float64, len(dst))
			for b := 0; b < batch; b++ {
				for c := 0; c < cols; c++ {
					var s, m float64
					for k := 0; k < rows; k++ {
						v := float64(x[(b*rows+k)*cols+c])
						s, m = s+v, m+math.Abs(v)
					}
					i := b*stride + c
					if acc {
						s += float64(dst[i])
						m += math.Abs(float64(dst[i]))
					}
					want[i], mag[i] = float32(s), m
				}
			}
			dd := d.buf(dst)
			d.ok(d.ColSum(dd, d.buf(x), batch, rows, cols, stride, acc))
			compare(t, fmt.Sprint("ColSum ", rows, acc), d.get(dd), want, mag)
		}
	}
}

// TestColSumSplit sums many rows of few columns, which runs split (see
// splitK), with and without a shorter last chunk.
func TestColSumSplit(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, rows := range []int{600, 5001, 25600} {
		for _, cols := range []int{3, 64} {
			for _, acc := range []bool{false, true} {
				x, dst := randn(r, rows*cols), randn(r, cols)
				want, mag := append([]float32(nil), dst...), make([]float64, cols)
				for c := 0; c < cols; c++ {
					var s, m float64
					for k := 0; k < rows; k++ {
						v := float64(x[k*cols+c])
						s, m = s+v, m+math.Abs(v)
					}
					if acc {
						s += float64(dst[c])
						m += math.Abs(float64(dst[c]))
					}
					want[c], mag[c] = float32(s), m
				}
				dd := d.buf(dst)
				d.ok(d.ColSum(dd, d.buf(x), 1, rows, cols, 0, acc))
				compare(t, fmt.Sprint("ColSum ", rows, "x", cols, acc), d.get(dd), want, mag)
			}
		}
	}
}

func TestActivations(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(15, 16))
	for _, n := range []int{0, 1, 255, 10007} {
		for f := ReLU; f <= Sigmoid; f++ {
			z, g, dst0, rz := randn(r, n), randn(r, n), randn(r, n), randn(r, n)
			for i := range z {
				z[i] *= 3
			}
			zd, ad := d.buf(z), d.buf(make([]float32, n))
			d.ok(d.Activate(f, ad, zd))
			a := d.get(ad)
			wa := make([]float32, n)
			for i, v := range z {
				switch f {
				case ReLU:
					wa[i] = max(v, 0)
				case LeakyReLU:
					wa[i] = v
					if v < 0 {
						wa[i] = v * 0.01
					}
				case Tanh:
					wa[i] = float32(math.Tanh(float64(v)))
				case Sigmoid:
					wa[i] = float32(1 / (1 + math.Exp(-float64(v))))
				}
			}
			compare(t, fmt.Sprint("Activate ", f, n), a, wa, nil)

			// The backward passes take the GPU's a, to test them alone.
			// 1-a² and 1-a cancel where the activations saturate.
			wd, md := make([]float32, n), make([]float64, n)
			for i, v := range g {
				av, gv := math.Abs(float64(a[i])), math.Abs(float64(v))
				switch f {
				case ReLU:
					if z[i] > 0 {
						wd[i] = v
					}
				case LeakyReLU:
					wd[i] = v
					if z[i] < 0 {
						wd[i] = v * 0.01
					}
				case Tanh:
					wd[i] = v * (1 - a[i]*a[i])
					md[i] = gv * (1 + av*av)
				case Sigmoid:
					wd[i] = v * a[i] * (1 - a[i])
					md[i] = gv * av * (1 + av)
				}
			}
			gd := d.buf(g)
			d.ok(d.ActivationGrad(f, gd, gd, zd, ad)) // in place
			compare(t, fmt.Sprint("ActivationGrad ", f, n), d.get(gd), wd, md)

			wc, mc := append([]float32(nil), dst0...), make([]float64, n)
			for i := range wc {
				var c, cm float64 // curvature, and the size of its terms
				av := float64(a[i])
				switch f {
				case Tanh:
					c, cm = -2*av, 2*math.Abs(av)
				case Sigmoid:
					c, cm = 1-2*av, 1+2*math.Abs(av)
				}
				gr := float64(g[i]) * float64(rz[i])
				wc[i] = float32(float64(dst0[i]) + gr*c)
				mc[i] = math.Abs(float64(dst0[i])) + math.Abs(gr)*cm
			}
			cd := d.buf(dst0)
			d.ok(d.ActivationCurv(f, cd, d.buf(g), ad, d.buf(rz)))
			compare(t, fmt.Sprint("ActivationCurv ", f, n), d.get(cd), wc, mc)
		}
	}
}

func TestSoftmax(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, rc := range [][2]int{{1, 1}, {1, 5}, {77, 5}, {1000, 2}, {333, 37}} {
		rows, C := rc[0], rc[1]
		logits := randn(r, rows*C)
		for i := range logits {
			logits[i] *= 4
		}
		labels := make([]int32, rows)
		for i := range labels {
			labels[i] = int32(r.IntN(C))
		}
		scale := 1 / float32(rows)
		wl, wp, wd := make([]float32, rows), make([]float32, rows*C), make([]float32, rows*C)
		md := make([]float64, rows*C)
		for i := 0; i < rows; i++ {
			l := logits[i*C : i*C+C]
			mx := l[0]
			for _, v := range l {
				mx = max(mx, v)
			}
			var sum float64
			for _, v := range l {
				sum += math.Exp(float64(v - mx))
			}
			y := labels[i]
			wl[i] = float32(-(float64(l[y]-mx) - math.Log(sum)))
			for j, v := range l {
				p := math.Exp(float64(v-mx)) / sum
				wp[i*C+j] = float32(p)
				dd, m := p*float64(scale), p*float64(scale)
				if int32(j) == y {
					dd -= float64(scale)
					m += float64(scale)
				}
				wd[i*C+j], md[i*C+j] = float32(dd), m
			}
		}
		ld, pd, dd := d.buf(make([]float32, rows)), d.buf(make([]float32, rows*C)), d.buf(make([]float32, rows*C))
		lg := d.buf(logits)
		d.ok(d.SoftmaxXent(ld, pd, dd, lg, d.ints(labels), rows, C, scale))
		// A row's loss is a difference of its logit and the log-sum.
		ml := make([]float64, rows)
		for i := range ml {
			ml[i] = math.Abs(float64(wl[i])) + 1e-2
		}
		compare(t, fmt.Sprint("loss ", rows, C), d.get(ld), wl, ml)
		compare(t, fmt.Sprint("prob ", rows, C), d.get(pd), wp, nil)
		compare(t, fmt.Sprint("dlogits ", rows, C), d.get(dd), wd, md)

		sum := d.buf([]float32{0})
		d.ok(d.ReduceSum(sum, ld, scale))
		var wsum, msum float64
		for _, v := range wl {
			wsum += float64(v) * float64(scale)
			msum += math.Abs(float64(v) * float64(scale))
		}
		compare(t, fmt.Sprint("mean loss ", rows, C), d.get(sum), []float32{float32(wsum)}, []float64{msum})

		rl := randn(r, rows*C)
		wr, mr := make([]float32, rows*C), make([]float64, rows*C)
		for i := 0; i < rows; i++ {
			var dot, mdot float64
			for j := 0; j < C; j++ {
				dot += float64(wp[i*C+j]) * float64(rl[i*C+j])
				mdot += math.Abs(float64(wp[i*C+j]) * float64(rl[i*C+j]))
			}
			for j := 0; j < C; j++ {
				p, v := float64(wp[i*C+j]), float64(rl[i*C+j])
				wr[i*C+j] = float32(p * (v - dot) * float64(scale))
				mr[i*C+j] = p * (math.Abs(v) + mdot) * float64(scale)
			}
		}
		rd := d.buf(make([]float32, rows*C))
		d.ok(d.SoftmaxXentRop(rd, pd, d.buf(rl), rows, C, scale))
		compare(t, fmt.Sprint("rop ", rows, C), d.get(rd), wr, mr)

		out, lab := d.buf(make([]float32, rows*C)), d.ints(make([]int32, rows))
		d.ok(d.LogSoftmax(out, lab, lg, rows, C))
		wo, mo := make([]float32, rows*C), make([]float64, rows*C)
		wlab := make([]int32, rows)
		for i := 0; i < rows; i++ {
			l := logits[i*C : i*C+C]
			best := 0
			for j, v := range l {
				if v > l[best] {
					best = j
				}
			}
			mx := float64(l[best])
			var s float64
			for _, v := range l {
				s += math.Exp(float64(v) - mx)
			}
			ls := mx + math.Log(s)
			for j, v := range l {
				wo[i*C+j] = float32(float64(v) - ls)
				mo[i*C+j] = math.Abs(float64(v)) + math.Abs(ls)
			}
			wlab[i] = int32(best)
		}
		compare(t, fmt.Sprint("log-softmax ", rows, C), d.get(out), wo, mo)
		gl := make([]int32, rows)
		d.ok(d.DownloadInt32(gl, lab))
		for i := range gl {
			if gl[i] != wlab[i] {
				t.Fatalf("log-softmax arg-max of row %d: %d, want %d", i, gl[i], wlab[i])
			}
		}
	}

	// A label out of range flags its row with a NaN loss.
	ld := d.buf([]float32{0, 0})
	d.ok(d.SoftmaxXent(ld, d.buf(make([]float32, 6)), d.buf(make([]float32, 6)), d.buf(make([]float32, 6)),
		d.ints([]int32{1, 3}), 2, 3, 0.5))
	if got := d.get(ld); math.IsNaN(float64(got[0])) || !math.IsNaN(float64(got[1])) {
		t.Errorf("losses with labels 1, 3 of 3 classes: %v, want finite, NaN", got)
	}
}

func TestClassMean(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(19, 20))
	for _, s := range [][4]int{{1, 1, 1, 1}, {3, 25, 5, 64}, {2, 7, 4, 33}, {0, 5, 5, 5}, {2, 0, 3, 4}, {2, 5, 3, 0}} {
		B, S, W, H := s[0], s[1], s[2], s[3]
		emb := randn(r, B*S*H)
		labels := make([]int32, B*S)
		for i := range labels {
			labels[i] = int32(r.IntN(W))
			if W > 1 && labels[i] == int32(W-1) && i < S { // the first task lacks its last way
				labels[i] = 0
			}
		}
		want, mag := make([]float32, B*W*H), make([]float64, B*W*H)
		cnt := make([]int, B*W)
		for b := 0; b < B; b++ {
			for k := 0; k < S; k++ {
				y := int(labels[b*S+k])
				cnt[b*W+y]++
			}
		}
		for b := 0; b < B; b++ {
			for w := 0; w < W; w++ {
				for h := 0; h < H; h++ {
					var sum, m float64
					for k := 0; k < S; k++ {
						if int(labels[b*S+k]) == w {
							v := float64(emb[(b*S+k)*H+h])
							sum, m = sum+v, m+math.Abs(v)
						}
					}
					if c := cnt[b*W+w]; c > 0 {
						want[(b*W+w)*H+h], mag[(b*W+w)*H+h] = float32(sum/float64(c)), m/float64(c)
					}
				}
			}
		}
		pd, lb := d.buf(randn(r, B*W*H)), d.ints(labels)
		d.ok(d.ClassMean(pd, d.buf(emb), lb, B, S, W, H))
		compare(t, fmt.Sprint("ClassMean ", s), d.get(pd), want, mag)

		dproto, demb := randn(r, B*W*H), randn(r, B*S*H)
		wg := append([]float32(nil), demb...)
		for b := 0; b < B; b++ {
			for k := 0; k < S; k++ {
				y := int(labels[b*S+k])
				for h := 0; h < H; h++ {
					wg[(b*S+k)*H+h] += dproto[(b*W+y)*H+h] / float32(cnt[b*W+y])
				}
			}
		}
		mg := make([]float64, len(wg))
		for i := range mg {
			mg[i] = math.Abs(float64(demb[i])) + math.Abs(float64(wg[i]-demb[i]))
		}
		gd := d.buf(demb)
		d.ok(d.ClassMeanGrad(gd, d.buf(dproto), lb, B, S, W, H, true))
		compare(t, fmt.Sprint("ClassMeanGrad ", s), d.get(gd), wg, mg)
	}
}

// TestGemmRows checks products that read A's rows through ARows against
// the same products on the rows gathered first, bit for bit: per-task
// rows from one shared matrix, transposed (a weight gradient) and not, a
// split reduction, and an epilogue.
func TestGemmRows(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(29, 30))
	const poolRows = 57
	for _, c := range []struct {
		rows, cols, n, batch int
		transA, epilogue     bool
	}{
		{37, 13, 7, 3, false, false}, {37, 13, 7, 3, false, true}, {37, 13, 7, 3, true, false},
		{700, 11, 7, 1, true, false}, {5, 122, 64, 2, false, true}, {1, 1, 1, 1, true, false},
	} {
		pool := d.buf(randn(r, poolRows*c.cols))
		idx := make([]int32, c.batch*c.rows)
		for i := range idx {
			idx[i] = int32(r.IntN(poolRows))
		}
		rows := d.ints(idx)
		host, gathered := d.get(pool), make([]float32, 0, len(idx)*c.cols)
		for _, k := range idx {
			gathered = append(gathered, host[int(k)*c.cols:(int(k)+1)*c.cols]...)
		}
		var g Gemm
		if c.transA { // C [cols,n] = Xᵀ·Y over the rows
			g = Gemm{TransA: true, M: c.cols, N: c.n, K: c.rows, Alpha: 1, LDA: c.cols, StrideA: c.rows * c.cols,
				B: d.buf(randn(r, c.batch*c.rows*c.n)), LDB: c.n, StrideB: c.rows * c.n, LDC: c.n, StrideC: c.cols * c.n, Batch: c.batch}
		} else { // C [rows,n] = X·W, W shared
			g = Gemm{M: c.rows, N: c.n, K: c.cols, Alpha: 1, LDA: c.cols, StrideA: c.rows * c.cols,
				B: d.buf(randn(r, c.cols*c.n)), LDB: c.n, LDC: c.n, StrideC: c.rows * c.n, Batch: c.batch}
		}
		if c.epilogue {
			g.Bias, g.Act = d.buf(randn(r, c.n)), Tanh
		}
		nc := c.batch * g.M * g.N
		plain, indexed := g, g
		plain.A, plain.C = d.buf(gathered), d.buf(make([]float32, nc))
		indexed.A, indexed.StrideA, indexed.ARows, indexed.ARowsStride = pool, 0, rows, c.rows
		indexed.C = d.buf(make([]float32, nc))
		if c.epilogue {
			plain.ActOut, indexed.ActOut = d.buf(make([]float32, nc)), d.buf(make([]float32, nc))
		}
		d.ok(d.GemmBatched(plain))
		d.ok(d.GemmBatched(indexed))
		what := fmt.Sprintf("%+v", c)
		if !slices.Equal(d.get(indexed.C), d.get(plain.C)) {
			t.Errorf("%s: the product through row numbers differs from the one on gathered rows", what)
		}
		if c.epilogue && !slices.Equal(d.get(indexed.ActOut), d.get(plain.ActOut)) {
			t.Errorf("%s: the activations through row numbers differ", what)
		}
	}
	if splitK(Gemm{TransA: true, M: 11, N: 7, K: 700, LDC: 7, Batch: 1}) < 2 {
		t.Error("no case splits its reduction")
	}
}

// TestWrittenGradients checks that the gradients written (accumulate
// false) into garbage are, to the bit, those added to zeros, and that
// negated distances are the distances negated: what lets a ProtoNet step
// skip two memsets and a scaling pass. Labels include one outside [0,W).
func TestWrittenGradients(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(27, 28))
	garbage := func(n int) Buffer {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.NaN())
		}
		return d.buf(x)
	}
	for _, s := range []shape{{3, 7, 5, 11}, {1, 1, 1, 1}, {2, 17, 3, 0}, {2, 0, 3, 4}} {
		x, y, gout := d.buf(randn(r, s.B*s.Q*s.D)), d.buf(randn(r, s.B*s.N*s.D)), d.buf(randn(r, s.B*s.Q*s.N))
		what := fmt.Sprint(s)
		if s.B*s.Q*s.N > 0 {
			dist, neg := d.buf(make([]float32, s.B*s.Q*s.N)), garbage(s.B*s.Q*s.N)
			d.ok(d.PairwiseSqDist(dist, x, y, s.B, s.Q, s.N, s.D, 1))
			d.ok(d.Scale(dist, -1))
			d.ok(d.PairwiseSqDist(neg, x, y, s.B, s.Q, s.N, s.D, -1))
			if !slices.Equal(d.get(neg), d.get(dist)) {
				t.Errorf("%s: negated distances differ from the distances scaled by -1", what)
			}
		}
		added := [2]Buffer{d.buf(make([]float32, s.B*s.Q*s.D)), d.buf(make([]float32, s.B*s.N*s.D))}
		written := [2]Buffer{garbage(s.B * s.Q * s.D), garbage(s.B * s.N * s.D)}
		d.ok(d.PairwiseSqDistGrad(added[0], added[1], gout, x, y, s.B, s.Q, s.N, s.D, true))
		d.ok(d.PairwiseSqDistGrad(written[0], written[1], gout, x, y, s.B, s.Q, s.N, s.D, false))
		for i, name := range []string{"gx", "gy"} {
			if a, w := d.get(added[i]), d.get(written[i]); !slices.Equal(a, w) {
				t.Errorf("%s: written %s %v, added %v", what, name, w[:min(len(w), 4)], a[:min(len(a), 4)])
			}
		}
	}
	const B, S, W, H = 2, 7, 3, 5
	labels := make([]int32, B*S)
	for i := range labels {
		labels[i] = int32(i % (W + 1)) // W: outside [0,W)
	}
	lb, dproto := d.ints(labels), d.buf(randn(r, B*W*H))
	added, written := d.buf(make([]float32, B*S*H)), garbage(B*S*H)
	d.ok(d.ClassMeanGrad(added, dproto, lb, B, S, W, H, true))
	d.ok(d.ClassMeanGrad(written, dproto, lb, B, S, W, H, false))
	if a, w := d.get(added), d.get(written); !slices.Equal(a, w) {
		t.Errorf("ClassMeanGrad: written %v, added %v", w, a)
	}
}

func TestVectorOps(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 255, 100003} {
		x, y := randn(r, n), randn(r, n)
		ws, wa := make([]float32, n), make([]float32, n)
		ma := make([]float64, n)
		for i := range x {
			ws[i] = x[i] * -0.5
			wa[i] = y[i] + 1.5*x[i]
			ma[i] = math.Abs(float64(y[i])) + math.Abs(1.5*float64(x[i]))
		}
		xd, yd := d.buf(x), d.buf(y)
		d.ok(d.Axpy(yd, xd, 1.5))
		compare(t, fmt.Sprint("Axpy ", n), d.get(yd), wa, ma)
		to := d.buf(make([]float32, n))
		d.ok(d.ScaleTo(to, xd, -0.5))
		if got := d.get(xd); !slices.Equal(got, x) {
			t.Errorf("ScaleTo %d changed its source", n)
		}
		compare(t, fmt.Sprint("ScaleTo ", n), d.get(to), ws, nil)
		d.ok(d.Scale(xd, -0.5))
		compare(t, fmt.Sprint("Scale ", n), d.get(xd), ws, nil)

		sum := d.buf([]float32{7})
		d.ok(d.ReduceSum(sum, d.buf(y), 0.25))
		var ws2, ms2 float64
		for _, v := range y {
			ws2 += 0.25 * float64(v)
			ms2 += 0.25 * math.Abs(float64(v))
		}
		compare(t, fmt.Sprint("ReduceSum ", n), d.get(sum), []float32{float32(ws2)}, []float64{ms2})
	}
	for _, batch := range []int{0, 1, 4} {
		for _, shared := range []bool{true, false} {
			for _, perParam := range []bool{false, true} {
				const n, lr = 1001, 0.1
				wn := n
				if shared {
					wn = 0
				}
				w, g := randn(r, max(batch, 1)*n), randn(r, batch*n)
				var lrv []float32
				lrBuf := Buffer{}
				if perParam {
					lrv = randn(r, n)
					lrBuf = d.buf(lrv)
				}
				want, mag := make([]float32, batch*n), make([]float64, batch*n)
				for b := 0; b < batch; b++ {
					for i := 0; i < n; i++ {
						a := float32(lr)
						if perParam {
							a = lrv[i]
						}
						wv, gv := w[b*wn+i], g[b*n+i]
						want[b*n+i] = wv - a*gv
						mag[b*n+i] = math.Abs(float64(wv)) + math.Abs(float64(a*gv))
					}
				}
				wf := d.buf(make([]float32, batch*n))
				d.ok(d.InnerUpdate(wf, d.buf(w), wn, d.buf(g), lrBuf, lr, n, batch))
				compare(t, fmt.Sprint("InnerUpdate ", batch, shared, perParam), d.get(wf), want, mag)
			}
		}
	}
}

// protoTask is a batch of ProtoNet episodes for a one-layer ReLU encoder
// [din -> h], support rows of every task first, then query rows.
type protoTask struct {
	B, W, S, Q, din, h int
	x                  []float32 // [B*S + B*Q, din]
	ys, yq             []int32   // [B*S], [B*Q]
}

func newProtoTask(r *rand.Rand, B, W, shots, queries, din, h int) *protoTask {
	p := &protoTask{B: B, W: W, S: W * shots, Q: W * queries, din: din, h: h}
	p.x = randn(r, B*(p.S+p.Q)*din)
	p.ys, p.yq = make([]int32, B*p.S), make([]int32, B*p.Q)
	for i := range p.ys {
		p.ys[i] = int32(i % p.S / shots)
	}
	for i := range p.yq {
		p.yq[i] = int32(r.IntN(W))
	}
	return p
}

// protoStep is one ProtoNet meta-step kept entirely on the GPU: encoder
// forward, prototypes, distances, loss, and the backward pass into grad,
// the gradient of the meta-batch's mean query loss with respect to params
// [din*h weights, h biases]. Only the scalar loss leaves the device.
type protoStep struct {
	d                               dev
	p                               *protoTask
	x, ys, yq                       Buffer
	z, a, proto, dist, loss, prob   Buffer
	dlog, gemb, gproto, dz, lossSum Buffer
}

func newProtoStep(d dev, p *protoTask) *protoStep {
	rows := p.B * (p.S + p.Q)
	zero := func(n int) Buffer { return d.buf(make([]float32, n)) }
	return &protoStep{
		d: d, p: p, x: d.buf(p.x), ys: d.ints(p.ys), yq: d.ints(p.yq),
		z: zero(rows * p.h), a: zero(rows * p.h), proto: zero(p.B * p.W * p.h),
		dist: zero(p.B * p.Q * p.W), loss: zero(p.B * p.Q), prob: zero(p.B * p.Q * p.W),
		dlog: zero(p.B * p.Q * p.W), gemb: zero(rows * p.h), gproto: zero(p.B * p.W * p.h),
		dz: zero(rows * p.h), lossSum: zero(1),
	}
}

func (s *protoStep) run(params, grad Buffer) error {
	p, d := s.p, s.d.Dev
	rows, nw := p.B*(p.S+p.Q), p.din*p.h
	W, bias := params.Slice(0, nw), params.Slice(nw, nw+p.h)
	gW, gb := grad.Slice(0, nw), grad.Slice(nw, nw+p.h)
	sup, qry := p.B*p.S*p.h, rows*p.h
	embS, embQ := s.a.Slice(0, sup), s.a.Slice(sup, qry)
	scale := 1 / float32(p.B*p.Q)
	for _, err := range []error{
		d.GemmBatched(Gemm{M: rows, N: p.h, K: p.din, Alpha: 1, A: s.x, LDA: p.din, B: W, LDB: p.h, C: s.z, LDC: p.h, Batch: 1}),
		d.BiasAdd(s.z, bias, 1, rows, p.h, 0),
		d.Activate(ReLU, s.a, s.z),
		d.ClassMean(s.proto, embS, s.ys, p.B, p.S, p.W, p.h),
		d.PairwiseSqDist(s.dist, embQ, s.proto, p.B, p.Q, p.W, p.h, -1), // logits
		d.SoftmaxXent(s.loss, s.prob, s.dlog, s.dist, s.yq, p.B*p.Q, p.W, scale),
		d.ReduceSum(s.lossSum, s.loss, scale),
		d.Scale(s.dlog, -1), // gradient with respect to the distances
		d.PairwiseSqDistGrad(s.gemb.Slice(sup, qry), s.gproto, s.dlog, embQ, s.proto, p.B, p.Q, p.W, p.h, false),
		d.ClassMeanGrad(s.gemb.Slice(0, sup), s.gproto, s.ys, p.B, p.S, p.W, p.h, false),
		d.ActivationGrad(ReLU, s.dz, s.gemb, s.z, Buffer{}),
		d.GemmBatched(Gemm{TransA: true, M: p.din, N: p.h, K: rows, Alpha: 1, A: s.x, LDA: p.din, B: s.dz, LDB: p.h, C: gW, LDC: p.h, Batch: 1}),
		d.ColSum(gb, s.dz, 1, rows, p.h, 0, false),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// hostLoss is the float64 reference of protoStep's loss.
func (p *protoTask) hostLoss(params []float64) float64 {
	rows, nw := p.B*(p.S+p.Q), p.din*p.h
	a := make([]float64, rows*p.h)
	for i := 0; i < rows; i++ {
		for j := 0; j < p.h; j++ {
			s := params[nw+j]
			for k := 0; k < p.din; k++ {
				s += float64(p.x[i*p.din+k]) * params[k*p.h+j]
			}
			a[i*p.h+j] = max(s, 0)
		}
	}
	var loss float64
	for b := 0; b < p.B; b++ {
		proto := make([]float64, p.W*p.h)
		cnt := make([]float64, p.W)
		for k := 0; k < p.S; k++ {
			y := int(p.ys[b*p.S+k])
			cnt[y]++
			for j := 0; j < p.h; j++ {
				proto[y*p.h+j] += a[(b*p.S+k)*p.h+j]
			}
		}
		for w := range cnt {
			for j := 0; j < p.h; j++ {
				proto[w*p.h+j] /= cnt[w]
			}
		}
		for q := 0; q < p.Q; q++ {
			e := a[(p.B*p.S+b*p.Q+q)*p.h:]
			logits := make([]float64, p.W)
			mx := math.Inf(-1)
			for w := range logits {
				var d float64
				for j := 0; j < p.h; j++ {
					t := e[j] - proto[w*p.h+j]
					d += t * t
				}
				logits[w] = -d
				mx = max(mx, -d)
			}
			var s float64
			for _, l := range logits {
				s += math.Exp(l - mx)
			}
			loss += -(logits[p.yq[b*p.Q+q]] - mx - math.Log(s))
		}
	}
	return loss / float64(p.B*p.Q)
}

// TestProtoNetStepOnDevice checks a whole device-resident ProtoNet
// meta-step: its loss against the float64 reference, and its gradient
// against central differences of that reference along random directions.
func TestProtoNetStepOnDevice(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(23, 24))
	p := newProtoTask(r, 3, 5, 2, 3, 11, 7)
	np := p.din*p.h + p.h
	params := randn(r, np)
	for i := range params {
		params[i] *= 0.5
	}
	s := newProtoStep(d, p)
	grad := d.buf(make([]float32, np))
	d.ok(s.run(d.buf(params), grad))
	gotLoss, g := d.get(s.lossSum)[0], d.get(grad)

	p64 := make([]float64, np)
	for i, v := range params {
		p64[i] = float64(v)
	}
	want := p.hostLoss(p64)
	if e := math.Abs(float64(gotLoss)-want) / want; e > 1e-5 {
		t.Errorf("loss %g, want %g (relative error %.3g)", gotLoss, want, e)
	}
	for k := 0; k < 5; k++ {
		v := make([]float64, np)
		var gv, mag float64
		for i := range v {
			v[i] = r.NormFloat64()
			gv += float64(g[i]) * v[i]
			mag += math.Abs(float64(g[i]) * v[i])
		}
		const eps = 1e-5
		plus, minus := make([]float64, np), make([]float64, np)
		for i := range v {
			plus[i], minus[i] = p64[i]+eps*v[i], p64[i]-eps*v[i]
		}
		fd := (p.hostLoss(plus) - p.hostLoss(minus)) / (2 * eps)
		// float32 gradient against float64 differences: a looser bound.
		if e := math.Abs(gv-fd) / max(math.Abs(fd), mag); e > 1e-4 {
			t.Errorf("direction %d: gradient·v = %g, central difference %g (relative error %.3g)", k, gv, fd, e)
		}
	}
}

// BenchmarkProtoNetStepOnDevice times the device-resident meta-step for
// 5-way 5-shot 15-query episodes, 122 features, 64 hidden units, across
// meta-batch sizes, as tasks per second.
func BenchmarkProtoNetStepOnDevice(b *testing.B) {
	d := dev{gpu(b).Dev(), b}
	for _, B := range []int{1, 4, 16, 64, 256, 1024} {
		b.Run(fmt.Sprint("meta-batch=", B), func(b *testing.B) {
			d := dev{d.Dev, b}
			r := rand.New(rand.NewPCG(25, 26))
			p := newProtoTask(r, B, 5, 5, 15, 122, 64)
			np := p.din*p.h + p.h
			params, grad := d.buf(randn(r, np)), d.buf(make([]float32, np))
			s := newProtoStep(d, p)
			hp := kernels.AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
			m, v := d.buf(make([]float32, np)), d.buf(make([]float32, np))
			d.ok(d.Sync())
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.ok(s.run(params, grad))
				d.ok(d.AdamStep(params, grad, m, v, s.lossSum, i+1, hp))
			}
			d.ok(d.Sync())
			b.ReportMetric(float64(B*b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

// TestTimeDevice times queued work with events and passes f's error on.
func TestTimeDevice(t *testing.T) {
	b := gpu(t)
	d := b.Dev()
	x, err := d.Alloc(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Free(x)
	ms, err := b.TimeDevice(func() error {
		for range 10 {
			if err := d.Scale(x, 1.5); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || !(ms >= 0) {
		t.Errorf("TimeDevice = %g ms, %v", ms, err)
	}
	want := errors.New("stop")
	if _, err := b.TimeDevice(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("TimeDevice passed on %v, want %v", err, want)
	}
	var _ kernels.DeviceTimer = b
}

// TestCallsFromAnyThread: the driver's context is current per OS thread, and
// a goroutine may run on any thread, so every call must make it current
// itself. The calls here run on a thread where no context is current.
func TestCallsFromAnyThread(t *testing.T) {
	d := newDev(t)
	src := randn(rand.New(rand.NewPCG(11, 12)), 257)
	x := d.buf(src)
	y := d.buf(make([]float32, len(src)))
	got := make([]float32, len(src))
	errc := make(chan error)
	go func() {
		// Not unlocked: the thread, left without a context, ends with the goroutine.
		runtime.LockOSThread()
		if err := cu.SetCurrentContext(cu.CUContext{}); err != nil {
			errc <- fmt.Errorf("unsetting the context: %v", err)
			return
		}
		for _, call := range []func() error{
			func() error { return d.Copy(y, x) },
			func() error { return d.Scale(y, 2) },
			func() error { return d.Sync() },
			func() error { return d.Download(got, y) },
		} {
			if err := call(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("a call from a thread without a current context: %v", err)
	}
	want := make([]float32, len(src))
	for i, v := range src {
		want[i] = 2 * v
	}
	compare(t, "copy and scale", got, want, nil)
}

// TestOperandsMustNotAlias checks that a Dev method refuses an output that
// overlaps another operand (the kernels' pointers are __restrict__), by one
// element or more, and accepts neighbours and the in-place uses it allows.
func TestOperandsMustNotAlias(t *testing.T) {
	d := newDev(t)
	x := d.buf(make([]float32, 64))
	labels := d.ints(make([]int32, 64))
	s := func(i, j int) Buffer { return x.Slice(i, j) }
	gemm := func(a, b, c, act Buffer) Gemm {
		return Gemm{M: 2, N: 2, K: 2, Alpha: 1, A: a, B: b, C: c, LDA: 2, LDB: 2, LDC: 2, Batch: 1, Act: Tanh, ActOut: act}
	}
	adam := kernels.AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	for _, c := range []struct {
		name string
		call func() error
		want string // "" for accepted
	}{
		{"axpy, neighbours", func() error { return d.Axpy(s(0, 8), s(8, 16), 1) }, ""},
		{"axpy, one element", func() error { return d.Axpy(s(0, 8), s(7, 15), 1) }, "y overlaps x"},
		{"scale in place", func() error { return d.ScaleTo(s(0, 8), s(0, 8), 2) }, ""},
		{"scale shifted", func() error { return d.ScaleTo(s(1, 9), s(0, 8), 2) }, "dst overlaps x"},
		{"copy", func() error { return d.Copy(s(0, 8), s(4, 12)) }, "dst overlaps src"},
		{"sgd", func() error { return d.SGDStep(s(0, 8), s(0, 8), Buffer{}, 0.1, 0) }, "p overlaps g"},
		{"sgd, loss in p", func() error { return d.SGDStep(s(0, 8), s(8, 16), s(7, 8), 0.1, 0) }, "p overlaps loss"},
		{"sgd, two losses", func() error { return d.SGDStep(s(0, 8), s(8, 16), s(16, 18), 0.1, 0) }, "loss has 2 elements"},
		{"adam moments", func() error { return d.AdamStep(s(0, 8), s(8, 16), s(16, 24), s(20, 28), Buffer{}, 1, adam) }, "m overlaps v"},
		{"adam, loss in v", func() error { return d.AdamStep(s(0, 8), s(8, 16), s(16, 24), s(24, 32), s(24, 25), 1, adam) }, "v overlaps loss"},
		{"adam", func() error { return d.AdamStep(s(0, 8), s(8, 16), s(16, 24), s(24, 32), s(32, 33), 1, adam) }, ""},
		{"activation", func() error { return d.Activate(Tanh, s(0, 8), s(4, 12)) }, "a overlaps z"},
		{"activation grad in place", func() error { return d.ActivationGrad(Tanh, s(0, 8), s(0, 8), Buffer{}, s(8, 16)) }, ""},
		{"activation grad, a", func() error { return d.ActivationGrad(Tanh, s(0, 8), s(0, 8), Buffer{}, s(7, 15)) }, "dst overlaps a"},
		{"activation grad, z unread", func() error { return d.ActivationGrad(Tanh, s(0, 8), s(0, 8), s(0, 8), s(8, 16)) }, ""},
		{"activation grad, g shifted", func() error { return d.ActivationGrad(ReLU, s(0, 8), s(4, 12), s(16, 24), Buffer{}) }, "dst overlaps g"},
		{"curvature", func() error { return d.ActivationCurv(Tanh, s(0, 8), s(8, 16), s(16, 24), s(0, 8)) }, "dst overlaps rz"},
		{"gemm", func() error { return d.GemmBatched(gemm(s(0, 4), s(4, 8), s(8, 12), s(12, 16))) }, ""},
		{"gemm, C over A", func() error { return d.GemmBatched(gemm(s(0, 4), s(4, 8), s(3, 7), s(12, 16))) }, "C overlaps A"},
		{"gemm, activations over C", func() error { return d.GemmBatched(gemm(s(0, 4), s(4, 8), s(8, 12), s(8, 12))) }, "C overlaps ActOut"},
		{"gemm, activations over B", func() error { return d.GemmBatched(gemm(s(0, 4), s(4, 8), s(8, 12), s(4, 8))) }, "ActOut overlaps B"},
		{"softmax", func() error { return d.SoftmaxXent(s(0, 2), s(2, 6), s(2, 6), s(6, 10), labels.Slice(0, 2), 2, 2, 1) }, "prob overlaps dlogits"},
		{"softmax rop", func() error { return d.SoftmaxXentRop(s(0, 4), s(4, 8), s(3, 7), 2, 2, 1) }, "rd overlaps rlogits"},
		{"log-softmax", func() error { return d.LogSoftmax(s(0, 4), labels.Slice(0, 2), s(0, 4), 2, 2) }, "out overlaps logits"},
		{"class means", func() error { return d.ClassMean(s(0, 4), s(2, 10), labels.Slice(0, 4), 1, 4, 2, 2) }, "proto overlaps emb"},
		{"class mean grad", func() error { return d.ClassMeanGrad(s(0, 8), s(6, 10), labels.Slice(0, 4), 1, 4, 2, 2, false) }, "demb overlaps dproto"},
		{"inner update", func() error { return d.InnerUpdate(s(0, 8), s(4, 8), 0, s(8, 16), Buffer{}, 0.1, 4, 2) }, "wf overlaps w"},
		{"inner update, shared w", func() error { return d.InnerUpdate(s(0, 8), s(8, 12), 0, s(12, 20), Buffer{}, 0.1, 4, 2) }, ""},
		{"sum", func() error { return d.ReduceSum(s(3, 4), s(0, 8), 1) }, "out overlaps x"},
		{"column sums", func() error { return d.ColSum(s(0, 4), s(3, 11), 1, 2, 4, 0, false) }, "dst overlaps x"},
		{"distances", func() error { return d.PairwiseSqDist(s(0, 4), s(4, 8), s(3, 7), 1, 2, 2, 2, 1) }, "dst overlaps y"},
		{"distance grads", func() error {
			return d.PairwiseSqDistGrad(s(0, 4), s(2, 6), s(8, 12), s(12, 16), s(16, 20), 1, 2, 2, 2, false)
		}, "gx overlaps gy"},
	} {
		var got string
		func() {
			defer func() {
				if r := recover(); r != nil {
					got = fmt.Sprint(r)
				}
			}()
			d.ok(c.call())
		}()
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: refused: %s", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: got %q, want a panic with %q", c.name, got, c.want)
		}
	}
	d.ok(d.Sync())
}

// TestGridStriding lowers the cap on grids' y and z extents so that the
// kernels that stride over tasks and row tiles beyond it (a meta-batch or
// a row count past 65,535 of them) do so at test sizes: the results must
// be those of a grid that covers everything, to the bit.
func TestGridStriding(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(21, 22))
	const B, Q, N, D = 5, 70, 20, 40 // 5 tasks, 5 and 3 row tiles of 16 and 32
	x, y := d.buf(randn(r, B*Q*D)), d.buf(randn(r, B*N*D))
	bias := d.buf(randn(r, B*N))
	run := func(limit int) [][]float32 {
		defer func(old int) { maxGridYZ = old }(maxGridYZ)
		maxGridYZ = limit
		dist, c, act, sums := d.buf(make([]float32, B*Q*N)), d.buf(make([]float32, B*Q*N)), d.buf(make([]float32, B*Q*N)), d.buf(make([]float32, B*D))
		d.ok(d.PairwiseSqDist(dist, x, y, B, Q, N, D, 1))
		d.ok(d.GemmBatched(Gemm{TransB: true, M: Q, N: N, K: D, Alpha: 1, A: x, B: y, C: c, LDA: D, LDB: D, LDC: N,
			StrideA: Q * D, StrideB: N * D, StrideC: Q * N, Batch: B, Bias: bias, BiasStride: N, Act: Tanh, ActOut: act}))
		d.ok(d.ColSum(sums, x, B, Q, D, D, false))
		return [][]float32{d.get(dist), d.get(c), d.get(act), d.get(sums)}
	}
	want, got := run(maxGridYZ), run(2)
	for i, name := range []string{"PairwiseSqDist", "GemmBatched", "GemmBatched's activations", "ColSum"} {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s: a grid capped at 2 in y and z gives other results than a full one", name)
		}
	}
}
