//! Causal self-attention, forward and backward, as direct loops over one (sequence, head) at a
//! time.
//!
//! The model's heads are narrow (d_head 16 at the `cpu` preset, 128 at the paper's size) and its
//! sequences short (47 or 95 positions): each per-head product is a few thousand multiply-adds,
//! too small for a general matrix product to amortise its packing and dispatch. Here a score row
//! q_i·kᵀ (and a row of dz_i·vᵀ) is summed along the rows of a transposed copy of the head's keys
//! (values), a whole number of vectors at a time; z, dq, dk and dv are weighted sums of rows of
//! up to four vectors, held in registers. The loops are compiled for the machine's vector units
//! at run time ([`crate::simd`]). One rayon task handles one sequence and owns its rows of every
//! buffer it writes, so the results do not depend on the number of threads.
//!
//! Layouts: `qkv` [N = B·T, 3d] holds q (after RoPE) in columns [0, d), k in [d, 2d), v in
//! [2d, 3d); head j owns columns j·d_head..(j+1)·d_head of each. Probabilities and their
//! gradients are [B, h, T, T], zero above the diagonal.

use rayon::prelude::*;

use pulp::Simd;

use crate::ops::{AttnDims, Par};
use crate::simd::{simd, SeqKernel};

/// Scratch of the attention kernels per sequence: one head's keys (or values) transposed,
/// [d_head, T'], and one row [T'], with T' = T rounded up to a whole number of vectors.
pub(crate) fn scratch_per_seq(dims: AttnDims) -> usize {
    let tp = padded(dims.seq);
    tp * dims.d_head() + tp
}

/// T rounded up to a multiple of 16 floats (a whole number of AVX-512 or AVX2 registers).
fn padded(t: usize) -> usize {
    t.next_multiple_of(16)
}

/// Products of one row with every earlier row of a head, a sequence's causal row of
/// q·kᵀ or dz·vᵀ. `bt` [d_head, T'] holds the head's columns of the other operand transposed
/// (columns T.. are ignored), `a` [d_head] is row i of the first; writes `out[j] = a·b_j` for
/// j ≤ i. Up to four vectors of the row are summed in registers along the rows of `bt`.
#[inline(always)]
fn causal_row<S: Simd>(simd: S, out: &mut [f32], a: &[f32], bt: &[f32], acc: &mut [f32], i: usize) {
    let tp = acc.len();
    // Whole vectors covering 0..=i; the lanes past i compute values that are thrown away.
    let lanes = S::F32_LANES.max(1);
    let len = (i + 1).next_multiple_of(lanes).min(tp);
    let (accv, _) = S::as_mut_simd_f32s(&mut acc[..len]);
    for (blk, o) in accv.chunks_mut(4).enumerate() {
        let j0 = blk * 4 * lanes;
        accumulate(simd, o, a.len(), |c| a[c], bt, |c| c * tp + j0);
    }
    out[..=i].copy_from_slice(&acc[..=i]);
}

/// out = Σ_m coef(m)·(the `out.len()` vectors from element start(m) of `data`), m < count,
/// for up to four vectors: the sums stay in registers (one instance per width, fully unrolled).
#[inline(always)]
fn accumulate<S: Simd>(
    simd: S,
    out: &mut [S::f32s],
    count: usize,
    coef: impl Fn(usize) -> f32,
    data: &[f32],
    start: impl Fn(usize) -> usize,
) {
    match out.len() {
        1 => accumulate_n::<S, 1>(simd, out, count, coef, data, start),
        2 => accumulate_n::<S, 2>(simd, out, count, coef, data, start),
        3 => accumulate_n::<S, 3>(simd, out, count, coef, data, start),
        4 => accumulate_n::<S, 4>(simd, out, count, coef, data, start),
        n => panic!("accumulate: {n} vectors (at most 4)"),
    }
}

#[inline(always)]
fn accumulate_n<S: Simd, const N: usize>(
    simd: S,
    out: &mut [S::f32s],
    count: usize,
    coef: impl Fn(usize) -> f32,
    data: &[f32],
    start: impl Fn(usize) -> usize,
) {
    let lanes = S::F32_LANES.max(1);
    let mut r = [simd.splat_f32s(0.0); N];
    for m in 0..count {
        let x = simd.splat_f32s(coef(m));
        let s = start(m);
        let (v, _) = S::as_simd_f32s(&data[s..s + N * lanes]);
        for k in 0..N {
            r[k] = simd.mul_add_e_f32s(x, v[k], r[k]);
        }
    }
    out.copy_from_slice(&r);
}

/// Elements `off`, `off + stride`, ... of a slice: a column of a row-major matrix, or its rows
/// (each then starting at one of these elements).
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    off: usize,
    stride: usize,
}

/// out = Σ_m coef[m]·row_m for m < count, row_m the `out.len()` elements from `rows`'s m-th
/// start. Up to four vectors of `out` are summed in registers.
#[inline(always)]
fn combine<S: Simd>(simd: S, out: &mut [f32], coef: Strided<'_>, count: usize, rows: Strided<'_>) {
    let (lanes, width) = (S::F32_LANES.max(1), out.len());
    let c = |m: usize| coef.data[coef.off + m * coef.stride];
    let (outv, outt) = S::as_mut_simd_f32s(out);
    for (blk, o) in outv.chunks_mut(4).enumerate() {
        let c0 = blk * 4 * lanes;
        let start = |m: usize| rows.off + m * rows.stride + c0;
        accumulate(simd, o, count, c, rows.data, start);
    }
    let c0 = width - outt.len();
    for (k, o) in outt.iter_mut().enumerate() {
        *o = (0..count)
            .map(|m| c(m) * rows.data[rows.off + m * rows.stride + c0 + k])
            .sum();
    }
}

/// `bt` [d_head, T'] = the transpose of the head's columns starting at `col` of a sequence's
/// [T, 3d] qkv rows.
#[inline(always)]
fn transpose_head(bt: &mut [f32], qkv: &[f32], col: usize, dims: AttnDims) {
    let (t, d, dh) = (dims.seq, dims.d_model, dims.d_head());
    let tp = padded(t);
    for (j, row) in qkv.chunks_exact(3 * d).take(t).enumerate() {
        for (c, &x) in row[col..col + dh].iter().enumerate() {
            bt[c * tp + j] = x;
        }
    }
}

/// Unscaled scores of one head of one sequence: `s[i, j] = q_i·k_j` for j ≤ i; entries above the
/// diagonal are left as they were. `qkv` holds the sequence's rows [T, 3d]; `q` is the head's
/// first q column; `scratch` has [`scratch_per_seq`] floats.
#[inline(always)]
fn scores<S: Simd>(
    simd: S,
    s: &mut [f32],
    qkv: &[f32],
    q: usize,
    scratch: &mut [f32],
    dims: AttnDims,
) {
    let (t, d, dh) = (dims.seq, dims.d_model, dims.d_head());
    let (kt, acc) = scratch.split_at_mut(padded(t) * dh);
    transpose_head(kt, qkv, d + q, dims);
    for (i, row) in s.chunks_exact_mut(t).enumerate() {
        causal_row(
            simd,
            row,
            &qkv[i * 3 * d + q..i * 3 * d + q + dh],
            kt,
            acc,
            i,
        );
    }
}

/// The scaled, masked scores of every (sequence, head) [B, h, T, T]: q·kᵀ/√d_head on and
/// below the diagonal, −∞ above it (TransformerLens's `hook_attn_scores`), computed with the
/// forward pass's own kernel.
pub(crate) fn attention_scores(qkv: &[f32], dims: AttnDims) -> Vec<f32> {
    let (t, d, h) = (dims.seq, dims.d_model, dims.heads);
    let mut out = vec![0f32; dims.batch * h * t * t];
    out.par_chunks_mut(h * t * t)
        .zip(qkv.par_chunks(t * 3 * d))
        .for_each(|(scores, qkv)| {
            let mut scratch = vec![0f32; scratch_per_seq(dims)];
            let scratch = &mut scratch[..];
            simd(ScoresSeq {
                scores,
                qkv,
                scratch,
                dims,
            })
        });
    out
}

/// [`attention_scores`] of one sequence.
struct ScoresSeq<'a> {
    scores: &'a mut [f32],
    qkv: &'a [f32],
    scratch: &'a mut [f32],
    dims: AttnDims,
}

impl SeqKernel for ScoresSeq<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let ScoresSeq {
            scores: all,
            qkv,
            scratch,
            dims,
        } = self;
        let (t, dh) = (dims.seq, dims.d_head());
        let scale = 1.0 / (dh as f32).sqrt();
        for (head, s) in all.chunks_exact_mut(t * t).enumerate() {
            scores(simd, s, qkv, head * dh, scratch, dims);
            for (i, row) in s.chunks_exact_mut(t).enumerate() {
                row[..=i].iter_mut().for_each(|x| *x *= scale);
                row[i + 1..].fill(f32::NEG_INFINITY);
            }
        }
    }
}

/// Causal attention of every (sequence, head): P = softmax(QKᵀ/√dh) masked, Z = P·V. Writes
/// `att` [B, h, T, T] and `z` [N, d].
pub(crate) fn attention_fwd(
    qkv: &[f32],
    att: &mut [f32],
    z: &mut [f32],
    scratch: &mut [f32],
    dims: AttnDims,
    par: Par,
) {
    let (t, d, h, per) = (dims.seq, dims.d_model, dims.heads, scratch_per_seq(dims));
    assert!(
        qkv.len() == dims.rows() * 3 * d
            && att.len() == dims.batch * h * t * t
            && z.len() == dims.rows() * d
            && scratch.len() == dims.batch * per,
        "attention_fwd: sizes"
    );
    att.par_chunks_mut(h * t * t)
        .zip(z.par_chunks_mut(t * d))
        .zip(qkv.par_chunks(t * 3 * d).zip(scratch.par_chunks_mut(per)))
        .with_min_len(par.min_len())
        .for_each(|((att, z), (qkv, scratch))| {
            simd(FwdSeq {
                att,
                z,
                qkv,
                scratch,
                dims,
            })
        });
}

/// [`attention_fwd`] of one sequence: its [h, T, T] probabilities, [T, d] z and [T, 3d] qkv.
struct FwdSeq<'a> {
    att: &'a mut [f32],
    z: &'a mut [f32],
    qkv: &'a [f32],
    scratch: &'a mut [f32],
    dims: AttnDims,
}

impl SeqKernel for FwdSeq<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let FwdSeq {
            att,
            z,
            qkv,
            scratch,
            dims,
        } = self;
        let (t, d, dh) = (dims.seq, dims.d_model, dims.d_head());
        let scale = 1.0 / (dh as f32).sqrt();
        for (head, s) in att.chunks_exact_mut(t * t).enumerate() {
            let q = head * dh;
            scores(simd, s, qkv, q, scratch, dims);
            for (i, row) in s.chunks_exact_mut(t).enumerate() {
                let live = &mut row[..=i];
                let m = crate::simd::max(simd, live) * scale;
                for x in live.iter_mut() {
                    *x = crate::simd::exp_neg(*x * scale - m);
                }
                let inv = 1.0 / crate::simd::sum(simd, live);
                live.iter_mut().for_each(|x| *x *= inv);
                row[i + 1..].fill(0.0);
                // z_i = Σ_j P[i, j]·v_j over this head's columns.
                let v = Strided {
                    data: qkv,
                    off: 2 * d + q,
                    stride: 3 * d,
                };
                let p = Strided {
                    data: row,
                    off: 0,
                    stride: 1,
                };
                combine(simd, &mut z[i * d + q..i * d + q + dh], p, i + 1, v);
            }
        }
    }
}

/// Backward of [`attention_fwd`]: from dZ [N, d], the gradients of q, k (after RoPE) and v
/// into `dqkv` [N, 3d] (overwritten), through dP and dS in `datt` [B, h, T, T]; `qkv` and
/// `att` are what the forward pass kept.
pub(crate) fn attention_bwd(
    (qkv, att): (&[f32], &[f32]),
    dz: &[f32],
    datt: &mut [f32],
    dqkv: &mut [f32],
    scratch: &mut [f32],
    dims: AttnDims,
    par: Par,
) {
    let (t, d, h, per) = (dims.seq, dims.d_model, dims.heads, scratch_per_seq(dims));
    assert!(
        qkv.len() == dims.rows() * 3 * d
            && dqkv.len() == qkv.len()
            && att.len() == dims.batch * h * t * t
            && datt.len() == att.len()
            && dz.len() == dims.rows() * d
            && scratch.len() == dims.batch * per,
        "attention_bwd: sizes"
    );
    datt.par_chunks_mut(h * t * t)
        .zip(
            dqkv.par_chunks_mut(t * 3 * d)
                .zip(scratch.par_chunks_mut(per)),
        )
        .zip(
            att.par_chunks(h * t * t)
                .zip(dz.par_chunks(t * d).zip(qkv.par_chunks(t * 3 * d))),
        )
        .with_min_len(par.min_len())
        .for_each(|((datt, (dqkv, scratch)), (att, (dz, qkv)))| {
            simd(BwdSeq {
                datt,
                dqkv,
                scratch,
                att,
                dz,
                qkv,
                dims,
            })
        });
}

/// [`attention_bwd`] of one sequence.
struct BwdSeq<'a> {
    datt: &'a mut [f32],
    dqkv: &'a mut [f32],
    scratch: &'a mut [f32],
    att: &'a [f32],
    dz: &'a [f32],
    qkv: &'a [f32],
    dims: AttnDims,
}

impl SeqKernel for BwdSeq<'_> {
    #[inline(always)]
    fn run<S: Simd>(self, simd: S) {
        let BwdSeq {
            datt,
            dqkv,
            scratch,
            att,
            dz,
            qkv,
            dims,
        } = self;
        let (t, d, dh) = (dims.seq, dims.d_model, dims.d_head());
        let scale = 1.0 / (dh as f32).sqrt();
        for (head, ds) in datt.chunks_exact_mut(t * t).enumerate() {
            let q = head * dh;
            let p = &att[head * t * t..(head + 1) * t * t];
            let (vt, acc) = scratch.split_at_mut(padded(t) * dh);
            transpose_head(vt, qkv, 2 * d + q, dims);
            // dP[i, j] = dz_i·v_j, then dS = P ⊙ (dP − rowsum(P ⊙ dP))·scale.
            for (i, dr) in ds.chunks_exact_mut(t).enumerate() {
                let (pr, dzi) = (&p[i * t..i * t + i + 1], &dz[i * d + q..i * d + q + dh]);
                causal_row(simd, dr, dzi, vt, acc, i);
                let dot_pd = crate::simd::dot(simd, &dr[..=i], pr);
                for (x, &pij) in dr[..=i].iter_mut().zip(pr) {
                    *x = pij * (*x - dot_pd) * scale;
                }
                dr[i + 1..].fill(0.0);
            }
            let ds = &*ds;
            let rows = |off: usize, stride: usize| Strided {
                data: qkv,
                off: off + q,
                stride,
            };
            for i in 0..t {
                let r = 3 * d * i + q;
                // dq_i = Σ_{j ≤ i} dS[i, j]·k_j.
                let coef = Strided {
                    data: ds,
                    off: i * t,
                    stride: 1,
                };
                combine(simd, &mut dqkv[r..r + dh], coef, i + 1, rows(d, 3 * d));
                // dk_i = Σ_{j ≥ i} dS[j, i]·q_j and dv_i = Σ_{j ≥ i} P[j, i]·dz_j.
                let column = |data| Strided {
                    data,
                    off: i * t + i,
                    stride: t,
                };
                let q_from_i = rows(3 * d * i, 3 * d);
                combine(
                    simd,
                    &mut dqkv[r + d..r + d + dh],
                    column(ds),
                    t - i,
                    q_from_i,
                );
                let dz_from_i = Strided {
                    data: dz,
                    off: d * i + q,
                    stride: d,
                };
                combine(
                    simd,
                    &mut dqkv[r + 2 * d..r + 2 * d + dh],
                    column(p),
                    t - i,
                    dz_from_i,
                );
            }
        }
    }
}
