package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Episode-shaped inputs: 75 queries against 5 prototypes of width 64.
const benchQ, benchN, benchD = 75, 5, 64

func BenchmarkPairwiseSqDist(b *testing.B) {
	for _, B := range []int{1, 4, 256} {
		b.Run(fmt.Sprintf("B=%d", B), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			x := randSlice[float32](r, B*benchQ*benchD)
			y := randSlice[float32](r, B*benchN*benchD)
			dst := make([]float32, B*benchQ*benchN)
			b.SetBytes(int64(4 * (len(x) + len(y) + len(dst))))
			for b.Loop() {
				PairwiseSqDist(dst, x, y, B, benchQ, benchN, benchD)
			}
			// sub, mul, add per (b,q,n,d)
			reportGFLOPs(b, 3*B*benchQ*benchN*benchD)
		})
	}
}

func BenchmarkPairwiseSqDistGrad(b *testing.B) {
	for _, B := range []int{1, 4, 256} {
		b.Run(fmt.Sprintf("B=%d", B), func(b *testing.B) {
			r := rand.New(rand.NewPCG(2, 2))
			x := randSlice[float32](r, B*benchQ*benchD)
			y := randSlice[float32](r, B*benchN*benchD)
			gout := randSlice[float32](r, B*benchQ*benchN)
			gx := make([]float32, len(x))
			gy := make([]float32, len(y))
			b.SetBytes(int64(4 * (2*len(x) + 2*len(y) + len(gout))))
			for b.Loop() {
				PairwiseSqDistGrad(gx, gy, gout, x, y, B, benchQ, benchN, benchD)
			}
			// sub, mul, add into gx, subtract from gy per (b,q,n,d)
			reportGFLOPs(b, 4*B*benchQ*benchN*benchD)
		})
	}
}

func BenchmarkSGD(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 3))
			p := randSlice[float32](r, n)
			g := randSlice[float32](r, n)
			b.SetBytes(int64(4 * 3 * n)) // read p, g; write p
			for b.Loop() {
				SGD(p, g, 1e-9, 1e-4)
			}
		})
	}
}

func BenchmarkAdam(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(4, 4))
			p := randSlice[float32](r, n)
			g := randSlice[float32](r, n)
			m := make([]float32, n)
			v := make([]float32, n)
			b.SetBytes(int64(4 * 7 * n)) // read p, g, m, v; write p, m, v
			t := 0
			for b.Loop() {
				t++
				Adam(p, g, m, v, t, 1e-9, 0.9, 0.999, 1e-8, 1e-4, true)
			}
		})
	}
}

func reportGFLOPs(b *testing.B, flopsPerOp int) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(flopsPerOp)*float64(b.N)/s/1e9, "GFLOP/s")
	}
}
