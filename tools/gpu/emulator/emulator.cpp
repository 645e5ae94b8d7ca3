// modicl's GPU emulator: a CPU stand-in for the parts of the CUDA driver and of cuBLAS that
// modicl's CUDA backend calls, so that the backend's host code (buffers, launches, products,
// evaluation, checkpoints, resume) and its kernels run, and are tested, on a machine without a
// GPU. Built by tools/gpu/emulator/build.sh into one shared library that is installed under the
// names libcuda.so.1 and libcublas.so.13; NVRTC stays NVIDIA's own (the PTX it compiles is
// checked for the functions a module must define, then set aside).
//
// What runs: the kernels of crates/cuda/kernels/*.cu, compiled here as C++ through shim.h. Every
// CUDA thread of a block is a fiber with its own stack; blocks run one after another. A thread
// switches only at a barrier (__syncthreads, __syncwarp) or a warp shuffle, and the scheduler
// lets a barrier pass only when every live thread it covers has reached it, so barrier and
// shuffle logic is exercised as written. A barrier that some threads never reach (divergence),
// lanes of a warp at different warp operations, or a full-warp shuffle with lanes that have
// exited, fails the launch with a message.
//
// What it checks beyond a GPU: every pointer argument of a launch and every matrix a product
// reads or writes must lie inside one live device allocation; each allocation ends at an
// inaccessible page, so a kernel that reads or writes past the end of a buffer crashes; new
// allocations are filled with NaN, so a read of memory nothing wrote shows. The device's memory
// is MODICL_EMU_MEMORY_MIB (default 16384) MiB; allocations beyond it fail as out of memory, as
// does every allocation after the first MODICL_EMU_ALLOCS_BEFORE_OOM and every launch after the
// first MODICL_EMU_LAUNCHES_BEFORE_OOM, when those are set (to test out-of-memory handling).
//
// What it cannot show: speed, real-GPU races (threads here never run concurrently), the GPU's
// own rounding (expf and friends, NVRTC's fused multiply-adds) and cuBLAS's summation order
// (products here sum in f64), overruns of under 16 bytes, and stack overflows.
// TF32 and bf16 products round their operands as the tensor cores do, then sum exactly.

#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define EXPORT extern "C" __attribute__((visibility("default")))

emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---------------------------------------------------------------------------------------------
// Device memory: one mapping per allocation, its last page inaccessible.

namespace {

std::mutex g_lock;  // one driver call (and launch) at a time
std::map<uintptr_t, size_t> g_allocs;  // start -> bytes
std::map<uintptr_t, std::pair<void*, size_t>> g_maps;  // start -> (mapping, mapped bytes)
size_t g_used = 0;
long g_alloc_count = 0;

size_t env_size(const char* name, size_t fallback) {
    const char* v = getenv(name);
    if (!v || !*v) return fallback;
    return (size_t)strtoull(v, nullptr, 10);
}

size_t memory_limit() { return env_size("MODICL_EMU_MEMORY_MIB", 16384) << 20; }

// The allocation holding [p, p + bytes), or none.
bool inside(uintptr_t p, size_t bytes) {
    auto it = g_allocs.upper_bound(p);
    if (it == g_allocs.begin()) return false;
    --it;
    return p >= it->first && p + bytes <= it->first + it->second;
}

void report(const std::string& msg) { fprintf(stderr, "modicl GPU emulator: %s\n", msg.c_str()); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fibers: a CUDA block's threads, switched at barriers.

extern "C" void emu_switch(void** save_sp, void* to_sp);
#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores its pointer in *save_sp,
// loads to_sp and restores the registers saved there.
asm(R"(
.text
.globl emu_switch
.hidden emu_switch
.type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_switch, .-emu_switch
)");
#else
#error "the GPU emulator's fiber switch is written for x86-64"
#endif

namespace {

enum State : uint8_t { RUN, WARP_WAIT, BLOCK_WAIT, DONE };

constexpr int MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 256 << 10;

struct Fiber {
    void* sp;
    State state;
    unsigned mask;  // of a warp wait
    unsigned ops;   // warp operations (shuffles, __syncwarp) reached so far
    bool shuffle;   // the warp operation it waits at is a shuffle (else __syncwarp)
    emu_dim3 idx;   // threadIdx
};

Fiber g_fibers[MAX_THREADS];
char* g_stacks[MAX_THREADS];
void* g_sched_sp;
int g_cur;
int g_threads;
void (*g_thunk)(void**);
void** g_params;
uint64_t g_xbuf[2][MAX_THREADS];  // the shuffle exchange, double-buffered
uint8_t g_xpar[MAX_THREADS];

void leave(int me);

[[noreturn]] void fiber_entry() {
    g_thunk(g_params);
    g_fibers[g_cur].state = DONE;
    leave(g_cur);
    __builtin_unreachable();
}

void fiber_init(int i) {
    if (!g_stacks[i]) {
        void* m = mmap(nullptr, STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            report("cannot map a thread stack");
            abort();
        }
        g_stacks[i] = (char*)m;
    }
    // The stack as emu_switch leaves it: six saved registers, then the return address (the
    // entry), placed so that the entry starts with the stack aligned as after a call.
    // Each top a different distance from its mapping's end, so that the threads' stacks do
    // not all fall on the same cache sets.
    uintptr_t top = ((uintptr_t)g_stacks[i] + STACK_BYTES - (size_t)(i % 61) * 208) & ~(uintptr_t)15;
    void** s = (void**)top;
    s[-1] = nullptr;
    s[-2] = (void*)&fiber_entry;
    for (int r = 3; r <= 8; r++) s[-r] = nullptr;
    g_fibers[i].sp = &s[-8];
    g_fibers[i].state = RUN;
    g_fibers[i].mask = 0;
    g_fibers[i].ops = 0;
    g_fibers[i].shuffle = false;
    g_fibers[i].idx = {i % blockDim.x, (i / blockDim.x) % blockDim.y,
                       i / (blockDim.x * blockDim.y)};
    g_xpar[i] = 0;
}

void resume(int i) {
    g_cur = i;
    threadIdx = g_fibers[i].idx;
    emu_switch(&g_sched_sp, g_fibers[i].sp);
}

// Leaves the running thread `me` (its state set) for the next runnable lane of its warp, or
// the scheduler when there is none: a warp's lanes pass a barrier in one round of switches.
void leave(int me) {
    const int end = (me | 31) + 1 < g_threads ? (me | 31) + 1 : g_threads;
    for (int j = me + 1; j < end; j++) {
        if (g_fibers[j].state == RUN) {
            g_cur = j;
            threadIdx = g_fibers[j].idx;
            emu_switch(&g_fibers[me].sp, g_fibers[j].sp);
            return;
        }
    }
    emu_switch(&g_fibers[me].sp, g_sched_sp);
}

void wait(State s, unsigned mask, bool shuffle = false) {
    const int me = g_cur;
    Fiber& f = g_fibers[me];
    f.state = s;
    f.mask = mask;
    if (s == WARP_WAIT) {
        f.ops++;
        f.shuffle = shuffle;
    }
    leave(me);
}

// Runs one block to the end; an error (a barrier that cannot pass) is returned as text.
std::string run_block() {
    const int n = g_threads;
    for (int i = 0; i < n; i++) fiber_init(i);
    const int warps = (n + 31) / 32;
    for (;;) {
        for (int w = 0; w < warps; w++) {
            const int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
            for (;;) {
                for (int i = lo; i < hi; i++)
                    if (g_fibers[i].state == RUN) resume(i);
                int live = 0, at_warp = 0, at_block = 0;
                // Lanes past the block's last thread count as exited.
                unsigned done = hi - lo == 32 ? 0u : ~0u << (hi - lo);
                for (int i = lo; i < hi; i++) {
                    State s = g_fibers[i].state;
                    if (s == DONE) {
                        done |= 1u << (i - lo);
                        continue;
                    }
                    live++;
                    at_warp += s == WARP_WAIT;
                    at_block += s == BLOCK_WAIT;
                }
                if (live == 0 || at_block == live) break;
                if (at_warp != live) {
                    return "warp " + std::to_string(w) + ": some lanes wait at __syncthreads, " +
                           "others at a warp barrier or shuffle (divergent barriers)";
                }
                // Every waiting lane must be at the same warp operation: the same count of
                // them so far, and the same kind (lanes at different shuffles would read each
                // other's values).
                int first = -1;
                for (int i = lo; i < hi; i++) {
                    if (g_fibers[i].state != WARP_WAIT) continue;
                    if (first < 0) first = i;
                    const Fiber &a = g_fibers[first], &b = g_fibers[i];
                    if (a.ops != b.ops || a.shuffle != b.shuffle) {
                        char buf[200];
                        snprintf(buf, sizeof buf,
                                 "warp %d: lane %d waits at its warp operation %u (%s), lane %d "
                                 "at its operation %u (%s): the lanes diverged",
                                 w, first - lo, a.ops, a.shuffle ? "a shuffle" : "__syncwarp",
                                 i - lo, b.ops, b.shuffle ? "a shuffle" : "__syncwarp");
                        return buf;
                    }
                }
                for (int i = lo; i < hi; i++) {
                    if (g_fibers[i].state != WARP_WAIT) continue;
                    if (g_fibers[i].mask & done) {
                        char buf[160];
                        snprintf(buf, sizeof buf,
                                 "warp %d: lane %d waits at a shuffle or __syncwarp with mask "
                                 "%08x, but lanes %08x have exited",
                                 w, i - lo, g_fibers[i].mask, g_fibers[i].mask & done);
                        return buf;
                    }
                    g_fibers[i].state = RUN;
                }
            }
        }
        int live = 0;
        for (int i = 0; i < n; i++) live += g_fibers[i].state != DONE;
        if (live == 0) return "";
        for (int i = 0; i < n; i++)
            if (g_fibers[i].state == BLOCK_WAIT) g_fibers[i].state = RUN;
    }
}

}  // namespace

void __syncthreads() { wait(BLOCK_WAIT, 0); }

void __syncwarp(unsigned mask) { wait(WARP_WAIT, mask); }

uint64_t emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask) {
    const int me = g_cur;
    const int p = g_xpar[me];
    g_xpar[me] ^= 1;
    g_xbuf[p][me] = bits;
    wait(WARP_WAIT, mask, true);
    const int src = (me & ~31) | ((me & 31) ^ (lane_mask & 31));
    return g_xbuf[p][src];
}

// ---------------------------------------------------------------------------------------------
// The kernels, and a table of them: name -> a function that unpacks cuLaunchKernel's argument
// array into the kernel's parameters (generated by build.sh from the sources).

#include "kernels.inc"

namespace {

std::string g_arg_error;

template <class T>
void check_arg(const char* kernel, int i, void* slot) {
    if constexpr (std::is_pointer_v<T>) {
        T p = *static_cast<T*>(slot);
        if (p && !inside((uintptr_t)p, 1) && g_arg_error.empty()) {
            g_arg_error = std::string(kernel) + ": argument " + std::to_string(i) +
                          " is not inside any live device allocation";
        }
    }
}

template <auto F, class... A, size_t... I>
void call(void (*)(A...), void** p, std::index_sequence<I...>) {
    F(*static_cast<std::remove_reference_t<A>*>(p[I])...);
}

template <auto F, class... A, size_t... I>
void check(void (*)(A...), const char* name, void** p, std::index_sequence<I...>) {
    (check_arg<A>(name, (int)I, p[I]), ...);
}

template <class... A>
constexpr size_t arity(void (*)(A...)) {
    return sizeof...(A);
}

struct Kernel {
    const char* name;
    void (*run)(void**);
    void (*check)(const char*, void**);
};

template <auto F>
void run_kernel(void** p) {
    call<F>(F, p, std::make_index_sequence<arity(F)>());
}

template <auto F>
void check_kernel(const char* name, void** p) {
    check<F>(F, name, p, std::make_index_sequence<arity(F)>());
}

#define EMU_KERNEL(ns, f) {#f, &run_kernel<&ns::f>, &check_kernel<&ns::f>},
const Kernel g_kernels[] = {
#include "registry.inc"
};
#undef EMU_KERNEL

const Kernel* find_kernel(const char* name) {
    for (const Kernel& k : g_kernels)
        if (strcmp(k.name, name) == 0) return &k;
    return nullptr;
}

struct Module {
    std::set<std::string> entries;  // the .entry functions of its PTX
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The driver API, as far as cudarc's safe layer uses it for modicl.

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum : CUresult {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_LAUNCH_FAILED = 719,
};

namespace {
int g_ctx_token;  // the one context
int g_event_token;
thread_local void* g_current_ctx;

const char* error_name(CUresult r) {
    switch (r) {
        case CUDA_SUCCESS: return "CUDA_SUCCESS";
        case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
        case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
        default: return "CUDA_ERROR_UNKNOWN";
    }
}
}  // namespace

EXPORT CUresult cuInit(unsigned) { return CUDA_SUCCESS; }
EXPORT CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, (size_t)len, "modicl GPU emulator (CPU)");
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceGetAttribute(int* v, int attr, CUdevice) {
    switch (attr) {
        case 75: *v = 9; break;  // compute capability major: kernels compile for compute_90
        case 76: *v = 0; break;  // minor
        case 1: *v = MAX_THREADS; break;  // max threads per block
        case 10: *v = 32; break;  // warp size
        case 16: *v = 1; break;  // multiprocessors
        default: *v = 0; break;  // memory pools and everything else: not supported
    }
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = memory_limit();
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDeviceComputeCapability(int* major, int* minor, CUdevice) {
    *major = 9;
    *minor = 0;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRetain(void** ctx, CUdevice) {
    *ctx = &g_ctx_token;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return CUDA_SUCCESS; }
EXPORT CUresult cuCtxSetCurrent(void* ctx) {
    g_current_ctx = ctx;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = g_current_ctx;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxPushCurrent_v2(void* ctx) { return cuCtxSetCurrent(ctx); }
EXPORT CUresult cuCtxPopCurrent_v2(void** ctx) {
    if (ctx) *ctx = g_current_ctx;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuCtxSynchronize() { return CUDA_SUCCESS; }
// NVRTC opens the driver too and asks for its private tables: there are none here.
EXPORT CUresult cuGetExportTable(const void** table, const void*) {
    *table = nullptr;
    return CUDA_ERROR_NOT_FOUND;
}
EXPORT CUresult cuGetErrorName(CUresult r, const char** s) {
    *s = error_name(r);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuGetErrorString(CUresult r, const char** s) {
    *s = error_name(r);
    return CUDA_SUCCESS;
}

// Streams and events: everything runs when it is called, so a stream only needs to exist and
// an event holds the host time it was recorded at (so event timings give the emulator's own
// time per kernel).
EXPORT CUresult cuStreamCreate(void** s, unsigned) {
    *s = &g_event_token;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuStreamCreateWithPriority(void** s, unsigned, int) { return cuStreamCreate(s, 0); }
EXPORT CUresult cuStreamDestroy_v2(void*) { return CUDA_SUCCESS; }
EXPORT CUresult cuStreamSynchronize(void*) { return CUDA_SUCCESS; }
EXPORT CUresult cuStreamWaitEvent(void*, void*, unsigned) { return CUDA_SUCCESS; }
namespace {
struct Event {
    double ms;     // host time when recorded
    bool timing;   // created without CU_EVENT_DISABLE_TIMING
};
}  // namespace
EXPORT CUresult cuEventCreate(void** e, unsigned flags) {
    *e = new Event{0.0, (flags & 0x2) == 0};
    return CUDA_SUCCESS;
}
EXPORT CUresult cuEventDestroy_v2(void* e) {
    delete (Event*)e;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuEventRecord(void* e, void*) {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    ((Event*)e)->ms = t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuEventRecordWithFlags(void* e, void* s, unsigned) { return cuEventRecord(e, s); }
EXPORT CUresult cuEventSynchronize(void*) { return CUDA_SUCCESS; }
EXPORT CUresult cuEventQuery(void*) { return CUDA_SUCCESS; }
EXPORT CUresult cuEventElapsedTime(float* ms, void* start, void* end) {
    const Event *a = (const Event*)start, *b = (const Event*)end;
    // As the driver: events made with CU_EVENT_DISABLE_TIMING cannot be timed.
    if (!a->timing || !b->timing) return CUDA_ERROR_INVALID_HANDLE;
    *ms = (float)(b->ms - a->ms);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuEventElapsedTime_v2(float* ms, void* start, void* end) {
    return cuEventElapsedTime(ms, start, end);
}

EXPORT CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> g(g_lock);
    size_t limit = memory_limit();
    *total = limit;
    *free_bytes = g_used < limit ? limit - g_used : 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuMemAlloc_v2(CUdeviceptr* out, size_t bytes) {
    std::lock_guard<std::mutex> g(g_lock);
    g_alloc_count++;
    size_t before_oom = env_size("MODICL_EMU_ALLOCS_BEFORE_OOM", 0);
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (g_used + bytes > memory_limit() || (before_oom && (size_t)g_alloc_count > before_oom)) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t body = (bytes + page - 1) / page * page;
    void* m = mmap(nullptr, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                   0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    mprotect((char*)m + body, page, PROT_NONE);
    // The buffer ends (rounded up to 16 bytes) at the inaccessible page.
    const size_t start = body - (bytes + 15) / 16 * 16;
    char* p = (char*)m + start;
    memset(p, 0xff, bytes);  // NaN in every f32 and f64
    g_allocs[(uintptr_t)p] = bytes;
    g_maps[(uintptr_t)p] = {m, body + page};
    g_used += bytes;
    *out = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemAllocAsync(CUdeviceptr* out, size_t bytes, void*) {
    return cuMemAlloc_v2(out, bytes);
}
EXPORT CUresult cuMemFree_v2(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_allocs.find((uintptr_t)p);
    if (it == g_allocs.end()) return CUDA_ERROR_INVALID_VALUE;
    g_used -= it->second;
    auto m = g_maps[(uintptr_t)p];
    munmap(m.first, m.second);
    g_maps.erase((uintptr_t)p);
    g_allocs.erase(it);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemFreeAsync(CUdeviceptr p, void*) { return cuMemFree_v2(p); }

// Host memory ("pinned"): ordinary memory here.
EXPORT CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned) {
    *p = malloc(bytes ? bytes : 1);
    return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
EXPORT CUresult cuMemAllocHost_v2(void** p, size_t bytes) { return cuMemHostAlloc(p, bytes, 0); }
EXPORT CUresult cuMemFreeHost(void* p) {
    free(p);
    return CUDA_SUCCESS;
}

namespace {
CUresult device_range(CUdeviceptr p, size_t bytes, const char* what) {
    if (bytes == 0) return CUDA_SUCCESS;
    if (!inside((uintptr_t)p, bytes)) {
        report(std::string(what) + ": " + std::to_string(bytes) +
               " bytes not inside one live device allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}
}  // namespace

EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> g(g_lock);
    if (CUresult r = device_range(dst, bytes, "copy to the device")) return r;
    memcpy((void*)(uintptr_t)dst, src, bytes);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, void*) {
    return cuMemcpyHtoD_v2(dst, src, bytes);
}
EXPORT CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    std::lock_guard<std::mutex> g(g_lock);
    if (CUresult r = device_range(src, bytes, "copy from the device")) return r;
    memcpy(dst, (const void*)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, void*) {
    return cuMemcpyDtoH_v2(dst, src, bytes);
}
EXPORT CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    std::lock_guard<std::mutex> g(g_lock);
    if (CUresult r = device_range(src, bytes, "device copy (source)")) return r;
    if (CUresult r = device_range(dst, bytes, "device copy (destination)")) return r;
    memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, void*) {
    return cuMemcpyDtoD_v2(dst, src, bytes);
}
EXPORT CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
    std::lock_guard<std::mutex> g(g_lock);
    if (CUresult r = device_range(dst, n, "memset")) return r;
    memset((void*)(uintptr_t)dst, v, n);
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void*) {
    return cuMemsetD8_v2(dst, v, n);
}
EXPORT CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned v, size_t n) {
    std::lock_guard<std::mutex> g(g_lock);
    if (CUresult r = device_range(dst, n * 4, "memset")) return r;
    unsigned* p = (unsigned*)(uintptr_t)dst;
    for (size_t i = 0; i < n; i++) p[i] = v;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned v, size_t n, void*) {
    return cuMemsetD32_v2(dst, v, n);
}

// Modules: the PTX's .entry names; a function is one of them that the emulator also has.
EXPORT CUresult cuModuleLoadData(void** module, const void* image) {
    const char* ptx = (const char*)image;
    if (!ptx || !strstr(ptx, ".version")) return CUDA_ERROR_INVALID_IMAGE;
    Module* m = new Module;
    for (const char* s = strstr(ptx, ".entry "); s; s = strstr(s + 1, ".entry ")) {
        const char* b = s + 7;
        const char* e = b;
        while (*e && *e != '(' && *e != ' ' && *e != '\n') e++;
        m->entries.insert(std::string(b, e));
    }
    *module = m;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuModuleUnload(void* module) {
    delete (Module*)module;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuModuleGetFunction(void** f, void* module, const char* name) {
    Module* m = (Module*)module;
    if (!m || !m->entries.count(name)) return CUDA_ERROR_NOT_FOUND;
    const Kernel* k = find_kernel(name);
    if (!k) {
        report(std::string("no emulated kernel named ") + name + " (rebuild the emulator)");
        return CUDA_ERROR_NOT_FOUND;
    }
    *f = (void*)k;
    return CUDA_SUCCESS;
}
EXPORT CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return CUDA_SUCCESS;
}

EXPORT CUresult cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                               unsigned by, unsigned bz, unsigned shared_bytes, void*,
                               void** params, void** extra) {
    std::lock_guard<std::mutex> g(g_lock);
    const Kernel* k = (const Kernel*)f;
    if (!k || extra) return CUDA_ERROR_INVALID_VALUE;
    const unsigned long long threads = (unsigned long long)bx * by * bz;
    // The driver's limits: at most 1024 threads (x, y <= 1024, z <= 64), grid y, z <= 65535.
    if (gx == 0 || gy == 0 || gz == 0 || threads == 0 || threads > MAX_THREADS || bx > 1024 ||
        by > 1024 || bz > 64 || gy > 65535 || gz > 65535) {
        report(std::string(k->name) + ": invalid launch shape");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (shared_bytes != 0) {
        report(std::string(k->name) + ": dynamic shared memory is not emulated");
        return CUDA_ERROR_INVALID_VALUE;
    }
    // A device that runs out of memory mid-run reports it at some later call: here, every
    // launch after the first MODICL_EMU_LAUNCHES_BEFORE_OOM, when that is set.
    static long launches = 0;
    const size_t before_oom = env_size("MODICL_EMU_LAUNCHES_BEFORE_OOM", 0);
    if (before_oom && (size_t)++launches > before_oom) return CUDA_ERROR_OUT_OF_MEMORY;
    g_arg_error.clear();
    k->check(k->name, params);
    if (!g_arg_error.empty()) {
        report(g_arg_error);
        return CUDA_ERROR_LAUNCH_FAILED;
    }
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, bz};
    g_threads = (int)threads;
    g_thunk = k->run;
    g_params = params;
    for (unsigned z = 0; z < gz; z++)
        for (unsigned y = 0; y < gy; y++)
            for (unsigned x = 0; x < gx; x++) {
                blockIdx = {x, y, z};
                std::string err = run_block();
                if (!err.empty()) {
                    report(std::string(k->name) + ", block (" + std::to_string(x) + ", " +
                           std::to_string(y) + ", " + std::to_string(z) + "): " + err);
                    return CUDA_ERROR_LAUNCH_FAILED;
                }
            }
    return CUDA_SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// cuBLAS: the handle, its stream and math mode, and column-major f32 / bf16 products.

typedef int cublasStatus_t;
enum : cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

namespace {

struct Blas {
    int math_mode;
};

// f32 rounded to a mantissa of `bits` bits (nearest, ties to even), as a tensor core reads it.
float round_mantissa(float x, int bits) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) >= 0x7f800000u) return x;  // inf, NaN
    const int drop = 23 - bits;
    const uint32_t half = 1u << (drop - 1);
    u += half - 1 + ((u >> drop) & 1u);
    u &= ~((1u << drop) - 1);
    memcpy(&x, &u, 4);
    return x;
}

float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// The elements a column-major rows x cols matrix with leading dimension ld spans.
size_t span(int rows, int cols, int ld) {
    return rows == 0 || cols == 0 ? 0 : (size_t)ld * (cols - 1) + rows;
}

template <class GetA, class GetB>
cublasStatus_t gemm(int transa, int transb, int m, int n, int k, float alpha, GetA a, GetB b,
                    const void* A, const void* B, size_t elem,
                    int lda, int ldb, float beta, float* C, int ldc) {
    if (m < 0 || n < 0 || k < 0 || ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    const int ar = transa ? k : m, ac = transa ? m : k;
    const int br = transb ? n : k, bc = transb ? k : n;
    if (lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!inside((uintptr_t)A, span(ar, ac, lda) * elem) ||
        !inside((uintptr_t)B, span(br, bc, ldb) * elem) ||
        !inside((uintptr_t)C, span(m, n, ldc) * 4)) {
        report("cuBLAS product: a matrix reaches outside its device allocation");
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                size_t ai = transa ? (size_t)l + (size_t)i * lda : (size_t)i + (size_t)l * lda;
                size_t bi = transb ? (size_t)j + (size_t)l * ldb : (size_t)l + (size_t)j * ldb;
                s += (double)a(ai) * (double)b(bi);
            }
            float& c = C[(size_t)i + (size_t)j * ldc];
            // beta = 0: C is not read (it may hold anything, NaN included), as in cuBLAS.
            c = beta == 0.0f ? (float)(alpha * s) : (float)(alpha * s + (double)beta * c);
        }
    return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

EXPORT cublasStatus_t cublasCreate_v2(void** handle) {
    *handle = new Blas{0};
    return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasDestroy_v2(void* handle) {
    delete (Blas*)handle;
    return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasSetStream_v2(void*, void*) { return CUBLAS_STATUS_SUCCESS; }
EXPORT cublasStatus_t cublasSetWorkspace_v2(void*, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
EXPORT cublasStatus_t cublasSetMathMode(void* handle, int mode) {
    ((Blas*)handle)->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}
EXPORT cublasStatus_t cublasGetMathMode(void* handle, int* mode) {
    *mode = ((Blas*)handle)->math_mode;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasSgemm_v2(void* handle, int transa, int transb, int m, int n, int k,
                                     const float* alpha, const float* A, int lda, const float* B,
                                     int ldb, const float* beta, float* C, int ldc) {
    std::lock_guard<std::mutex> g(g_lock);
    // CUBLAS_TF32_TENSOR_OP_MATH (3): operands rounded to TF32's 10-bit mantissa.
    const bool tf32 = ((Blas*)handle)->math_mode == 3;
    auto a = [&](size_t i) { return tf32 ? round_mantissa(A[i], 10) : A[i]; };
    auto b = [&](size_t i) { return tf32 ? round_mantissa(B[i], 10) : B[i]; };
    return gemm(transa, transb, m, n, k, *alpha, a, b, A, B, 4, lda, ldb, *beta, C, ldc);
}

EXPORT cublasStatus_t cublasSgemmStridedBatched(void* handle, int transa, int transb, int m,
                                                int n, int k, const float* alpha,
                                                const float* A, int lda, long long sa,
                                                const float* B, int ldb, long long sb,
                                                const float* beta, float* C, int ldc,
                                                long long sc, int batch) {
    std::lock_guard<std::mutex> g(g_lock);
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = ((Blas*)handle)->math_mode == 3;
    for (int i = 0; i < batch; i++) {
        const float* Ai = A + i * sa;
        const float* Bi = B + i * sb;
        auto a = [&](size_t j) { return tf32 ? round_mantissa(Ai[j], 10) : Ai[j]; };
        auto b = [&](size_t j) { return tf32 ? round_mantissa(Bi[j], 10) : Bi[j]; };
        cublasStatus_t r =
            gemm(transa, transb, m, n, k, *alpha, a, b, Ai, Bi, 4, lda, ldb, *beta, C + i * sc, ldc);
        if (r != CUBLAS_STATUS_SUCCESS) return r;
    }
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasGemmEx(void*, int transa, int transb, int m, int n, int k,
                                   const void* alpha, const void* A, int atype, int lda,
                                   const void* B, int btype, int ldb, const void* beta, void* C,
                                   int ctype, int ldc, int compute, int) {
    std::lock_guard<std::mutex> g(g_lock);
    // Only what modicl asks for: bf16 operands (CUDA_R_16BF = 14), f32 output (CUDA_R_32F = 0)
    // and f32 computation (CUBLAS_COMPUTE_32F = 68).
    if (atype != 14 || btype != 14 || ctype != 0 || compute != 68) {
        report("cublasGemmEx: only bf16 x bf16 -> f32 with f32 compute is emulated");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const uint16_t* a16 = (const uint16_t*)A;
    const uint16_t* b16 = (const uint16_t*)B;
    auto a = [&](size_t i) { return from_bf16(a16[i]); };
    auto b = [&](size_t i) { return from_bf16(b16[i]); };
    return gemm(transa, transb, m, n, k, *(const float*)alpha, a, b, A, B, 2, lda, ldb,
                *(const float*)beta, (float*)C, ldc);
}
