// Elementwise and row-copy kernels of modicl's CUDA engine, over the CPU engine's flat
// layouts: activations are token-major [rows, width] buffers, parameters one flat buffer.
// Compiled at run time by NVRTC (crates/cuda/src/lib.rs). No atomics on floats: every sum
// runs in a fixed order, so a run gives the same bytes on the same GPU.

typedef unsigned int u32;
typedef unsigned char u8;

// The thread's flat index.
__device__ __forceinline__ long long flat_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// out[r, c] = wte[tok[r], c] for n rows of width d.
extern "C" __global__ void embed_fwd(float* out, const float* wte, const u32* tok, int n, int d) {
    long long i = flat_index();
    if (i >= (long long)n * d) return;
    long long r = i / d, c = i % d;
    out[i] = wte[(long long)tok[r] * d + c];
}

// dwte[v, c] += sum of g[r, c] over the rows r whose token is v, rows in increasing order.
// One thread per (v, c): deterministic without atomics.
extern "C" __global__ void embed_bwd(float* dwte, const float* g, const u32* tok, int n, int d,
                                     int vocab) {
    long long i = flat_index();
    if (i >= (long long)vocab * d) return;
    u32 v = (u32)(i / d);
    long long c = i % d;
    float s = 0.0f;
    for (int r = 0; r < n; r++) {
        if (tok[r] == v) s += g[(long long)r * d + c];
    }
    dwte[i] += s;
}

// The MLP activation: kind 0 ReLU, 1 GELU (tanh approximation).
#define GELU_C 0.7978846f

extern "C" __global__ void act_fwd(float* post, const float* pre, long long n, int kind) {
    long long i = flat_index();
    if (i >= n) return;
    float x = pre[i];
    if (kind == 0) {
        post[i] = fmaxf(x, 0.0f);
    } else {
        post[i] = 0.5f * x * (1.0f + tanhf(GELU_C * (x + 0.044715f * x * x * x)));
    }
}

// g = g * act'(pre), in place.
extern "C" __global__ void act_bwd(float* g, const float* pre, long long n, int kind) {
    long long i = flat_index();
    if (i >= n) return;
    float x = pre[i];
    if (kind == 0) {
        g[i] = x > 0.0f ? g[i] : 0.0f;
    } else {
        float u = GELU_C * (x + 0.044715f * x * x * x);
        float t = tanhf(u);
        float du = GELU_C * (1.0f + 3.0f * 0.044715f * x * x);
        g[i] *= 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    }
}

// out = a + b.
extern "C" __global__ void add(float* out, const float* a, const float* b, long long n) {
    long long i = flat_index();
    if (i >= n) return;
    out[i] = a[i] + b[i];
}

// out[j, c] = x[rows[j], c] for s rows of width d.
extern "C" __global__ void gather_rows(float* out, const float* x, const u32* rows, int s, int d) {
    long long i = flat_index();
    if (i >= (long long)s * d) return;
    long long j = i / d, c = i % d;
    out[i] = x[(long long)rows[j] * d + c];
}

// g[rows[j], c] += src[j, c]; the rows are distinct, so no two threads write one element.
extern "C" __global__ void scatter_add_rows(float* g, const float* src, const u32* rows, int s,
                                            int d) {
    long long i = flat_index();
    if (i >= (long long)s * d) return;
    long long j = i / d, c = i % d;
    g[(long long)rows[j] * d + c] += src[i];
}

// mid[j, c] = x[rows[j], c] + o[j, c]: the residual add of a last block run at the scored rows.
extern "C" __global__ void add_gathered(float* mid, const float* x, const float* o, const u32* rows,
                                        int s, int d) {
    long long i = flat_index();
    if (i >= (long long)s * d) return;
    long long j = i / d, c = i % d;
    mid[i] = x[(long long)rows[j] * d + c] + o[i];
}

// One AdamW step over the flat buffers, as modicl-engine's AdamW::update: decoupled decay
// p *= 1 - lr*wd where decay[i] is set, then the bias-corrected Adam step.
extern "C" __global__ void adamw(float* p, const float* g, float* m, float* v, const u8* decay,
                                 long long n, float lr, float wd, float beta1, float beta2,
                                 float eps, float step_size, float bc2_sqrt) {
    long long i = flat_index();
    if (i >= n) return;
    float pi = p[i];
    if (decay[i]) pi *= 1.0f - lr * wd;
    float gi = g[i];
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    p[i] = pi - step_size * mi / denom;
}

// out[i] = in[i] rounded to bfloat16 (nearest, ties to even), as raw bits: the operands of a
// bf16 matrix product (train.precision = bf16). NaN stays a quiet NaN. Written without
// cuda_bf16.h, which NVRTC may not find.
extern "C" __global__ void to_bf16(unsigned short* out, const float* in, long long n) {
    long long i = flat_index();
    if (i >= n) return;
    u32 b = __float_as_uint(in[i]);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        out[i] = (unsigned short)((b >> 16) | 0x40u);
        return;
    }
    b += 0x7fffu + ((b >> 16) & 1u);
    out[i] = (unsigned short)(b >> 16);
}
