//! The kernels: a strided matrix product on `gemm`, bias-free linear layers, LayerNorm, rotary
//! embedding, activations.
//!
//! Every function here is safe to call with any arguments: sizes are checked (a mismatch
//! panics, as slice indexing does) and no two threads ever write the same element. Dimensions
//! are passed in small named structs ([`GemmDims`], [`LinearDims`], [`AttnDims`]) so that two
//! sizes cannot be swapped silently. Row-parallel loops use rayon with fixed chunking, so
//! results do not depend on scheduling or on the number of threads.

use pulp::Simd;
use rayon::prelude::*;

use crate::simd::{simd, SeqKernel};

use crate::params::Activation;

/// A read-only strided matrix view: element (i, j) is `data[off + i·rs + j·cs]`. The extent
/// comes from the product that reads it ([`GemmDims`]), which checks it against `data`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub off: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix starting at `off` with row stride `ld`.
    pub fn rm(data: &'a [f32], off: usize, ld: usize) -> Self {
        View {
            data,
            off,
            rs: ld,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix that starts at `off` with row stride `ld`.
    pub fn tr(data: &'a [f32], off: usize, ld: usize) -> Self {
        View {
            data,
            off,
            rs: 1,
            cs: ld,
        }
    }
    /// Index of element (rows − 1, cols − 1), the largest one read (strides are non-negative),
    /// or `None` on overflow. `rows` and `cols` are at least 1.
    fn last(&self, rows: usize, cols: usize) -> Option<usize> {
        (rows - 1)
            .checked_mul(self.rs)?
            .checked_add((cols - 1).checked_mul(self.cs)?)?
            .checked_add(self.off)
    }
}

/// The destination of a product: row-major rows of stride `ld` starting at `off` in `data`.
pub struct Out<'a> {
    pub data: &'a mut [f32],
    pub off: usize,
    pub ld: usize,
}

impl<'a> Out<'a> {
    /// The whole of `data`, row-major with row stride `ld`.
    pub fn rm(data: &'a mut [f32], ld: usize) -> Self {
        Out { data, off: 0, ld }
    }
}

/// The sizes of a product C[m×n] = A[m×k]·B[k×n].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmDims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Whether a product overwrites its destination or adds to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Overwrite,
    Accumulate,
}

/// How many threads a product may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// The calling thread only (for products inside a parallel loop).
    Seq,
    /// Every thread of the current rayon pool.
    All,
}

impl Par {
    /// The smallest piece a parallel loop may be split into: the whole loop for [`Par::Seq`],
    /// which so runs on the calling thread.
    pub fn min_len(self) -> usize {
        match self {
            Par::Seq => usize::MAX,
            Par::All => 1,
        }
    }

    /// The threads a loop may spread over.
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::All => rayon::current_num_threads().max(1),
        }
    }
}

/// C = A·B (or C += A·B), C an m×n block of `c`.
///
/// Panics when any operand extends past its slice, or when C's rows overlap (`ld < n` with
/// more than one row): overlapping rows would let the parallel product write one element from
/// two threads.
pub fn gemm(dims: GemmDims, c: Out<'_>, a: View<'_>, b: View<'_>, mode: Mode, par: Par) {
    let GemmDims { m, n, k } = dims;
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        m == 1 || c.ld >= n,
        "gemm: C rows overlap (ld {} < n {n})",
        c.ld
    );
    let c_end = (m - 1)
        .checked_mul(c.ld)
        .and_then(|x| x.checked_add(c.off))
        .and_then(|x| x.checked_add(n));
    assert!(
        c_end.is_some_and(|e| e <= c.data.len()),
        "gemm: C out of bounds"
    );
    if k == 0 {
        if mode == Mode::Overwrite {
            for i in 0..m {
                let row = c.off + i * c.ld;
                c.data[row..row + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        a.last(m, k).is_some_and(|i| i < a.data.len()),
        "gemm: A out of bounds"
    );
    assert!(
        b.last(k, n).is_some_and(|i| i < b.data.len()),
        "gemm: B out of bounds"
    );
    let parallelism = match par {
        Par::Seq => gemm::Parallelism::None,
        Par::All => gemm::Parallelism::Rayon(par.threads()),
    };
    // SAFETY:
    // - bounds: C's elements are c.off + i·ld + j for i < m, j < n, all below c.data.len()
    //   (checked above); A's and B's largest read indices are a.last(m, k) and b.last(k, n),
    //   their smallest a.off and b.off, all inside their slices (checked above, strides are
    //   non-negative, no overflow);
    // - disjointness: `c.data` is borrowed mutably for the call, so nothing else reads or
    //   writes it, and A and B (shared borrows) cannot alias it; with ld ≥ n (or one row) the
    //   m×n elements of C are distinct, so the gemm crate's threads, which split C into
    //   disjoint tiles, never write one element twice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr().add(c.off),
            1,
            c.ld as isize,
            mode == Mode::Accumulate,
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
}

/// The sizes of a bias-free linear layer applied to `rows` vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearDims {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
}

impl LinearDims {
    /// The same layer applied to `rows` vectors.
    pub fn with_rows(self, rows: usize) -> LinearDims {
        LinearDims { rows, ..self }
    }
}

/// A weight matrix W [d_out × d_in] (PyTorch's layout) at `off` in the flat parameter buffer.
#[derive(Clone, Copy)]
pub struct Weight<'a> {
    pub params: &'a [f32],
    pub off: usize,
}

/// y [rows × d_out] = x [rows × d_in] · Wᵀ, or y += x · Wᵀ.
pub fn linear_fwd(y: &mut [f32], x: &[f32], w: Weight<'_>, dims: LinearDims, mode: Mode, par: Par) {
    let LinearDims { rows, d_in, d_out } = dims;
    gemm(
        GemmDims {
            m: rows,
            n: d_out,
            k: d_in,
        },
        Out::rm(y, d_out),
        View::rm(x, 0, d_in),
        View::tr(w.params, w.off, d_in),
        mode,
        par,
    );
}

/// Backward of [`linear_fwd`]: dW = dyᵀ·x, written into `grads` at the weight's offset (the
/// gradient buffer shares the parameter layout), and dx = dy·W.
pub fn linear_bwd(
    dx: &mut [f32],
    grads: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: Weight<'_>,
    dims: LinearDims,
    par: Par,
) {
    let LinearDims { rows, d_in, d_out } = dims;
    linear_bwd_weight(grads, dy, x, w.off, dims, par);
    gemm(
        GemmDims {
            m: rows,
            n: d_in,
            k: d_out,
        },
        Out::rm(dx, d_in),
        View::rm(dy, 0, d_out),
        View::rm(w.params, w.off, d_in),
        Mode::Overwrite,
        par,
    );
}

/// dW = dyᵀ·x of a linear layer, written into `grads` at offset `off`.
pub fn linear_bwd_weight(
    grads: &mut [f32],
    dy: &[f32],
    x: &[f32],
    off: usize,
    dims: LinearDims,
    par: Par,
) {
    let LinearDims { rows, d_in, d_out } = dims;
    gemm(
        GemmDims {
            m: d_out,
            n: d_in,
            k: rows,
        },
        Out {
            data: grads,
            off,
            ld: d_in,
        },
        View::tr(dy, 0, d_out),
        View::rm(x, 0, d_in),
        Mode::Overwrite,
        par,
    );
}

/// y = x·Wᵀ row by row, each output a dot product of one input row with one weight row: the
/// result of a row does not depend on how many rows are computed together (the general
/// product picks other kernels, which round differently, for small shapes). For the output
/// head, which runs on the scored rows only, so on as few as k rows during evaluation.
pub fn rowwise_linear_fwd(y: &mut [f32], x: &[f32], w: Weight<'_>, dims: LinearDims, par: Par) {
    let LinearDims { rows, d_in, d_out } = dims;
    let wm = &w.params[w.off..w.off + d_out * d_in];
    let block = chunk_rows(rows, par);
    y[..rows * d_out]
        .par_chunks_mut(block * d_out)
        .zip(x[..rows * d_in].par_chunks(block * d_in))
        .with_min_len(par.min_len())
        .for_each(|(y, x)| simd(RowsTimesWt { y, x, w: wm, d_in }));
}

/// [`rowwise_linear_fwd`] of a block of rows: `w` is W [d_out, d_in].
struct RowsTimesWt<'a> {
    y: &'a mut [f32],
    x: &'a [f32],
    w: &'a [f32],
    d_in: usize,
}

impl SeqKernel for RowsTimesWt<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let RowsTimesWt { y, x, w, d_in } = self;
        let d_out = w.len() / d_in;
        for (yr, xr) in y.chunks_exact_mut(d_out).zip(x.chunks_exact(d_in)) {
            for (y, wr) in yr.iter_mut().zip(w.chunks_exact(d_in)) {
                *y = crate::simd::dot(simd, xr, wr);
            }
        }
    }
}

/// dx = dy·W row by row (the input gradient of [`rowwise_linear_fwd`]), each row a sum of
/// weight rows in a fixed order.
pub fn rowwise_linear_bwd_input(
    dx: &mut [f32],
    dy: &[f32],
    w: Weight<'_>,
    dims: LinearDims,
    par: Par,
) {
    let LinearDims { rows, d_in, d_out } = dims;
    let wm = &w.params[w.off..w.off + d_out * d_in];
    let block = chunk_rows(rows, par);
    dx[..rows * d_in]
        .par_chunks_mut(block * d_in)
        .zip(dy[..rows * d_out].par_chunks(block * d_out))
        .with_min_len(par.min_len())
        .for_each(|(dx, dy)| {
            simd(RowsTimesW {
                dx,
                dy,
                w: wm,
                d_in,
            })
        });
}

/// [`rowwise_linear_bwd_input`] of a block of rows.
struct RowsTimesW<'a> {
    dx: &'a mut [f32],
    dy: &'a [f32],
    w: &'a [f32],
    d_in: usize,
}

impl SeqKernel for RowsTimesW<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let RowsTimesW { dx, dy, w, d_in } = self;
        let d_out = w.len() / d_in;
        for (xr, yr) in dx.chunks_exact_mut(d_in).zip(dy.chunks_exact(d_out)) {
            xr.fill(0.0);
            for (&g, wr) in yr.iter().zip(w.chunks_exact(d_in)) {
                let ((xv, xt), (wv, wt)) = (S::as_mut_simd_f32s(xr), S::as_simd_f32s(wr));
                let gv = simd.splat_f32s(g);
                for (x, &w) in xv.iter_mut().zip(wv) {
                    *x = simd.mul_add_e_f32s(gv, w, *x);
                }
                for (x, &w) in xt.iter_mut().zip(wt) {
                    *x += g * w;
                }
            }
        }
    }
}

/// Rows per parallel chunk for row-wise kernels.
fn chunk_rows(n: usize, par: Par) -> usize {
    (n / (4 * par.threads())).clamp(1, 256)
}

/// A LayerNorm's parameters: weight and bias `[d]`, and epsilon.
#[derive(Clone, Copy)]
pub struct LnParams<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub eps: f32,
}

/// What a LayerNorm's forward pass keeps for its backward pass: its input [rows, d] and the
/// mean and 1/std of each row `[rows]`.
#[derive(Clone, Copy)]
pub struct LnSaved<'a> {
    pub x: &'a [f32],
    pub mean: &'a [f32],
    pub rstd: &'a [f32],
}

/// LayerNorm over rows of width d = `ln.w.len()`: y = (x − mean)·rstd·w + b, with
/// rstd = 1/√(var + eps) (biased variance); saves mean and rstd of each row.
pub fn layernorm_fwd(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    ln: LnParams<'_>,
    par: Par,
) {
    let d = ln.w.len();
    assert!(
        ln.b.len() == d && d > 0 && x.len() == y.len() && x.len() == d * mean.len(),
        "layernorm_fwd: sizes"
    );
    assert_eq!(mean.len(), rstd.len(), "layernorm_fwd: sizes");
    let rows = chunk_rows(mean.len(), par);
    y.par_chunks_mut(rows * d)
        .zip(x.par_chunks(rows * d))
        .zip(mean.par_chunks_mut(rows).zip(rstd.par_chunks_mut(rows)))
        .with_min_len(par.min_len())
        .for_each(|((y, x), (mean, rstd))| {
            simd(LnFwdRows {
                y,
                x,
                mean,
                rstd,
                ln,
            })
        });
}

/// [`layernorm_fwd`] of a block of rows.
struct LnFwdRows<'a> {
    y: &'a mut [f32],
    x: &'a [f32],
    mean: &'a mut [f32],
    rstd: &'a mut [f32],
    ln: LnParams<'a>,
}

impl SeqKernel for LnFwdRows<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let LnFwdRows {
            y,
            x,
            mean,
            rstd,
            ln,
        } = self;
        let d = ln.w.len();
        for (r, (yr, xr)) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)).enumerate() {
            let mu = crate::simd::sum(simd, xr) / d as f32;
            for (y, &x) in yr.iter_mut().zip(xr) {
                *y = x - mu;
            }
            let var = crate::simd::dot(simd, yr, yr) / d as f32;
            let rs = 1.0 / (var + ln.eps).sqrt();
            for ((y, &w), &b) in yr.iter_mut().zip(ln.w).zip(ln.b) {
                *y = *y * rs * w + b;
            }
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

/// LayerNorm backward. dx = residual + ∂loss/∂x when a residual gradient is given (the skip
/// connection's share, fused here to save a pass), else dx = ∂loss/∂x. The weight and bias
/// gradients `[d]` are overwritten in `dw` and `db`.
pub fn layernorm_bwd(
    dx: &mut [f32],
    residual: Option<&[f32]>,
    (dw, db): (&mut [f32], &mut [f32]),
    dy: &[f32],
    w: &[f32],
    saved: LnSaved<'_>,
    par: Par,
) {
    let LnSaved { x, mean, rstd } = saved;
    let d = w.len();
    assert!(
        d > 0
            && dw.len() == d
            && db.len() == d
            && x.len() == d * mean.len()
            && rstd.len() == mean.len()
            && dx.len() == x.len()
            && dy.len() == x.len()
            && residual.is_none_or(|g| g.len() == x.len()),
        "layernorm_bwd: sizes"
    );
    let rows = chunk_rows(mean.len(), par);
    dx.par_chunks_mut(rows * d)
        .zip(dy.par_chunks(rows * d).zip(x.par_chunks(rows * d)))
        .zip(mean.par_chunks(rows).zip(rstd.par_chunks(rows)))
        .enumerate()
        .with_min_len(par.min_len())
        .for_each(|(c, ((dx, (dy, x)), (mean, rstd)))| {
            let res = residual.map(|g| &g[c * rows * d..c * rows * d + dx.len()]);
            simd(LnBwdRows {
                dx,
                res,
                dy,
                w,
                saved: LnSaved { x, mean, rstd },
            })
        });
    // Parameter gradients: a sum over rows, in fixed row order per column block.
    let cols = d.div_ceil(par.threads()).max(16);
    dw.par_chunks_mut(cols)
        .zip(db.par_chunks_mut(cols))
        .enumerate()
        .with_min_len(par.min_len())
        .for_each(|(c, (dw, db))| {
            let c0 = c * cols;
            dw.fill(0.0);
            db.fill(0.0);
            for ((dyr, xr), (&mu, &rs)) in dy
                .chunks_exact(d)
                .zip(x.chunks_exact(d))
                .zip(mean.iter().zip(rstd))
            {
                let (dyr, xr) = (&dyr[c0..c0 + dw.len()], &xr[c0..c0 + dw.len()]);
                for (((gw, gb), &g), &x) in dw.iter_mut().zip(db.iter_mut()).zip(dyr).zip(xr) {
                    *gw += g * (x - mu) * rs;
                    *gb += g;
                }
            }
        });
}

/// The input gradient of [`layernorm_bwd`] for a block of rows.
struct LnBwdRows<'a> {
    dx: &'a mut [f32],
    res: Option<&'a [f32]>,
    dy: &'a [f32],
    w: &'a [f32],
    saved: LnSaved<'a>,
}

impl SeqKernel for LnBwdRows<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let LnBwdRows {
            dx,
            res,
            dy,
            w,
            saved: LnSaved { x, mean, rstd },
        } = self;
        let d = w.len();
        for r in 0..mean.len() {
            let (dxr, dyr, xr) = (
                &mut dx[r * d..(r + 1) * d],
                &dy[r * d..(r + 1) * d],
                &x[r * d..(r + 1) * d],
            );
            let (mu, rs) = (mean[r], rstd[r]);
            // g = dy ⊙ w, s1 = Σ g, s2 = Σ g·x̂ (x̂ = (x − mean)·rstd), one partial sum per lane.
            let ((dyv, dyt), (wv, wt), (xv, xt)) = (
                S::as_simd_f32s(dyr),
                S::as_simd_f32s(w),
                S::as_simd_f32s(xr),
            );
            let (muv, rsv) = (simd.splat_f32s(mu), simd.splat_f32s(rs));
            let (mut a1, mut a2) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
            for ((&dy, &w), &x) in dyv.iter().zip(wv).zip(xv) {
                let g = simd.mul_f32s(dy, w);
                let xhat = simd.mul_f32s(simd.sub_f32s(x, muv), rsv);
                a1 = simd.add_f32s(a1, g);
                a2 = simd.mul_add_e_f32s(g, xhat, a2);
            }
            let (mut s1, mut s2) = (simd.reduce_sum_f32s(a1), simd.reduce_sum_f32s(a2));
            for ((&dy, &w), &x) in dyt.iter().zip(wt).zip(xt) {
                s1 += dy * w;
                s2 += dy * w * (x - mu) * rs;
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
    }
}

/// The sizes of causal self-attention over a batch: `batch` sequences of `seq` positions,
/// width `d_model` split into `heads` heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    pub batch: usize,
    pub seq: usize,
    pub d_model: usize,
    pub heads: usize,
}

impl AttnDims {
    pub fn d_head(&self) -> usize {
        self.d_model / self.heads
    }
    /// Token rows N = batch · seq.
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }
}

/// cos and sin of t·f_i for positions t < seq and frequencies f_i, i < d_head/2, each
/// [seq, d_head/2], computed in f64 from the f32 frequencies.
#[derive(Clone, Debug)]
pub struct RopeTable {
    pub seq: usize,
    pub half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    pub fn new(freqs: &[f32], seq: usize) -> RopeTable {
        let mut cos = Vec::with_capacity(seq * freqs.len());
        let mut sin = Vec::with_capacity(seq * freqs.len());
        for t in 0..seq {
            for &f in freqs {
                let a = t as f64 * f as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        RopeTable {
            seq,
            half: freqs.len(),
            cos,
            sin,
        }
    }
}

/// Which way [`rope`] turns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// By +t·f_i: the forward pass.
    Forward,
    /// By −t·f_i, the transpose: gradients.
    Inverse,
}

/// Rotates interleaved pairs (2i, 2i+1) of every head of q and k in place, in a `[N, 3d]` qkv
/// buffer (q, k, v column blocks; row n is position n mod seq); v is untouched.
pub fn rope(qkv: &mut [f32], dims: AttnDims, table: &RopeTable, rot: Rotation, par: Par) {
    let (d, dh) = (dims.d_model, dims.d_head());
    let half = dh / 2;
    assert!(
        qkv.len() == dims.rows() * 3 * d && table.seq == dims.seq && table.half == half,
        "rope: sizes"
    );
    let rows = chunk_rows(dims.rows(), par);
    qkv.par_chunks_mut(rows * 3 * d)
        .enumerate()
        .with_min_len(par.min_len())
        .for_each(|(c, block)| {
            for (r, row) in block.chunks_exact_mut(3 * d).enumerate() {
                let t = (c * rows + r) % dims.seq;
                let (cs, sn) = (
                    &table.cos[t * half..(t + 1) * half],
                    &table.sin[t * half..(t + 1) * half],
                );
                for part in row[..2 * d].chunks_exact_mut(dh) {
                    for i in 0..half {
                        let (a, b) = (part[2 * i], part[2 * i + 1]);
                        let s = match rot {
                            Rotation::Forward => sn[i],
                            Rotation::Inverse => -sn[i],
                        };
                        part[2 * i] = a * cs[i] - b * s;
                        part[2 * i + 1] = b * cs[i] + a * s;
                    }
                }
            }
        });
}

const GELU_C: f32 = 0.797_884_6; // sqrt(2/pi)

/// post = act(pre), elementwise.
pub fn act_fwd(post: &mut [f32], pre: &[f32], act: Activation, par: Par) {
    assert_eq!(post.len(), pre.len(), "act_fwd: sizes");
    post.par_chunks_mut(1 << 14)
        .zip(pre.par_chunks(1 << 14))
        .with_min_len(par.min_len())
        .for_each(|(y, x)| match act {
            // One loop per activation, so that ReLU's compiles to vector instructions.
            Activation::GeluTanh => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = 0.5 * x * (1.0 + (GELU_C * (x + 0.044715 * x * x * x)).tanh());
                }
            }
            Activation::Relu => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = x.max(0.0);
                }
            }
        });
}

/// d_pre = d_post · act'(pre), in place in `g`.
pub fn act_bwd(g: &mut [f32], pre: &[f32], act: Activation, par: Par) {
    assert_eq!(g.len(), pre.len(), "act_bwd: sizes");
    g.par_chunks_mut(1 << 14)
        .zip(pre.par_chunks(1 << 14))
        .with_min_len(par.min_len())
        .for_each(|(g, x)| match act {
            Activation::GeluTanh => {
                for (g, &x) in g.iter_mut().zip(x) {
                    let u = GELU_C * (x + 0.044715 * x * x * x);
                    let t = u.tanh();
                    let du = GELU_C * (1.0 + 3.0 * 0.044715 * x * x);
                    *g *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
                }
            }
            Activation::Relu => {
                for (g, &x) in g.iter_mut().zip(x) {
                    *g = if x > 0.0 { *g } else { 0.0 };
                }
            }
        });
}

/// out = a + b, elementwise.
pub fn add(out: &mut [f32], a: &[f32], b: &[f32], par: Par) {
    assert!(out.len() == a.len() && a.len() == b.len(), "add: sizes");
    out.par_chunks_mut(1 << 14)
        .zip(a.par_chunks(1 << 14).zip(b.par_chunks(1 << 14)))
        .with_min_len(par.min_len())
        .for_each(|(o, (a, b))| {
            for ((o, a), b) in o.iter_mut().zip(a).zip(b) {
                *o = a + b;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_product_strided_and_accumulating() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.25).collect();
        let want = naive(&a, &b, m, n, k);
        // C inside a wider buffer: row stride 9, offset 2.
        let mut c = vec![7f32; 2 + 9 * m];
        let dims = GemmDims { m, n, k };
        // C = A·B into rows of stride 9 from element 2.
        let into_c = |c: &mut [f32], b: View, mode, par| {
            let out = Out {
                data: c,
                off: 2,
                ld: 9,
            };
            gemm(dims, out, View::rm(&a, 0, k), b, mode, par);
        };
        for par in [Par::Seq, Par::All] {
            into_c(&mut c, View::rm(&b, 0, n), Mode::Overwrite, par);
            for i in 0..m {
                assert_eq!(c[2 + 9 * i..2 + 9 * i + n], want[i * n..(i + 1) * n]);
                if i + 1 < m {
                    assert_eq!(
                        c[2 + 9 * i + n..2 + 9 * (i + 1)],
                        [7.0, 7.0],
                        "gap untouched"
                    );
                }
            }
        }
        // Bᵀ through a transposed view, accumulated onto the first result.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        into_c(&mut c, View::tr(&bt, 0, k), Mode::Accumulate, Par::All);
        assert_eq!(
            c[2..2 + n],
            want[..n].iter().map(|x| 2.0 * x).collect::<Vec<_>>()
        );
    }

    #[test]
    fn gemm_refuses_bad_operands_with_a_message() {
        let ones = vec![1f32; 8];
        let huge = View {
            data: &ones,
            off: 0,
            rs: usize::MAX / 2,
            cs: 1,
        };
        let rm = |ld| View::rm(&ones, 0, ld);
        // (case, destination length, its row stride, m n k, A, B, expected message)
        let cases = [
            (
                "overlapping rows",
                64,
                2,
                (4, 4, 2),
                rm(2),
                rm(4),
                "C rows overlap",
            ),
            (
                "short destination",
                3,
                2,
                (2, 2, 2),
                rm(2),
                rm(2),
                "C out of bounds",
            ),
            (
                "A past its slice",
                4,
                2,
                (2, 2, 5),
                rm(5),
                rm(2),
                "A out of bounds",
            ),
            (
                "B past its slice (overflow)",
                4,
                2,
                (2, 2, 2),
                rm(2),
                huge,
                "B out of bounds",
            ),
        ];
        for (case, len, ld, (m, n, k), a, b, message) in cases {
            let got = std::panic::catch_unwind(|| {
                let mut c = vec![0f32; len];
                let out = Out {
                    data: &mut c,
                    off: 0,
                    ld,
                };
                gemm(GemmDims { m, n, k }, out, a, b, Mode::Overwrite, Par::All);
            });
            let err = got.expect_err(case);
            let text = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            assert!(text.contains(message), "{case}: {text}");
        }
    }

    #[test]
    fn gemm_with_empty_inner_dimension_zeroes_or_keeps() {
        let mut c = vec![3f32; 4];
        let dims = GemmDims { m: 2, n: 2, k: 0 };
        let e: [f32; 0] = [];
        gemm(
            dims,
            Out::rm(&mut c, 2),
            View::rm(&e, 0, 0),
            View::rm(&e, 0, 2),
            Mode::Accumulate,
            Par::Seq,
        );
        assert_eq!(c, [3.0; 4]);
        gemm(
            dims,
            Out::rm(&mut c, 2),
            View::rm(&e, 0, 0),
            View::rm(&e, 0, 2),
            Mode::Overwrite,
            Par::Seq,
        );
        assert_eq!(c, [0.0; 4]);
    }
}
