package train

import "unsafe"

// Float is the element type of a model: float32 for training, float64 for
// gradient checks.
type Float interface{ ~float32 | ~float64 }

// gemm accumulates C[i,j] += sum_p A(i,p)*B[p*ldb+j] for i<m, j<n, p<k, where
// A(i,p) = a[i*ai+p*ap]. The strides let one routine serve A and A^T. On
// amd64 with AVX2/FMA float32 goes through a 4x16 register-blocked kernel;
// everything else (and float64, used only for checks) runs plain loops.
func gemm[T Float](m, n, k int, a []T, ai, ap int, b []T, ldb int, c []T, ldc int) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	// One bounds check up front keeps the kernels memory-safe.
	_ = a[(m-1)*ai+(k-1)*ap]
	_ = b[(k-1)*ldb+n-1]
	_ = c[(m-1)*ldc+n-1]
	if useAsm && n >= 16 {
		if a32, ok := any(a).([]float32); ok {
			gemm32(m, n, k, a32, ai, ap, any(b).([]float32), ldb, any(c).([]float32), ldc)
			return
		}
	}
	gemmGo(m, n, k, a, ai, ap, b, ldb, c, ldc)
}

func gemmGo[T Float](m, n, k int, a []T, ai, ap int, b []T, ldb int, c []T, ldc int) {
	for i := 0; i < m; i++ {
		ci := c[i*ldc : i*ldc+n]
		for p := 0; p < k; p++ {
			av := a[i*ai+p*ap]
			bp := b[p*ldb : p*ldb+n]
			for j := range ci {
				ci[j] += av * bp[j]
			}
		}
	}
}

func gemm32(m, n, k int, a []float32, ai, ap int, b []float32, ldb int, c []float32, ldc int) {
	const sz = 4
	n16 := n &^ 15
	m4 := m &^ 3
	for j := 0; j < n16; j += 16 {
		bp := unsafe.Pointer(&b[j])
		for i := 0; i < m4; i += 4 {
			sgemm4x16(k, &a[i*ai], uintptr(ai*sz), uintptr(ap*sz), (*float32)(bp), uintptr(ldb*sz), &c[i*ldc+j], uintptr(ldc*sz))
		}
		for i := m4; i < m; i++ {
			sgemm1x16(k, &a[i*ai], uintptr(ap*sz), (*float32)(bp), uintptr(ldb*sz), &c[i*ldc+j])
		}
	}
	if n16 < n {
		gemmGo(m, n-n16, k, a, ai, ap, b[n16:], ldb, c[n16:], ldc)
	}
}

// HostKernels names the float32 matrix kernels the host computes with:
// "avx2-fma" (the assembly kernels, on amd64 with AVX2 and FMA) or "go" (plain
// loops: other CPUs and purego builds). They round differently, so float32
// results agree bit for bit only between runs with the same kernels.
func HostKernels() string {
	if useAsm {
		return "avx2-fma"
	}
	return "go"
}

// matMul sets or accumulates C[m,n] (+)= A[m,k] B[k,n], all row-major.
func matMul[T Float](c, a, b []T, m, k, n int, acc bool) {
	if !acc {
		clear(c[:m*n])
	}
	gemm(m, n, k, a, k, 1, b, n, c, n)
}

// matMulTA sets or accumulates C[k,n] (+)= A[m,k]^T B[m,n].
func matMulTA[T Float](c, a, b []T, m, k, n int, acc bool) {
	if !acc {
		clear(c[:k*n])
	}
	gemm(k, n, m, a, 1, k, b, n, c, n)
}

// matMulTB sets or accumulates C[m,k] (+)= A[m,n] B[k,n]^T, using bt
// (len >= k*n) as scratch for B^T so the row kernel applies.
func matMulTB[T Float](c, a, b, bt []T, m, n, k int, acc bool) {
	if !acc {
		clear(c[:m*k])
	}
	transpose(bt, b, k, n)
	gemm(m, k, n, a, n, 1, bt, k, c, k)
}

// transpose writes dst[c,r] = src[r,c] for src [rows,cols].
func transpose[T Float](dst, src []T, rows, cols int) {
	_ = dst[rows*cols-1]
	for r := 0; r < rows; r++ {
		row := src[r*cols : r*cols+cols]
		for c, v := range row {
			dst[c*rows+r] = v
		}
	}
}

// dot returns sum_i a[i]*b[i] over len(a).
func dot[T Float](a, b []T) T {
	k := len(a)
	b = b[:k]
	var s T
	i := 0
	if useAsm && k >= 8 {
		if a32, ok := any(a).([]float32); ok {
			i = k &^ 7
			s = T(sdot(k, &a32[0], &any(b).([]float32)[0]))
		}
	}
	for ; i < k; i++ {
		s += a[i] * b[i]
	}
	return s
}

// narrow is the output width under which the 16-column kernel does not
// apply; such products (the classifier head) are reorganised so the long
// dimension is vectorised instead.
const narrow = 16

// matMulW is matMul for C[m,n] (+)= A[m,k] W[k,n] that also serves narrow n:
// then it transposes W into wt and takes row-by-row dot products.
func matMulW[T Float](c, a, w, wt []T, m, k, n int, acc bool) {
	if n >= narrow {
		matMul(c, a, w, m, k, n, acc)
		return
	}
	transpose(wt, w, k, n)
	for i := 0; i < m; i++ {
		ai := a[i*k : i*k+k]
		ci := c[i*n : i*n+n]
		for j := range ci {
			d := dot(ai, wt[j*k:j*k+k])
			if acc {
				ci[j] += d
			} else {
				ci[j] = d
			}
		}
	}
}

// matMulTAW accumulates G[k,n] += A[m,k]^T D[m,n] (a weight gradient). For
// narrow n it forms G^T = D^T A in wt with the row kernel and adds it
// transposed.
func matMulTAW[T Float](g, a, d, wt []T, m, k, n int) {
	if n >= narrow {
		matMulTA(g, a, d, m, k, n, true)
		return
	}
	s := wt[:n*k]
	clear(s)
	gemm(n, k, m, d, 1, n, a, k, s, k)
	for j := 0; j < n; j++ {
		row := s[j*k : j*k+k]
		for i, v := range row {
			g[i*n+j] += v
		}
	}
}
