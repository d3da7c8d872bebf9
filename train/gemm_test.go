package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestGemmKernelsMatchLoops(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{1, 16, 1}, {4, 16, 3}, {25, 64, 122}, {7, 37, 5}, {100, 64, 64}, {3, 5, 64}, {9, 48, 2}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, trans := range []bool{false, true} {
			a := make([]float32, m*k)
			b := make([]float32, k*n)
			for i := range a {
				a[i] = rng.Float32()*2 - 1
			}
			for i := range b {
				b[i] = rng.Float32()*2 - 1
			}
			ai, ap := k, 1
			if trans {
				ai, ap = 1, m
			}
			want := make([]float64, m*n)
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					s := 0.5 // C starts at 0.5 to check accumulation
					for p := 0; p < k; p++ {
						s += float64(a[i*ai+p*ap]) * float64(b[p*n+j])
					}
					want[i*n+j] = s
				}
			}
			got := make([]float32, m*n)
			for i := range got {
				got[i] = 0.5
			}
			gemm(m, n, k, a, ai, ap, b, n, got, n)
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*(1+math.Abs(want[i])) {
					t.Fatalf("m=%d n=%d k=%d trans=%v: c[%d]=%g, want %g", m, n, k, trans, i, got[i], want[i])
				}
			}
		}
	}
}

// HostKernels names the kernels gemm and dot use, which results depend on
// bit for bit.
func TestHostKernelsNamesTheKernelsInUse(t *testing.T) {
	defer func(v bool) { useAsm = v }(useAsm)
	for _, c := range []struct {
		asm  bool
		want string
	}{{false, "go"}, {true, "avx2-fma"}} {
		useAsm = c.asm
		if got := HostKernels(); got != c.want {
			t.Errorf("with useAsm %v: HostKernels() = %q, want %q", c.asm, got, c.want)
		}
	}
}
