// LayerNorm forward and backward of modicl's CUDA engine: one warp per row for the row
// statistics and the input gradient; the weight and bias gradients in two passes (fixed row
// chunks, then the chunks in order), so no float atomics and the same bytes every run.

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// y = (x - mean) * rstd * w + b per row of width d; mean and rstd saved per row.
// Launch: blockDim.x = 32 * rows per block; one warp per row.
extern "C" __global__ void ln_fwd(float* y, float* mean, float* rstd, const float* x,
                                  const float* w, const float* b, int n, int d, float eps) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    long long r = (long long)blockIdx.x * (blockDim.x / 32) + warp;
    if (r >= n) return;
    const float* xr = x + r * d;
    float s = 0.0f;
    for (int c = lane; c < d; c += 32) s += xr[c];
    float mu = warp_sum(s) / d;
    float q = 0.0f;
    for (int c = lane; c < d; c += 32) {
        float t = xr[c] - mu;
        q += t * t;
    }
    float rs = 1.0f / sqrtf(warp_sum(q) / d + eps);
    float* yr = y + r * d;
    for (int c = lane; c < d; c += 32) yr[c] = (xr[c] - mu) * rs * w[c] + b[c];
    if (lane == 0) {
        mean[r] = mu;
        rstd[r] = rs;
    }
}

// dx = rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w*xhat)), written (accumulate = 0) or added
// (accumulate = 1). One warp per row.
extern "C" __global__ void ln_bwd_dx(float* dx, const float* dy, const float* x, const float* mean,
                                     const float* rstd, const float* w, int n, int d,
                                     int accumulate) {
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    long long r = (long long)blockIdx.x * (blockDim.x / 32) + warp;
    if (r >= n) return;
    const float* xr = x + r * d;
    const float* gr = dy + r * d;
    float mu = mean[r], rs = rstd[r];
    float a = 0.0f, bsum = 0.0f;
    for (int c = lane; c < d; c += 32) {
        float gw = gr[c] * w[c];
        a += gw;
        bsum += gw * (xr[c] - mu) * rs;
    }
    a = warp_sum(a) / d;
    bsum = warp_sum(bsum) / d;
    float* out = dx + r * d;
    for (int c = lane; c < d; c += 32) {
        float xhat = (xr[c] - mu) * rs;
        float v = rs * (gr[c] * w[c] - a - xhat * bsum);
        out[c] = accumulate ? out[c] + v : v;
    }
}

// Partial weight and bias gradients over row chunk k (rows k*chunk .. (k+1)*chunk):
// part_w[k, c] = sum dy*xhat, part_b[k, c] = sum dy. One thread per (k, c).
extern "C" __global__ void ln_bwd_wb_partial(float* part_w, float* part_b, const float* dy,
                                             const float* x, const float* mean, const float* rstd,
                                             int n, int d, int chunk) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int nchunks = (n + chunk - 1) / chunk;
    if (i >= (long long)nchunks * d) return;
    long long k = i / d, c = i % d;
    long long r0 = k * chunk, r1 = r0 + chunk < n ? r0 + chunk : n;
    float sw = 0.0f, sb = 0.0f;
    for (long long r = r0; r < r1; r++) {
        float g = dy[r * d + c];
        sw += g * (x[r * d + c] - mean[r]) * rstd[r];
        sb += g;
    }
    part_w[i] = sw;
    part_b[i] = sb;
}

// dst[c] = sum over k of part[k, c], k in increasing order (overwrites: the engine writes
// every LayerNorm gradient once per backward pass).
extern "C" __global__ void sum_chunks(float* dst, const float* part, int nchunks, int d) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    float s = 0.0f;
    for (int k = 0; k < nchunks; k++) s += part[(long long)k * d + c];
    dst[c] = s;
}
