// The GPU emulator's self-test: the emulator (emulator.cpp, compiled in here with the kernels of
// selftest.cu instead of modicl's) must run a right kernel right, honour launch shapes, and catch
// each kind of mistake it claims to catch. Built and run by `build.sh --selftest`; prints one
// line per check and exits 1 if any fails.

#include "emulator.cpp"

#include <sys/wait.h>

#include <vector>

static int g_failed = 0;

static void expect(bool ok, const char* what) {
    printf("%s  %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) g_failed = 1;
}

static CUdeviceptr alloc(size_t bytes) {
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, bytes) != CUDA_SUCCESS) {
        printf("FAIL  cuMemAlloc of %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static void* function(const char* name) {
    // A module whose "PTX" lists every kernel of selftest.cu.
    static void* module = nullptr;
    if (!module) {
        const char* ptx =
            ".version 8.0\n.entry good_sum(\n.entry indices(\n.entry divergent_barrier(\n"
            ".entry shuffle_after_exit(\n.entry write_past_end(\n.entry mismatched_warp_ops(\n";
        cuModuleLoadData(&module, ptx);
    }
    void* f = nullptr;
    cuModuleGetFunction(&f, module, name);
    return f;
}

static CUresult launch(const char* name, unsigned gx, unsigned gy, unsigned bx, unsigned by,
                       std::vector<void*> args) {
    return cuLaunchKernel(function(name), gx, gy, 1, bx, by, 1, 0, nullptr, args.data(),
                          nullptr);
}

int main() {
    // A right kernel: a two-level reduction over 1000 values (exact in f32: small integers).
    {
        const int n = 1000;
        std::vector<float> x(n);
        double want = 0;
        for (int i = 0; i < n; i++) want += x[i] = (float)(i % 7);
        CUdeviceptr dx = alloc(n * 4), dout = alloc(4);
        cuMemcpyHtoD_v2(dx, x.data(), n * 4);
        int nn = n;
        CUresult r = launch("good_sum", 1, 1, 64, 1, {&dout, &dx, &nn});
        float got = 0;
        cuMemcpyDtoH_v2(&got, dout, 4);
        expect(r == CUDA_SUCCESS && got == (float)want, "a shuffle + shared-memory sum is exact");
    }
    // Grid and block shapes: every index written once.
    {
        const int n = 3 * 2 * 8 * 4;
        CUdeviceptr d = alloc(n * 4);
        int nn = n;
        CUresult r = launch("indices", 3, 2, 8, 4, {&d, &nn});
        std::vector<int> h(n);
        cuMemcpyDtoH_v2(h.data(), d, n * 4);
        bool all = r == CUDA_SUCCESS;
        for (int i = 0; i < n; i++) all = all && h[i] == i;
        expect(all, "a 3x2 grid of 8x4 blocks covers every index once");
    }
    // New memory is NaN, so that a read of memory nothing wrote shows.
    {
        CUdeviceptr d = alloc(64);
        float h[16];
        cuMemcpyDtoH_v2(h, d, 64);
        bool nan = true;
        for (float v : h) nan = nan && v != v;
        expect(nan, "fresh device memory reads as NaN");
    }
    // Mistakes that fail the launch.
    {
        CUdeviceptr d = alloc(32 * 4);
        expect(launch("divergent_barrier", 1, 1, 32, 1, {&d}) == CUDA_ERROR_LAUNCH_FAILED,
               "divergent barriers fail the launch");
        expect(launch("shuffle_after_exit", 1, 1, 32, 1, {&d}) == CUDA_ERROR_LAUNCH_FAILED,
               "a full-mask shuffle after lanes exited fails the launch");
        expect(launch("mismatched_warp_ops", 1, 1, 32, 1, {&d}) == CUDA_ERROR_LAUNCH_FAILED,
               "lanes at different warp operations fail the launch");
        int zero = 0;
        expect(launch("good_sum", 1, 1, 8, 1, {&d, &d, &zero}) == CUDA_ERROR_LAUNCH_FAILED,
               "a full-mask shuffle in a block smaller than a warp fails the launch");
        expect(launch("indices", 1, 70000, 32, 1, {&d, &d}) == CUDA_ERROR_INVALID_VALUE,
               "a grid of more than 65535 in y is refused");
        std::vector<float> host(32);
        float* hp = host.data();
        int n = 32;
        expect(launch("indices", 1, 1, 32, 1, {&hp, &n}) == CUDA_ERROR_LAUNCH_FAILED,
               "a pointer argument outside every device allocation fails the launch");
        expect(launch("indices", 1, 1, 2048, 1, {&d, &d}) == CUDA_ERROR_INVALID_VALUE,
               "a block of more than 1024 threads is refused");
    }
    // A write past the end of a buffer crashes (in a child process).
    {
        pid_t child = fork();
        if (child == 0) {
            CUdeviceptr d = alloc(100 * 4);
            int n = 100;
            launch("write_past_end", 1, 1, 32, 1, {&d, &n});
            _exit(0);
        }
        int status = 0;
        waitpid(child, &status, 0);
        expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
               "a write one element past the end of a buffer crashes");
    }
    // Memory accounting and out-of-memory.
    {
        size_t free0 = 0, total = 0;
        cuMemGetInfo_v2(&free0, &total);
        CUdeviceptr d = 0;
        expect(cuMemAlloc_v2(&d, total) == CUDA_ERROR_OUT_OF_MEMORY,
               "an allocation beyond the device's free memory is out of memory");
        CUdeviceptr e = alloc(1 << 20);
        size_t free1 = 0;
        cuMemGetInfo_v2(&free1, &total);
        cuMemFree_v2(e);
        size_t free2 = 0;
        cuMemGetInfo_v2(&free2, &total);
        expect(free0 - free1 == (1 << 20) && free2 == free0, "free memory follows allocations");
    }
    // cuBLAS: column-major products by hand, both transposes, and the range checks.
    {
        // A = [1 2; 3 4] and B = [5 6; 7 8] (row-major), stored column-major.
        float a[4] = {1, 3, 2, 4}, b[4] = {5, 7, 6, 8};
        CUdeviceptr da = alloc(16), db = alloc(16), dc = alloc(16);
        cuMemcpyHtoD_v2(da, a, 16);
        cuMemcpyHtoD_v2(db, b, 16);
        void* h = nullptr;
        cublasCreate_v2(&h);
        float one = 1, zero = 0, c[4];
        auto* A = (const float*)(uintptr_t)da;
        auto* B = (const float*)(uintptr_t)db;
        auto* C = (float*)(uintptr_t)dc;
        // C starts as NaN: beta = 0 must not read it.
        cublasStatus_t s = cublasSgemm_v2(h, 0, 0, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2);
        cuMemcpyDtoH_v2(c, dc, 16);
        // A B = [19 22; 43 50]
        expect(s == 0 && c[0] == 19 && c[1] == 43 && c[2] == 22 && c[3] == 50,
               "sgemm N,N: [1 2; 3 4][5 6; 7 8] = [19 22; 43 50], C not read at beta 0");
        s = cublasSgemm_v2(h, 1, 1, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2);
        cuMemcpyDtoH_v2(c, dc, 16);
        // A^T B^T = (B A)^T; B A = [23 34; 31 46], so A^T B^T = [23 31; 34 46]
        expect(s == 0 && c[0] == 23 && c[1] == 34 && c[2] == 31 && c[3] == 46,
               "sgemm T,T: A^T B^T = [23 31; 34 46]");
        s = cublasSgemm_v2(h, 0, 0, 2, 2, 2, &one, A, 2, B, 2, &one, C, 2);
        cuMemcpyDtoH_v2(c, dc, 16);
        expect(s == 0 && c[0] == 23 + 19 && c[3] == 46 + 50, "sgemm beta = 1 accumulates");
        expect(cublasSgemm_v2(h, 0, 0, 2, 2, 2, &one, A, 1, B, 2, &zero, C, 2) ==
                   CUBLAS_STATUS_INVALID_VALUE,
               "sgemm refuses a leading dimension below the row count");
        expect(cublasSgemm_v2(h, 0, 0, 2, 2, 3, &one, A, 2, B, 3, &zero, C, 2) ==
                   CUBLAS_STATUS_EXECUTION_FAILED,
               "sgemm refuses a matrix that reaches past its allocation");
        // Strided batches: [1 2]·[5 6]ᵀ = 17 and [3 4]·[7 8]ᵀ = 53, two elements apart.
        float a2[4] = {1, 2, 3, 4}, b2[4] = {5, 6, 7, 8}, c2[2];
        cuMemcpyHtoD_v2(da, a2, 16);
        cuMemcpyHtoD_v2(db, b2, 16);
        s = cublasSgemmStridedBatched(h, 0, 0, 1, 1, 2, &one, A, 1, 2, B, 2, 2, &zero, C, 1, 1, 2);
        cuMemcpyDtoH_v2(c2, dc, 8);
        expect(s == 0 && c2[0] == 17 && c2[1] == 53, "strided-batched sgemm: 17 and 53");
        expect(cublasSgemmStridedBatched(h, 0, 0, 1, 1, 2, &one, A, 1, 2, B, 2, 2, &zero, C, 1, 1,
                                         3) == CUBLAS_STATUS_EXECUTION_FAILED,
               "strided-batched sgemm refuses a batch that reaches past its allocation");
        // TF32 keeps 10 mantissa bits, nearest even: 1 + 3 * 2^-11 -> 1 + 2^-9.
        float x = 1.0f + 3.0f / 2048.0f, y = 0;
        cuMemcpyHtoD_v2(da, &x, 4);
        cuMemcpyHtoD_v2(db, &one, 4);
        cublasSetMathMode(h, 3);
        cublasSgemm_v2(h, 0, 0, 1, 1, 1, &one, A, 1, B, 1, &zero, C, 1);
        cuMemcpyDtoH_v2(&y, dc, 4);
        expect(y == 1.0f + 1.0f / 512.0f, "TF32 products round operands to 10 mantissa bits");
        cublasSetMathMode(h, 0);
        cublasSgemm_v2(h, 0, 0, 1, 1, 1, &one, A, 1, B, 1, &zero, C, 1);
        cuMemcpyDtoH_v2(&y, dc, 4);
        expect(y == x, "default-math products keep f32 operands");
        // bf16: 1.5 and 2.25 are exact in bf16; 1.5 * 2.25 = 3.375.
        uint16_t a16 = 0x3fc0, b16 = 0x4010;
        cuMemcpyHtoD_v2(da, &a16, 2);
        cuMemcpyHtoD_v2(db, &b16, 2);
        s = cublasGemmEx(h, 0, 0, 1, 1, 1, &one, (void*)(uintptr_t)da, 14, 1,
                         (void*)(uintptr_t)db, 14, 1, &zero, C, 0, 1, 68, -1);
        cuMemcpyDtoH_v2(&y, dc, 4);
        expect(s == 0 && y == 3.375f, "bf16 GemmEx: 1.5 x 2.25 = 3.375");
        cublasDestroy_v2(h);
    }
    // Events: timed ones measure, ones made with CU_EVENT_DISABLE_TIMING cannot be timed.
    {
        void *a = nullptr, *b = nullptr, *c = nullptr;
        cuEventCreate(&a, 0);
        cuEventCreate(&b, 0);
        cuEventCreate(&c, 0x2);
        cuEventRecord(a, nullptr);
        usleep(2000);
        cuEventRecord(b, nullptr);
        cuEventRecord(c, nullptr);
        float ms = 0;
        expect(cuEventElapsedTime(&ms, a, b) == CUDA_SUCCESS && ms >= 1.5f,
               "events time the host clock between them");
        expect(cuEventElapsedTime(&ms, a, c) == CUDA_ERROR_INVALID_HANDLE,
               "an event made with CU_EVENT_DISABLE_TIMING cannot be timed");
        cuEventDestroy_v2(a);
        cuEventDestroy_v2(b);
        cuEventDestroy_v2(c);
    }
    printf(g_failed ? "GPU emulator self-test FAILED\n" : "GPU emulator self-test passed\n");
    return g_failed;
}
