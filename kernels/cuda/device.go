//go:build metaids_cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/argcheck"
	"gorgonia.org/cu"
)

// Buffer is a span of n four-byte elements (float32, or int32 for labels) in
// device memory. The zero Buffer is empty and stands for "not wanted" where
// an operation allows that (PairwiseSqDistGrad's gx or gy, InnerUpdate's
// per-parameter rates).
type Buffer struct {
	ptr cu.DevicePtr
	n   int
}

// Ptr returns the device address.
func (x Buffer) Ptr() cu.DevicePtr { return x.ptr }

// Len returns the number of elements.
func (x Buffer) Len() int { return x.n }

// IsNil reports whether x is the zero Buffer.
func (x Buffer) IsNil() bool { return x.ptr == 0 }

// Slice returns elements [i, j) of x.
func (x Buffer) Slice(i, j int) Buffer {
	if i < 0 || j < i || j > x.n {
		panic(fmt.Sprintf("cuda: Buffer.Slice(%d, %d) of %d elements", i, j, x.n))
	}
	if x.ptr == 0 {
		return Buffer{}
	}
	return Buffer{ptr: x.ptr + cu.DevicePtr(4*i), n: j - i}
}

// Dev runs the kernels on device-resident Buffers: what a learner that keeps
// a whole meta-step on the GPU is built from (batched matrix products, bias,
// activations, prototypes, losses, optimiser steps). Nothing is copied to or
// from the host except by Upload and Download.
//
// Operations are queued on the default stream and return without waiting
// for the GPU; an error from a kernel's execution surfaces at the next call
// that waits (Download, Sync). Shape errors are programming errors and
// panic, as in kernels/cpu; so does an output that overlaps another
// operand, except where a method says it may. Operations with nothing to
// compute launch nothing.
type Dev struct{ b *Backend }

// Dev returns the device-resident interface of b.
func (b *Backend) Dev() Dev { return Dev{b} }

// Alloc returns a zeroed buffer of n elements.
func (d Dev) Alloc(n int) (Buffer, error) {
	if n < 0 {
		panic(fmt.Sprintf("cuda: Alloc(%d)", n))
	}
	if n == 0 {
		return Buffer{}, nil
	}
	var x Buffer
	err := d.b.do(func() error {
		p, err := cu.MemAlloc(int64(n) * 4)
		if err != nil {
			return classify(fmt.Sprintf("allocating %d bytes", int64(n)*4), err)
		}
		if err := cu.MemsetD32(p, 0, int64(n)); err != nil {
			_ = cu.MemFree(p)
			return classify("cuMemsetD32", err)
		}
		x = Buffer{ptr: p, n: n}
		return nil
	})
	return x, err
}

// Free releases a buffer from Alloc (not a Slice of one).
func (d Dev) Free(x Buffer) error {
	if x.ptr == 0 {
		return nil
	}
	return d.b.doOutside("Free", func() error {
		return classify("cuMemFree", cu.MemFree(x.ptr))
	})
}

// Upload copies src into dst, which must have len(src) elements.
func (d Dev) Upload(dst Buffer, src []float32) error {
	need("Upload", "dst", dst, len(src))
	return d.b.do(func() error { return d.b.copyIn(dst, unsafe.Pointer(unsafe.SliceData(src)), len(src)) })
}

// UploadInt32 copies labels into dst, which must have len(src) elements.
func (d Dev) UploadInt32(dst Buffer, src []int32) error {
	need("UploadInt32", "dst", dst, len(src))
	return d.b.do(func() error { return d.b.copyIn(dst, unsafe.Pointer(unsafe.SliceData(src)), len(src)) })
}

// Download copies src, which must have len(dst) elements, into dst, after
// the work queued before it.
func (d Dev) Download(dst []float32, src Buffer) error {
	need("Download", "src", src, len(dst))
	return d.b.do(func() error { return d.b.copyOut(unsafe.Pointer(unsafe.SliceData(dst)), src, len(dst)) })
}

// DownloadInt32 copies src, which must have len(dst) elements, into dst.
func (d Dev) DownloadInt32(dst []int32, src Buffer) error {
	need("DownloadInt32", "src", src, len(dst))
	return d.b.do(func() error { return d.b.copyOut(unsafe.Pointer(unsafe.SliceData(dst)), src, len(dst)) })
}

// Copy copies src into dst, of equal lengths, on the device.
func (d Dev) Copy(dst, src Buffer) error {
	need("Copy", "dst", dst, src.n)
	apart("Copy", 1, whole("dst", dst), whole("src", src))
	if src.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.copyOnDevice(dst, src) })
}

// Zero sets x to zeros.
func (d Dev) Zero(x Buffer) error {
	if x.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.zero(x) })
}

// Sync waits for the queued work and returns the first error it met.
func (d Dev) Sync() error {
	return d.b.doOutside("Sync", func() error {
		return classify("cuCtxSynchronize", cu.Synchronize())
	})
}

// PairwiseSqDist writes dst[b,q,n] = scale * sum_d (x[b,q,d]-y[b,n,d])^2
// for x [B,Q,D], y [B,N,D], dst [B,Q,N]: scale 1 gives the distances, -1
// ProtoNet's logits, in one pass.
func (d Dev) PairwiseSqDist(dst, x, y Buffer, B, Q, N, D int, scale float32) error {
	checkDims("Dev.PairwiseSqDist", B, Q, N, D)
	argcheck.Pairwise("cuda.Dev.PairwiseSqDist", dst.n, x.n, y.n, B, Q, N, D)
	apart("Dev.PairwiseSqDist", 1, whole("dst", dst), whole("x", x), whole("y", y))
	if dst.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.pairwiseSqDist(dst, x, y, B, Q, N, D, scale) })
}

// PairwiseSqDistGrad adds (accumulate) or writes into gx [B,Q,D] and
// gy [B,N,D] the gradient of sum(gout*dist) for gout [B,Q,N]; either may be
// the zero Buffer to skip it. Writing saves zeroing them first.
func (d Dev) PairwiseSqDistGrad(gx, gy, gout, x, y Buffer, B, Q, N, D int, accumulate bool) error {
	checkDims("Dev.PairwiseSqDistGrad", B, Q, N, D)
	argcheck.PairwiseGrad("cuda.Dev.PairwiseSqDistGrad", optBuf(gx), optBuf(gy), gout.n, x.n, y.n, B, Q, N, D)
	apart("Dev.PairwiseSqDistGrad", 2, whole("gx", gx), whole("gy", gy), whole("gout", gout), whole("x", x), whole("y", y))
	if gx.IsNil() && gy.IsNil() {
		return nil
	}
	return d.b.do(func() error {
		if B*Q*N*D == 0 {
			// Empty sums: nothing to add, zeros to write.
			if accumulate {
				return nil
			}
			return errors.Join(d.b.zero(gx), d.b.zero(gy))
		}
		return d.b.pairwiseSqDistGrad(gx, gy, gout, x, y, B, Q, N, D, accumulate)
	})
}

// optBuf is x's length, or argcheck.Absent for the zero Buffer.
func optBuf(x Buffer) int {
	if x.IsNil() {
		return argcheck.Absent
	}
	return x.n
}

// SGDStep applies p -= lr*(g + weightDecay*p), unless the step's loss (one
// element, read by the kernel when it runs) is not finite; the zero Buffer
// for loss always applies.
func (d Dev) SGDStep(p, g, loss Buffer, lr, weightDecay float32) error {
	need("Dev.SGDStep", "g", g, p.n)
	needLoss("Dev.SGDStep", loss)
	apart("Dev.SGDStep", 1, whole("p", p), whole("g", g), whole("loss", loss))
	if p.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.sgdStep(p, g, loss, lr, weightDecay) })
}

// AdamStep applies one Adam step t (from 1), updating the moments m and v,
// unless the step's loss is not finite, as SGDStep.
func (d Dev) AdamStep(p, g, m, v, loss Buffer, t int, hp kernels.AdamParams) error {
	need("Dev.AdamStep", "g", g, p.n)
	need("Dev.AdamStep", "m", m, p.n)
	need("Dev.AdamStep", "v", v, p.n)
	needLoss("Dev.AdamStep", loss)
	apart("Dev.AdamStep", 3, whole("p", p), whole("m", m), whole("v", v), whole("g", g), whole("loss", loss))
	if t < 1 {
		panic(fmt.Sprintf("cuda.Dev.AdamStep: step t=%d, want t >= 1", t))
	}
	if p.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.adamStep(p, g, m, v, loss, t, hp) })
}

// needLoss panics unless loss is the zero Buffer or one element.
func needLoss(op string, loss Buffer) {
	if !loss.IsNil() {
		need(op, "loss", loss, 1)
	}
}

// Gemm describes a strided batched matrix product on row-major matrices:
// for z < Batch,
//
//	C_z = Alpha * op(A_z) op(B_z) + Beta * C_z
//
// with op(A) [M,K] (A stored [K,M] when TransA), op(B) [K,N] (B stored [N,K]
// when TransB), C [M,N]; LDA, LDB, LDC are the row strides of the stored
// matrices and StrideA/B/C the element offsets between batch entries (0
// shares an operand across the batch, as the meta-parameters are shared by
// every task before the inner loop). C is not read when Beta is 0.
//
// A dense layer's bias and activation can ride along, saving two launches
// and two passes over C: with Bias set, C_z[i,j] += Bias[z*BiasStride + j]
// after the product (as BiasAdd); with ActOut set, ActOut (laid out as C)
// = Act(C) (as Activate). The results are those of the three calls, to
// the bit.
type Gemm struct {
	TransA, TransB bool
	M, N, K        int
	Alpha, Beta    float32
	A, B, C        Buffer
	LDA, LDB, LDC  int
	StrideA        int
	StrideB        int
	StrideC        int
	Batch          int

	Bias       Buffer
	BiasStride int
	Act        Activation
	ActOut     Buffer

	// ARows, when set, names A's rows: stored row r of A_z is row
	// ARows[z*ARowsStride + r] of A_z (int32), so that a product reads
	// the rows of a device matrix a meta-batch draws without gathering
	// them first. The caller guarantees that every index is a row of A.
	ARows       Buffer
	ARowsStride int
}

// GemmBatched computes g.
func (d Dev) GemmBatched(g Gemm) error {
	checkDims("Dev.GemmBatched", g.M, g.N, g.K, g.LDA, g.LDB, g.LDC, g.Batch)
	if g.StrideA < 0 || g.StrideB < 0 || g.StrideC < 0 {
		panic(fmt.Sprintf("cuda.Dev.GemmBatched: negative stride in %+v", g))
	}
	if g.M == 0 || g.N == 0 || g.Batch == 0 {
		return nil
	}
	ar, ac := g.M, g.K // stored A's rows and columns
	if g.TransA {
		ar, ac = g.K, g.M
	}
	br, bc := g.K, g.N
	if g.TransB {
		br, bc = g.N, g.K
	}
	var a, b, rows, bias, act span // what the product reads and writes besides C
	if g.K > 0 {
		if g.ARows.IsNil() {
			a = extent("Dev.GemmBatched", "A", g.A, ar, ac, g.LDA, g.StrideA, g.Batch)
		} else {
			checkDims("Dev.GemmBatched", g.ARowsStride)
			rows = extent("Dev.GemmBatched", "ARows", g.ARows, 1, ar, ar, g.ARowsStride, g.Batch)
			extent("Dev.GemmBatched", "A", g.A, 1, ac, g.LDA, g.StrideA, g.Batch) // a row at least
			a = whole("A", g.A)                                                   // wherever the row numbers point
		}
		b = extent("Dev.GemmBatched", "B", g.B, br, bc, g.LDB, g.StrideB, g.Batch)
	}
	c := extent("Dev.GemmBatched", "C", g.C, g.M, g.N, g.LDC, g.StrideC, g.Batch)
	if !g.Bias.IsNil() {
		checkDims("Dev.GemmBatched", g.BiasStride)
		bias = extent("Dev.GemmBatched", "Bias", g.Bias, 1, g.N, g.N, g.BiasStride, g.Batch)
	}
	if !g.ActOut.IsNil() {
		g.Act.check("Dev.GemmBatched")
		act = extent("Dev.GemmBatched", "ActOut", g.ActOut, g.M, g.N, g.LDC, g.StrideC, g.Batch)
	}
	apart("Dev.GemmBatched", 2, c, act, a, b, bias, rows)
	return d.b.do(func() error { return d.b.gemm(g) })
}

// BiasAdd adds bias[b*biasStride + c] to z[b,r,c] for z [batch,rows,cols].
func (d Dev) BiasAdd(z, bias Buffer, batch, rows, cols, biasStride int) error {
	checkDims("Dev.BiasAdd", batch, rows, cols, biasStride)
	need("Dev.BiasAdd", "z", z, batch*rows*cols)
	if z.n == 0 {
		return nil
	}
	apart("Dev.BiasAdd", 1, whole("z", z), extent("Dev.BiasAdd", "bias", bias, 1, cols, cols, biasStride, batch))
	return d.b.do(func() error { return d.b.biasAdd(z, bias, batch, rows, cols, biasStride) })
}

// ColSum writes (or with accumulate adds) the column sums of x
// [batch,rows,cols] into dst[b*dstStride + c].
func (d Dev) ColSum(dst, x Buffer, batch, rows, cols, dstStride int, accumulate bool) error {
	checkDims("Dev.ColSum", batch, rows, cols, dstStride)
	need("Dev.ColSum", "x", x, batch*rows*cols)
	if batch*cols == 0 {
		return nil
	}
	apart("Dev.ColSum", 1, extent("Dev.ColSum", "dst", dst, 1, cols, cols, dstStride, batch), whole("x", x))
	return d.b.do(func() error { return d.b.colSum(dst, x, batch, rows, cols, dstStride, accumulate) })
}

// Activation is a hidden-layer nonlinearity, numbered as train's.
type Activation int

const (
	ReLU Activation = iota
	LeakyReLU
	Tanh
	Sigmoid
)

func (f Activation) check(op string) {
	if f < ReLU || f > Sigmoid {
		panic(fmt.Sprintf("cuda.%s: unknown activation %d", op, f))
	}
}

// Activate sets a = f(z).
func (d Dev) Activate(f Activation, a, z Buffer) error {
	f.check("Dev.Activate")
	need("Dev.Activate", "a", a, z.n)
	apart("Dev.Activate", 1, whole("a", a), whole("z", z))
	if z.n == 0 {
		return nil
	}
	return d.b.do(func() error { return d.b.activate(f, a, z) })
}

// ActivationGrad sets dst = g * f'(z), where f' is read from z (ReLU, leaky
// ReLU) or from the output a = f(z) (tanh, sigmoid); the one not read may
// be the zero Buffer. dst may be g.
func (d Dev) ActivationGrad(f Activation, dst, g, z, a Buffer) error {
	f.check("Dev.ActivationGrad")
	need("Dev.ActivationGrad", "g", g, dst.n)
	read := whole("a", a) // f' is read from a or z, not both
	if f == ReLU || f == LeakyReLU {
		need("Dev.ActivationGrad", "z", z, dst.n)
		read = whole("z", z)
	} else {
		need("Dev.ActivationGrad", "a", a, dst.n)
	}
	gs := whole("g", g)
	if g == dst {
		gs = span{} // in place, element by element
	}
	apart("Dev.ActivationGrad", 1, whole("dst", dst), gs, read)
	if dst.n == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kActBackward, d.b.grid1(dst.n), block1,
			ptrArg(dst), ptrArg(g), ptrArg(z), ptrArg(a), longArg(dst.n), intArg(int(f)))
	})
}

// ActivationCurv adds dz*curv*rz to dst, where curv, the ratio of f's second
// derivative to its first in terms of a, is 0 for ReLU and leaky ReLU, -2a
// for tanh and 1-2a for sigmoid: the second-order term of MAML's
// Hessian-vector products.
func (d Dev) ActivationCurv(f Activation, dst, dz, a, rz Buffer) error {
	f.check("Dev.ActivationCurv")
	if f == ReLU || f == LeakyReLU || dst.n == 0 {
		return nil
	}
	need("Dev.ActivationCurv", "dz", dz, dst.n)
	need("Dev.ActivationCurv", "a", a, dst.n)
	need("Dev.ActivationCurv", "rz", rz, dst.n)
	apart("Dev.ActivationCurv", 1, whole("dst", dst), whole("dz", dz), whole("a", a), whole("rz", rz))
	return d.b.do(func() error {
		return d.b.launch(kActCurv, d.b.grid1(dst.n), block1,
			ptrArg(dst), ptrArg(dz), ptrArg(a), ptrArg(rz), longArg(dst.n), intArg(int(f)))
	})
}

// SoftmaxXent computes for logits [rows,C] and int32 labels [rows] in [0,C)
// the per-row cross-entropy loss [rows], the softmax prob [rows,C] and
// dlogits = scale*(prob - onehot(labels)) [rows,C]. A label out of range
// gives that row a NaN loss. Reduce the loss with ReduceSum.
func (d Dev) SoftmaxXent(loss, prob, dlogits, logits, labels Buffer, rows, C int, scale float32) error {
	checkDims("Dev.SoftmaxXent", rows, C)
	need("Dev.SoftmaxXent", "loss", loss, rows)
	need("Dev.SoftmaxXent", "prob", prob, rows*C)
	need("Dev.SoftmaxXent", "dlogits", dlogits, rows*C)
	need("Dev.SoftmaxXent", "logits", logits, rows*C)
	need("Dev.SoftmaxXent", "labels", labels, rows)
	apart("Dev.SoftmaxXent", 3, whole("loss", loss), whole("prob", prob), whole("dlogits", dlogits),
		whole("logits", logits), whole("labels", labels))
	if rows == 0 {
		return nil
	}
	if C == 0 {
		panic("cuda.Dev.SoftmaxXent: no classes")
	}
	return d.b.do(func() error {
		return d.b.launch(kSoftmaxXent, d.b.grid1(rows), block1, ptrArg(loss), ptrArg(prob), ptrArg(dlogits),
			ptrArg(logits), ptrArg(labels), intArg(rows), intArg(C), floatArg(scale))
	})
}

// SoftmaxXentRop writes rd = scale*prob*(rl - <prob,rl>) per row: the
// directional derivative of SoftmaxXent's dlogits along rlogits.
func (d Dev) SoftmaxXentRop(rd, prob, rlogits Buffer, rows, C int, scale float32) error {
	checkDims("Dev.SoftmaxXentRop", rows, C)
	need("Dev.SoftmaxXentRop", "rd", rd, rows*C)
	need("Dev.SoftmaxXentRop", "prob", prob, rows*C)
	need("Dev.SoftmaxXentRop", "rlogits", rlogits, rows*C)
	apart("Dev.SoftmaxXentRop", 1, whole("rd", rd), whole("prob", prob), whole("rlogits", rlogits))
	if rows*C == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kSoftmaxXentRop, d.b.grid1(rows), block1, ptrArg(rd), ptrArg(prob), ptrArg(rlogits),
			intArg(rows), intArg(C), floatArg(scale))
	})
}

// LogSoftmax writes the log-probabilities of logits [rows,C] into out and
// each row's arg-max into the int32 labels [rows].
func (d Dev) LogSoftmax(out, labels, logits Buffer, rows, C int) error {
	checkDims("Dev.LogSoftmax", rows, C)
	need("Dev.LogSoftmax", "out", out, rows*C)
	need("Dev.LogSoftmax", "labels", labels, rows)
	need("Dev.LogSoftmax", "logits", logits, rows*C)
	apart("Dev.LogSoftmax", 2, whole("out", out), whole("labels", labels), whole("logits", logits))
	if rows == 0 {
		return nil
	}
	if C == 0 {
		panic("cuda.Dev.LogSoftmax: no classes")
	}
	return d.b.do(func() error {
		return d.b.launch(kLogSoftmax, d.b.grid1(rows), block1, ptrArg(out), ptrArg(labels), ptrArg(logits),
			intArg(rows), intArg(C))
	})
}

// ClassMean writes the prototypes proto [B,W,H]: per task b and way w the
// mean of the support embeddings emb [B,S,H] whose int32 label in labels
// [B,S] is w (zero for a way without rows; labels outside [0,W) are
// ignored).
func (d Dev) ClassMean(proto, emb, labels Buffer, B, S, W, H int) error {
	checkDims("Dev.ClassMean", B, S, W, H)
	need("Dev.ClassMean", "proto", proto, B*W*H)
	need("Dev.ClassMean", "emb", emb, B*S*H)
	need("Dev.ClassMean", "labels", labels, B*S)
	apart("Dev.ClassMean", 1, whole("proto", proto), whole("emb", emb), whole("labels", labels))
	if proto.n == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kClassMean, d.b.grid1(proto.n), block1, ptrArg(proto), ptrArg(emb), ptrArg(labels),
			intArg(B), intArg(S), intArg(W), intArg(H))
	})
}

// ClassMeanGrad adds (accumulate) or writes ClassMean's backward pass into
// demb [B,S,H]: each support row gets its way's prototype gradient dproto
// [B,W,H] over the way's row count (zero for a label outside [0,W)).
func (d Dev) ClassMeanGrad(demb, dproto, labels Buffer, B, S, W, H int, accumulate bool) error {
	checkDims("Dev.ClassMeanGrad", B, S, W, H)
	need("Dev.ClassMeanGrad", "demb", demb, B*S*H)
	need("Dev.ClassMeanGrad", "dproto", dproto, B*W*H)
	need("Dev.ClassMeanGrad", "labels", labels, B*S)
	apart("Dev.ClassMeanGrad", 1, whole("demb", demb), whole("dproto", dproto), whole("labels", labels))
	if demb.n == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kClassMeanGrad, d.b.grid1(demb.n), block1, ptrArg(demb), ptrArg(dproto), ptrArg(labels),
			intArg(B), intArg(S), intArg(W), intArg(H), boolArg(accumulate))
	})
}

// Scale does x *= alpha.
func (d Dev) Scale(x Buffer, alpha float32) error { return d.ScaleTo(x, x, alpha) }

// ScaleTo does dst = alpha*x, of equal lengths; dst may be x.
func (d Dev) ScaleTo(dst, x Buffer, alpha float32) error {
	need("Dev.ScaleTo", "dst", dst, x.n)
	if dst != x {
		apart("Dev.ScaleTo", 1, whole("dst", dst), whole("x", x))
	}
	if x.n == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kScaleVec, d.b.grid1(x.n), block1, ptrArg(dst), ptrArg(x), floatArg(alpha), longArg(x.n))
	})
}

// Axpy does y += alpha*x.
func (d Dev) Axpy(y, x Buffer, alpha float32) error {
	need("Dev.Axpy", "x", x, y.n)
	apart("Dev.Axpy", 1, whole("y", y), whole("x", x))
	if y.n == 0 {
		return nil
	}
	return d.b.do(func() error {
		return d.b.launch(kAxpy, d.b.grid1(y.n), block1, ptrArg(y), ptrArg(x), floatArg(alpha), longArg(y.n))
	})
}

// InnerUpdate writes MAML's fast weights for a meta-batch of tasks:
//
//	wf[b,i] = w[b*wStride + i] - lr_i * g[b,i],  lr_i = lrVec[i], or lr if lrVec is nil
//
// for wf and g [batch,n]; wStride 0 starts every task from the shared w.
func (d Dev) InnerUpdate(wf, w Buffer, wStride int, g, lrVec Buffer, lr float32, n, batch int) error {
	checkDims("Dev.InnerUpdate", wStride, n, batch)
	need("Dev.InnerUpdate", "wf", wf, batch*n)
	need("Dev.InnerUpdate", "g", g, batch*n)
	if !lrVec.IsNil() {
		need("Dev.InnerUpdate", "lrVec", lrVec, n)
	}
	if wf.n == 0 {
		return nil
	}
	apart("Dev.InnerUpdate", 1, whole("wf", wf), extent("Dev.InnerUpdate", "w", w, 1, n, n, wStride, batch),
		whole("g", g), whole("lrVec", lrVec))
	return d.b.do(func() error {
		return d.b.launch(kInnerUpdate, d.b.grid1(wf.n), block1, ptrArg(wf), ptrArg(w), longArg(wStride),
			ptrArg(g), ptrArg(lrVec), floatArg(lr), longArg(n), intArg(batch))
	})
}

// ReduceSum writes out[0] = scale * sum(x), summed in float64 in a fixed
// order.
func (d Dev) ReduceSum(out, x Buffer, scale float32) error {
	if out.n < 1 {
		panic("cuda.Dev.ReduceSum: empty out")
	}
	apart("Dev.ReduceSum", 1, whole("out", out.Slice(0, 1)), whole("x", x))
	return d.b.do(func() error {
		return d.b.launch(kReduceSum, dim3{1, 1, 1}, dim3{256, 1, 1}, ptrArg(out), ptrArg(x), longArg(x.n), floatArg(scale))
	})
}

// TimeDevice implements kernels.DeviceTimer with two events on the default
// stream around the work f queues.
func (b *Backend) TimeDevice(f func() error) (float64, error) {
	var start, end cu.Event
	err := b.doOutside("TimeDevice", func() error {
		var err error
		if start, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return classify("cuEventCreate", err)
		}
		if end, err = cu.MakeEvent(cu.DefaultEvent); err != nil {
			return classify("cuEventCreate", err)
		}
		return classify("cuEventRecord", start.Record(cu.Stream{}))
	})
	defer b.do(func() error {
		for _, e := range []*cu.Event{&start, &end} {
			if *e != (cu.Event{}) {
				_ = cu.DestroyEvent(e)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := f(); err != nil {
		return 0, err
	}
	var ms float64
	err = b.do(func() error {
		if err := end.Record(cu.Stream{}); err != nil {
			return classify("cuEventRecord", err)
		}
		if err := end.Synchronize(); err != nil {
			return classify("cuEventSynchronize", err)
		}
		var err error
		ms, err = start.Elapsed(end)
		return classify("cuEventElapsedTime", err)
	})
	return ms, err
}

// The launches behind the host-slice and Dev methods; the caller holds the
// backend and has checked the shapes.

func (b *Backend) pairwiseSqDist(dst, x, y Buffer, B, Q, N, D int, scale float32) error {
	if D == 0 {
		return b.zero(dst)
	}
	const tile = 16
	grid := dim3{(N + tile - 1) / tile, min((Q+tile-1)/tile, maxGridYZ), min(B, maxGridYZ)}
	return b.launch(kPairwiseSqDist, grid, dim3{tile, tile, 1},
		ptrArg(dst), ptrArg(x), ptrArg(y), intArg(B), intArg(Q), intArg(N), intArg(D), floatArg(scale))
}

func (b *Backend) pairwiseSqDistGrad(gx, gy, gout, x, y Buffer, B, Q, N, D int, accumulate bool) error {
	if !gx.IsNil() {
		if err := b.launch(kPairwiseSqDistGradX, b.grid1(B*Q*D), block1,
			ptrArg(gx), ptrArg(gout), ptrArg(x), ptrArg(y), intArg(B), intArg(Q), intArg(N), intArg(D), boolArg(accumulate)); err != nil {
			return err
		}
	}
	if !gy.IsNil() {
		return b.launch(kPairwiseSqDistGradY, b.grid1(B*N*D), block1,
			ptrArg(gy), ptrArg(gout), ptrArg(x), ptrArg(y), intArg(B), intArg(Q), intArg(N), intArg(D), boolArg(accumulate))
	}
	return nil
}

func (b *Backend) sgdStep(p, g, loss Buffer, lr, wd float32) error {
	return b.launch(kSGDStep, b.grid1(p.n), block1, ptrArg(p), ptrArg(g), ptrArg(loss), floatArg(lr), floatArg(wd), longArg(p.n))
}

func (b *Backend) adamStep(p, g, m, v, loss Buffer, t int, hp kernels.AdamParams) error {
	// As cpu.Adam: bias corrections in float64, the rest in float32.
	bc1 := 1 - math.Pow(float64(hp.Beta1), float64(t))
	bc2 := 1 - math.Pow(float64(hp.Beta2), float64(t))
	step := float32(float64(hp.LR) / bc1)
	rbc2 := float32(1 / math.Sqrt(bc2))
	c1, c2 := 1-hp.Beta1, 1-hp.Beta2
	var l2, decay float32
	if hp.Decoupled {
		decay = 1 - hp.LR*hp.WeightDecay
	} else {
		l2, decay = hp.WeightDecay, 1
	}
	return b.launch(kAdamStep, b.grid1(p.n), block1,
		ptrArg(p), ptrArg(g), ptrArg(m), ptrArg(v), ptrArg(loss), longArg(p.n),
		floatArg(hp.Beta1), floatArg(hp.Beta2), floatArg(c1), floatArg(c2),
		floatArg(step), floatArg(rbc2), floatArg(hp.Eps), floatArg(l2), floatArg(decay))
}

func (b *Backend) gemm(g Gemm) error {
	if s := splitK(g); s > 1 {
		// The epilogue runs after the partial products are summed.
		plain := g
		plain.Bias, plain.ActOut = Buffer{}, Buffer{}
		if err := b.gemmSplitK(plain, s); err != nil {
			return err
		}
		if !g.Bias.IsNil() {
			if err := b.biasAdd(g.C, g.Bias, 1, g.M, g.N, 0); err != nil {
				return err
			}
		}
		if !g.ActOut.IsNil() {
			return b.activate(g.Act, g.ActOut.Slice(0, g.M*g.N), g.C.Slice(0, g.M*g.N))
		}
		return nil
	}
	return b.gemmLaunch(g)
}

func (b *Backend) activate(f Activation, a, z Buffer) error {
	return b.launch(kActForward, b.grid1(z.n), block1, ptrArg(a), ptrArg(z), longArg(z.n), intArg(int(f)))
}

func (b *Backend) gemmLaunch(g Gemm) error {
	const tile = 32
	grid := dim3{(g.N + tile - 1) / tile, min((g.M+tile-1)/tile, maxGridYZ), min(g.Batch, maxGridYZ)}
	return b.launch(kSgemmBatched, grid, dim3{16, 16, 1},
		boolArg(g.TransA), boolArg(g.TransB), intArg(g.M), intArg(g.N), intArg(g.K), floatArg(g.Alpha),
		ptrArg(g.A), intArg(g.LDA), longArg(g.StrideA),
		ptrArg(g.B), intArg(g.LDB), longArg(g.StrideB), floatArg(g.Beta),
		ptrArg(g.C), intArg(g.LDC), longArg(g.StrideC), intArg(g.Batch),
		ptrArg(g.Bias), longArg(g.BiasStride), ptrArg(g.ActOut), intArg(int(g.Act)),
		ptrArg(g.ARows), longArg(g.ARowsStride))
}

// Reductions along a long dimension with little else to spread over blocks
// (a weight gradient sums over every row of a meta-batch: K in the
// thousands, a few 32x32 output tiles) would leave most of the GPU idle and
// each block looping over K. They run split instead: partial results of
// chunks of the long dimension into a workspace, in parallel, then a column
// sum of the partials, in a fixed order, so results stay deterministic.
const (
	splitBlocks = 256 // blocks a split reduction aims for
	splitChunk  = 256 // shortest chunk worth a block
)

// splitK returns how many chunks of K to compute g's product in (1: no
// split). Only single products with beta 0 or 1 and a contiguous C split.
func splitK(g Gemm) int {
	tiles := ((g.M + 31) / 32) * ((g.N + 31) / 32)
	if g.Batch != 1 || g.LDC != g.N || (g.Beta != 0 && g.Beta != 1) || tiles >= splitBlocks/4 || g.K < 2*splitChunk {
		return 1
	}
	return min(g.K/splitChunk, (splitBlocks+tiles-1)/tiles)
}

// chunks cuts n into about s chunks of size c: full whole ones, then a
// shorter one of rem where rem > 0; parts in all.
func chunks(n, s int) (c, full, rem, parts int) {
	c = (n + s - 1) / s
	full, rem = n/c, n%c
	parts = full
	if rem > 0 {
		parts++
	}
	return c, full, rem, parts
}

// gemmSplitK computes g as s partial products over chunks of K, then sums
// them into C.
func (b *Backend) gemmSplitK(g Gemm, s int) error {
	kc, full, rem, parts := chunks(g.K, s)
	mn := g.M * g.N
	ws, err := b.staged(splitSlot, parts*mn)
	if err != nil {
		return err
	}
	// Where chunk z of K starts, in elements, in A (or, for A's rows named
	// by ARows, in ARows) and B.
	stepA, stepRows, stepB := kc, 0, kc*g.LDB
	if g.TransA {
		stepA = kc * g.LDA
		if !g.ARows.IsNil() {
			stepA, stepRows = 0, kc
		}
	}
	if g.TransB {
		stepB = kc
	}
	part := g
	part.Beta, part.C, part.LDC, part.StrideC = 0, ws, g.N, mn
	part.K, part.Batch, part.StrideA, part.StrideB, part.ARowsStride = kc, full, stepA, stepB, stepRows
	if err := b.gemmLaunch(part); err != nil {
		return err
	}
	if rem > 0 {
		last := part
		last.K, last.Batch = rem, 1
		last.A = g.A.Slice(full*stepA, g.A.n)
		last.ARows = g.ARows.Slice(full*stepRows, g.ARows.n)
		last.B = g.B.Slice(full*stepB, g.B.n)
		last.C = ws.Slice(full*mn, parts*mn)
		if err := b.gemmLaunch(last); err != nil {
			return err
		}
	}
	return b.colSumLaunch(g.C, ws, 1, parts, mn, 0, g.Beta == 1)
}

func (b *Backend) biasAdd(z, bias Buffer, batch, rows, cols, biasStride int) error {
	return b.launch(kBiasAdd, b.grid1(z.n), block1,
		ptrArg(z), ptrArg(bias), intArg(batch), intArg(rows), intArg(cols), longArg(biasStride))
}

func (b *Backend) colSum(dst, x Buffer, batch, rows, cols, dstStride int, accumulate bool) error {
	blocks := (cols + 31) / 32
	if batch != 1 || blocks >= splitBlocks/4 || rows < 2*splitChunk {
		return b.colSumLaunch(dst, x, batch, rows, cols, dstStride, accumulate)
	}
	// Few columns over many rows: sum chunks of rows in parallel, then the
	// chunks' sums (see splitK).
	rc, full, rem, parts := chunks(rows, min(rows/splitChunk, (splitBlocks+blocks-1)/blocks))
	ws, err := b.staged(splitSlot, parts*cols)
	if err != nil {
		return err
	}
	if err := b.colSumLaunch(ws, x, full, rc, cols, cols, false); err != nil {
		return err
	}
	if rem > 0 {
		if err := b.colSumLaunch(ws.Slice(full*cols, parts*cols), x.Slice(full*rc*cols, x.n), 1, rem, cols, 0, false); err != nil {
			return err
		}
	}
	return b.colSumLaunch(dst, ws, 1, parts, cols, dstStride, accumulate)
}

func (b *Backend) colSumLaunch(dst, x Buffer, batch, rows, cols, dstStride int, accumulate bool) error {
	grid := dim3{(cols + 31) / 32, min(batch, maxGridYZ), 1}
	return b.launch(kColSum, grid, dim3{32, 8, 1},
		ptrArg(dst), ptrArg(x), intArg(batch), intArg(rows), intArg(cols), longArg(dstStride), boolArg(accumulate))
}

// need panics unless x has exactly n elements.
func need(op, name string, x Buffer, n int) {
	if x.n != n {
		panic(fmt.Sprintf("cuda.%s: %s has %d elements, want %d", op, name, x.n, n))
	}
}

// extent panics unless x holds batch row-major [rows,cols] matrices with
// row stride ld, stride elements apart, and returns the span they cover
// from x's start (for apart).
func extent(op, name string, x Buffer, rows, cols, ld, stride, batch int) span {
	if rows == 0 || cols == 0 || batch == 0 {
		return span{name: name}
	}
	if ld < cols {
		panic(fmt.Sprintf("cuda.%s: %s: leading dimension %d < %d columns", op, name, ld, cols))
	}
	last := (batch-1)*stride + (rows-1)*ld + cols
	if x.n < last {
		panic(fmt.Sprintf("cuda.%s: %s has %d elements, the shape needs %d", op, name, x.n, last))
	}
	return span{name, x, last}
}

// The kernels take their pointers __restrict__, so an output that overlaps
// another operand is undefined on a GPU: nvcc may read inputs through the
// read-only cache or move loads past stores, where the emulation would
// still compute in order. The Dev methods check for it.

// span is the part of a buffer an operation reads or writes: n elements
// from x's start.
type span struct {
	name string
	x    Buffer
	n    int
}

// whole is all of x.
func whole(name string, x Buffer) span { return span{name, x, x.n} }

func (a span) overlaps(b span) bool {
	if a.x.IsNil() || b.x.IsNil() || a.n == 0 || b.n == 0 {
		return false
	}
	a0, b0 := uint64(a.x.ptr), uint64(b.x.ptr)
	return a0 < b0+4*uint64(b.n) && b0 < a0+4*uint64(a.n)
}

// apart panics if one of the first outs operands, which op writes,
// overlaps any other.
func apart(op string, outs int, ops ...span) {
	for i := range outs {
		for j := range ops {
			if (j > i || j >= outs) && ops[i].overlaps(ops[j]) {
				panic(fmt.Sprintf("cuda.%s: %s overlaps %s (the kernel's operands must not alias)", op, ops[i].name, ops[j].name))
			}
		}
	}
}
