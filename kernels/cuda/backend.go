//go:build metaids_cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/kernels/argcheck"
	"gorgonia.org/cu"
)

func init() {
	kernels.Register("cuda", open)
}

// open adapts Open to kernels.Register, keeping a failed Open's nil pointer
// out of the interface.
func open() (kernels.Backend, error) {
	b, err := Open()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// minFreeMem is the free device memory Open requires, so that a GPU that
// other processes have filled is refused at Open, with the reason, rather
// than failing mid-run: a device-resident ProtoNet meta-step at meta-batch
// 1024 (5-way 5-shot 15-query, 122 features, 64 hidden units) holds about
// 160 MiB.
const minFreeMem = 256 << 20

// minCapability is the compute capability kernels.ptx is built for.
const minCapability = 80

// Backend is the CUDA backend, on the first GPU (device 0). It implements
// kernels.Backend on host slices and, through Dev, offers the same kernels
// and the rest of a meta-step's operations on device-resident Buffers.
//
// The kernels.Backend methods copy their operands to device buffers kept
// between calls (grown as needed), launch, and copy the results back on
// every call: correct anywhere, but bound by PCIe transfers. A learner that
// keeps its parameters, optimiser state and activations on the GPU uses
// Dev instead. The kernels.Backend interface has no error results, so those
// methods panic if the driver fails (a CUDA context does not recover from
// a failed kernel anyway); Dev's methods return the errors.
//
// A Backend is safe for concurrent use; calls are serialised.
type Backend struct {
	mu        sync.Mutex
	dev       cu.Device
	ctx       cu.CUContext
	hasCtx    bool
	mod       cu.Module
	hasMod    bool
	fn        [numKernels]cu.Function
	desc      string
	maxBlocks int // grid cap for grid-stride kernels
	closed    bool
	graphs    bool // GraphsVar's setting

	// stage holds the host-slice methods' operands on the device.
	stage [numStage]Buffer

	// argv holds a launch's arguments, kept here so that launches do not
	// allocate.
	argv [maxArgs]uint64

	// rec is the graph being recorded (Dev.Record), or nil.
	rec *recording
	// pinned lists the page-locked host buffers (Dev.AllocHost).
	pinned []HostBuffer
	// retired holds split scratch space outgrown while graphs may still
	// use it, freed at Close.
	retired []Buffer
}

const (
	numStage = 6 // stage slots 0-4: the host-slice methods' operands; 5: splitSlot
	maxArgs  = 24

	// splitSlot holds the partial results of split reductions.
	splitSlot = 5
)

var _ kernels.Backend = (*Backend)(nil)

var errClosed = errors.New("cuda: backend closed")

// Open starts the backend on device 0: it checks that the driver
// initialised, that there is a device of compute capability 8.0 or newer
// with memory to spare, and loads the kernels. Its errors wrap ErrNoDriver,
// ErrNoDevice or ErrOutOfMemory where one of them is the reason.
func Open() (*Backend, error) {
	graphs, err := graphsSetting()
	if err != nil {
		return nil, err
	}
	if err := initError(); err != nil {
		return nil, err
	}
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("%w: cuDeviceGetCount: %s", ErrNoDriver, errName(err))
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the driver reports no CUDA device", ErrNoDevice)
	}
	dev, err := cu.GetDevice(0)
	if err != nil {
		return nil, fmt.Errorf("%w: cuDeviceGet(0): %s", ErrNoDevice, errName(err))
	}
	name, err := dev.Name()
	if err != nil {
		return nil, fmt.Errorf("%w: device 0: %s", ErrNoDevice, errName(err))
	}
	total, err := dev.TotalMem()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrNoDevice, name, errName(err))
	}
	attrs, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor, cu.MultiprocessorCount)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrNoDevice, name, errName(err))
	}
	major, minor, sms := attrs[0], attrs[1], attrs[2]
	if major*10+minor < minCapability {
		return nil, fmt.Errorf("%w: %s has compute capability %d.%d; the kernels need %d.%d or newer",
			ErrNoDevice, name, major, minor, minCapability/10, minCapability%10)
	}
	b := &Backend{
		dev:       dev,
		desc:      fmt.Sprintf("%s (%.1f GiB, compute %d.%d, %d SMs)", name, float64(total)/(1<<30), major, minor, sms),
		maxBlocks: max(sms, 1) * 32,
		graphs:    graphs,
	}

	// The context is current per OS thread: stay on this one until done.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.start(name); err != nil {
		b.release()
		return nil, err
	}
	return b, nil
}

// start creates the context and loads the module.
func (b *Backend) start(name string) error {
	ctx, err := b.dev.RetainPrimaryCtx()
	if err != nil {
		if errors.Is(err, cu.OutOfMemory) {
			return fmt.Errorf("%w: creating a context on %s: %s", ErrOutOfMemory, name, errName(err))
		}
		return fmt.Errorf("%w: creating a context on %s: %s (another process may hold it in exclusive mode)", ErrNoDevice, name, errName(err))
	}
	b.ctx, b.hasCtx = ctx, true
	if err := cu.SetCurrentContext(ctx); err != nil {
		return fmt.Errorf("cuda: set context: %s", errName(err))
	}
	free, total, err := cu.MemInfo()
	if err != nil {
		return classify("cuMemGetInfo", err)
	}
	if free < minFreeMem {
		return fmt.Errorf("%w: %s has %d MiB free of %d MiB; the backend wants %d MiB",
			ErrOutOfMemory, name, free>>20, total>>20, minFreeMem>>20)
	}
	mod, err := cu.LoadData(PTX)
	if err != nil {
		if code, ok := resultCode(err); ok && code == resUnsupportedPTXVersion {
			return fmt.Errorf("%w: loading the kernels: %s (the PTX is ISA 7.8: the driver must be R520 or newer)", ErrNoDriver, errName(err))
		}
		return classify("loading the kernels", err)
	}
	b.mod, b.hasMod = mod, true
	for k := range numKernels {
		f, err := mod.Function(k.String())
		if err != nil {
			return fmt.Errorf("cuda: kernel %s: %s", k, errName(err))
		}
		b.fn[k] = f
	}
	return nil
}

// release frees what Open and the methods acquired; the caller has the
// context current.
func (b *Backend) release() {
	b.releaseHost()
	for _, x := range b.retired {
		_ = cu.MemFree(x.ptr)
	}
	b.retired = nil
	for i := range b.stage {
		if b.stage[i].ptr != 0 {
			_ = cu.MemFree(b.stage[i].ptr)
			b.stage[i] = Buffer{}
		}
	}
	if b.hasMod {
		_ = b.mod.Unload()
		b.hasMod = false
	}
	if b.hasCtx {
		_ = b.dev.ReleasePrimaryCtx()
		b.hasCtx = false
	}
}

// Close frees the backend's device memory, module and context. Buffers
// allocated through Dev must be freed before. The backend is unusable
// afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: set context: %s", errName(err))
	}
	err := cu.Synchronize()
	b.release()
	if err != nil {
		return fmt.Errorf("cuda: close: %s", errName(err))
	}
	return nil
}

// Name returns "cuda".
func (*Backend) Name() string { return "cuda" }

// Device describes the GPU, e.g. "NVIDIA H100 80GB HBM3 (79.1 GiB, compute
// 9.0, 132 SMs)".
func (b *Backend) Device() string { return b.desc }

// do runs f with the backend locked and its context current on the calling
// OS thread.
func (b *Backend) do(f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cu.SetCurrentContext(b.ctx); err != nil {
		return fmt.Errorf("cuda: set context: %s", errName(err))
	}
	return f()
}

// dim3 is a grid or block shape.
type dim3 struct{ x, y, z int }

const threads = 256 // block size of the one-dimensional kernels

// grid1 is the grid of a one-dimensional grid-stride kernel over n items.
func (b *Backend) grid1(n int) dim3 {
	return dim3{min((n+threads-1)/threads, b.maxBlocks), 1, 1}
}

var block1 = dim3{threads, 1, 1}

// maxGridYZ is the limit on a grid's y and z extents; the kernels stride
// over what lies beyond. A variable so that a test can lower it and check
// the striding at small sizes.
var maxGridYZ = 65535

// Kernel arguments, each in an 8-byte slot: the driver reads as many bytes
// as the parameter has, from the slot's start (little-endian).
func ptrArg(x Buffer) uint64 { return uint64(x.ptr) }
func intArg(v int) uint64    { return uint64(uint32(int32(v))) }
func longArg(v int) uint64   { return uint64(int64(v)) }
func boolArg(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}
func floatArg(v float32) uint64 { return uint64(math.Float32bits(v)) }

// staged returns stage slot i sized to n elements, growing it as needed.
func (b *Backend) staged(i, n int) (Buffer, error) {
	if b.stage[i].n < n {
		if i == splitSlot && b.stage[i].ptr != 0 {
			// A recorded graph may use it.
			b.retired = append(b.retired, b.stage[i])
			b.stage[i] = Buffer{}
		}
		if b.stage[i].ptr != 0 {
			if err := cu.MemFree(b.stage[i].ptr); err != nil {
				return Buffer{}, classify("cuMemFree", err)
			}
			b.stage[i] = Buffer{}
		}
		// Round up so that slowly growing shapes do not reallocate each call.
		c := max(n, 1024)
		c = 1 << (64 - bits.LeadingZeros64(uint64(c-1)))
		p, err := cu.MemAlloc(int64(c) * 4)
		if err != nil {
			return Buffer{}, classify(fmt.Sprintf("allocating %d bytes", 4*c), err)
		}
		b.stage[i] = Buffer{ptr: p, n: c}
	}
	return b.stage[i].Slice(0, n), nil
}

// put copies src into stage slot i and returns the device copy.
func (b *Backend) put(i int, src []float32) (Buffer, error) {
	x, err := b.staged(i, len(src))
	if err != nil {
		return Buffer{}, err
	}
	return x, b.copyIn(x, unsafe.Pointer(unsafe.SliceData(src)), len(src))
}

func (b *Backend) get(dst []float32, src Buffer) error {
	return b.copyOut(unsafe.Pointer(unsafe.SliceData(dst)), src, len(dst))
}

// must panics with a driver failure in a method that cannot return it.
func must(op string, err error) {
	if err != nil {
		panic(kernels.Failure{Err: fmt.Errorf("cuda.%s: %w", op, err)})
	}
}

// PairwiseSqDist is kernels.Backend's, on the GPU (copying every call).
func (b *Backend) PairwiseSqDist(dst, x, y []float32, B, Q, N, D int) {
	checkDims("PairwiseSqDist", B, Q, N, D)
	argcheck.Pairwise("cuda.PairwiseSqDist", len(dst), len(x), len(y), B, Q, N, D)
	if len(dst) == 0 {
		return
	}
	if D == 0 {
		clear(dst)
		return
	}
	must("PairwiseSqDist", b.do(func() error {
		dx, err := b.put(0, x)
		if err != nil {
			return err
		}
		dy, err := b.put(1, y)
		if err != nil {
			return err
		}
		dd, err := b.staged(2, len(dst))
		if err != nil {
			return err
		}
		if err := b.pairwiseSqDist(dd, dx, dy, B, Q, N, D, 1); err != nil {
			return err
		}
		return b.get(dst, dd)
	}))
}

// PairwiseSqDistGrad is kernels.Backend's, on the GPU (copying every call):
// it accumulates into gx and gy, either of which may be nil.
func (b *Backend) PairwiseSqDistGrad(gx, gy, gout, x, y []float32, B, Q, N, D int) {
	checkDims("PairwiseSqDistGrad", B, Q, N, D)
	argcheck.PairwiseGrad("cuda.PairwiseSqDistGrad", argcheck.OptLen(gx), argcheck.OptLen(gy), len(gout), len(x), len(y), B, Q, N, D)
	// With Q or N zero the sums are empty: nothing to add.
	if (gx == nil && gy == nil) || B*Q*N*D == 0 {
		return
	}
	must("PairwiseSqDistGrad", b.do(func() error {
		dg, err := b.put(0, gout)
		if err != nil {
			return err
		}
		dx, err := b.put(1, x)
		if err != nil {
			return err
		}
		dy, err := b.put(2, y)
		if err != nil {
			return err
		}
		var dgx, dgy Buffer
		if gx != nil {
			if dgx, err = b.put(3, gx); err != nil {
				return err
			}
		}
		if gy != nil {
			if dgy, err = b.put(4, gy); err != nil {
				return err
			}
		}
		if err := b.pairwiseSqDistGrad(dgx, dgy, dg, dx, dy, B, Q, N, D, true); err != nil {
			return err
		}
		if gx != nil {
			if err := b.get(gx, dgx); err != nil {
				return err
			}
		}
		if gy != nil {
			return b.get(gy, dgy)
		}
		return nil
	}))
}

// SGDStep is kernels.Backend's, on the GPU (copying every call). It always
// applies, as the CPU's does: its callers have the loss on the host.
func (b *Backend) SGDStep(p, g []float32, lr, weightDecay float32) {
	if len(g) != len(p) {
		panic(fmt.Sprintf("cuda.SGDStep: len(g)=%d, want len(p)=%d", len(g), len(p)))
	}
	if len(p) == 0 {
		return
	}
	must("SGDStep", b.do(func() error {
		dp, err := b.put(0, p)
		if err != nil {
			return err
		}
		dg, err := b.put(1, g)
		if err != nil {
			return err
		}
		if err := b.sgdStep(dp, dg, Buffer{}, lr, weightDecay); err != nil {
			return err
		}
		return b.get(p, dp)
	}))
}

// AdamStep is kernels.Backend's, on the GPU (copying every call); it always
// applies, as SGDStep.
func (b *Backend) AdamStep(p, g, m, v []float32, t int, hp kernels.AdamParams) {
	if len(g) != len(p) || len(m) != len(p) || len(v) != len(p) {
		panic(fmt.Sprintf("cuda.AdamStep: len(p)=%d len(g)=%d len(m)=%d len(v)=%d, want all equal",
			len(p), len(g), len(m), len(v)))
	}
	if t < 1 {
		panic(fmt.Sprintf("cuda.AdamStep: step t=%d, want t >= 1", t))
	}
	if len(p) == 0 {
		return
	}
	must("AdamStep", b.do(func() error {
		var d [4]Buffer
		for i, s := range [4][]float32{p, g, m, v} {
			var err error
			if d[i], err = b.put(i, s); err != nil {
				return err
			}
		}
		if err := b.adamStep(d[0], d[1], d[2], d[3], Buffer{}, t, hp); err != nil {
			return err
		}
		if err := b.get(p, d[0]); err != nil {
			return err
		}
		if err := b.get(m, d[2]); err != nil {
			return err
		}
		return b.get(v, d[3])
	}))
}

// checkDims panics unless every size fits the kernels' int parameters.
func checkDims(fn string, dims ...int) {
	for i, d := range dims {
		if d < 0 || d > math.MaxInt32 {
			// Formatting dims itself would make every call allocate it.
			panic(fmt.Sprintf("cuda.%s: size #%d is %d, out of range", fn, i+1, d))
		}
	}
}

// resUnsupportedPTXVersion is CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the driver
// predates the PTX ISA.
const resUnsupportedPTXVersion = 222

// resultCode returns the CUresult behind an error from package cu.
func resultCode(err error) (int, bool) {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Int && v.Type().PkgPath() == "gorgonia.org/cu" {
		return int(v.Int()), true
	}
	return 0, false
}

// errName names a driver error as the driver does (CUDA_ERROR_...).
func errName(err error) string {
	if code, ok := resultCode(err); ok {
		return resName(code)
	}
	return err.Error()
}
