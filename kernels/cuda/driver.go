//go:build metaids_cuda

package cuda

/*
#cgo CFLAGS: -D_GNU_SOURCE
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <cuda.h>

// gorgonia.org/cu calls cuInit from its package init and exits the process
// when that fails, which would make a cuda build unable to run at all (even
// on the CPU) where the driver is present but has no GPU or is broken. This
// definition takes precedence over libcuda's for the whole binary: it calls
// the driver's cuInit, keeps the result for Open to report, and lets cu's
// init carry on. Nothing else calls the driver before Open has checked the
// result.
static CUresult metaids_init_result = CUDA_ERROR_NOT_INITIALIZED;
static int metaids_init_found = 1;

CUresult CUDAAPI cuInit(unsigned int flags) {
	CUresult (*real)(unsigned int) = (CUresult (*)(unsigned int))dlsym(RTLD_NEXT, "cuInit");
	if (real == NULL) {
		metaids_init_found = 0;
		metaids_init_result = CUDA_ERROR_NOT_INITIALIZED;
	} else {
		metaids_init_result = real(flags);
	}
	return CUDA_SUCCESS;
}

static int metaids_cuinit_result(void) { return (int)metaids_init_result; }
static int metaids_cuinit_found(void) { return metaids_init_found; }

// metaids_error_name leaves the driver's name for a CUresult in *name, or
// NULL where the driver does not know it (or is the stub).
static void metaids_error_name(int r, const char **name) {
	*name = NULL;
	if (cuGetErrorName((CUresult)r, name) != CUDA_SUCCESS) *name = NULL;
}
*/
import "C"

import "fmt"

// CUresult values the reasons are told from. The driver's headers define
// them; cu's table of names predates some (stub library: 34).
const (
	resOutOfMemory        = 2
	resNotInitialized     = 3
	resStubLibrary        = 34
	resInsufficientDriver = 35
	resDevicesUnavailable = 46
	resNoDevice           = 100
	resInvalidDevice      = 101
)

var resNames = map[int]string{
	resOutOfMemory:        "CUDA_ERROR_OUT_OF_MEMORY",
	resNotInitialized:     "CUDA_ERROR_NOT_INITIALIZED",
	resStubLibrary:        "CUDA_ERROR_STUB_LIBRARY",
	resInsufficientDriver: "CUDA_ERROR_INSUFFICIENT_DRIVER",
	resDevicesUnavailable: "CUDA_ERROR_DEVICES_UNAVAILABLE",
	resNoDevice:           "CUDA_ERROR_NO_DEVICE",
	resInvalidDevice:      "CUDA_ERROR_INVALID_DEVICE",
	999:                   "CUDA_ERROR_UNKNOWN",
}

func resName(r int) string {
	if n, ok := resNames[r]; ok {
		return n
	}
	var name *C.char
	C.metaids_error_name(C.int(r), &name)
	if name != nil {
		return C.GoString(name)
	}
	return fmt.Sprintf("CUresult %d", r)
}

// initError returns why the driver failed to initialise, or nil.
func initError() error {
	if C.metaids_cuinit_found() == 0 {
		return fmt.Errorf("%w: libcuda.so.1 has no cuInit", ErrNoDriver)
	}
	r := int(C.metaids_cuinit_result())
	switch r {
	case 0:
		return nil
	case resNoDevice, resInvalidDevice, resDevicesUnavailable:
		return fmt.Errorf("%w: cuInit: %s (no GPU installed, or none visible to this process: check CUDA_VISIBLE_DEVICES and /dev/nvidia*)", ErrNoDevice, resName(r))
	case resOutOfMemory:
		return fmt.Errorf("%w: cuInit: %s", ErrOutOfMemory, resName(r))
	case resStubLibrary:
		return fmt.Errorf("%w: cuInit: %s (libcuda.so.1 is the CUDA toolkit's stub, not the driver's library)", ErrNoDriver, resName(r))
	case resInsufficientDriver:
		return fmt.Errorf("%w: cuInit: %s (the kernel module is older than libcuda.so.1)", ErrNoDriver, resName(r))
	}
	return fmt.Errorf("%w: cuInit: %s", ErrNoDriver, resName(r))
}

// classify wraps a driver error in ErrOutOfMemory where it is one.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if code, ok := resultCode(err); ok {
		return driverError(op, C.CUresult(code))
	}
	return fmt.Errorf("cuda: %s: %v", op, err)
}

// driverError turns a CUresult into an error naming op, wrapping
// ErrOutOfMemory where that is the reason.
func driverError(op string, r C.CUresult) error {
	switch int(r) {
	case 0:
		return nil
	case resOutOfMemory:
		return fmt.Errorf("%w: %s: %s", ErrOutOfMemory, op, resName(int(r)))
	}
	return fmt.Errorf("cuda: %s: %s", op, resName(int(r)))
}
