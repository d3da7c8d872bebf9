package kernels

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// withRegistry runs f against an empty registry and a fresh fallback Once,
// restoring the originals afterwards.
func withRegistry(t *testing.T, f func()) {
	t.Helper()
	registry.mu.Lock()
	saved, savedOnce := registry.opens, registry.fallback
	registry.opens, registry.fallback = nil, new(sync.Once)
	registry.mu.Unlock()
	defer func() {
		registry.mu.Lock()
		registry.opens, registry.fallback = saved, savedOnce
		registry.mu.Unlock()
	}()
	f()
}

func TestOpenCPU(t *testing.T) {
	b, err := Open("cpu", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "cpu" {
		t.Errorf("Name() = %q, want cpu", b.Name())
	}
	if d := b.Device(); !strings.Contains(d, runtime.GOARCH) {
		t.Errorf("Device() = %q, want it to mention %s", d, runtime.GOARCH)
	}
	if d := (&CPU{}).Device(); !strings.Contains(d, runtime.GOARCH) {
		t.Errorf("zero CPU Device() = %q, want it to mention %s", d, runtime.GOARCH)
	}
}

func TestOpenAutoFallsBackOnce(t *testing.T) {
	withRegistry(t, func() {
		var msgs []string
		log := func(m string) { msgs = append(msgs, m) }
		for range 3 {
			b, err := Open("auto", log)
			if err != nil {
				t.Fatal(err)
			}
			if b.Name() != "cpu" {
				t.Fatalf("auto gave %q, want cpu", b.Name())
			}
		}
		if len(msgs) != 1 {
			t.Fatalf("got %d fallback messages %q, want 1", len(msgs), msgs)
		}
		if !strings.Contains(msgs[0], "cuda backend not compiled in") {
			t.Errorf("fallback message %q does not give the reason", msgs[0])
		}
		if _, err := Open("auto", nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenBogus(t *testing.T) {
	_, err := Open("bogus", nil)
	if err == nil {
		t.Fatal("Open(bogus) succeeded")
	}
	for _, want := range []string{`"bogus"`, "auto", "cpu", "cuda"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestOpenCUDANotCompiled(t *testing.T) {
	withRegistry(t, func() {
		_, err := Open("cuda", nil)
		if err == nil || err.Error() != "cuda backend not compiled in (build with -tags metaids_cuda)" {
			t.Fatalf("Open(cuda) error = %v", err)
		}
	})
}

type fakeBackend struct{ CPU }

func (*fakeBackend) Name() string { return "cuda" }

func TestOpenRegisteredCUDA(t *testing.T) {
	withRegistry(t, func() {
		Register("cuda", func() (Backend, error) { return &fakeBackend{}, nil })
		for _, name := range []string{"cuda", "auto"} {
			b, err := Open(name, func(m string) { t.Errorf("unexpected log %q", m) })
			if err != nil || b.Name() != "cuda" {
				t.Errorf("Open(%s) = %v, %v; want the cuda backend", name, b, err)
			}
		}
	})
}

func TestOpenRegisteredCUDAFails(t *testing.T) {
	withRegistry(t, func() {
		errNoDevice := errors.New("no CUDA device")
		Register("cuda", func() (Backend, error) { return nil, errNoDevice })

		_, err := Open("cuda", nil)
		if !errors.Is(err, errNoDevice) {
			t.Fatalf("Open(cuda) error = %v, want it to wrap %v", err, errNoDevice)
		}

		var msgs []string
		b, err := Open("auto", func(m string) { msgs = append(msgs, m) })
		if err != nil || b.Name() != "cpu" {
			t.Fatalf("Open(auto) = %v, %v; want cpu", b, err)
		}
		if len(msgs) != 1 || !strings.Contains(msgs[0], "no CUDA device") {
			t.Fatalf("fallback messages %q, want one giving the reason", msgs)
		}
	})
}

func TestRegisterPanics(t *testing.T) {
	withRegistry(t, func() {
		ok := func() (Backend, error) { return NewCPU(), nil }
		Register("cuda", ok)
		for _, c := range []struct {
			name string
			open func() (Backend, error)
		}{{"cuda", ok}, {"cpu", ok}, {"auto", ok}, {"", ok}, {"x", nil}} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Register(%q) did not panic", c.name)
					}
				}()
				Register(c.name, c.open)
			}()
		}
	})
}

func TestModelName(t *testing.T) {
	const info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\n" +
		"model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu\n\n" +
		"processor\t: 1\nmodel name\t: other\n"
	if got := modelName(strings.NewReader(info)); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Errorf("modelName = %q", got)
	}
	if got := modelName(strings.NewReader("Hardware : BCM2835\n")); got != "" {
		t.Errorf("modelName without a model = %q, want empty", got)
	}
}

// TestCPUBackend checks that the adapter passes every argument through to
// the right place, against direct float64 loops.
func TestCPUBackend(t *testing.T) {
	var be Backend = NewCPU()
	r := rand.New(rand.NewPCG(11, 12))
	rnd := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(r.NormFloat64())
		}
		return s
	}
	const B, Q, N, D = 2, 3, 5, 7
	x, y, gout := rnd(B*Q*D), rnd(B*N*D), rnd(B*Q*N)

	dst := make([]float32, B*Q*N)
	be.PairwiseSqDist(dst, x, y, B, Q, N, D)
	gx, gy := make([]float32, len(x)), make([]float32, len(y))
	be.PairwiseSqDistGrad(gx, gy, gout, x, y, B, Q, N, D)
	wx, wy := make([]float64, len(x)), make([]float64, len(y))
	for b := range B {
		for q := range Q {
			for n := range N {
				s := 0.0
				for d := range D {
					xi, yi := (b*Q+q)*D+d, (b*N+n)*D+d
					diff := float64(x[xi]) - float64(y[yi])
					s += diff * diff
					g := 2 * float64(gout[(b*Q+q)*N+n]) * diff
					wx[xi] += g
					wy[yi] -= g
				}
				near(t, "dist", dst[(b*Q+q)*N+n], s, s)
			}
		}
	}
	for i := range wx {
		near(t, "gx", gx[i], wx[i], 10)
	}
	for i := range wy {
		near(t, "gy", gy[i], wy[i], 10)
	}

	p := []float32{1, -2}
	be.SGDStep(p, []float32{0.5, 1}, 0.1, 0.01)
	near(t, "sgd", p[0], 1-0.1*(0.5+0.01), 1)
	near(t, "sgd", p[1], -2-0.1*(1-0.02), 1)

	// First Adam step with eps 0 and no decay moves each weight by lr.
	p, m, v := []float32{1, -2}, []float32{0, 0}, []float32{0, 0}
	be.AdamStep(p, []float32{3, -0.25}, m, v, 1, AdamParams{LR: 0.1, Beta1: 0.9, Beta2: 0.999})
	near(t, "adam", p[0], 0.9, 1)
	near(t, "adam", p[1], -1.9, 1)
	// AdamW also shrinks the weight by lr*wd.
	p, m, v = []float32{1}, []float32{0}, []float32{0}
	be.AdamStep(p, []float32{3}, m, v, 1, AdamParams{LR: 0.1, Beta1: 0.9, Beta2: 0.999, WeightDecay: 0.5, Decoupled: true})
	near(t, "adamw", p[0], 1-0.05-0.1, 1)
}

func near(t *testing.T, what string, got float32, want, scale float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > 1e-5*scale {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestCatchTurnsOnlyFailuresIntoErrors(t *testing.T) {
	lost := errors.New("device lost")
	err := func() (err error) {
		defer Catch(&err)
		panic(Failure{Err: lost})
	}()
	if !errors.Is(err, lost) {
		t.Errorf("Catch gave %v, want the failure's error", err)
	}
	defer func() {
		if r := recover(); r != "not a failure" {
			t.Errorf("another panic became %v", r)
		}
	}()
	func() (err error) {
		defer Catch(&err)
		panic("not a failure")
	}()
}

func TestCompiled(t *testing.T) {
	withRegistry(t, func() {
		if !Compiled("cpu") || Compiled("cuda") {
			t.Errorf("empty registry: Compiled(cpu) %v, Compiled(cuda) %v; want true, false", Compiled("cpu"), Compiled("cuda"))
		}
		Register("cuda", func() (Backend, error) { return nil, errors.New("no device") })
		if !Compiled("cuda") {
			t.Error("a registered cuda is not reported compiled in")
		}
	})
}
