// RoPE and causal attention of modicl's CUDA engine, over the CPU engine's layouts:
// qkv [N = B*T, 3d] (columns [0, d) q, [d, 2d) k, [2d, 3d) v; head j holds columns
// j*dh .. (j+1)*dh of each), probabilities [B, h, T, T] (zero above the diagonal), z [N, d].
// One warp per (sequence, head, position); sums over keys or queries run in a fixed order.

// Negative infinity (NVRTC has no math.h for INFINITY).
#define NEG_INF __int_as_float(0xff800000)

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// The (sequence b, head, position t) of warp w, warps numbered ((b * heads + head) * T + t), and
// the row of its sequence's first token.
struct Place {
    int t, head, b, dh;
    long long bh, row0;
};

__device__ __forceinline__ Place place_of(long long w, int T, int d, int heads) {
    Place p;
    p.t = (int)(w % T);
    p.bh = w / T;
    p.head = (int)(p.bh % heads);
    p.b = (int)(p.bh / heads);
    p.dh = d / heads;
    p.row0 = (long long)p.b * T;
    return p;
}

// Rotates the (2i, 2i+1) pairs of every q and k head by position t = row % seq, with the
// tables cos/sin [seq, dh/2] computed on the host as the CPU engine computes them;
// inverse = 1 rotates back (the backward pass). One thread per (row, pair).
extern "C" __global__ void rope(float* qkv, const float* cs, const float* sn, int n, int seq,
                                int d, int dh, int inverse) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * d) return;
    long long r = i / d;
    int p = (int)(i % d), half = dh / 2;
    int part = p / half, k = p % half;
    int t = (int)(r % seq);
    float* x = qkv + r * 3 * d + part * dh + 2 * k;
    float c = cs[t * half + k], s = sn[t * half + k];
    if (inverse) s = -s;
    float a = x[0], b = x[1];
    x[0] = a * c - b * s;
    x[1] = b * c + a * s;
}

// Scores, causal softmax and z for one (b, head, query t) per warp.
extern "C" __global__ void attn_fwd(const float* qkv, float* att, float* z, int B, int T, int d,
                                    int heads) {
    int lane = threadIdx.x % 32;
    long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= (long long)B * heads * T) return;
    const Place at = place_of(w, T, d, heads);
    const int t = at.t, head = at.head, dh = at.dh;
    const long long row0 = at.row0;
    float scale = 1.0f / sqrtf((float)dh);
    const float* q = qkv + (row0 + t) * 3 * d + head * dh;
    float* p = att + w * T;
    float m = NEG_INF;
    for (int k = 0; k <= t; k++) {
        const float* key = qkv + (row0 + k) * 3 * d + d + head * dh;
        float s = 0.0f;
        for (int c = lane; c < dh; c += 32) s += q[c] * key[c];
        s = warp_sum(s) * scale;
        m = fmaxf(m, s);
        if (lane == (k & 31)) p[k] = s;
    }
    for (int k = t + 1 + lane; k < T; k += 32) p[k] = 0.0f;
    __syncwarp();
    float sum = 0.0f;
    for (int k = lane; k <= t; k += 32) {
        float e = expf(p[k] - m);
        p[k] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    __syncwarp();
    for (int k = lane; k <= t; k += 32) p[k] /= sum;
    __syncwarp();
    float* zr = z + (row0 + t) * d + head * dh;
    for (int c = lane; c < dh; c += 32) {
        float acc = 0.0f;
        for (int k = 0; k <= t; k++) acc += p[k] * qkv[(row0 + k) * 3 * d + 2 * d + head * dh + c];
        zr[c] = acc;
    }
}

// Backward, query side, one (b, head, query t) per warp: dp_k = dz_t . v_k, then
// ds_k = p_k (dp_k - sum_j p_j dp_j) into ds [B, h, T, T], and dq_t = scale * sum_k ds_k key_k
// into the q columns of dqkv.
extern "C" __global__ void attn_bwd_q(const float* qkv, const float* att, const float* dz, float* ds,
                                      float* dqkv, int B, int T, int d, int heads) {
    int lane = threadIdx.x % 32;
    long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= (long long)B * heads * T) return;
    const Place at = place_of(w, T, d, heads);
    const int t = at.t, head = at.head, dh = at.dh;
    const long long row0 = at.row0;
    float scale = 1.0f / sqrtf((float)dh);
    const float* g = dz + (row0 + t) * d + head * dh;
    const float* p = att + w * T;
    float* s = ds + w * T;
    float pd = 0.0f;
    for (int k = 0; k <= t; k++) {
        const float* v = qkv + (row0 + k) * 3 * d + 2 * d + head * dh;
        float dp = 0.0f;
        for (int c = lane; c < dh; c += 32) dp += g[c] * v[c];
        dp = warp_sum(dp);
        pd += p[k] * dp;
        if (lane == (k & 31)) s[k] = dp;
    }
    for (int k = t + 1 + lane; k < T; k += 32) s[k] = 0.0f;
    __syncwarp();
    for (int k = lane; k <= t; k += 32) s[k] = p[k] * (s[k] - pd);
    __syncwarp();
    float* dq = dqkv + (row0 + t) * 3 * d + head * dh;
    for (int c = lane; c < dh; c += 32) {
        float acc = 0.0f;
        for (int k = 0; k <= t; k++) acc += s[k] * qkv[(row0 + k) * 3 * d + d + head * dh + c];
        dq[c] = acc * scale;
    }
}

// Backward, key side, one (b, head, key k) per warp: dk_k = scale * sum_{t >= k} ds[t, k] q_t and
// dv_k = sum_{t >= k} p[t, k] dz_t, into the k and v columns of dqkv. Runs after attn_bwd_q.
extern "C" __global__ void attn_bwd_kv(const float* qkv, const float* att, const float* dz,
                                       const float* ds, float* dqkv, int B, int T, int d,
                                       int heads) {
    int lane = threadIdx.x % 32;
    long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (w >= (long long)B * heads * T) return;
    const Place at = place_of(w, T, d, heads);
    const int k = at.t, head = at.head, dh = at.dh;
    const long long row0 = at.row0, bh = at.bh;
    float scale = 1.0f / sqrtf((float)dh);
    const float* p = att + bh * T * T;
    const float* s = ds + bh * T * T;
    float* dk = dqkv + (row0 + k) * 3 * d + d + head * dh;
    float* dv = dqkv + (row0 + k) * 3 * d + 2 * d + head * dh;
    for (int c = lane; c < dh; c += 32) {
        float ak = 0.0f, av = 0.0f;
        for (int t = k; t < T; t++) {
            ak += s[(long long)t * T + k] * qkv[(row0 + t) * 3 * d + head * dh + c];
            av += p[(long long)t * T + k] * dz[(row0 + t) * d + head * dh + c];
        }
        dk[c] = ak * scale;
        dv[c] = av;
    }
}

// The batched-GEMM attention (GpuModel's Attention::Gemm): cuBLAS writes the scaled scores of
// every (sequence, head) into att [B, h, T, T] (query-major rows); this turns each row t into
// the causal softmax over keys 0..t, with zeros above the diagonal. One warp per row.
extern "C" __global__ void softmax_causal(float* att, int rows, int T) {
    int lane = threadIdx.x % 32;
    long long r = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const int t = (int)(r % T);
    float* p = att + r * T;
    float m = NEG_INF;
    for (int k = lane; k <= t; k += 32) m = fmaxf(m, p[k]);
    m = warp_max(m);
    float sum = 0.0f;
    for (int k = lane; k <= t; k += 32) {
        float e = expf(p[k] - m);
        p[k] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    for (int k = lane; k <= t; k += 32) p[k] /= sum;
    for (int k = t + 1 + lane; k < T; k += 32) p[k] = 0.0f;
}

// Its backward: ds holds dp (d loss / d probabilities, from cuBLAS) and becomes
// ds_k = p_k (dp_k - sum_j p_j dp_j) over keys 0..t, zero above. One warp per row.
extern "C" __global__ void softmax_causal_bwd(float* ds, const float* att, int rows, int T) {
    int lane = threadIdx.x % 32;
    long long r = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    if (r >= rows) return;
    const int t = (int)(r % T);
    const float* p = att + r * T;
    float* g = ds + r * T;
    float pd = 0.0f;
    for (int k = lane; k <= t; k += 32) pd += p[k] * g[k];
    pd = warp_sum(pd);
    for (int k = lane; k <= t; k += 32) g[k] = p[k] * (g[k] - pd);
    for (int k = t + 1 + lane; k < T; k += 32) g[k] = 0.0f;
}
