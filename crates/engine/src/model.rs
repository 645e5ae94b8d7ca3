//! The transformer: forward, loss and backward, written out op by op.
//!
//! Activations are token-major `[N = B·T, width]` buffers held in a [`Workspace`] allocated once
//! per batch shape. q, k and v stay inside one `[N, 3d]` buffer; each attention head reads its
//! columns through strides, so no permute is ever materialised.

use rayon::prelude::*;

use crate::ops::{self, gemm, gemm_ptr, Par, SendPtr, View};
use crate::params::{self, Activation, ModelConfig, ParamLayout};
use crate::record::Recorder;
use crate::EngineError;

/// A model: configuration, parameter layout and the flat parameter buffer.
#[derive(Clone, Debug)]
pub struct Model {
    pub cfg: ModelConfig,
    pub layout: ParamLayout,
    pub params: Vec<f32>,
    freqs: Vec<f32>,
}

/// Activations of one block, kept for the backward pass.
#[derive(Debug)]
struct BlockActs {
    ln1: Vec<f32>,
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    /// q and k after RoPE, v.
    qkv: Vec<f32>,
    /// Softmax probabilities [B, h, T, T], zero above the diagonal.
    att: Vec<f32>,
    /// Attention-weighted values [N, d] (heads concatenated).
    z: Vec<f32>,
    attn_out: Vec<f32>,
    mid: Vec<f32>,
    ln2: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
    pre: Vec<f32>,
    post: Vec<f32>,
}

/// Every buffer a step needs, allocated once for a batch shape (B sequences, T input tokens).
#[derive(Debug)]
pub struct Workspace {
    pub batch: usize,
    pub seq: usize,
    /// The model shape the buffers were sized for.
    shape: (usize, usize, usize, usize, usize),
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `resid[l]` enters block l; `resid[L]` leaves the last block.
    resid: Vec<Vec<f32>>,
    blocks: Vec<BlockActs>,
    lnf: Vec<f32>,
    lnf_mean: Vec<f32>,
    lnf_rstd: Vec<f32>,
    /// [N, V].
    pub logits: Vec<f32>,
    /// Input tokens [N] and, per scored position, (row, target token).
    tokens: Vec<u32>,
    targets: Vec<(usize, u32)>,
    /// Per scored position, in (sequence, shot) order: cross-entropy and argmax correctness.
    pub target_loss: Vec<f32>,
    pub target_correct: Vec<bool>,
    g: Vec<f32>,
    gmid: Vec<f32>,
    dln: Vec<f32>,
    dqkv: Vec<f32>,
    dz: Vec<f32>,
    dmlp: Vec<f32>,
    datt: Vec<f32>,
    dlogits: Vec<f32>,
}

impl Workspace {
    pub fn new(cfg: &ModelConfig, batch: usize, seq: usize) -> Workspace {
        let (n, d, f, v, h) = (batch * seq, cfg.d_model, cfg.d_mlp(), cfg.vocab, cfg.heads);
        let z = |len: usize| vec![0f32; len];
        let (cos, sin) = ops::rope_table(&params::rope_freqs(cfg), seq);
        Workspace {
            batch,
            seq,
            shape: shape_of(cfg),
            cos,
            sin,
            resid: (0..=cfg.layers).map(|_| z(n * d)).collect(),
            blocks: (0..cfg.layers)
                .map(|_| BlockActs {
                    ln1: z(n * d),
                    ln1_mean: z(n),
                    ln1_rstd: z(n),
                    qkv: z(n * 3 * d),
                    att: z(batch * h * seq * seq),
                    z: z(n * d),
                    attn_out: z(n * d),
                    mid: z(n * d),
                    ln2: z(n * d),
                    ln2_mean: z(n),
                    ln2_rstd: z(n),
                    pre: z(n * f),
                    post: z(n * f),
                })
                .collect(),
            lnf: z(n * d),
            lnf_mean: z(n),
            lnf_rstd: z(n),
            logits: z(n * v),
            tokens: vec![0; n],
            targets: Vec::new(),
            target_loss: Vec::new(),
            target_correct: Vec::new(),
            g: z(n * d),
            gmid: z(n * d),
            dln: z(n * d),
            dqkv: z(n * 3 * d),
            dz: z(n * d),
            dmlp: z(n * f),
            datt: z(batch * h * seq * seq),
            dlogits: z(n * v),
        }
    }
}

/// The parts of a model's shape that size a workspace.
fn shape_of(c: &ModelConfig) -> (usize, usize, usize, usize, usize) {
    (c.vocab, c.d_model, c.heads, c.layers, c.d_mlp())
}

/// Loss of a forward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// Mean cross-entropy over the scored positions.
    pub mean: f32,
    /// Number of scored positions.
    pub count: usize,
    /// Scored positions whose argmax prediction (lowest index on ties) is the target.
    pub correct: usize,
}

impl Model {
    /// A freshly initialised model (official initialisation, seeded).
    pub fn new(cfg: ModelConfig, seed: u64) -> Result<Model, EngineError> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        let params = params::init(&cfg, &layout, seed);
        Ok(Model::from_parts(cfg, layout, params))
    }

    /// A model with the given parameters (layout order).
    pub fn from_params(cfg: ModelConfig, params: Vec<f32>) -> Result<Model, EngineError> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        if params.len() != layout.total {
            return Err(EngineError::Format(format!(
                "{} parameters given, the model has {}",
                params.len(),
                layout.total
            )));
        }
        Ok(Model::from_parts(cfg, layout, params))
    }

    /// A model loaded from an official-style state_dict in safetensors form.
    pub fn from_safetensors(cfg: ModelConfig, bytes: &[u8]) -> Result<Model, EngineError> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        let params = params::load_state_dict(&cfg, &layout, bytes)?;
        Ok(Model::from_parts(cfg, layout, params))
    }

    fn from_parts(cfg: ModelConfig, layout: ParamLayout, params: Vec<f32>) -> Model {
        let freqs = params::rope_freqs(&cfg);
        Model {
            cfg,
            layout,
            params,
            freqs,
        }
    }

    /// The rotary inverse frequencies (the state_dict's `attn.rotary_emb.freqs`).
    pub fn freqs(&self) -> &[f32] {
        &self.freqs
    }

    /// Forward pass on `batch` sequences of `seq_len` tokens (row-major in `tokens`): the model
    /// reads the first `seq_len − 1` tokens of each, and is scored at input positions
    /// `positions` on the token that follows. Leaves every activation in `ws`, and copies those
    /// the recorder asks for.
    pub fn forward(
        &self,
        ws: &mut Workspace,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
        rec: Option<&mut Recorder>,
    ) -> Result<Loss, EngineError> {
        let c = &self.cfg;
        let (b, t) = (ws.batch, ws.seq);
        if ws.shape != shape_of(c) {
            return Err(EngineError::Shape(format!(
                "workspace was built for (vocab, d_model, heads, layers, d_mlp) = {:?}, the model is {:?}",
                ws.shape,
                shape_of(c)
            )));
        }
        if t == 0 {
            return Err(EngineError::Shape(
                "sequences need at least 2 tokens".into(),
            ));
        }
        if seq_len != t + 1 || tokens.len() != b * seq_len {
            return Err(EngineError::Shape(format!(
                "workspace holds {b} sequences of {} tokens; got {} tokens of sequences of {seq_len}",
                t + 1,
                tokens.len()
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&x| x as usize >= c.vocab) {
            return Err(EngineError::Shape(format!(
                "token {bad} outside the vocabulary of {}",
                c.vocab
            )));
        }
        if let Some(&bad) = positions.iter().find(|&&j| j >= t) {
            return Err(EngineError::Shape(format!(
                "scored position {bad} outside 0..{t}"
            )));
        }
        // The backward pass writes each scored row's gradient once: positions must be distinct.
        if positions.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EngineError::Shape(format!(
                "scored positions must be strictly increasing, got {positions:?}"
            )));
        }
        let (n, d, f, v, h) = (b * t, c.d_model, c.d_mlp(), c.vocab, c.heads);
        let p = &self.params[..];
        let lay = &self.layout;

        // Token embedding.
        ws.targets.clear();
        for s in 0..b {
            ws.tokens[s * t..(s + 1) * t].copy_from_slice(&tokens[s * seq_len..s * seq_len + t]);
            ws.targets.extend(
                positions
                    .iter()
                    .map(|&j| (s * t + j, tokens[s * seq_len + j + 1])),
            );
        }
        let wte = &p[lay.wte..lay.wte + v * d];
        ws.resid[0]
            .par_chunks_mut(d)
            .zip(ws.tokens.par_iter())
            .for_each(|(row, &tok)| {
                row.copy_from_slice(&wte[tok as usize * d..(tok as usize + 1) * d]);
            });

        for (l, off) in lay.blocks.iter().enumerate() {
            let (before, after) = ws.resid.split_at_mut(l + 1);
            let (x, out) = (&before[l], &mut after[0]);
            let a = &mut ws.blocks[l];
            // Attention.
            ops::layernorm_fwd(
                &mut a.ln1,
                &mut a.ln1_mean,
                &mut a.ln1_rstd,
                x,
                &p[off.ln1_w..off.ln1_w + d],
                &p[off.ln1_b..off.ln1_b + d],
                d,
                c.ln_eps,
            );
            ops::linear_fwd(&mut a.qkv, &a.ln1, p, off.qkv, n, d, 3 * d, false);
            ops::rope(&mut a.qkv, d, h, t, &ws.cos, &ws.sin, false);
            attention_fwd(&a.qkv, &mut a.att, &mut a.z, t, d, h);
            ops::linear_fwd(&mut a.attn_out, &a.z, p, off.o, n, d, d, false);
            ops::add(&mut a.mid, x, &a.attn_out);
            // MLP.
            ops::layernorm_fwd(
                &mut a.ln2,
                &mut a.ln2_mean,
                &mut a.ln2_rstd,
                &a.mid,
                &p[off.ln2_w..off.ln2_w + d],
                &p[off.ln2_b..off.ln2_b + d],
                d,
                c.ln_eps,
            );
            ops::linear_fwd(&mut a.pre, &a.ln2, p, off.fc, n, d, f, false);
            ops::act_fwd(&mut a.post, &a.pre, c.act == Activation::GeluTanh);
            out.copy_from_slice(&a.mid);
            ops::linear_fwd(out, &a.post, p, off.proj, n, f, d, true);
        }
        let last = &ws.resid[c.layers];
        ops::layernorm_fwd(
            &mut ws.lnf,
            &mut ws.lnf_mean,
            &mut ws.lnf_rstd,
            last,
            &p[lay.lnf_w..lay.lnf_w + d],
            &p[lay.lnf_b..lay.lnf_b + d],
            d,
            c.ln_eps,
        );
        ops::linear_fwd(&mut ws.logits, &ws.lnf, p, lay.head, n, d, v, false);

        // Cross-entropy and argmax at the scored positions.
        let logits = &ws.logits;
        let scored: Vec<(f32, bool)> = ws
            .targets
            .par_iter()
            .map(|&(row, tgt)| {
                let z = &logits[row * v..(row + 1) * v];
                let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
                for (i, &x) in z.iter().enumerate() {
                    if x > best {
                        best = x;
                        arg = i;
                    }
                }
                let sum: f32 = z.iter().map(|&x| (x - best).exp()).sum();
                (best + sum.ln() - z[tgt as usize], arg == tgt as usize)
            })
            .collect();
        ws.target_loss.clear();
        ws.target_correct.clear();
        ws.target_loss.extend(scored.iter().map(|s| s.0));
        ws.target_correct.extend(scored.iter().map(|s| s.1));
        let count = scored.len();
        let total: f64 = ws.target_loss.iter().map(|&x| x as f64).sum();
        let loss = Loss {
            mean: if count == 0 {
                0.0
            } else {
                (total / count as f64) as f32
            },
            count,
            correct: ws.target_correct.iter().filter(|&&c| c).count(),
        };
        if let Some(rec) = rec {
            self.record(ws, rec);
        }
        Ok(loss)
    }

    /// Gradients of the last forward pass's mean loss with respect to every parameter,
    /// written into `grads` (layout order).
    pub fn backward(&self, ws: &mut Workspace, grads: &mut [f32]) {
        let c = &self.cfg;
        let (b, t) = (ws.batch, ws.seq);
        let (n, d, f, v, h) = (b * t, c.d_model, c.d_mlp(), c.vocab, c.heads);
        let p = &self.params[..];
        let lay = &self.layout;
        assert_eq!(
            grads.len(),
            lay.total,
            "gradient buffer has the parameter layout's length"
        );
        assert_eq!(
            ws.shape,
            shape_of(c),
            "backward needs the workspace of this model's forward pass"
        );
        // Every gradient region is overwritten below, except the embedding when the head is
        // untied: its only contribution is the scatter-add at the end.
        if !c.tied {
            grads[lay.wte..lay.wte + v * d].fill(0.0);
        }

        // d loss / d logits: (softmax − onehot) / count at the scored rows, 0 elsewhere.
        ws.dlogits.par_chunks_mut(1 << 14).for_each(|g| g.fill(0.0));
        let inv = 1.0 / ws.targets.len().max(1) as f32;
        let dl = SendPtr(ws.dlogits.as_mut_ptr());
        let logits = &ws.logits;
        ws.targets.par_iter().for_each(|&(row, tgt)| {
            let z = &logits[row * v..(row + 1) * v];
            let m = z.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
            let s: f32 = z.iter().map(|&x| (x - m).exp()).sum();
            // SAFETY: each scored row is distinct, so each task writes its own row.
            let out = unsafe { std::slice::from_raw_parts_mut(dl.get().add(row * v), v) };
            for (o, &x) in out.iter_mut().zip(z) {
                *o = (x - m).exp() / s * inv;
            }
            out[tgt as usize] -= inv;
        });
        // Head and final LayerNorm.
        ops::linear_bwd(
            &mut ws.dln,
            grads,
            &ws.dlogits,
            &ws.lnf,
            p,
            lay.head,
            n,
            d,
            v,
        );
        {
            let (gw, gb) = two(grads, lay.lnf_w, lay.lnf_b, d);
            ops::layernorm_bwd(
                &mut ws.g,
                None,
                gw,
                gb,
                &ws.dln,
                &ws.resid[c.layers],
                &p[lay.lnf_w..lay.lnf_w + d],
                &ws.lnf_mean,
                &ws.lnf_rstd,
                d,
            );
        }
        for (l, off) in lay.blocks.iter().enumerate().rev() {
            let a = &ws.blocks[l];
            // MLP: g is d resid_post.
            ops::linear_bwd(&mut ws.dmlp, grads, &ws.g, &a.post, p, off.proj, n, f, d);
            ops::act_bwd(&mut ws.dmlp, &a.pre, c.act == Activation::GeluTanh);
            ops::linear_bwd(&mut ws.dln, grads, &ws.dmlp, &a.ln2, p, off.fc, n, d, f);
            {
                let (gw, gb) = two(grads, off.ln2_w, off.ln2_b, d);
                ops::layernorm_bwd(
                    &mut ws.gmid,
                    Some(&ws.g),
                    gw,
                    gb,
                    &ws.dln,
                    &a.mid,
                    &p[off.ln2_w..off.ln2_w + d],
                    &a.ln2_mean,
                    &a.ln2_rstd,
                    d,
                );
            }
            // Attention: gmid is d resid_mid.
            ops::linear_bwd(&mut ws.dz, grads, &ws.gmid, &a.z, p, off.o, n, d, d);
            attention_bwd(&a.qkv, &a.att, &ws.dz, &mut ws.datt, &mut ws.dqkv, t, d, h);
            ops::rope(&mut ws.dqkv, d, h, t, &ws.cos, &ws.sin, true);
            ops::linear_bwd(
                &mut ws.dln,
                grads,
                &ws.dqkv,
                &a.ln1,
                p,
                off.qkv,
                n,
                d,
                3 * d,
            );
            let (gw, gb) = two(grads, off.ln1_w, off.ln1_b, d);
            ops::layernorm_bwd(
                &mut ws.g,
                Some(&ws.gmid),
                gw,
                gb,
                &ws.dln,
                &ws.resid[l],
                &p[off.ln1_w..off.ln1_w + d],
                &a.ln1_mean,
                &a.ln1_rstd,
                d,
            );
        }
        // Embedding: scatter-add in row order (deterministic).
        let gw = &mut grads[lay.wte..lay.wte + v * d];
        for (row, &tok) in ws.g.chunks_exact(d).zip(&ws.tokens) {
            for (a, b) in gw[tok as usize * d..(tok as usize + 1) * d]
                .iter_mut()
                .zip(row)
            {
                *a += b;
            }
        }
    }

    fn record(&self, ws: &Workspace, rec: &mut Recorder) {
        let c = &self.cfg;
        let (b, t, d, h, f, v) = (ws.batch, ws.seq, c.d_model, c.heads, c.d_mlp(), c.vocab);
        let dh = d / h;
        for l in 0..c.layers {
            let a = &ws.blocks[l];
            let pre = format!("blocks.{l}.");
            rec.put(&format!("{pre}hook_resid_pre"), &[b, t, d], || {
                ws.resid[l].clone()
            });
            for (i, name) in ["q", "k", "v"].iter().enumerate() {
                rec.put(&format!("{pre}attn.hook_{name}"), &[b, h, t, dh], || {
                    let mut out = Vec::with_capacity(b * t * d);
                    for s in 0..b {
                        for hh in 0..h {
                            for tt in 0..t {
                                let o = (s * t + tt) * 3 * d + i * d + hh * dh;
                                out.extend_from_slice(&a.qkv[o..o + dh]);
                            }
                        }
                    }
                    out
                });
            }
            rec.put(&format!("{pre}attn.hook_pattern"), &[b, h, t, t], || {
                a.att.clone()
            });
            rec.put(&format!("{pre}attn.hook_z"), &[b, t, h, dh], || a.z.clone());
            rec.put(&format!("{pre}hook_attn_out"), &[b, t, d], || {
                a.attn_out.clone()
            });
            rec.put(&format!("{pre}mlp.hook_pre"), &[b, t, f], || a.pre.clone());
            rec.put(&format!("{pre}mlp.hook_post"), &[b, t, f], || {
                a.post.clone()
            });
            rec.put(&format!("{pre}hook_resid_post"), &[b, t, d], || {
                ws.resid[l + 1].clone()
            });
        }
        rec.put("ln_final.hook_normalized", &[b, t, d], || ws.lnf.clone());
        rec.put("logits", &[b, t, v], || ws.logits.clone());
    }
}

/// The gradients of a LayerNorm's weight and bias, stored next to each other.
fn two(g: &mut [f32], w: usize, b: usize, d: usize) -> (&mut [f32], &mut [f32]) {
    assert_eq!(b, w + d, "LayerNorm bias follows its weight");
    g[w..w + 2 * d].split_at_mut(d)
}

/// Row blocks for causal attention: query rows `r0..r1` attend to keys `0..r1` only, so the
/// products skip most of the masked upper triangle.
fn causal_blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    const BLOCKS: usize = 3;
    let step = t.div_ceil(BLOCKS).max(1);
    (0..t).step_by(step).map(move |r0| (r0, (r0 + step).min(t)))
}

/// Causal attention of every (sequence, head): P = softmax(QKᵀ/√dh) masked, Z = P·V.
fn attention_fwd(qkv: &[f32], att: &mut [f32], z: &mut [f32], t: usize, d: usize, h: usize) {
    let dh = d / h;
    let scale = 1.0 / (dh as f32).sqrt();
    let zp = SendPtr(z.as_mut_ptr());
    att.par_chunks_mut(t * t).enumerate().for_each(|(bh, s)| {
        let (seq, head) = (bh / h, bh % h);
        let q = (seq * t) * 3 * d + head * dh;
        for (r0, r1) in causal_blocks(t) {
            let qv = View {
                data: qkv,
                off: q + r0 * 3 * d,
                rs: 3 * d,
                cs: 1,
            };
            gemm(
                r1 - r0,
                r1,
                dh,
                s,
                r0 * t,
                t,
                qv,
                View {
                    data: qkv,
                    off: q + d,
                    rs: 1,
                    cs: 3 * d,
                },
                false,
                Par::Seq,
            );
        }
        for i in 0..t {
            let row = &mut s[i * t..(i + 1) * t];
            let m = row[..=i].iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x)) * scale;
            let mut sum = 0.0;
            for x in &mut row[..=i] {
                *x = (*x * scale - m).exp();
                sum += *x;
            }
            let inv = 1.0 / sum;
            row[..=i].iter_mut().for_each(|x| *x *= inv);
            row[i + 1..].fill(0.0);
        }
        for (r0, r1) in causal_blocks(t) {
            // SAFETY: head `head` of sequence `seq` owns columns head·dh.. of rows seq·t.. of z.
            unsafe {
                gemm_ptr(
                    r1 - r0,
                    dh,
                    r1,
                    zp.get().add((seq * t + r0) * d + head * dh),
                    d,
                    View::rm(s, r0 * t, t),
                    View {
                        data: qkv,
                        off: q + 2 * d,
                        rs: 3 * d,
                        cs: 1,
                    },
                    false,
                    Par::Seq,
                );
            }
        }
    });
}

/// Backward of [`attention_fwd`]: from dZ, the gradients of q, k (after RoPE) and v into dqkv.
#[allow(clippy::too_many_arguments)]
fn attention_bwd(
    qkv: &[f32],
    att: &[f32],
    dz: &[f32],
    datt: &mut [f32],
    dqkv: &mut [f32],
    t: usize,
    d: usize,
    h: usize,
) {
    let dh = d / h;
    let scale = 1.0 / (dh as f32).sqrt();
    let dp = SendPtr(dqkv.as_mut_ptr());
    datt.par_chunks_mut(t * t).enumerate().for_each(|(bh, ds)| {
        let (seq, head) = (bh / h, bh % h);
        let q = (seq * t) * 3 * d + head * dh;
        let zo = seq * t * d + head * dh;
        let p = &att[bh * t * t..(bh + 1) * t * t];
        // dP = dZ·Vᵀ on the causal blocks.
        for (r0, r1) in causal_blocks(t) {
            gemm(
                r1 - r0,
                r1,
                dh,
                ds,
                r0 * t,
                t,
                View {
                    data: dz,
                    off: zo + r0 * d,
                    rs: d,
                    cs: 1,
                },
                View {
                    data: qkv,
                    off: q + 2 * d,
                    rs: 1,
                    cs: 3 * d,
                },
                false,
                Par::Seq,
            );
        }
        // dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale; zero above the diagonal.
        for i in 0..t {
            let (pr, dr) = (&p[i * t..(i + 1) * t], &mut ds[i * t..(i + 1) * t]);
            let dot: f32 = pr[..=i].iter().zip(&dr[..=i]).map(|(a, b)| a * b).sum();
            for j in 0..=i {
                dr[j] = pr[j] * (dr[j] - dot) * scale;
            }
            dr[i + 1..].fill(0.0);
        }
        // SAFETY: this (sequence, head) owns its q, k, v columns of rows seq·t.. of dqkv.
        unsafe {
            let base = dp.get().add(q);
            for (r0, r1) in causal_blocks(t) {
                // dQ rows r0..r1 = dS[r0..r1, 0..r1]·K[0..r1].
                gemm_ptr(
                    r1 - r0,
                    dh,
                    r1,
                    base.add(r0 * 3 * d),
                    3 * d,
                    View::rm(ds, r0 * t, t),
                    View {
                        data: qkv,
                        off: q + d,
                        rs: 3 * d,
                        cs: 1,
                    },
                    false,
                    Par::Seq,
                );
                // dV rows r0..r1 = P[r0..t, r0..r1]ᵀ·dZ[r0..t]; dK likewise from dS and Q.
                let (a_off, k) = (r0 * t + r0, t - r0);
                gemm_ptr(
                    r1 - r0,
                    dh,
                    k,
                    base.add(r0 * 3 * d + 2 * d),
                    3 * d,
                    View {
                        data: p,
                        off: a_off,
                        rs: 1,
                        cs: t,
                    },
                    View {
                        data: dz,
                        off: zo + r0 * d,
                        rs: d,
                        cs: 1,
                    },
                    false,
                    Par::Seq,
                );
                gemm_ptr(
                    r1 - r0,
                    dh,
                    k,
                    base.add(r0 * 3 * d + d),
                    3 * d,
                    View {
                        data: ds,
                        off: a_off,
                        rs: 1,
                        cs: t,
                    },
                    View {
                        data: qkv,
                        off: q + r0 * 3 * d,
                        rs: 3 * d,
                        cs: 1,
                    },
                    false,
                    Par::Seq,
                );
            }
        }
    });
}
