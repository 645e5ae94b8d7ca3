// Cross-entropy at the scored rows and the evaluation counts of modicl's CUDA engine, so an
// evaluation copies back counts, not logits.

// Negative infinity (NVRTC has no math.h for INFINITY).
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// One warp per scored row of logits [S, V]: the loss max + log sum exp - z[target], whether the
// argmax (lowest index on ties) is the target, and dlogits = (softmax - onehot) * inv_count
// (skipped when dlogits is null: evaluation).
extern "C" __global__ void cross_entropy(const float* logits, const unsigned int* targets,
                                         float* loss, unsigned char* correct, float* dlogits,
                                         int S, int V, float inv_count) {
    int lane = threadIdx.x % 32;
    long long r = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= S) return;
    const float* z = logits + r * V;
    float best = NEG_INF;
    int arg = 0x7fffffff;
    for (int i = lane; i < V; i += 32) {
        if (z[i] > best) {
            best = z[i];
            arg = i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, o);
        int oa = __shfl_xor_sync(0xffffffffu, arg, o);
        if (ob > best || (ob == best && oa < arg)) {
            best = ob;
            arg = oa;
        }
    }
    float sum = 0.0f;
    for (int i = lane; i < V; i += 32) sum += expf(z[i] - best);
    sum = warp_sum(sum);
    unsigned int tgt = targets[r];
    if (lane == 0) {
        loss[r] = best + logf(sum) - z[tgt];
        correct[r] = (unsigned int)arg == tgt;
    }
    if (dlogits) {
        float* dz = dlogits + r * V;
        for (int i = lane; i < V; i += 32) {
            float sm = expf(z[i] - best) / sum;
            dz[i] = (sm - (i == (int)tgt ? 1.0f : 0.0f)) * inv_count;
        }
    }
}

// out[0] = sum of x[0..n) in one block of 256 threads: each thread sums a fixed stride in f64,
// then a fixed tree. Deterministic.
extern "C" __global__ void sum_f64(double* out, const float* x, int n) {
    __shared__ double part[256];
    int t = threadIdx.x;
    double s = 0.0;
    for (int i = t; i < n; i += 256) s += (double)x[i];
    part[t] = s;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (t < w) part[t] += part[t + w];
        __syncthreads();
    }
    if (t == 0) out[0] = part[0];
}

// Per shot j of `shots` (rows in (sequence, shot) order): counts[j] = correct answers and
// loss_sum[j] = summed loss (f64) over the sequences, in sequence order. One thread per shot.
extern "C" __global__ void shot_counts(const unsigned char* correct, const float* loss,
                                       unsigned int* counts, double* loss_sum, int nseq,
                                       int shots) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= shots) return;
    unsigned int c = 0;
    double l = 0.0;
    for (int s = 0; s < nseq; s++) {
        c += correct[(long long)s * shots + j];
        l += (double)loss[(long long)s * shots + j];
    }
    counts[j] = c;
    loss_sum[j] = l;
}
