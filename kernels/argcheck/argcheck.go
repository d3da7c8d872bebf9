// Package argcheck checks the operands of the pairwise-distance kernels
// against their shapes, for every backend alike. A mismatch is a
// programming error and panics, naming the function (fn, e.g.
// "cpu.PairwiseSqDist") and the operand.
package argcheck

import "fmt"

// Absent stands for a nil optional operand's length.
const Absent = -1

// OptLen is len(s), or Absent for a nil s.
func OptLen[T any](s []T) int {
	if s == nil {
		return Absent
	}
	return len(s)
}

// Pairwise checks PairwiseSqDist's operands: dst [B,Q,N], x [B,Q,D],
// y [B,N,D], given their lengths.
func Pairwise(fn string, dst, x, y, B, Q, N, D int) {
	dims(fn, B, Q, N, D)
	length(fn, "dst", dst, B, Q, N)
	length(fn, "x", x, B, Q, D)
	length(fn, "y", y, B, N, D)
}

// PairwiseGrad checks PairwiseSqDistGrad's operands: gout [B,Q,N],
// x [B,Q,D], y [B,N,D], and gx [B,Q,D] and gy [B,N,D] unless Absent.
func PairwiseGrad(fn string, gx, gy, gout, x, y, B, Q, N, D int) {
	dims(fn, B, Q, N, D)
	length(fn, "gout", gout, B, Q, N)
	length(fn, "x", x, B, Q, D)
	length(fn, "y", y, B, N, D)
	if gx != Absent {
		length(fn, "gx", gx, B, Q, D)
	}
	if gy != Absent {
		length(fn, "gy", gy, B, N, D)
	}
}

func dims(fn string, B, Q, N, D int) {
	if B < 0 || Q < 0 || N < 0 || D < 0 {
		panic(fmt.Sprintf("%s: negative size B=%d Q=%d N=%d D=%d", fn, B, Q, N, D))
	}
}

func length(fn, name string, got, d0, d1, d2 int) {
	if got != d0*d1*d2 {
		panic(fmt.Sprintf("%s: len(%s)=%d, want %d*%d*%d=%d", fn, name, got, d0, d1, d2, d0*d1*d2))
	}
}
