//go:build metaids_cuda

package cuda

/*
#include <cuda.h>
#include <string.h>

enum { metaids_max_args = 24 }; // maxArgs

// The kernel arguments arrive as 8-byte slots in vals; the driver wants an
// array of pointers to them, built here on the C stack (it copies the
// values before returning, for a launch as for a kernel node).
static CUresult metaids_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, unsigned long long* vals, int n) {
	void* argp[metaids_max_args];
	for (int i = 0; i < n; i++) argp[i] = &vals[i];
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, 0, 0, argp, NULL);
}

static CUresult metaids_graph_kernel(CUgraphNode* out, CUgraph g, CUgraphNode* dep, size_t ndep, CUfunction f,
                                     unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                                     unsigned long long* vals, int n) {
	void* argp[metaids_max_args];
	for (int i = 0; i < n; i++) argp[i] = &vals[i];
	CUDA_KERNEL_NODE_PARAMS p;
	memset(&p, 0, sizeof p);
	p.func = f;
	p.gridDimX = gx, p.gridDimY = gy, p.gridDimZ = gz;
	p.blockDimX = bx, p.blockDimY = by, p.blockDimZ = bz;
	p.kernelParams = argp;
	return cuGraphAddKernelNode(out, g, dep, ndep, &p);
}

// metaids_graph_copy adds a one-dimensional copy of n bytes: host to device
// (host = src), device to host (host = dst) or device to device (host NULL),
// laid out as the runtime's cudaGraphAddMemcpyNode1D does.
static CUresult metaids_graph_copy(CUgraphNode* out, CUgraph g, CUgraphNode* dep, size_t ndep, CUdeviceptr dst,
                                   CUdeviceptr src, void* host, int toHost, size_t n) {
	CUcontext ctx;
	CUresult r = cuCtxGetCurrent(&ctx);
	if (r != CUDA_SUCCESS) return r;
	CUDA_MEMCPY3D p;
	memset(&p, 0, sizeof p);
	if (host != NULL && !toHost) {
		p.srcMemoryType = CU_MEMORYTYPE_HOST, p.srcHost = host;
	} else {
		p.srcMemoryType = CU_MEMORYTYPE_DEVICE, p.srcDevice = src;
	}
	if (host != NULL && toHost) {
		p.dstMemoryType = CU_MEMORYTYPE_HOST, p.dstHost = host;
	} else {
		p.dstMemoryType = CU_MEMORYTYPE_DEVICE, p.dstDevice = dst;
	}
	p.srcPitch = p.dstPitch = n;
	p.srcHeight = p.dstHeight = 1;
	p.WidthInBytes = n, p.Height = 1, p.Depth = 1;
	return cuGraphAddMemcpyNode(out, g, dep, ndep, &p, ctx);
}

static CUresult metaids_graph_zero(CUgraphNode* out, CUgraph g, CUgraphNode* dep, size_t ndep, CUdeviceptr dst,
                                   size_t n) {
	CUcontext ctx;
	CUresult r = cuCtxGetCurrent(&ctx);
	if (r != CUDA_SUCCESS) return r;
	CUDA_MEMSET_NODE_PARAMS p;
	memset(&p, 0, sizeof p);
	p.dst = dst, p.value = 0, p.elementSize = 4, p.width = n, p.height = 1;
	return cuGraphAddMemsetNode(out, g, dep, ndep, &p, ctx);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"gorgonia.org/cu"
)

// Every operation that puts work on the GPU goes through launch, copyIn,
// copyOut, copyOnDevice or zero. Outside Record they queue the work on the
// default stream; inside, they add it to the graph being recorded instead,
// each node after the one before, so that a replay runs the same work in
// the same order.

// cu.Function holds nothing but the driver's handle; launches go through
// C here so that they do not allocate (cu's Launch mallocs the arguments).
var _ [unsafe.Sizeof(cu.Function{}) - unsafe.Sizeof(C.CUfunction(nil))]struct{}
var _ [unsafe.Sizeof(C.CUfunction(nil)) - unsafe.Sizeof(cu.Function{})]struct{}

func (b *Backend) handle(k kernel) C.CUfunction {
	return *(*C.CUfunction)(unsafe.Pointer(&b.fn[k]))
}

func (b *Backend) launch(k kernel, grid, block dim3, args ...uint64) error {
	if len(args) > maxArgs {
		panic(fmt.Sprintf("cuda: kernel %s: %d arguments, at most %d", k, len(args), maxArgs))
	}
	n := copy(b.argv[:], args)
	vals := (*C.ulonglong)(unsafe.Pointer(&b.argv[0]))
	gx, gy, gz := C.uint(grid.x), C.uint(grid.y), C.uint(grid.z)
	bx, by, bz := C.uint(block.x), C.uint(block.y), C.uint(block.z)
	if r := b.rec; r != nil {
		var node C.CUgraphNode
		res := C.metaids_graph_kernel(&node, r.graph, r.dep(), r.ndep(), b.handle(k), gx, gy, gz, bx, by, bz, vals, C.int(n))
		return r.added(node, res, k.String())
	}
	// The error's text is built only on failure: launches do not allocate.
	if res := C.metaids_launch(b.handle(k), gx, gy, gz, bx, by, bz, vals, C.int(n)); res != 0 {
		return driverError("launching "+k.String(), res)
	}
	return nil
}

// copyIn copies n elements from host memory at src to dst.
func (b *Backend) copyIn(dst Buffer, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	if r := b.rec; r != nil {
		if err := b.pinnedOrError("an upload from", src, n); err != nil {
			return err
		}
		var node C.CUgraphNode
		res := C.metaids_graph_copy(&node, r.graph, r.dep(), r.ndep(), C.CUdeviceptr(dst.ptr), 0, src, 0, C.size_t(4*n))
		return r.added(node, res, "an upload")
	}
	return classify("cuMemcpyHtoD", cu.MemcpyHtoD(dst.ptr, src, int64(n)*4))
}

// copyOut copies n elements of src to host memory at dst.
func (b *Backend) copyOut(dst unsafe.Pointer, src Buffer, n int) error {
	if n == 0 {
		return nil
	}
	if r := b.rec; r != nil {
		if err := b.pinnedOrError("a download into", dst, n); err != nil {
			return err
		}
		var node C.CUgraphNode
		res := C.metaids_graph_copy(&node, r.graph, r.dep(), r.ndep(), 0, C.CUdeviceptr(src.ptr), dst, 1, C.size_t(4*n))
		return r.added(node, res, "a download")
	}
	return classify("cuMemcpyDtoH", cu.MemcpyDtoH(dst, src.ptr, int64(n)*4))
}

// copyOnDevice copies src to dst, of equal lengths.
func (b *Backend) copyOnDevice(dst, src Buffer) error {
	if src.n == 0 {
		return nil
	}
	if r := b.rec; r != nil {
		var node C.CUgraphNode
		res := C.metaids_graph_copy(&node, r.graph, r.dep(), r.ndep(), C.CUdeviceptr(dst.ptr), C.CUdeviceptr(src.ptr), nil, 0, C.size_t(4*src.n))
		return r.added(node, res, "a device copy")
	}
	return classify("cuMemcpyDtoD", cu.MemcpyDtoD(dst.ptr, src.ptr, int64(src.n)*4))
}

// zero sets x to zeros.
func (b *Backend) zero(x Buffer) error {
	if x.n == 0 {
		return nil
	}
	if r := b.rec; r != nil {
		var node C.CUgraphNode
		res := C.metaids_graph_zero(&node, r.graph, r.dep(), r.ndep(), C.CUdeviceptr(x.ptr), C.size_t(x.n))
		return r.added(node, res, "a memset")
	}
	return classify("cuMemsetD32", cu.MemsetD32(x.ptr, 0, int64(x.n)))
}

// Graphs.

// GraphsVar is the environment variable that turns graph replay off for
// the learners built on the backend: 0 launches every kernel from the host,
// 1 (the default) records a meta-step once per shape and replays it.
const GraphsVar = "METAIDS_CUDA_GRAPHS"

func graphsSetting() (bool, error) {
	switch v := os.Getenv(GraphsVar); strings.ToLower(v) {
	case "", "1", "on", "true":
		return true, nil
	case "0", "off", "false":
		return false, nil
	default:
		return false, fmt.Errorf("cuda: %s=%q: want 1 (replay recorded meta-steps, the default) or 0 (launch every kernel)", GraphsVar, v)
	}
}

// Graphs reports whether learners should record and replay their steps
// (GraphsVar).
func (d Dev) Graphs() bool { return d.b.graphs }

// Graph is a recorded sequence of device operations (Dev.Record), replayed
// by one Dev.Launch: a meta-step's dozens of kernels cost the host one
// launch instead of one each. A replay reads the host memory its uploads
// were recorded from as it is at the replay, and writes its downloads
// there; kernel arguments are fixed at recording.
type Graph struct {
	graph C.CUgraph
	exec  C.CUgraphExec
	nodes int
}

// Nodes is the number of operations in g.
func (g *Graph) Nodes() int { return g.nodes }

// recording is the graph that operations are being added to.
type recording struct {
	graph C.CUgraph
	last  C.CUgraphNode // the node added last; nil before the first
	nodes int
	err   error // the first failure, which the Record returns
}

func (r *recording) dep() *C.CUgraphNode {
	if r.nodes == 0 {
		return nil
	}
	return &r.last
}

func (r *recording) ndep() C.size_t { return C.size_t(min(r.nodes, 1)) }

// added takes the result of adding what to the graph.
func (r *recording) added(node C.CUgraphNode, res C.CUresult, what string) error {
	if err := driverError("adding "+what+" to a graph", res); err != nil {
		if r.err == nil {
			r.err = err
		}
		return err
	}
	r.last = node
	r.nodes++
	return nil
}

// errRecording refuses what a recording cannot hold.
var errRecording = errors.New("cuda: not allowed while recording a graph")

// doOutside runs f as do does, refusing op while a graph is recorded.
func (b *Backend) doOutside(op string, f func() error) error {
	return b.do(func() error {
		if b.rec != nil {
			return fmt.Errorf("%w: %s", errRecording, op)
		}
		return f()
	})
}

// Record runs f, which queues device operations through d, and returns
// them as a Graph instead of running them: nothing runs until Launch.
// Uploads and downloads in f must use page-locked host memory (AllocHost),
// which a replay reads and writes at its own time; Sync, Free, TimeDevice
// and another Record fail inside f. The operations of every goroutine
// using the backend during f are recorded: record from one goroutine.
//
// The buffers f names (scratch space of split reductions included, which
// the backend keeps until Close) must outlive the Graph.
func (d Dev) Record(f func() error) (*Graph, error) {
	b := d.b
	if err := b.doOutside("Record", func() error {
		var g C.CUgraph
		if err := driverError("cuGraphCreate", C.cuGraphCreate(&g, 0)); err != nil {
			return err
		}
		b.rec = &recording{graph: g}
		return nil
	}); err != nil {
		return nil, err
	}
	defer func() {
		// A shape panic in f must not leave the backend recording.
		if p := recover(); p != nil {
			_ = b.do(func() error { b.discardRecording(); return nil })
			panic(p)
		}
	}()
	ferr := f()
	var out *Graph
	err := b.do(func() error {
		r := b.rec
		if ferr == nil {
			ferr = r.err
		}
		if ferr != nil {
			b.discardRecording()
			return ferr
		}
		var exec C.CUgraphExec
		if err := driverError("cuGraphInstantiateWithFlags", C.cuGraphInstantiateWithFlags(&exec, r.graph, 0)); err != nil {
			b.discardRecording()
			return err
		}
		b.rec = nil
		out = &Graph{graph: r.graph, exec: exec, nodes: r.nodes}
		return nil
	})
	return out, err
}

// Launch queues a replay of g on the default stream.
func (d Dev) Launch(g *Graph) error {
	return d.b.doOutside("Launch", func() error {
		return driverError("cuGraphLaunch", C.cuGraphLaunch(g.exec, nil))
	})
}

// FreeGraph releases g, after the replays queued before.
func (d Dev) FreeGraph(g *Graph) error {
	if g == nil || g.exec == nil {
		return nil
	}
	return d.b.do(func() error {
		err := driverError("cuGraphExecDestroy", C.cuGraphExecDestroy(g.exec))
		if e := driverError("cuGraphDestroy", C.cuGraphDestroy(g.graph)); err == nil {
			err = e
		}
		g.exec, g.graph = nil, nil
		return err
	})
}

// Page-locked host memory.

// HostBuffer is page-locked host memory from AllocHost: copies from and to
// it run at full bus speed, and a graph may copy from and to it.
type HostBuffer struct {
	p unsafe.Pointer
	n int
}

// Float32 returns the buffer as float32s.
func (h HostBuffer) Float32() []float32 {
	if h.p == nil {
		return nil
	}
	return unsafe.Slice((*float32)(h.p), h.n)
}

// Int32 returns the buffer as int32s.
func (h HostBuffer) Int32() []int32 {
	if h.p == nil {
		return nil
	}
	return unsafe.Slice((*int32)(h.p), h.n)
}

// AllocHost returns n four-byte elements of page-locked host memory,
// zeroed.
func (d Dev) AllocHost(n int) (HostBuffer, error) {
	if n < 0 {
		panic(fmt.Sprintf("cuda: AllocHost(%d)", n))
	}
	if n == 0 {
		return HostBuffer{}, nil
	}
	var h HostBuffer
	err := d.b.do(func() error {
		var p unsafe.Pointer
		if err := driverError(fmt.Sprintf("cuMemHostAlloc of %d bytes", 4*n), C.cuMemHostAlloc(&p, C.size_t(4*n), 0)); err != nil {
			return err
		}
		h = HostBuffer{p: p, n: n}
		clear(h.Float32())
		d.b.pinned = append(d.b.pinned, h)
		return nil
	})
	return h, err
}

// FreeHost releases a buffer from AllocHost.
func (d Dev) FreeHost(h HostBuffer) error {
	if h.p == nil {
		return nil
	}
	return d.b.doOutside("FreeHost", func() error {
		for i, p := range d.b.pinned {
			if p.p == h.p {
				d.b.pinned = append(d.b.pinned[:i], d.b.pinned[i+1:]...)
				return driverError("cuMemFreeHost", C.cuMemFreeHost(h.p))
			}
		}
		return fmt.Errorf("cuda: FreeHost of memory AllocHost did not return")
	})
}

// discardRecording ends the recording under way, if any, keeping nothing.
func (b *Backend) discardRecording() {
	if b.rec != nil {
		C.cuGraphDestroy(b.rec.graph)
		b.rec = nil
	}
}

// releaseHost frees the page-locked buffers and an unfinished recording.
func (b *Backend) releaseHost() {
	b.discardRecording()
	for _, h := range b.pinned {
		C.cuMemFreeHost(h.p)
	}
	b.pinned = nil
}

// pinnedOrError checks that n elements at p lie in one page-locked buffer;
// what names the copy and its direction ("an upload from").
func (b *Backend) pinnedOrError(what string, p unsafe.Pointer, n int) error {
	lo := uintptr(p)
	for _, h := range b.pinned {
		start := uintptr(h.p)
		if lo >= start && lo+uintptr(4*n) <= start+uintptr(4*h.n) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s pageable host memory (a graph copies page-locked memory from AllocHost)", errRecording, what)
}

// Events.

// Event marks a point in the queued work (Dev.Mark) that the host can wait
// for (Dev.Wait): how a caller that queues work ahead knows when what it
// queued has run.
type Event struct{ e cu.Event }

// NewEvent returns an event; it has no timing, which makes it cheaper.
func (d Dev) NewEvent() (*Event, error) {
	var e *Event
	err := d.b.do(func() error {
		ev, err := cu.MakeEvent(cu.DisableTiming)
		if err != nil {
			return classify("cuEventCreate", err)
		}
		e = &Event{ev}
		return nil
	})
	return e, err
}

// Mark records e after the work queued so far.
func (d Dev) Mark(e *Event) error {
	return d.b.doOutside("Mark", func() error {
		return classify("cuEventRecord", e.e.Record(cu.Stream{}))
	})
}

// Wait blocks until the work queued before the last Mark of e has run, and
// returns the first error that work met.
func (d Dev) Wait(e *Event) error {
	return d.b.doOutside("Wait", func() error {
		return classify("cuEventSynchronize", e.e.Synchronize())
	})
}

// FreeEvent releases e.
func (d Dev) FreeEvent(e *Event) error {
	if e == nil || e.e == (cu.Event{}) {
		return nil
	}
	return d.b.do(func() error {
		err := classify("cuEventDestroy", cu.DestroyEvent(&e.e))
		e.e = cu.Event{}
		return err
	})
}
