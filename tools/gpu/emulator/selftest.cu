// Kernels for the GPU emulator's self-test (selftest.cpp): one that is right, and one for each
// kind of mistake the emulator must catch.

// out[0] = sum of x[0..n) by one block of 64 threads: a warp shuffle tree, then shared memory
// and __syncthreads across the two warps.
extern "C" __global__ void good_sum(float* out, const float* x, int n) {
    __shared__ float part[2];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = part[0] + part[1];
}

// Every thread writes its flat (block, thread) index: the grid and block shape are honoured.
extern "C" __global__ void indices(int* out, int n) {
    int i = (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x * blockDim.y +
            threadIdx.y * blockDim.x + threadIdx.x;
    if (i < n) out[i] = i;
}

// Half a warp at __syncthreads, the other half at __syncwarp: a barrier that cannot pass.
extern "C" __global__ void divergent_barrier(float* out) {
    if (threadIdx.x < 16) {
        __syncthreads();
    } else {
        __syncwarp();
    }
    out[threadIdx.x] = 1.0f;
}

// Half a warp exits, the rest shuffle with a full mask.
extern "C" __global__ void shuffle_after_exit(float* out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// Writes one element past the end of a buffer of n.
extern "C" __global__ void write_past_end(float* out, int n) {
    if (threadIdx.x == 0) out[n] = 1.0f;
}

// Lanes 0-15 shuffle once then __syncwarp; lanes 16-31 shuffle twice: at their second warp
// operation the two halves are at different ones.
extern "C" __global__ void mismatched_warp_ops(float* out) {
    float v = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    if (threadIdx.x < 16) {
        __syncwarp();
    } else {
        v += __shfl_xor_sync(0xffffffffu, v, 2);
    }
    out[threadIdx.x] = v;
}
