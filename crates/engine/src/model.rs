//! The transformer: forward, loss and backward, written out op by op.
//!
//! Activations are token-major `[N = B·T, width]` buffers held in a [`Workspace`] allocated once
//! per batch shape. q, k and v stay inside one `[N, 3d]` buffer; each attention head reads its
//! columns through strides, so no permute is ever materialised. Attention runs one sequence per
//! rayon task: a task owns its sequence's rows of every buffer it writes.

use rayon::prelude::*;

use crate::attention::{self, attention_bwd, attention_fwd, attention_scores};
use crate::ops::{
    self, AttnDims, LinearDims, LnParams, LnSaved, Mode, Par, RopeTable, Rotation, Weight,
};
use crate::params::{self, ModelConfig, ParamLayout};
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

/// Activations of one block, kept for the backward pass. N = B·T rows, d = d_model,
/// F = d_mlp, h = heads.
#[derive(Debug)]
struct BlockActs {
    /// ln_1 output [N, d].
    ln1: Vec<f32>,
    /// ln_1 mean and 1/std per row [N].
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    /// q and k after RoPE, and v [N, 3d]: columns [0, d) q, [d, 2d) k, [2d, 3d) v; head j
    /// holds columns j·d_head..(j+1)·d_head of each block.
    qkv: Vec<f32>,
    /// Softmax probabilities [B, h, T, T], zero above the diagonal.
    att: Vec<f32>,
    /// Attention-weighted values [N, d] (heads concatenated), before `attn.o`.
    z: Vec<f32>,
    /// `attn.o` output [N, d].
    attn_out: Vec<f32>,
    /// Residual stream between attention and MLP [N, d].
    mid: Vec<f32>,
    /// ln_2 output [N, d], mean and 1/std [N].
    ln2: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
    /// MLP hidden layer before and after the activation [N, F].
    pre: Vec<f32>,
    post: Vec<f32>,
}

/// Every buffer a step needs, allocated once for a batch shape (B sequences, T input tokens)
/// and a model configuration. N = B·T rows, d = d_model, F = d_mlp, V = vocab, h = heads.
#[derive(Debug)]
pub struct Workspace {
    /// B.
    pub batch: usize,
    /// T: input tokens per sequence.
    pub seq: usize,
    /// The configuration the buffers were sized for.
    cfg: ModelConfig,
    /// Whether the kernels spread over the rayon pool or run on the calling thread (a shard of
    /// a batch, see [`crate::Shards`]).
    par: Par,
    /// cos/sin of RoPE [T, d_head/2].
    rope: RopeTable,
    /// `resid[l]` [N, d] enters block l; `resid[L]` leaves the last block.
    resid: Vec<Vec<f32>>,
    blocks: Vec<BlockActs>,
    /// ln_f output [N, d], mean and 1/std [N].
    /// The last residual stream at the scored rows [S, d] (S = scored positions, at most N):
    /// the final LayerNorm and the output head run on these rows only, as nothing else reaches
    /// the loss.
    head_in: Vec<f32>,
    /// ln_f output at the scored rows [S, d], mean and 1/std [S].
    lnf: Vec<f32>,
    lnf_mean: Vec<f32>,
    lnf_rstd: Vec<f32>,
    /// Output logits at the scored rows [S, V], in (sequence, shot) order (the order of
    /// `target_loss`). The recorder's `logits` hook gives every row.
    pub logits: Vec<f32>,
    /// Input tokens [N].
    tokens: Vec<u32>,
    /// Per scored position, in (sequence, shot) order: (row in 0..N, target token).
    targets: Vec<(usize, u32)>,
    /// Per scored position, in (sequence, shot) order: cross-entropy and argmax correctness.
    pub target_loss: Vec<f32>,
    pub target_correct: Vec<bool>,
    /// Gradient of the residual stream [N, d] (entering the block being differentiated).
    g: Vec<f32>,
    /// Gradient of the block's mid residual stream [N, d].
    gmid: Vec<f32>,
    /// Gradient of a LayerNorm output [N, d].
    dln: Vec<f32>,
    /// Gradient of q, k (after RoPE, then rotated back in place) and v [N, 3d].
    dqkv: Vec<f32>,
    /// Gradient of z [N, d].
    dz: Vec<f32>,
    /// Gradient of the MLP hidden layer [N, F].
    dmlp: Vec<f32>,
    /// Gradient of the attention probabilities, then of the scores [B, h, T, T].
    datt: Vec<f32>,
    /// Gradient of the logits at the scored rows [S, V].
    dlogits: Vec<f32>,
    /// Scratch of the attention kernels, per sequence [B, (d_head + 1)·T'] (T' = T rounded up
    /// to whole vectors).
    attn_scratch: Vec<f32>,
    /// Whether the last forward pass ran the last block past attention at the scored rows
    /// only (see [`Model::forward`]).
    pruned: bool,
    /// The last block's attention output z at the scored rows [S, d], in target order.
    sc_z: Vec<f32>,
    /// Gradient of the last block's output at the scored rows [S, d].
    sc_g: Vec<f32>,
}

impl Workspace {
    /// The buffers of a batch whose kernels run on every thread of the current rayon pool.
    pub fn new(cfg: &ModelConfig, batch: usize, seq: usize) -> Workspace {
        Workspace::with_par(cfg, batch, seq, Par::All)
    }

    /// The buffers of a batch whose kernels all run on the calling thread: for batches run in
    /// parallel with each other ([`crate::Shards`]).
    pub fn sequential(cfg: &ModelConfig, batch: usize, seq: usize) -> Workspace {
        Workspace::with_par(cfg, batch, seq, Par::Seq)
    }

    fn with_par(cfg: &ModelConfig, batch: usize, seq: usize, par: Par) -> Workspace {
        let (n, d, f, v, h) = (batch * seq, cfg.d_model, cfg.d_mlp(), cfg.vocab, cfg.heads);
        let z = |len: usize| vec![0f32; len];
        let dims = AttnDims {
            batch,
            seq,
            d_model: d,
            heads: h,
        };
        Workspace {
            batch,
            seq,
            cfg: cfg.clone(),
            par,
            rope: RopeTable::new(&params::rope_freqs(cfg), seq),
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
            head_in: z(n * d),
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
            attn_scratch: z(batch * attention::scratch_per_seq(dims)),
            pruned: false,
            sc_z: z(n * d),
            sc_g: z(n * d),
        }
    }

    fn attn_dims(&self) -> AttnDims {
        AttnDims {
            batch: self.batch,
            seq: self.seq,
            d_model: self.cfg.d_model,
            heads: self.cfg.heads,
        }
    }
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

impl Loss {
    /// The loss of scored positions with these cross-entropies and argmax correctness: the
    /// mean summed in f64, in order.
    pub fn from_targets(loss: &[f32], correct: &[bool]) -> Loss {
        let count = loss.len();
        let total: f64 = loss.iter().map(|&x| x as f64).sum();
        Loss {
            mean: if count == 0 {
                0.0
            } else {
                (total / count as f64) as f32
            },
            count,
            correct: correct.iter().filter(|&&c| c).count(),
        }
    }
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
        if ws.cfg != *c {
            return Err(EngineError::Shape(format!(
                "workspace was built for the model {:?}, this model is {c:?}",
                ws.cfg
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
        let (n, d, v) = (b * t, c.d_model, c.vocab);
        let (dims, lin, par) = (ws.attn_dims(), Linears::new(c, n), ws.par);
        let p = &self.params[..];
        let lay = &self.layout;
        let w = |off: usize| Weight { params: p, off };
        let ln = |w: usize, b: usize| LnParams {
            w: &p[w..w + d],
            b: &p[b..b + d],
            eps: c.ln_eps,
        };

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
            .with_min_len(par.min_len())
            .for_each(|(row, &tok)| {
                row.copy_from_slice(&wte[tok as usize * d..(tok as usize + 1) * d]);
            });

        // Past its attention, the last block matters only at the scored rows: its keys and
        // values come from every row, but the residual stream it leaves reaches the loss at the
        // scored rows alone. Unless a recorder asks for every row's activations, the attention
        // output projection, the MLP and the residual adds of the last block run on those rows
        // only (in target order), which is what the head reads.
        let sc = ws.targets.len();
        ws.pruned = rec.is_none() && prunable(sc, d);
        for (l, off) in lay.blocks.iter().enumerate() {
            let (before, after) = ws.resid.split_at_mut(l + 1);
            let (x, out) = (&before[l], &mut after[0]);
            let a = &mut ws.blocks[l];
            let prune = ws.pruned && l + 1 == c.layers;
            // Attention.
            ops::layernorm_fwd(
                &mut a.ln1,
                &mut a.ln1_mean,
                &mut a.ln1_rstd,
                x,
                ln(off.ln1_w, off.ln1_b),
                par,
            );
            let qkv = lin.qkv;
            ops::linear_fwd(&mut a.qkv, &a.ln1, w(off.qkv), qkv, Mode::Overwrite, par);
            ops::rope(&mut a.qkv, dims, &ws.rope, Rotation::Forward, par);
            attention_fwd(
                &a.qkv,
                &mut a.att,
                &mut a.z,
                &mut ws.attn_scratch,
                dims,
                par,
            );
            // The rows from here on: all of them, or the scored ones (`prune`).
            let (rows, f) = (if prune { sc } else { n }, c.d_mlp());
            let z_in = if prune {
                gather_rows(&mut ws.sc_z[..sc * d], &a.z, &ws.targets, d, par);
                &ws.sc_z[..sc * d]
            } else {
                &a.z[..]
            };
            let (attn_out, mid) = (&mut a.attn_out[..rows * d], &mut a.mid[..rows * d]);
            ops::linear_fwd(
                attn_out,
                z_in,
                w(off.o),
                lin.o.with_rows(rows),
                Mode::Overwrite,
                par,
            );
            if prune {
                // mid = x + attn_out at the scored rows.
                mid.par_chunks_mut(d)
                    .zip(attn_out.par_chunks(d).zip(ws.targets.par_iter()))
                    .with_min_len(par.min_len())
                    .for_each(|(m, (o, &(r, _)))| {
                        for ((m, &x), &o) in m.iter_mut().zip(&x[r * d..(r + 1) * d]).zip(o) {
                            *m = x + o;
                        }
                    });
            } else {
                ops::add(mid, x, attn_out, par);
            }
            // MLP.
            ops::layernorm_fwd(
                &mut a.ln2[..rows * d],
                &mut a.ln2_mean[..rows],
                &mut a.ln2_rstd[..rows],
                mid,
                ln(off.ln2_w, off.ln2_b),
                par,
            );
            let (pre, post) = (&mut a.pre[..rows * f], &mut a.post[..rows * f]);
            let ln2 = &a.ln2[..rows * d];
            let fc = lin.fc.with_rows(rows);
            ops::linear_fwd(pre, ln2, w(off.fc), fc, Mode::Overwrite, par);
            ops::act_fwd(post, pre, c.act, par);
            let out = &mut out[..rows * d];
            out.copy_from_slice(mid);
            ops::linear_fwd(
                out,
                post,
                w(off.proj),
                lin.proj.with_rows(rows),
                Mode::Accumulate,
                par,
            );
        }
        // Final LayerNorm and head at the scored rows only (a pruned last block left them in
        // target order already).
        let last = &ws.resid[c.layers];
        if ws.pruned {
            ws.head_in[..sc * d].copy_from_slice(&last[..sc * d]);
        } else {
            gather_rows(&mut ws.head_in[..sc * d], last, &ws.targets, d, par);
        }
        ops::layernorm_fwd(
            &mut ws.lnf[..sc * d],
            &mut ws.lnf_mean[..sc],
            &mut ws.lnf_rstd[..sc],
            &ws.head_in[..sc * d],
            ln(lay.lnf_w, lay.lnf_b),
            par,
        );
        ops::rowwise_linear_fwd(
            &mut ws.logits[..sc * v],
            &ws.lnf[..sc * d],
            w(lay.head),
            lin.head.with_rows(sc),
            par,
        );

        // Cross-entropy and argmax at the scored positions.
        let logits = &ws.logits;
        ws.target_loss.resize(ws.targets.len(), 0.0);
        ws.target_correct.resize(ws.targets.len(), false);
        ws.target_loss
            .par_iter_mut()
            .zip(ws.target_correct.par_iter_mut())
            .zip(ws.targets.par_iter().zip(logits.par_chunks(v)))
            .with_min_len(par.min_len())
            .for_each(|((loss, correct), (&(_, tgt), z))| {
                let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
                for (i, &x) in z.iter().enumerate() {
                    if x > best {
                        best = x;
                        arg = i;
                    }
                }
                let sum: f32 = z.iter().map(|&x| (x - best).exp()).sum();
                *loss = best + sum.ln() - z[tgt as usize];
                *correct = arg == tgt as usize;
            });
        let loss = Loss::from_targets(&ws.target_loss, &ws.target_correct);
        if let Some(rec) = rec {
            self.record(ws, rec);
        }
        Ok(loss)
    }

    /// Gradients of the last forward pass's mean loss with respect to every parameter,
    /// written into `grads` (layout order).
    pub fn backward(&self, ws: &mut Workspace, grads: &mut [f32]) {
        let scale = 1.0 / ws.targets.len().max(1) as f32;
        self.backward_scaled(ws, grads, scale);
    }

    /// Gradients of `scale` times the last forward pass's summed loss: [`Model::backward`]
    /// with the scale of a larger batch this one is a shard of ([`crate::Shards`]).
    pub(crate) fn backward_scaled(&self, ws: &mut Workspace, grads: &mut [f32], scale: f32) {
        let c = &self.cfg;
        let (b, t) = (ws.batch, ws.seq);
        let (n, d, v) = (b * t, c.d_model, c.vocab);
        let (dims, lin, par) = (ws.attn_dims(), Linears::new(c, n), ws.par);
        let p = &self.params[..];
        let lay = &self.layout;
        let w = |off: usize| Weight { params: p, off };
        assert_eq!(
            grads.len(),
            lay.total,
            "gradient buffer has the parameter layout's length"
        );
        assert!(
            ws.cfg == *c,
            "backward needs the workspace of this model's forward pass"
        );
        // Every gradient region is overwritten below, except the embedding when the head is
        // untied: its only contribution is the scatter-add at the end.
        if !c.tied {
            grads[lay.wte..lay.wte + v * d].fill(0.0);
        }

        // d loss / d logits: (softmax − onehot)·scale at the scored rows.
        let sc = ws.targets.len();
        ws.dlogits[..sc * v]
            .par_chunks_mut(v)
            .zip(ws.logits.par_chunks(v).zip(ws.targets.par_iter()))
            .with_min_len(par.min_len())
            .for_each(|(o, (z, &(_, tgt)))| {
                let m = z.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
                let sum: f32 = z.iter().map(|&x| (x - m).exp()).sum();
                for (o, &x) in o.iter_mut().zip(z) {
                    *o = (x - m).exp() / sum * scale;
                }
                o[tgt as usize] -= scale;
            });
        // Head and final LayerNorm at the scored rows; the gradient of the last residual
        // stream is zero at every other row.
        let head = lin.head.with_rows(sc);
        let (dlogits, lnf) = (&ws.dlogits[..sc * v], &ws.lnf[..sc * d]);
        ops::linear_bwd_weight(grads, dlogits, lnf, lay.head, head, par);
        ops::rowwise_linear_bwd_input(&mut ws.dln[..sc * d], dlogits, w(lay.head), head, par);
        let saved = LnSaved {
            x: &ws.head_in[..sc * d],
            mean: &ws.lnf_mean[..sc],
            rstd: &ws.lnf_rstd[..sc],
        };
        let lnf_w = &p[lay.lnf_w..lay.lnf_w + d];
        let lnf_grads = ln_grads(grads, lay.lnf_w, lay.lnf_b, d);
        ops::layernorm_bwd(
            &mut ws.gmid[..sc * d],
            None,
            lnf_grads,
            &ws.dln[..sc * d],
            lnf_w,
            saved,
            par,
        );
        if ws.pruned {
            ws.sc_g[..sc * d].copy_from_slice(&ws.gmid[..sc * d]);
        } else {
            scatter_rows(&mut ws.g, &ws.gmid[..sc * d], &ws.targets, d);
        }
        let f = c.d_mlp();
        for (l, off) in lay.blocks.iter().enumerate().rev() {
            let a = &ws.blocks[l];
            // A pruned last block ran past attention at the scored rows only, in target order;
            // the gradient of the residual stream it left is zero at every other row.
            let prune = ws.pruned && l + 1 == c.layers;
            let rows = if prune { sc } else { n };
            let (g, z) = if prune {
                (&ws.sc_g[..sc * d], &ws.sc_z[..sc * d])
            } else {
                (&ws.g[..], &a.z[..])
            };
            // MLP: g is d resid_post.
            let dmlp = &mut ws.dmlp[..rows * f];
            let proj = lin.proj.with_rows(rows);
            ops::linear_bwd(dmlp, grads, g, &a.post[..rows * f], w(off.proj), proj, par);
            ops::act_bwd(dmlp, &a.pre[..rows * f], c.act, par);
            let (dln, ln2) = (&mut ws.dln[..rows * d], &a.ln2[..rows * d]);
            let fc = lin.fc.with_rows(rows);
            ops::linear_bwd(dln, grads, dmlp, ln2, w(off.fc), fc, par);
            let saved = LnSaved {
                x: &a.mid[..rows * d],
                mean: &a.ln2_mean[..rows],
                rstd: &a.ln2_rstd[..rows],
            };
            let ln2_grads = ln_grads(grads, off.ln2_w, off.ln2_b, d);
            let ln2_w = &p[off.ln2_w..off.ln2_w + d];
            let gmid = &mut ws.gmid[..rows * d];
            ops::layernorm_bwd(gmid, Some(g), ln2_grads, dln, ln2_w, saved, par);
            // Attention: gmid is d resid_mid.
            if prune {
                let dz_sc = &mut ws.dln[..sc * d];
                let o = lin.o.with_rows(sc);
                ops::linear_bwd(dz_sc, grads, gmid, z, w(off.o), o, par);
                scatter_rows(&mut ws.dz, dz_sc, &ws.targets, d);
                // gmid, in target order, becomes d resid_mid at every row (in g, then swapped).
                scatter_rows(&mut ws.g, &ws.gmid[..sc * d], &ws.targets, d);
                std::mem::swap(&mut ws.g, &mut ws.gmid);
            } else {
                ops::linear_bwd(&mut ws.dz, grads, gmid, z, w(off.o), lin.o, par);
            }
            attention_bwd(
                (&a.qkv, &a.att),
                &ws.dz,
                &mut ws.datt,
                &mut ws.dqkv,
                &mut ws.attn_scratch,
                dims,
                par,
            );
            ops::rope(&mut ws.dqkv, dims, &ws.rope, Rotation::Inverse, par);
            let (dln, dqkv) = (&mut ws.dln, &ws.dqkv);
            ops::linear_bwd(dln, grads, dqkv, &a.ln1, w(off.qkv), lin.qkv, par);
            let saved = LnSaved {
                x: &ws.resid[l],
                mean: &a.ln1_mean,
                rstd: &a.ln1_rstd,
            };
            let ln1_grads = ln_grads(grads, off.ln1_w, off.ln1_b, d);
            let ln1_w = &p[off.ln1_w..off.ln1_w + d];
            let (g, gmid, dln) = (&mut ws.g, &ws.gmid, &ws.dln);
            ops::layernorm_bwd(g, Some(gmid), ln1_grads, dln, ln1_w, saved, par);
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

    /// Copies the hooks the recorder asks for, under TransformerLens's names, shapes and
    /// meanings (the list is in [`crate::record`]). Hooks the forward pass does not keep are
    /// recomputed here with the forward pass's own kernels.
    fn record(&self, ws: &Workspace, rec: &mut Recorder) {
        let c = &self.cfg;
        let (b, t, d, h, f, v) = (ws.batch, ws.seq, c.d_model, c.heads, c.d_mlp(), c.vocab);
        let (n, dh) = (b * t, c.d_head());
        let (dims, lin) = (ws.attn_dims(), Linears::new(c, n));
        let p = &self.params[..];
        // The columns [col, col + d) of every row of an [N, 3d] buffer: [B, T, h, d_head].
        let columns = |qkv: &[f32], col: usize| -> Vec<f32> {
            qkv.chunks_exact(3 * d)
                .flat_map(|row| &row[col..col + d])
                .copied()
                .collect()
        };
        let scale = |rstd: &[f32]| -> Vec<f32> { rstd.iter().map(|r| 1.0 / r).collect() };
        rec.put("hook_embed", &[b, t, d], || ws.resid[0].clone());
        for (l, off) in self.layout.blocks.iter().enumerate() {
            let a = &ws.blocks[l];
            let pre = format!("blocks.{l}.");
            let hook = |name: &str| format!("{pre}{name}");
            rec.put(&hook("hook_resid_pre"), &[b, t, d], || ws.resid[l].clone());
            rec.put(&hook("ln1.hook_scale"), &[b, t, 1], || scale(&a.ln1_rstd));
            rec.put(&hook("ln1.hook_normalized"), &[b, t, d], || a.ln1.clone());
            if rec.wants(&hook("attn.hook_q")) || rec.wants(&hook("attn.hook_k")) {
                // q and k before RoPE: the forward pass rotated them in place.
                let mut unrotated = vec![0f32; n * 3 * d];
                let w = Weight {
                    params: p,
                    off: off.qkv,
                };
                ops::linear_fwd(&mut unrotated, &a.ln1, w, lin.qkv, Mode::Overwrite, ws.par);
                rec.put(&hook("attn.hook_q"), &[b, t, h, dh], || {
                    columns(&unrotated, 0)
                });
                rec.put(&hook("attn.hook_k"), &[b, t, h, dh], || {
                    columns(&unrotated, d)
                });
            }
            rec.put(&hook("attn.hook_v"), &[b, t, h, dh], || {
                columns(&a.qkv, 2 * d)
            });
            rec.put(&hook("attn.hook_rot_q"), &[b, t, h, dh], || {
                columns(&a.qkv, 0)
            });
            rec.put(&hook("attn.hook_rot_k"), &[b, t, h, dh], || {
                columns(&a.qkv, d)
            });
            rec.put(&hook("attn.hook_attn_scores"), &[b, h, t, t], || {
                attention_scores(&a.qkv, dims)
            });
            rec.put(&hook("attn.hook_pattern"), &[b, h, t, t], || a.att.clone());
            rec.put(&hook("attn.hook_z"), &[b, t, h, dh], || a.z.clone());
            rec.put(&hook("hook_attn_out"), &[b, t, d], || a.attn_out.clone());
            rec.put(&hook("hook_resid_mid"), &[b, t, d], || a.mid.clone());
            rec.put(&hook("ln2.hook_scale"), &[b, t, 1], || scale(&a.ln2_rstd));
            rec.put(&hook("ln2.hook_normalized"), &[b, t, d], || a.ln2.clone());
            rec.put(&hook("mlp.hook_pre"), &[b, t, f], || a.pre.clone());
            rec.put(&hook("mlp.hook_post"), &[b, t, f], || a.post.clone());
            rec.put(&hook("hook_mlp_out"), &[b, t, d], || {
                let mut out = vec![0f32; n * d];
                let w = Weight {
                    params: p,
                    off: off.proj,
                };
                ops::linear_fwd(&mut out, &a.post, w, lin.proj, Mode::Overwrite, ws.par);
                out
            });
            rec.put(&hook("hook_resid_post"), &[b, t, d], || {
                ws.resid[l + 1].clone()
            });
        }
        // The forward pass ran ln_f and the head at the scored rows only: every row here.
        let wants_final = ["ln_final.hook_scale", "ln_final.hook_normalized", "logits"]
            .iter()
            .any(|h| rec.wants(h));
        if wants_final {
            let (mut lnf, mut mean, mut rstd) = (vec![0f32; n * d], vec![0f32; n], vec![0f32; n]);
            let lay = &self.layout;
            let ln = LnParams {
                w: &p[lay.lnf_w..lay.lnf_w + d],
                b: &p[lay.lnf_b..lay.lnf_b + d],
                eps: c.ln_eps,
            };
            let last = &ws.resid[c.layers];
            ops::layernorm_fwd(&mut lnf, &mut mean, &mut rstd, last, ln, ws.par);
            rec.put("ln_final.hook_scale", &[b, t, 1], || scale(&rstd));
            rec.put("logits", &[b, t, v], || {
                let mut logits = vec![0f32; n * v];
                let w = Weight {
                    params: p,
                    off: lay.head,
                };
                ops::rowwise_linear_fwd(&mut logits, &lnf, w, lin.head, ws.par);
                logits
            });
            rec.put("ln_final.hook_normalized", &[b, t, d], || lnf);
        }
    }
}

/// The sizes of the model's linear layers applied to N rows.
struct Linears {
    /// `attn.to_qkv`: d -> 3d.
    qkv: LinearDims,
    /// `attn.o`: d -> d.
    o: LinearDims,
    /// `mlp.c_fc`: d -> F.
    fc: LinearDims,
    /// `mlp.c_proj`: F -> d.
    proj: LinearDims,
    /// The output head: d -> V.
    head: LinearDims,
}

impl Linears {
    fn new(c: &ModelConfig, rows: usize) -> Linears {
        let (d, f, v) = (c.d_model, c.d_mlp(), c.vocab);
        let dims = |d_in, d_out| LinearDims { rows, d_in, d_out };
        Linears {
            qkv: dims(d, 3 * d),
            o: dims(d, d),
            fc: dims(d, f),
            proj: dims(f, d),
            head: dims(d, v),
        }
    }
}

/// Whether the last block may run past attention at the `sc` scored rows only. Each row of a
/// product is then computed exactly as in the full product (the same kernel, the same
/// order of sums), so the scored rows get the same bits either way, provided the gathered
/// products stay clear of the `gemm` crate's paths for tiny products (a single row, or at most
/// 16 x 16 outputs), whose sums run in another order. Below that size nothing is gathered.
fn prunable(sc: usize, d: usize) -> bool {
    sc > 1 && sc * d > 256
}

/// `out` [S, d] = the rows of `x` [N, d] that `targets` name, in target order.
fn gather_rows(out: &mut [f32], x: &[f32], targets: &[(usize, u32)], d: usize, par: Par) {
    out.par_chunks_mut(d)
        .zip(targets.par_iter())
        .with_min_len(par.min_len())
        .for_each(|(row, &(r, _))| row.copy_from_slice(&x[r * d..(r + 1) * d]));
}

/// `out` [N, d] = zero, except the rows that `targets` name, which get the rows of `x` [S, d].
fn scatter_rows(out: &mut [f32], x: &[f32], targets: &[(usize, u32)], d: usize) {
    out.fill(0.0);
    for (&(r, _), row) in targets.iter().zip(x.chunks_exact(d)) {
        out[r * d..(r + 1) * d].copy_from_slice(row);
    }
}

/// The gradients of a LayerNorm's weight and bias, stored next to each other.
fn ln_grads(g: &mut [f32], w: usize, b: usize, d: usize) -> (&mut [f32], &mut [f32]) {
    assert_eq!(b, w + d, "LayerNorm bias follows its weight");
    g[w..w + 2 * d].split_at_mut(d)
}
