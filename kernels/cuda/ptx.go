// Package cuda is the GPU backend of package kernels, on the CUDA driver API
// through gorgonia.org/cu: the binary needs the NVIDIA driver (libcuda.so.1)
// and nothing else, no CUDA toolkit or runtime.
//
// The backend itself is built only under the metaids_cuda build tag;
// importing the package then registers it with kernels as "cuda". (Not the
// tag cuda: under that, gorgonia.org/gorgonia, which package train imports,
// builds its own CUDA engine, which needs cuDNN and cuBLAS.) Without the tag
// the package holds just the kernels' PTX and the errors below, so that the
// PTX's freshness is tested by a plain go test and code that names the
// errors builds either way.
//
// The kernels are CUDA C in kernels.cu, compiled ahead of time to PTX
// (kernels.ptx, committed and embedded) that the driver compiles for the GPU
// at load time; a normal build needs no nvcc. Regenerate the PTX after
// editing kernels.cu with `make kernels` (scripts/cuda-check.sh ptx), which
// also records the source's sha256 in kernels.ptx.sha256.
package cuda

import (
	_ "embed"
	"errors"
	"strings"
)

// PTX is the kernels' PTX (ISA 7.8, compute_80: Ampere and newer GPUs, with
// an R520 or newer driver).
//
//go:embed kernels.ptx
var PTX string

// ptxSum is kernels.ptx.sha256: the sha256 of the kernels.cu the PTX was
// generated from, in sha256sum's format.
//
//go:embed kernels.ptx.sha256
var ptxSum string

// SourceSum returns the hex sha256 of the kernels.cu that PTX was compiled
// from.
func SourceSum() string {
	sum, _, _ := strings.Cut(strings.TrimSpace(ptxSum), " ")
	return sum
}

// The reasons the backend cannot start. Open's errors wrap one of them.
var (
	// ErrNoDriver: the NVIDIA driver is missing or unusable. A binary with
	// the backend links libcuda.so.1, so where that library is missing entirely
	// the binary does not start at all and the dynamic loader names it;
	// this error covers a driver that is present but fails to initialise
	// (the toolkit's stub library, a driver too old for the PTX, a
	// user-space/kernel-module mismatch).
	ErrNoDriver = errors.New("no usable NVIDIA driver")
	// ErrNoDevice: the driver works but shows no usable GPU (none
	// installed or visible, or one older than compute capability 8.0).
	ErrNoDevice = errors.New("no usable CUDA device")
	// ErrOutOfMemory: the GPU has too little free memory.
	ErrOutOfMemory = errors.New("out of GPU memory")
)

// kernel names a __global__ function of kernels.cu.
type kernel int

const (
	kPairwiseSqDist kernel = iota
	kPairwiseSqDistGradX
	kPairwiseSqDistGradY
	kSGDStep
	kAdamStep
	kSgemmBatched
	kBiasAdd
	kColSum
	kActForward
	kActBackward
	kActCurv
	kSoftmaxXent
	kSoftmaxXentRop
	kLogSoftmax
	kClassMean
	kClassMeanGrad
	kScaleVec
	kAxpy
	kInnerUpdate
	kReduceSum
	numKernels
)

// kernelNames are the entry points, indexed by kernel; a test checks them
// against kernels.cu and kernels.ptx.
var kernelNames = [numKernels]string{
	kPairwiseSqDist:      "pairwise_sqdist",
	kPairwiseSqDistGradX: "pairwise_sqdist_grad_x",
	kPairwiseSqDistGradY: "pairwise_sqdist_grad_y",
	kSGDStep:             "sgd_step",
	kAdamStep:            "adam_step",
	kSgemmBatched:        "sgemm_batched",
	kBiasAdd:             "bias_add",
	kColSum:              "col_sum",
	kActForward:          "act_forward",
	kActBackward:         "act_backward",
	kActCurv:             "act_curv",
	kSoftmaxXent:         "softmax_xent",
	kSoftmaxXentRop:      "softmax_xent_rop",
	kLogSoftmax:          "log_softmax",
	kClassMean:           "class_mean",
	kClassMeanGrad:       "class_mean_grad",
	kScaleVec:            "scale_vec",
	kAxpy:                "axpy",
	kInnerUpdate:         "inner_update",
	kReduceSum:           "reduce_sum",
}

func (k kernel) String() string { return kernelNames[k] }
