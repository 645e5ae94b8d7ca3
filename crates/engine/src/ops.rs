//! The kernels: a strided matrix product on `gemm`, LayerNorm, rotary embedding, activations.
//! Row-parallel loops use rayon with fixed chunking, so results do not depend on scheduling.

use rayon::prelude::*;

/// A read-only strided matrix view: element (i, j) is `data[off + i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `rows × cols` starting at `off` with row stride `ld`.
    pub fn rm(data: &'a [f32], off: usize, ld: usize) -> Self {
        View {
            data,
            off,
            rs: ld,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with row stride `ld`.
    pub fn tr(data: &'a [f32], off: usize, ld: usize) -> Self {
        View {
            data,
            off,
            rs: 1,
            cs: ld,
        }
    }
    fn last(&self, rows: usize, cols: usize) -> usize {
        self.off + (rows - 1) * self.rs + (cols - 1) * self.cs
    }
}

/// How many threads a product may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Par {
    Seq,
    All,
}

/// C[m×n] (row stride `ldc`, at `c_off`) = A[m×k]·B[k×n], or += when `acc`.
#[allow(clippy::too_many_arguments)]
///
/// # Safety of the call
/// Bounds are checked here for every operand; `c` may be shared between disjoint callers only
/// through [`gemm_ptr`].
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    a: View,
    b: View,
    acc: bool,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        c_off + (m - 1) * ldc + n <= c.len(),
        "gemm: C out of bounds"
    );
    // SAFETY: bounds checked just above; `c` is borrowed mutably.
    unsafe { gemm_ptr(m, n, k, c.as_mut_ptr().add(c_off), ldc, a, b, acc, par) }
}

/// [`gemm`] into a raw destination, for kernels that write disjoint blocks of one buffer from
/// several threads.
///
/// # Safety
/// `c` must be valid for writes of the m×n block with row stride `ldc`, and no other thread may
/// touch that block during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_ptr(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    a: View,
    b: View,
    acc: bool,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                std::ptr::write_bytes(c.add(i * ldc), 0, n);
            }
        }
        return;
    }
    assert!(a.last(m, k) < a.data.len(), "gemm: A out of bounds");
    assert!(b.last(k, n) < b.data.len(), "gemm: B out of bounds");
    let parallelism = match par {
        Par::Seq => gemm::Parallelism::None,
        Par::All => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        ldc as isize,
        acc,
        a.data.as_ptr().add(a.off),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr().add(b.off),
        b.cs as isize,
        b.rs as isize,
        1.0f32,
        1.0f32,
        false,
        false,
        false,
        parallelism,
    );
}

/// A bias-free linear layer, PyTorch's layout: y[n×out] = x[n×in]·Wᵀ with W [out×in] at
/// `w_off` in `w`; `acc` adds to y instead of overwriting it.
#[allow(clippy::too_many_arguments)]
pub fn linear_fwd(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    w_off: usize,
    n: usize,
    d_in: usize,
    d_out: usize,
    acc: bool,
) {
    gemm(
        n,
        d_out,
        d_in,
        y,
        0,
        d_out,
        View::rm(x, 0, d_in),
        View::tr(w, w_off, d_in),
        acc,
        Par::All,
    );
}

/// Backward of [`linear_fwd`]: dW = dyᵀ·x written into `dw` at `w_off`, and dx = dy·W.
#[allow(clippy::too_many_arguments)]
pub fn linear_bwd(
    dx: &mut [f32],
    dw: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    w_off: usize,
    n: usize,
    d_in: usize,
    d_out: usize,
) {
    gemm(
        d_out,
        d_in,
        n,
        dw,
        w_off,
        d_in,
        View::tr(dy, 0, d_out),
        View::rm(x, 0, d_in),
        false,
        Par::All,
    );
    gemm(
        n,
        d_in,
        d_out,
        dx,
        0,
        d_in,
        View::rm(dy, 0, d_out),
        View::rm(w, w_off, d_in),
        false,
        Par::All,
    );
}

/// A pointer that may be sent to rayon workers writing disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    #[inline]
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows per parallel chunk for row-wise kernels.
fn chunk_rows(n: usize) -> usize {
    (n / (4 * rayon::current_num_threads().max(1))).clamp(1, 256)
}

#[allow(clippy::too_many_arguments)]
/// LayerNorm over rows of width `d`: y = (x − mean)·rstd·w + b; saves mean and rstd per row.
pub fn layernorm_fwd(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    d: usize,
    eps: f32,
) {
    let rows = chunk_rows(x.len() / d);
    y.par_chunks_mut(rows * d)
        .zip(x.par_chunks(rows * d))
        .zip(mean.par_chunks_mut(rows).zip(rstd.par_chunks_mut(rows)))
        .for_each(|((y, x), (mean, rstd))| {
            for (r, (yr, xr)) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate() {
                let mu = xr.iter().sum::<f32>() / d as f32;
                let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
                let rs = 1.0 / (var + eps).sqrt();
                for i in 0..d {
                    yr[i] = (xr[i] - mu) * rs * w[i] + b[i];
                }
                mean[r] = mu;
                rstd[r] = rs;
            }
        });
}

/// LayerNorm backward: dx = residual + (d loss / d x) when a residual gradient is given (the
/// skip connection's share, fused here to save a pass), else dx = d loss / d x; dw and db are
/// overwritten.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_bwd(
    dx: &mut [f32],
    residual: Option<&[f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
    d: usize,
) {
    let rows = chunk_rows(x.len() / d);
    dx.par_chunks_mut(rows * d)
        .zip(dy.par_chunks(rows * d).zip(x.par_chunks(rows * d)))
        .zip(mean.par_chunks(rows).zip(rstd.par_chunks(rows)))
        .enumerate()
        .for_each(|(c, ((dx, (dy, x)), (mean, rstd)))| {
            let res = residual.map(|g| &g[c * rows * d..c * rows * d + dx.len()]);
            for r in 0..mean.len() {
                let (dxr, dyr, xr) = (
                    &mut dx[r * d..(r + 1) * d],
                    &dy[r * d..(r + 1) * d],
                    &x[r * d..(r + 1) * d],
                );
                let (mu, rs) = (mean[r], rstd[r]);
                let (mut s1, mut s2) = (0f32, 0f32);
                for i in 0..d {
                    let g = dyr[i] * w[i];
                    s1 += g;
                    s2 += g * (xr[i] - mu) * rs;
                }
                let (m1, m2) = (s1 / d as f32, s2 / d as f32);
                for i in 0..d {
                    let xhat = (xr[i] - mu) * rs;
                    let v = rs * (dyr[i] * w[i] - m1 - xhat * m2);
                    dxr[i] = match res {
                        Some(g) => g[r * d + i] + v,
                        None => v,
                    };
                }
            }
        });
    // Parameter gradients: a sum over rows, in fixed row order per column block.
    let cols = d.div_ceil(rayon::current_num_threads().max(1)).max(16);
    dw.par_chunks_mut(cols)
        .zip(db.par_chunks_mut(cols))
        .enumerate()
        .for_each(|(c, (dw, db))| {
            let c0 = c * cols;
            dw.fill(0.0);
            db.fill(0.0);
            for r in 0..mean.len() {
                let (mu, rs) = (mean[r], rstd[r]);
                for (j, (gw, gb)) in dw.iter_mut().zip(db.iter_mut()).enumerate() {
                    let g = dy[r * d + c0 + j];
                    *gw += g * (x[r * d + c0 + j] - mu) * rs;
                    *gb += g;
                }
            }
        });
}

/// cos and sin of t·f_i for t < seq, i < d_head/2 (computed in f64 from the f32 frequencies).
pub fn rope_table(freqs: &[f32], seq: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(seq * freqs.len());
    let mut sin = Vec::with_capacity(seq * freqs.len());
    for t in 0..seq {
        for &f in freqs {
            let a = t as f64 * f as f64;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// Rotates interleaved pairs (2i, 2i+1) of every head of q and k in place, in a [N, 3d] qkv
/// buffer whose row n is position n mod seq. `inverse` applies the transpose (for gradients).
#[allow(clippy::too_many_arguments)]
pub fn rope(
    qkv: &mut [f32],
    d: usize,
    heads: usize,
    seq: usize,
    cos: &[f32],
    sin: &[f32],
    inverse: bool,
) {
    let dh = d / heads;
    let half = dh / 2;
    let rows = chunk_rows(qkv.len() / (3 * d));
    qkv.par_chunks_mut(rows * 3 * d)
        .enumerate()
        .for_each(|(c, block)| {
            for (r, row) in block.chunks_exact_mut(3 * d).enumerate() {
                let t = (c * rows + r) % seq;
                let (cs, sn) = (
                    &cos[t * half..(t + 1) * half],
                    &sin[t * half..(t + 1) * half],
                );
                for part in row[..2 * d].chunks_exact_mut(dh) {
                    for i in 0..half {
                        let (a, b) = (part[2 * i], part[2 * i + 1]);
                        let s = if inverse { -sn[i] } else { sn[i] };
                        part[2 * i] = a * cs[i] - b * s;
                        part[2 * i + 1] = b * cs[i] + a * s;
                    }
                }
            }
        });
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)

/// post = act(pre).
pub fn act_fwd(post: &mut [f32], pre: &[f32], gelu: bool) {
    post.par_chunks_mut(1 << 14)
        .zip(pre.par_chunks(1 << 14))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = if gelu {
                    0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh())
                } else {
                    x.max(0.0)
                };
            }
        });
}

/// d_pre = d_post · act'(pre), in place in `g`.
pub fn act_bwd(g: &mut [f32], pre: &[f32], gelu: bool) {
    g.par_chunks_mut(1 << 14)
        .zip(pre.par_chunks(1 << 14))
        .for_each(|(g, x)| {
            for (g, &x) in g.iter_mut().zip(x) {
                *g *= if gelu {
                    let u = GELU_C * (x + 0.044715 * x * x * x);
                    let t = u.tanh();
                    let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
                    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
                } else if x > 0.0 {
                    1.0
                } else {
                    0.0
                };
            }
        });
}

/// out = a + b, elementwise.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    out.par_chunks_mut(1 << 14)
        .zip(a.par_chunks(1 << 14).zip(b.par_chunks(1 << 14)))
        .for_each(|(o, (a, b))| {
            for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                *o = a + b;
            }
        });
}
