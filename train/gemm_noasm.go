//go:build !amd64 || purego

package train

var useAsm = false

func sgemm4x16(k int, a *float32, ai, ap uintptr, b *float32, ldb uintptr, c *float32, ldc uintptr) {
	panic("train: no assembly kernels in this build")
}

func sgemm1x16(k int, a *float32, ap uintptr, b *float32, ldb uintptr, c *float32) {
	panic("train: no assembly kernels in this build")
}

func sdot(k int, a, b *float32) float32 { panic("train: no assembly kernels in this build") }
