// fakecuda.cc is a CPU stand-in for libcuda.so.1, for checking the cuda
// backend on a machine without a GPU (scripts/cuda-check.sh emu). It
// implements the driver calls the backend makes, and runs kernels.cu itself,
// compiled as host C++ through emu.h, in place of the PTX: the Go code,
// its argument marshalling, launch shapes and bounds, and the kernels'
// indexing are all exercised; only nvcc's code generation is not.
//
// Checks beyond a real driver's: every allocation ends at a PROT_NONE page
// (a read or write past the end faults at once) and starts after a filled
// red zone (checked after each launch), copies and memsets must lie inside
// one allocation, launch shapes are checked against the hardware limits,
// and a __syncthreads that not every thread of a block reaches is an error.
//
// The stream is as asynchronous as a real one may be, and then some: work
// that a GPU would run behind the host's back (launches, graph launches,
// memsets, device-to-device copies, event records) is queued and runs only
// when the host waits for it (a synchronous copy, cuCtxSynchronize,
// cuEventSynchronize, a free). So a host buffer rewritten before the copy
// that reads it has run, or read before the copy that fills it, gives
// wrong numbers here as it can on a GPU. A failure in queued work is
// reported by the next call that waits, and by every call after, as on a
// GPU. METAIDS_FAKECUDA_EAGER=1 runs each piece of work at once instead,
// which reports a failing kernel at its launch.
//
// As with a real driver, the primary context is current per OS thread:
// memory, module, launch, copy, event and graph calls fail with
// CUDA_ERROR_INVALID_CONTEXT on a thread where it is not.
//
// METAIDS_FAKECUDA_ORDER=reverse runs blocks, and each block's threads
// between barriers, last first (see reversed).
//
// Environment, to rehearse failures: METAIDS_FAKECUDA_INIT=<CUresult> makes
// cuInit fail with it, METAIDS_FAKECUDA_DEVICES=<n> sets the device count,
// METAIDS_FAKECUDA_CC=<major*10+minor> the compute capability,
// METAIDS_FAKECUDA_FREE_MIB=<n> the free memory, and
// METAIDS_FAKECUDA_FAIL_AFTER=<n> makes every launch after the first n fail
// with CUDA_ERROR_LAUNCH_FAILED, sticky, as a GPU fault mid-run does.

#include <cuda.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "emu.h"
#include "kernels.cu"

#define API __attribute__((visibility("default")))

uint3 threadIdx, blockIdx, blockDim, gridDim;

static int env_int(const char* name, int def) {
    const char* v = getenv(name);
    return v && *v ? atoi(v) : def;
}

// ---------------------------------------------------------------------------
// Threads of a block as fibers.

enum { READY, AT_BARRIER, DONE };

static ucontext_t sched_ctx;
static std::vector<ucontext_t> fiber_ctx;
static std::vector<char*> fiber_stack;
static std::vector<int> fiber_state;
static int cur_fiber;
static std::function<void()> fiber_body;
static const size_t kStack = 256 * 1024;

void __syncthreads() {
    fiber_state[cur_fiber] = AT_BARRIER;
    swapcontext(&fiber_ctx[cur_fiber], &sched_ctx);
}

static void fiber_main() {
    fiber_body();
    fiber_state[cur_fiber] = DONE;
}  // returns to sched_ctx through uc_link

static uint3 thread_of(int i) {
    uint3 t;
    t.x = i % blockDim.x;
    t.y = i / blockDim.x % blockDim.y;
    t.z = i / (blockDim.x * blockDim.y);
    return t;
}

// reversed reports METAIDS_FAKECUDA_ORDER=reverse: blocks, and a block's
// threads between barriers, run last first. A race between threads that
// the usual order happens to get right (a read of shared memory before the
// barrier that orders it after a write, one thread's write over what another
// still reads, blocks that write the same output) then shows.
static bool reversed() {
    static const bool r = [] {
        const char* v = getenv("METAIDS_FAKECUDA_ORDER");
        return v && strcmp(v, "reverse") == 0;
    }();
    return r;
}

// run_block runs the current block's threads to completion; it returns
// false if they disagree on a barrier.
static bool run_block() {
    const int n = blockDim.x * blockDim.y * blockDim.z;
    while ((int)fiber_stack.size() < n) fiber_stack.push_back((char*)malloc(kStack));
    fiber_ctx.resize(n);
    fiber_state.assign(n, READY);
    for (int i = 0; i < n; i++) {
        getcontext(&fiber_ctx[i]);
        fiber_ctx[i].uc_stack.ss_sp = fiber_stack[i];
        fiber_ctx[i].uc_stack.ss_size = kStack;
        fiber_ctx[i].uc_link = &sched_ctx;
        makecontext(&fiber_ctx[i], fiber_main, 0);
    }
    for (;;) {
        for (int j = 0; j < n; j++) {
            const int i = reversed() ? n - 1 - j : j;
            if (fiber_state[i] == DONE) continue;
            fiber_state[i] = READY;
            cur_fiber = i;
            threadIdx = thread_of(i);
            swapcontext(&sched_ctx, &fiber_ctx[i]);
        }
        int done = 0;
        for (int i = 0; i < n; i++) done += fiber_state[i] == DONE;
        if (done == n) return true;
        if (done > 0) return false;  // some exited while others wait at a barrier
    }
}

// ---------------------------------------------------------------------------
// Kernels by name.

struct Kernel {
    const char* name;
    // bind reads the arguments and returns the body each thread runs.
    std::function<std::function<void()>(void**)> bind;
};

template <typename... A, size_t... I>
static std::function<void()> bind_args(void (*f)(A...), void** p, std::index_sequence<I...>) {
    std::tuple<A...> args(*static_cast<A*>(p[I])...);
    return [f, args] { std::apply(f, args); };
}

template <typename... A>
static Kernel kernel(const char* name, void (*f)(A...)) {
    return Kernel{name, [f](void** p) { return bind_args(f, p, std::index_sequence_for<A...>{}); }};
}

static const std::vector<Kernel>& kernels() {
    static const std::vector<Kernel> k = {
        kernel("pairwise_sqdist", pairwise_sqdist),
        kernel("pairwise_sqdist_grad_x", pairwise_sqdist_grad_x),
        kernel("pairwise_sqdist_grad_y", pairwise_sqdist_grad_y),
        kernel("sgd_step", sgd_step),
        kernel("adam_step", adam_step),
        kernel("sgemm_batched", sgemm_batched),
        kernel("bias_add", bias_add),
        kernel("col_sum", col_sum),
        kernel("act_forward", act_forward),
        kernel("act_backward", act_backward),
        kernel("act_curv", act_curv),
        kernel("softmax_xent", softmax_xent),
        kernel("softmax_xent_rop", softmax_xent_rop),
        kernel("log_softmax", log_softmax),
        kernel("class_mean", class_mean),
        kernel("class_mean_grad", class_mean_grad),
        kernel("scale_vec", scale_vec),
        kernel("axpy", axpy),
        kernel("inner_update", inner_update),
        kernel("reduce_sum", reduce_sum),
    };
    return k;
}

// ---------------------------------------------------------------------------
// Memory.

struct Alloc {
    char* map;       // mapping start
    size_t map_len;  // mapping length, guard page included
    char* data;      // user data, ending at the guard page
    size_t size;
};

static std::map<uintptr_t, Alloc> allocs;  // by data address
static const unsigned char kRed = 0xA5;

static size_t page() { return (size_t)sysconf(_SC_PAGESIZE); }

// find returns the allocation holding [p, p+n), or NULL.
static const Alloc* find(uintptr_t p, size_t n) {
    auto it = allocs.upper_bound(p);
    if (it == allocs.begin()) return NULL;
    --it;
    const Alloc& a = it->second;
    if (p < (uintptr_t)a.data || p + n > (uintptr_t)a.data + a.size) return NULL;
    return &a;
}

// red_zones_ok checks that nothing wrote below an allocation's start.
static bool red_zones_ok() {
    for (auto& kv : allocs) {
        const Alloc& a = kv.second;
        for (char* c = a.map; c < a.data; c++) {
            if ((unsigned char)*c != kRed) {
                fprintf(stderr, "fakecuda: write %zd bytes before an allocation of %zu bytes\n",
                        (ssize_t)(a.data - c), a.size);
                return false;
            }
        }
    }
    return true;
}


// ---------------------------------------------------------------------------
// The stream: work queued in order, run when the host waits for it.

static std::deque<std::function<CUresult()>> queued;
static CUresult sticky = CUDA_SUCCESS;  // the first failure of queued work

// run_queued runs the queued work in order until done() holds or nothing is
// left; a failure sticks, dropping the rest as a failed context does.
static CUresult run_queued(const std::function<bool()>& done) {
    while (sticky == CUDA_SUCCESS && !queued.empty() && !done()) {
        auto work = std::move(queued.front());
        queued.pop_front();
        if (CUresult r = work()) {
            sticky = r;
            queued.clear();
        }
    }
    return sticky;
}

static CUresult run_all() {
    return run_queued([] { return false; });
}

// enqueue queues work on the stream (or runs it at once with
// METAIDS_FAKECUDA_EAGER=1).
static CUresult enqueue(std::function<CUresult()> work) {
    if (sticky) return sticky;
    queued.push_back(std::move(work));
    static const bool eager = env_int("METAIDS_FAKECUDA_EAGER", 0) != 0;
    return eager ? run_all() : CUDA_SUCCESS;
}

// injected_fault fails the launches after the first
// METAIDS_FAKECUDA_FAIL_AFTER, as a device that faults mid-run.
static CUresult injected_fault() {
    static long launches = 0;
    static const long after = env_int("METAIDS_FAKECUDA_FAIL_AFTER", -1);
    if (after >= 0 && ++launches > after) {
        sticky = CUDA_ERROR_LAUNCH_FAILED;
        queued.clear();
        return sticky;
    }
    return CUDA_SUCCESS;
}

static bool inited;
static const char* module_image;

static CUresult ready() { return inited ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED; }

// The primary context: retained by count, and current per OS thread, as the
// driver's. A call that needs a context fails on a thread where it is not
// current, so a Go call that lands on another OS thread without making it
// current fails here as on a GPU.
static const CUcontext kPrimary = (CUcontext)(uintptr_t)0x1000;
static int primary_refs;
static thread_local CUcontext current_ctx;

// live reports whether ctx is the primary context and still retained.
static bool live(CUcontext ctx) { return ctx == kPrimary && primary_refs > 0; }

static CUresult in_ctx() {
    if (CUresult r = ready()) return r;
    if (live(current_ctx)) return CUDA_SUCCESS;
    fprintf(stderr, "fakecuda: no context is current on this thread\n");
    return CUDA_ERROR_INVALID_CONTEXT;
}

extern "C" {

API CUresult cuInit(unsigned int flags) {
    if (int r = env_int("METAIDS_FAKECUDA_INIT", 0)) return (CUresult)r;
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    inited = true;
    return CUDA_SUCCESS;
}

API CUresult cuDriverGetVersion(int* v) {
    *v = 11080;
    return CUDA_SUCCESS;
}

API CUresult cuGetErrorName(CUresult r, const char** name) {
    switch (r) {
        case CUDA_SUCCESS: *name = "CUDA_SUCCESS"; break;
        case CUDA_ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
        case CUDA_ERROR_OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case CUDA_ERROR_NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; break;
        case CUDA_ERROR_LAUNCH_FAILED: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case CUDA_ERROR_NOT_READY: *name = "CUDA_ERROR_NOT_READY"; break;
        case CUDA_ERROR_INVALID_CONTEXT: *name = "CUDA_ERROR_INVALID_CONTEXT"; break;
        default: *name = NULL; return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetCount(int* n) {
    if (CUresult r = ready()) return r;
    *n = env_int("METAIDS_FAKECUDA_DEVICES", 1);
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (CUresult r = ready()) return r;
    if (ordinal < 0 || ordinal >= env_int("METAIDS_FAKECUDA_DEVICES", 1)) return CUDA_ERROR_INVALID_DEVICE;
    *d = ordinal;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, len, "metaids CPU emulation");
    return CUDA_SUCCESS;
}

API CUresult cuDeviceTotalMem(size_t* bytes, CUdevice) {
    *bytes = (size_t)8 << 30;
    return CUDA_SUCCESS;
}

API CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute attr, CUdevice) {
    const int cc = env_int("METAIDS_FAKECUDA_CC", 80);
    switch (attr) {
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = cc / 10; break;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = cc % 10; break;
        case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 2; break;  // small, to exercise grid-stride loops
        default: *v = 0;
    }
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice) {
    if (CUresult r = ready()) return r;
    primary_refs++;
    *ctx = kPrimary;
    return CUDA_SUCCESS;
}

API CUresult cuDevicePrimaryCtxRelease(CUdevice) {
    if (CUresult r = ready()) return r;
    if (primary_refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
    run_all();
    primary_refs--;
    return CUDA_SUCCESS;
}

API CUresult cuCtxSetCurrent(CUcontext ctx) {
    if (CUresult r = ready()) return r;
    if (ctx != NULL && !live(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    current_ctx = ctx;
    return CUDA_SUCCESS;
}

API CUresult cuCtxSynchronize(void) {
    if (CUresult r = in_ctx()) return r;
    return run_all();
}

API CUresult cuMemGetInfo(size_t* free_, size_t* total) {
    if (CUresult r = in_ctx()) return r;
    *total = (size_t)8 << 30;
    *free_ = (size_t)env_int("METAIDS_FAKECUDA_FREE_MIB", 8 << 10) << 20;
    return CUDA_SUCCESS;
}

API CUresult cuModuleLoadData(CUmodule* mod, const void* image) {
    if (CUresult r = in_ctx()) return r;
    const char* s = (const char*)image;
    if (!strstr(s, "\n.version ") || !strstr(s, "\n.target ")) return CUDA_ERROR_INVALID_PTX;
    module_image = strdup(s);
    *mod = (CUmodule)(uintptr_t)0x2000;
    return CUDA_SUCCESS;
}

API CUresult cuModuleUnload(CUmodule) {
    if (CUresult r = in_ctx()) return r;
    run_all();
    return CUDA_SUCCESS;
}

// cuModuleGetFunction finds a kernel that the PTX declares and the emulation
// has.
API CUresult cuModuleGetFunction(CUfunction* f, CUmodule, const char* name) {
    if (CUresult r = in_ctx()) return r;
    std::string entry = std::string(".entry ") + name + "(";
    if (!module_image || !strstr(module_image, entry.c_str())) return CUDA_ERROR_NOT_FOUND;
    const auto& k = kernels();
    for (size_t i = 0; i < k.size(); i++) {
        if (strcmp(k[i].name, name) == 0) {
            *f = (CUfunction)(uintptr_t)(i + 1);
            return CUDA_SUCCESS;
        }
    }
    fprintf(stderr, "fakecuda: kernel %s is in the PTX but not in fakecuda.cc's table\n", name);
    return CUDA_ERROR_NOT_FOUND;
}

// launch_ok checks a launch's shape against the hardware's limits.
static bool launch_ok(size_t i, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                      unsigned shared, void** params, void** extra) {
    if (gx < 1 || gy < 1 || gz < 1 || bx < 1 || by < 1 || bz < 1 || gx > 0x7fffffffu || gy > 65535 ||
        gz > 65535 || bx > 1024 || by > 1024 || bz > 64 || (unsigned long)bx * by * bz > 1024 || shared != 0 ||
        extra != NULL || params == NULL) {
        fprintf(stderr, "fakecuda: %s: bad launch grid (%u,%u,%u) block (%u,%u,%u) shared %u\n", kernels()[i].name,
                gx, gy, gz, bx, by, bz, shared);
        return false;
    }
    return true;
}

// run_kernel runs kernel i's body, bound to its arguments, over the grid.
static CUresult run_kernel(size_t i, uint3 grid, uint3 block, const std::function<void()>& body) {
    const char* name = kernels()[i].name;
    fiber_body = body;
    gridDim = grid;
    blockDim = block;
    const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
    for (uint64_t j = 0; j < blocks; j++) {
        const uint64_t b = reversed() ? blocks - 1 - j : j;
        blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                         (unsigned)(b / ((uint64_t)grid.x * grid.y))};
        if (!run_block()) {
            fprintf(stderr, "fakecuda: %s: __syncthreads not reached by every thread of block (%u,%u,%u)\n", name,
                    blockIdx.x, blockIdx.y, blockIdx.z);
            return CUDA_ERROR_LAUNCH_FAILED;
        }
    }
    fiber_body = nullptr;
    if (!red_zones_ok()) {
        fprintf(stderr, "fakecuda: %s wrote out of bounds\n", name);
        return CUDA_ERROR_LAUNCH_FAILED;
    }
    return CUDA_SUCCESS;
}

API CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                            unsigned bz, unsigned shared, CUstream, void** params, void** extra) {
    if (CUresult r = in_ctx()) return r;
    const auto& k = kernels();
    const uintptr_t i = (uintptr_t)f;
    if (i < 1 || i > k.size()) return CUDA_ERROR_INVALID_HANDLE;
    if (!launch_ok(i - 1, gx, gy, gz, bx, by, bz, shared, params, extra)) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = injected_fault()) return r;
    // The arguments are read now, as the driver copies them; the kernel runs later.
    auto body = k[i - 1].bind(params);
    uint3 grid{gx, gy, gz}, block{bx, by, bz};
    return enqueue([=] { return run_kernel(i - 1, grid, block, body); });
}

API CUresult cuMemAlloc(CUdeviceptr* p, size_t size) {
    if (CUresult r = in_ctx()) return r;
    if (size == 0) return CUDA_ERROR_INVALID_VALUE;
    const size_t pg = page();
    const size_t data_pages = (size + pg - 1) / pg * pg;
    const size_t red = pg;  // at least a page of red zone before the data
    const size_t len = red + data_pages + pg;
    char* m = (char*)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    char* end = m + red + data_pages;
    mprotect(end, pg, PROT_NONE);
    Alloc a{m, len, end - size, size};
    memset(m, kRed, a.data - m);
    memset(a.data, 0x7f, size);  // not zero: code must not rely on fresh memory being cleared
    allocs[(uintptr_t)a.data] = a;
    *p = (CUdeviceptr)(uintptr_t)a.data;
    return CUDA_SUCCESS;
}

// A free waits for the work queued before it, as the driver's does.
API CUresult cuMemFree(CUdeviceptr p) {
    if (CUresult r = in_ctx()) return r;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = run_all()) return r;
    bool ok = red_zones_ok();
    munmap(it->second.map, it->second.map_len);
    allocs.erase(it);
    return ok ? CUDA_SUCCESS : CUDA_ERROR_LAUNCH_FAILED;
}

static CUresult check_range(const char* op, CUdeviceptr p, size_t n) {
    if (n == 0 || find((uintptr_t)p, n)) return CUDA_SUCCESS;
    fprintf(stderr, "fakecuda: %s: [%#lx, +%zu) is not inside one allocation\n", op, (unsigned long)p, n);
    return CUDA_ERROR_INVALID_VALUE;
}

// The synchronous copies to and from the host wait for the queued work.
API CUresult cuMemcpyHtoD(CUdeviceptr dst, const void* src, size_t n) {
    if (CUresult r = in_ctx()) return r;
    if (CUresult r = check_range("cuMemcpyHtoD", dst, n)) return r;
    if (CUresult r = run_all()) return r;
    memcpy((void*)(uintptr_t)dst, src, n);
    return CUDA_SUCCESS;
}

API CUresult cuMemcpyDtoH(void* dst, CUdeviceptr src, size_t n) {
    if (CUresult r = in_ctx()) return r;
    if (CUresult r = check_range("cuMemcpyDtoH", src, n)) return r;
    if (CUresult r = run_all()) return r;
    memcpy(dst, (const void*)(uintptr_t)src, n);
    return CUDA_SUCCESS;
}

API CUresult cuMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    if (CUresult r = in_ctx()) return r;
    if (CUresult r = check_range("cuMemcpyDtoD", dst, n)) return r;
    if (CUresult r = check_range("cuMemcpyDtoD", src, n)) return r;
    return enqueue([=] {
        memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n);
        return CUDA_SUCCESS;
    });
}

API CUresult cuMemsetD32(CUdeviceptr dst, unsigned int v, size_t n) {
    if (CUresult r = in_ctx()) return r;
    if (CUresult r = check_range("cuMemsetD32", dst, n * 4)) return r;
    return enqueue([=] {
        unsigned int* p = (unsigned int*)(uintptr_t)dst;
        for (size_t i = 0; i < n; i++) p[i] = v;
        return CUDA_SUCCESS;
    });
}

// Events: a record is queued work that stamps the time it runs. An event
// lives until it is destroyed and no record of it is queued any more.
struct FakeEvent {
    std::chrono::steady_clock::time_point at;
    bool recorded;  // cuEventRecord was called
    bool done;      // the newest record has run
    int queued;     // records queued and not yet run
    bool destroyed;
};

API CUresult cuEventCreate(CUevent* e, unsigned int) {
    if (CUresult r = in_ctx()) return r;
    *e = (CUevent) new FakeEvent{{}, false, false, 0, false};
    return CUDA_SUCCESS;
}

API CUresult cuEventRecord(CUevent e, CUstream) {
    if (CUresult r = in_ctx()) return r;
    FakeEvent* f = (FakeEvent*)e;
    if (!f || f->destroyed) return CUDA_ERROR_INVALID_HANDLE;
    f->recorded = true;
    f->done = false;
    f->queued++;
    if (CUresult r = enqueue([f] {
            f->queued--;
            if (f->destroyed) {
                if (f->queued == 0) delete f;
                return CUDA_SUCCESS;
            }
            f->at = std::chrono::steady_clock::now();
            f->done = f->queued == 0;  // an older record of a re-recorded event does not count
            return CUDA_SUCCESS;
        })) {
        f->queued--;
        return r;
    }
    return CUDA_SUCCESS;
}

// cuEventSynchronize runs the queued work up to the event's newest record.
API CUresult cuEventSynchronize(CUevent e) {
    if (CUresult r = in_ctx()) return r;
    FakeEvent* f = (FakeEvent*)e;
    if (!f || f->destroyed) return CUDA_ERROR_INVALID_HANDLE;
    if (!f->recorded) return CUDA_SUCCESS;
    return run_queued([f] { return f->done; });
}

API CUresult cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
    FakeEvent *a = (FakeEvent*)start, *b = (FakeEvent*)end;
    if (!a->recorded || !b->recorded) return CUDA_ERROR_INVALID_HANDLE;
    if (!a->done || !b->done) return CUDA_ERROR_NOT_READY;
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return CUDA_SUCCESS;
}

API CUresult cuEventDestroy_v2(CUevent e) {
    FakeEvent* f = (FakeEvent*)e;
    if (!f || f->destroyed) return CUDA_ERROR_INVALID_HANDLE;
    f->destroyed = true;
    if (f->queued == 0) delete f;
    return CUDA_SUCCESS;
}

API CUresult cuCtxGetCurrent(CUcontext* ctx) {
    if (CUresult r = ready()) return r;
    *ctx = current_ctx;
    return CUDA_SUCCESS;
}

// Page-locked host memory: plain memory, remembered so that a graph's
// copies can insist on it (a real graph copies pageable memory too, but
// the backend promises not to).
static std::map<uintptr_t, size_t> host_allocs;  // start -> size

API CUresult cuMemHostAlloc(void** p, size_t n, unsigned int flags) {
    if (CUresult r = in_ctx()) return r;
    if (n == 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    *p = malloc(n);
    if (!*p) return CUDA_ERROR_OUT_OF_MEMORY;
    memset(*p, 0x7f, n);  // not zero, as device memory
    host_allocs[(uintptr_t)*p] = n;
    return CUDA_SUCCESS;
}

API CUresult cuMemFreeHost(void* p) {
    if (CUresult r = in_ctx()) return r;
    auto it = host_allocs.find((uintptr_t)p);
    if (it == host_allocs.end()) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = run_all()) return r;
    host_allocs.erase(it);
    free(p);
    return CUDA_SUCCESS;
}

static bool pinned(const void* p, size_t n) {
    auto it = host_allocs.upper_bound((uintptr_t)p);
    if (it == host_allocs.begin()) return false;
    --it;
    return (uintptr_t)p + n <= it->first + it->second;
}

// Graphs: a node is the work it will do, kept in the order added; that is
// a valid order for any graph, since a node's dependencies come before it.
// Nodes check their operands when added and again when they run.
struct FakeGraph {
    std::vector<std::function<CUresult()>> nodes;
};

// An executable graph's nodes, shared with its queued launches.
struct FakeExec {
    std::shared_ptr<const std::vector<std::function<CUresult()>>> nodes;
};

static CUresult add_node(CUgraphNode* out, CUgraph g, const CUgraphNode* deps, size_t ndeps,
                         std::function<CUresult()> work) {
    FakeGraph* fg = (FakeGraph*)g;
    if (!fg || !out || (ndeps > 0 && !deps)) return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < ndeps; i++) {
        uintptr_t d = (uintptr_t)deps[i];
        if (d < 1 || d > fg->nodes.size()) return CUDA_ERROR_INVALID_VALUE;
    }
    fg->nodes.push_back(std::move(work));
    *out = (CUgraphNode)(uintptr_t)fg->nodes.size();
    return CUDA_SUCCESS;
}

API CUresult cuGraphCreate(CUgraph* g, unsigned int flags) {
    if (CUresult r = ready()) return r;
    if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
    *g = (CUgraph) new FakeGraph;
    return CUDA_SUCCESS;
}

API CUresult cuGraphDestroy(CUgraph g) {
    delete (FakeGraph*)g;
    return CUDA_SUCCESS;
}

API CUresult cuGraphAddKernelNode(CUgraphNode* out, CUgraph g, const CUgraphNode* deps, size_t ndeps,
                                  const CUDA_KERNEL_NODE_PARAMS* p) {
    const auto& k = kernels();
    const uintptr_t i = (uintptr_t)p->func;
    if (i < 1 || i > k.size()) return CUDA_ERROR_INVALID_HANDLE;
    if (!launch_ok(i - 1, p->gridDimX, p->gridDimY, p->gridDimZ, p->blockDimX, p->blockDimY, p->blockDimZ,
                   p->sharedMemBytes, p->kernelParams, p->extra))
        return CUDA_ERROR_INVALID_VALUE;
    // The arguments are read now, as the driver copies them.
    auto body = k[i - 1].bind(p->kernelParams);
    uint3 grid{p->gridDimX, p->gridDimY, p->gridDimZ}, block{p->blockDimX, p->blockDimY, p->blockDimZ};
    return add_node(out, g, deps, ndeps, [=] { return run_kernel(i - 1, grid, block, body); });
}

API CUresult cuGraphAddMemcpyNode(CUgraphNode* out, CUgraph g, const CUgraphNode* deps, size_t ndeps,
                                  const CUDA_MEMCPY3D* p, CUcontext ctx) {
    if (!live(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    // One-dimensional copies only, as the backend makes them.
    const size_t n = p->WidthInBytes;
    if (p->Height != 1 || p->Depth != 1 || p->srcXInBytes || p->srcY || p->srcZ || p->dstXInBytes || p->dstY ||
        p->dstZ || n == 0) {
        fprintf(stderr, "fakecuda: cuGraphAddMemcpyNode: only one-dimensional copies are emulated\n");
        return CUDA_ERROR_INVALID_VALUE;
    }
    const bool src_host = p->srcMemoryType == CU_MEMORYTYPE_HOST, dst_host = p->dstMemoryType == CU_MEMORYTYPE_HOST;
    if ((!src_host && p->srcMemoryType != CU_MEMORYTYPE_DEVICE) ||
        (!dst_host && p->dstMemoryType != CU_MEMORYTYPE_DEVICE) || (src_host && dst_host)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    const void* src = src_host ? p->srcHost : (const void*)(uintptr_t)p->srcDevice;
    void* dst = dst_host ? p->dstHost : (void*)(uintptr_t)p->dstDevice;
    auto check = [=]() -> CUresult {
        if (src_host ? !pinned(src, n) : check_range("graph copy source", (CUdeviceptr)(uintptr_t)src, n) != 0) {
            if (src_host) fprintf(stderr, "fakecuda: graph copy from pageable host memory\n");
            return CUDA_ERROR_INVALID_VALUE;
        }
        if (dst_host ? !pinned(dst, n) : check_range("graph copy destination", (CUdeviceptr)(uintptr_t)dst, n) != 0) {
            if (dst_host) fprintf(stderr, "fakecuda: graph copy to pageable host memory\n");
            return CUDA_ERROR_INVALID_VALUE;
        }
        return CUDA_SUCCESS;
    };
    if (CUresult r = check()) return r;
    return add_node(out, g, deps, ndeps, [=]() -> CUresult {
        if (CUresult r = check()) return r;
        memmove(dst, src, n);
        return CUDA_SUCCESS;
    });
}

API CUresult cuGraphAddMemsetNode(CUgraphNode* out, CUgraph g, const CUgraphNode* deps, size_t ndeps,
                                  const CUDA_MEMSET_NODE_PARAMS* p, CUcontext ctx) {
    if (!live(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
    if (p->elementSize != 4 || p->height != 1 || p->width == 0) return CUDA_ERROR_INVALID_VALUE;
    const CUdeviceptr dst = p->dst;
    const size_t n = p->width;
    const unsigned v = p->value;
    if (CUresult r = check_range("graph memset", dst, 4 * n)) return r;
    return add_node(out, g, deps, ndeps, [=]() -> CUresult {
        if (CUresult r = check_range("graph memset", dst, 4 * n)) return r;
        unsigned* q = (unsigned*)(uintptr_t)dst;
        for (size_t i = 0; i < n; i++) q[i] = v;
        return CUDA_SUCCESS;
    });
}

// An executable graph is a copy of the graph's nodes at instantiation.
API CUresult cuGraphInstantiateWithFlags(CUgraphExec* e, CUgraph g, unsigned long long flags) {
    if (CUresult r = in_ctx()) return r;
    if (!g || flags != 0) return CUDA_ERROR_INVALID_VALUE;
    *e = (CUgraphExec) new FakeExec{std::make_shared<std::vector<std::function<CUresult()>>>(((FakeGraph*)g)->nodes)};
    return CUDA_SUCCESS;
}

// A launch is queued: its copies read and write host memory when it runs.
API CUresult cuGraphLaunch(CUgraphExec e, CUstream) {
    if (CUresult r = in_ctx()) return r;
    if (!e) return CUDA_ERROR_INVALID_VALUE;
    if (CUresult r = injected_fault()) return r;
    auto nodes = ((FakeExec*)e)->nodes;
    return enqueue([nodes] {
        for (auto& node : *nodes)
            if (CUresult r = node()) return r;
        return CUDA_SUCCESS;
    });
}

// Destroying an executable graph with launches queued is allowed: they
// keep its nodes.
API CUresult cuGraphExecDestroy(CUgraphExec e) {
    delete (FakeExec*)e;
    return CUDA_SUCCESS;
}

}  // extern "C"
