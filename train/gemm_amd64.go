//go:build amd64 && !purego

package train

import "golang.org/x/sys/cpu"

// useAsm is true when the AVX2/FMA float32 kernels can run; tests flip it to
// compare against the plain Go loops.
var useAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func sgemm4x16(k int, a *float32, ai, ap uintptr, b *float32, ldb uintptr, c *float32, ldc uintptr)

//go:noescape
func sgemm1x16(k int, a *float32, ap uintptr, b *float32, ldb uintptr, c *float32)

//go:noescape
func sdot(k int, a, b *float32) float32
