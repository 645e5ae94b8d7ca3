//! The device model: the CPU engine's transformer, loss, backward pass and AdamW, on the GPU,
//! over the same flat parameter, gradient and moment layouts (so checkpoints are the same files
//! and a run can move between CPU and GPU), in f32.
//!
//! It mirrors `modicl_engine::Model::forward`/`backward` op by op, except that every block
//! runs at every row (the CPU engine's last-block pruning is an optimisation with the same
//! result). Matrix products go through cuBLAS; the rest through the kernels of
//! `crates/cuda/kernels`.

use cudarc::driver::{CudaSlice, CudaView};
use modicl_engine::params::{self, BlockOffsets};
use modicl_engine::{Activation, AdamWConfig, Loss, Model, ModelConfig, ParamLayout};

use crate::gpu::{launch, one_block, per_element, per_warp, Gpu, Precision};
use crate::CudaError;

/// How the device model computes causal attention. Both give the CPU engine's result within
/// f32 rounding; which is faster on a given GPU is for `modicl bench --attention` to say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Attention {
    /// One warp per (sequence, head, query): scores, softmax and P·V in one kernel, and two
    /// kernels backward (`attn_fwd`, `attn_bwd_q`, `attn_bwd_kv`).
    #[default]
    Warp,
    /// Per head, cuBLAS strided-batched products over the sequences (Q·Kᵀ, P·V and their
    /// gradients) with a causal-softmax kernel and its backward between them.
    Gemm,
}

impl Attention {
    /// The `--attention` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Attention::Warp => "warp",
            Attention::Gemm => "gemm",
        }
    }
}

/// What one block keeps from its forward pass for the backward pass: the CPU engine's
/// `BlockActs` less what is cheap to recompute or not needed. The LayerNorm outputs are
/// recomputed from their inputs and saved statistics (the same kernel on the same inputs, so
/// the same bits), the attention projection's output is not needed, and of the MLP's
/// activation only one side is kept: the output for ReLU (its sign is the input's), the input
/// for GELU (the output is recomputed).
struct Block {
    ln1_mean: CudaSlice<f32>,
    ln1_rstd: CudaSlice<f32>,
    qkv: CudaSlice<f32>,
    att: CudaSlice<f32>,
    z: CudaSlice<f32>,
    mid: CudaSlice<f32>,
    ln2_mean: CudaSlice<f32>,
    ln2_rstd: CudaSlice<f32>,
    /// ReLU: the activation's output; GELU: its input.
    mlp: CudaSlice<f32>,
}

/// A model, its optimizer state and the buffers of one batch shape, on the GPU.
pub struct GpuModel {
    pub gpu: Gpu,
    pub cfg: ModelConfig,
    layout: ParamLayout,
    batch: usize,
    seq: usize,
    /// Sequences in the last forward pass (at most `batch`).
    used: usize,
    attention: Attention,
    params: CudaSlice<f32>,
    grads: CudaSlice<f32>,
    m: CudaSlice<f32>,
    v: CudaSlice<f32>,
    decay: CudaSlice<u8>,
    adam: AdamWConfig,
    adam_step: u64,
    cos: CudaSlice<f32>,
    sin: CudaSlice<f32>,
    tokens: CudaSlice<u32>,
    rows: CudaSlice<u32>,
    targets: CudaSlice<u32>,
    scored: usize,
    resid: Vec<CudaSlice<f32>>,
    blocks: Vec<Block>,
    /// A LayerNorm output [N, d], shared by every block: written in the forward pass, and
    /// again in the backward pass where a product's weight gradient needs it.
    ln: CudaSlice<f32>,
    /// The attention projection's output [N, d], shared (forward only).
    attn_out: CudaSlice<f32>,
    /// The MLP activation's side that no block keeps [N, 4d], shared.
    mlp_tmp: CudaSlice<f32>,
    head_in: CudaSlice<f32>,
    lnf: CudaSlice<f32>,
    lnf_mean: CudaSlice<f32>,
    lnf_rstd: CudaSlice<f32>,
    logits: CudaSlice<f32>,
    dlogits: CudaSlice<f32>,
    loss: CudaSlice<f32>,
    correct: CudaSlice<u8>,
    total: CudaSlice<f64>,
    shot_correct: CudaSlice<u32>,
    shot_loss: CudaSlice<f64>,
    g: CudaSlice<f32>,
    gmid: CudaSlice<f32>,
    dln: CudaSlice<f32>,
    dqkv: CudaSlice<f32>,
    dz: CudaSlice<f32>,
    dmlp: CudaSlice<f32>,
    datt: CudaSlice<f32>,
    part_w: CudaSlice<f32>,
    part_b: CudaSlice<f32>,
}

/// A LayerNorm's output gradient, input, and saved mean and 1/std.
type Saved<'a> = (
    &'a CudaSlice<f32>,
    &'a CudaSlice<f32>,
    &'a CudaSlice<f32>,
    &'a CudaSlice<f32>,
);

/// Rows per chunk of the LayerNorm weight-gradient reduction.
const LN_CHUNK: usize = 256;

impl GpuModel {
    /// Uploads `model` (and `moments`, the AdamW state (m, v, step), or zeros) for batches of
    /// `batch` sequences of `seq` input tokens. Set the GPU's precision before: the memory
    /// check counts the bf16 copies of the products' operands.
    pub fn new(
        gpu: Gpu,
        model: &Model,
        adam: AdamWConfig,
        moments: Option<(&[f32], &[f32], u64)>,
        batch: usize,
        seq: usize,
    ) -> Result<GpuModel, CudaError> {
        let c = model.cfg.clone();
        let layout = model.layout.clone();
        let (n, d, f, v, h) = (batch * seq, c.d_model, c.d_mlp(), c.vocab, c.heads);
        let needed = GpuModel::bytes_needed(&c, batch, seq, gpu.precision());
        let (free, _) = cudarc::driver::result::mem_get_info()
            .map_err(|e| crate::gpu::driver("cuMemGetInfo", e))?;
        crate::check_fits(needed, free, &gpu.info.name)?;
        let mut decay = vec![0u8; layout.total];
        for s in &layout.specs {
            if s.decay {
                decay[s.offset..s.offset + s.len].fill(1);
            }
        }
        // cos/sin [seq, d_head/2], computed as the CPU engine's RopeTable computes them.
        let freqs = params::rope_freqs(&c);
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for t in 0..seq {
            for &fr in &freqs {
                let a = t as f64 * fr as f64;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        let (m, vv, step) = match moments {
            Some((m, v, s)) => (gpu.upload(m)?, gpu.upload(v)?, s),
            None => (gpu.zeros(layout.total)?, gpu.zeros(layout.total)?, 0),
        };
        let z = |len: usize| gpu.zeros::<f32>(len);
        let mut blocks = Vec::new();
        for _ in 0..c.layers {
            blocks.push(Block {
                ln1_mean: z(n)?,
                ln1_rstd: z(n)?,
                qkv: z(n * 3 * d)?,
                att: z(batch * h * seq * seq)?,
                z: z(n * d)?,
                mid: z(n * d)?,
                ln2_mean: z(n)?,
                ln2_rstd: z(n)?,
                mlp: z(n * f)?,
            });
        }
        let chunks = n.div_ceil(LN_CHUNK);
        Ok(GpuModel {
            params: gpu.upload(&model.params)?,
            grads: z(layout.total)?,
            m,
            v: vv,
            decay: gpu.upload(&decay)?,
            adam,
            adam_step: step,
            cos: gpu.upload(&cos)?,
            sin: gpu.upload(&sin)?,
            tokens: gpu.zeros(n)?,
            rows: gpu.zeros(n)?,
            targets: gpu.zeros(n)?,
            scored: 0,
            resid: (0..=c.layers).map(|_| z(n * d)).collect::<Result<_, _>>()?,
            blocks,
            ln: z(n * d)?,
            attn_out: z(n * d)?,
            mlp_tmp: z(n * f)?,
            head_in: z(n * d)?,
            lnf: z(n * d)?,
            lnf_mean: z(n)?,
            lnf_rstd: z(n)?,
            logits: z(n * v)?,
            dlogits: z(n * v)?,
            loss: z(n)?,
            correct: gpu.zeros(n)?,
            total: gpu.zeros(1)?,
            shot_correct: gpu.zeros(seq)?,
            shot_loss: gpu.zeros(seq)?,
            g: z(n * d)?,
            gmid: z(n * d)?,
            dln: z(n * d)?,
            dqkv: z(n * 3 * d)?,
            dz: z(n * d)?,
            dmlp: z(n * f)?,
            datt: z(batch * h * seq * seq)?,
            part_w: z(chunks * d)?,
            part_b: z(chunks * d)?,
            gpu,
            cfg: c,
            layout,
            batch,
            seq,
            used: 0,
            attention: Attention::default(),
        })
    }

    /// Computes attention the way `how` says from now on ([`Attention::Warp`] until set).
    pub fn set_attention(&mut self, how: Attention) {
        self.attention = how;
    }

    /// How attention is computed.
    pub fn attention(&self) -> Attention {
        self.attention
    }

    /// The most sequences a forward pass takes.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Per shot of the last forward pass (`shots` scored positions per sequence): correct
    /// answers and summed loss over its sequences, counted on the device, so an evaluation
    /// copies back `shots` numbers of each, not logits.
    pub fn shot_counts(&mut self, shots: usize) -> Result<(Vec<u32>, Vec<f64>), CudaError> {
        assert!(
            shots > 0 && shots <= self.seq && self.scored == self.used * shots,
            "shot_counts: {shots} shots do not divide the last forward pass"
        );
        let (ns, si) = (self.used as i32, shots as i32);
        launch!(
            &self.gpu,
            "shot_counts",
            per_element(shots),
            &self.correct,
            &self.loss,
            &mut self.shot_correct,
            &mut self.shot_loss,
            &ns,
            &si
        )?;
        let c = self.gpu.download(&self.shot_correct)?;
        let l = self.gpu.download(&self.shot_loss)?;
        Ok((c[..shots].to_vec(), l[..shots].to_vec()))
    }

    /// The parameters, copied back (layout order).
    pub fn params(&self) -> Result<Vec<f32>, CudaError> {
        self.gpu.download(&self.params)
    }

    /// The gradients of the last backward pass (layout order).
    pub fn grads(&self) -> Result<Vec<f32>, CudaError> {
        self.gpu.download(&self.grads)
    }

    /// The AdamW state: first and second moments and the step count.
    pub fn moments(&self) -> Result<(Vec<f32>, Vec<f32>, u64), CudaError> {
        Ok((
            self.gpu.download(&self.m)?,
            self.gpu.download(&self.v)?,
            self.adam_step,
        ))
    }

    /// Per scored position of the last forward pass, in (sequence, shot) order: whether the
    /// argmax was the target, and the cross-entropy.
    pub fn target_stats(&self) -> Result<(Vec<bool>, Vec<f32>), CudaError> {
        let sc = self.scored;
        let correct = self.gpu.download(&self.correct)?;
        let loss = self.gpu.download(&self.loss)?;
        Ok((
            correct[..sc].iter().map(|&c| c != 0).collect(),
            loss[..sc].to_vec(),
        ))
    }

    /// About how many bytes of GPU memory [`GpuModel::new`] allocates for this model and
    /// batch shape (every buffer, f32 unless noted), with the bf16 copies of the largest
    /// product's operands under [`Precision::Bf16`].
    pub fn bytes_needed(c: &ModelConfig, batch: usize, seq: usize, p: Precision) -> usize {
        let layout = ParamLayout::new(c);
        let (n, d, f, v, h, l) = (
            batch * seq,
            c.d_model,
            c.d_mlp(),
            c.vocab,
            c.heads,
            c.layers,
        );
        let att = batch * h * seq * seq;
        // qkv, z, mid; four row statistics; the probabilities; one side of the MLP.
        let per_block = 5 * n * d + 4 * n + att + n * f;
        let floats = 4 * layout.total
            + l * per_block
            + (l + 1) * n * d
            + 2 * n * d
            + n * f
            + 2 * n * d
            + 3 * n
            + 2 * n * v
            + 7 * n * d
            + n * f
            + att
            + 2 * n.div_ceil(LN_CHUNK) * d
            + seq * c.d_head();
        // Two bf16 operands, each at most an activation [N, max(F, 3d, V)] (a weight gradient
        // multiplies two activations).
        let bf16 = match p {
            Precision::Bf16 => 2 * 2 * n * f.max(3 * d).max(v),
            Precision::F32 | Precision::Tf32 => 0,
        };
        4 * floats + layout.total + 4 * n + 3 * 4 * n + bf16
    }

    /// The logits at the scored rows of the last forward pass [S, V], in (sequence, shot)
    /// order.
    pub fn logits(&self) -> Result<Vec<f32>, CudaError> {
        let all = self.gpu.download(&self.logits)?;
        Ok(all[..self.scored * self.cfg.vocab].to_vec())
    }

    /// Forward pass and loss, as `Model::forward` (same arguments, no recorder), on at most
    /// [`GpuModel::batch`] sequences. Also leaves d loss / d logits for [`GpuModel::backward`].
    pub fn forward(
        &mut self,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
    ) -> Result<Loss, CudaError> {
        let t = self.seq;
        let b = tokens.len() / seq_len.max(1);
        let c = self.cfg.clone();
        let (n, d, v, h, f) = (b * t, c.d_model, c.vocab, c.heads, c.d_mlp());
        assert!(
            seq_len == t + 1 && tokens.len() == b * seq_len && b <= self.batch && b > 0,
            "forward: 1 to {} sequences of {} tokens expected",
            self.batch,
            t + 1
        );
        self.used = b;
        let mut input = Vec::with_capacity(n);
        let (mut rows, mut targets) = (Vec::new(), Vec::new());
        for s in 0..b {
            input.extend_from_slice(&tokens[s * seq_len..s * seq_len + t]);
            for &j in positions {
                rows.push((s * t + j) as u32);
                targets.push(tokens[s * seq_len + j + 1]);
            }
        }
        let sc = rows.len();
        self.scored = sc;
        let gpu = &self.gpu;
        let st = &gpu.stream;
        st.memcpy_htod(&input, &mut self.tokens.slice_mut(..n))
            .map_err(|e| crate::gpu::driver("tokens", e))?;
        st.memcpy_htod(&rows, &mut self.rows.slice_mut(..sc))
            .map_err(|e| crate::gpu::driver("rows", e))?;
        st.memcpy_htod(&targets, &mut self.targets.slice_mut(..sc))
            .map_err(|e| crate::gpu::driver("targets", e))?;
        let lay = &self.layout;
        let p = &self.params;
        let w = |off: usize, len: usize| p.slice(off..off + len);
        let (ni, di, ti) = (n as i32, d as i32, t as i32);
        let (dh, eps) = (c.d_head() as i32, c.ln_eps);
        let act = match c.act {
            Activation::Relu => 0i32,
            Activation::GeluTanh => 1i32,
        };
        launch!(
            gpu,
            "embed_fwd",
            per_element(n * d),
            &mut self.resid[0],
            &w(lay.wte, v * d),
            &self.tokens,
            &ni,
            &di
        )?;
        for (l, off) in lay.blocks.iter().enumerate() {
            let (before, after) = self.resid.split_at_mut(l + 1);
            let (x, out) = (&before[l], &mut after[0]);
            let a = &mut self.blocks[l];
            ln_fwd(
                gpu,
                (&mut self.ln, &mut a.ln1_mean, &mut a.ln1_rstd),
                x,
                (&w(off.ln1_w, d), &w(off.ln1_b, d)),
                (n, d, eps),
            )?;
            gpu.linear(
                &mut a.qkv,
                &self.ln,
                &w(off.qkv, 3 * d * d),
                n,
                d,
                3 * d,
                false,
            )?;
            let zero = 0i32;
            launch!(
                gpu,
                "rope",
                per_element(n * d),
                &mut a.qkv,
                &self.cos,
                &self.sin,
                &ni,
                &ti,
                &di,
                &dh,
                &zero
            )?;
            let shape = (b, t, d, h);
            attention_fwd(gpu, self.attention, &a.qkv, (&mut a.att, &mut a.z), shape)?;
            gpu.linear(&mut self.attn_out, &a.z, &w(off.o, d * d), n, d, d, false)?;
            let nd = (n * d) as i64;
            launch!(
                gpu,
                "add",
                per_element(n * d),
                &mut a.mid,
                x,
                &self.attn_out,
                &nd
            )?;
            ln_fwd(
                gpu,
                (&mut self.ln, &mut a.ln2_mean, &mut a.ln2_rstd),
                &a.mid,
                (&w(off.ln2_w, d), &w(off.ln2_b, d)),
                (n, d, eps),
            )?;
            // The block keeps the activation's output (ReLU) or input (GELU).
            let (pre, post) = match c.act {
                Activation::Relu => (&mut self.mlp_tmp, &mut a.mlp),
                Activation::GeluTanh => (&mut a.mlp, &mut self.mlp_tmp),
            };
            gpu.linear(pre, &self.ln, &w(off.fc, f * d), n, d, f, false)?;
            let nf = (n * f) as i64;
            launch!(
                gpu,
                "act_fwd",
                per_element(n * f),
                &mut *post,
                &*pre,
                &nf,
                &act
            )?;
            st.memcpy_dtod(&a.mid, out)
                .map_err(|e| crate::gpu::driver("residual copy", e))?;
            gpu.linear(out, &*post, &w(off.proj, d * f), n, f, d, true)?;
        }
        let (sci, vi) = (sc as i32, v as i32);
        launch!(
            gpu,
            "gather_rows",
            per_element(sc * d),
            &mut self.head_in,
            &self.resid[c.layers],
            &self.rows,
            &sci,
            &di
        )?;
        ln_fwd(
            gpu,
            (&mut self.lnf, &mut self.lnf_mean, &mut self.lnf_rstd),
            &self.head_in,
            (&w(lay.lnf_w, d), &w(lay.lnf_b, d)),
            (sc, d, eps),
        )?;
        gpu.linear(
            &mut self.logits,
            &self.lnf,
            &w(lay.head, v * d),
            sc,
            d,
            v,
            false,
        )?;
        let inv = 1.0 / sc.max(1) as f32;
        launch!(
            gpu,
            "cross_entropy",
            per_warp(sc),
            &self.logits,
            &self.targets,
            &mut self.loss,
            &mut self.correct,
            &mut self.dlogits,
            &sci,
            &vi,
            &inv
        )?;
        launch!(
            gpu,
            "sum_f64",
            one_block(),
            &mut self.total,
            &self.loss,
            &sci
        )?;
        let total = gpu.download(&self.total)?[0];
        let correct = gpu.download(&self.correct.slice(..sc.max(1)))?;
        Ok(Loss {
            mean: if sc == 0 {
                0.0
            } else {
                (total / sc as f64) as f32
            },
            count: sc,
            correct: correct[..sc].iter().filter(|&&x| x != 0).count(),
        })
    }

    /// Gradients of the last forward pass's mean loss into the device gradient buffer, as
    /// `Model::backward`.
    pub fn backward(&mut self) -> Result<(), CudaError> {
        let (b, t) = (self.used, self.seq);
        let c = self.cfg.clone();
        let (n, d, v, h, f) = (b * t, c.d_model, c.vocab, c.heads, c.d_mlp());
        let sc = self.scored;
        let gpu = &self.gpu;
        let st = &gpu.stream;
        let lay = self.layout.clone();
        let p = &self.params;
        let w = |off: usize, len: usize| p.slice(off..off + len);
        let (ni, di, ti, sci, vi) = (n as i32, d as i32, t as i32, sc as i32, v as i32);
        let dh = c.d_head() as i32;
        let act = match c.act {
            Activation::Relu => 0i32,
            Activation::GeluTanh => 1i32,
        };
        let grads = &mut self.grads;
        if !c.tied {
            st.memset_zeros(&mut grads.slice_mut(lay.wte..lay.wte + v * d))
                .map_err(|e| crate::gpu::driver("zeroing", e))?;
        }
        // Head and final LayerNorm at the scored rows.
        gpu.linear_bwd(
            (
                &mut self.dln,
                &mut grads.slice_mut(lay.head..lay.head + v * d),
            ),
            &self.dlogits,
            (&self.lnf, &w(lay.head, v * d)),
            sc,
            d,
            v,
        )?;
        ln_bwd_dx(
            gpu,
            &mut self.gmid,
            (&self.dln, &self.head_in, &self.lnf_mean, &self.lnf_rstd),
            &w(lay.lnf_w, d),
            (sc, d),
            false,
        )?;
        ln_weight_grads(
            gpu,
            grads,
            (lay.lnf_w, lay.lnf_b),
            (&self.dln, &self.head_in, &self.lnf_mean, &self.lnf_rstd),
            (sc, d),
            (&mut self.part_w, &mut self.part_b),
        )?;
        st.memset_zeros(&mut self.g)
            .map_err(|e| crate::gpu::driver("zeroing", e))?;
        launch!(
            gpu,
            "scatter_add_rows",
            per_element(sc * d),
            &mut self.g,
            &self.gmid,
            &self.rows,
            &sci,
            &di
        )?;
        let one = 1i32;
        let eps = c.ln_eps;
        for (l, off) in lay.blocks.iter().enumerate().rev() {
            let a = &mut self.blocks[l];
            let BlockOffsets {
                ln1_w,
                ln1_b,
                qkv,
                o,
                ln2_w,
                ln2_b,
                fc,
                proj,
            } = *off;
            // MLP: g is d resid_post. The activation's output: kept (ReLU) or recomputed.
            let nf = (n * f) as i64;
            let post = match c.act {
                Activation::Relu => &a.mlp,
                Activation::GeluTanh => {
                    let (tmp, pre) = (&mut self.mlp_tmp, &a.mlp);
                    launch!(gpu, "act_fwd", per_element(n * f), tmp, pre, &nf, &act)?;
                    &self.mlp_tmp
                }
            };
            gpu.linear_bwd(
                (&mut self.dmlp, &mut grads.slice_mut(proj..proj + d * f)),
                &self.g,
                (post, &w(proj, d * f)),
                n,
                f,
                d,
            )?;
            // ReLU's derivative from its output: the output is positive where the input is.
            launch!(
                gpu,
                "act_bwd",
                per_element(n * f),
                &mut self.dmlp,
                &a.mlp,
                &nf,
                &act
            )?;
            ln_fwd(
                gpu,
                (&mut self.ln, &mut a.ln2_mean, &mut a.ln2_rstd),
                &a.mid,
                (&w(ln2_w, d), &w(ln2_b, d)),
                (n, d, eps),
            )?;
            gpu.linear_bwd(
                (&mut self.dln, &mut grads.slice_mut(fc..fc + f * d)),
                &self.dmlp,
                (&self.ln, &w(fc, f * d)),
                n,
                d,
                f,
            )?;
            // gmid = g + ln_2's input gradient.
            ln_bwd_residual(
                gpu,
                (&mut self.gmid, &self.g),
                (&self.dln, &a.mid, &a.ln2_mean, &a.ln2_rstd),
                (grads, &w(ln2_w, d), (ln2_w, ln2_b)),
                (n, d),
                (&mut self.part_w, &mut self.part_b),
            )?;
            // Attention: gmid is d resid_mid.
            gpu.linear_bwd(
                (&mut self.dz, &mut grads.slice_mut(o..o + d * d)),
                &self.gmid,
                (&a.z, &w(o, d * d)),
                n,
                d,
                d,
            )?;
            attention_bwd(
                gpu,
                self.attention,
                (&a.qkv, &a.att, &self.dz),
                (&mut self.datt, &mut self.dqkv),
                (b, t, d, h),
            )?;
            launch!(
                gpu,
                "rope",
                per_element(n * d),
                &mut self.dqkv,
                &self.cos,
                &self.sin,
                &ni,
                &ti,
                &di,
                &dh,
                &one
            )?;
            ln_fwd(
                gpu,
                (&mut self.ln, &mut a.ln1_mean, &mut a.ln1_rstd),
                &self.resid[l],
                (&w(ln1_w, d), &w(ln1_b, d)),
                (n, d, eps),
            )?;
            gpu.linear_bwd(
                (&mut self.dln, &mut grads.slice_mut(qkv..qkv + 3 * d * d)),
                &self.dqkv,
                (&self.ln, &w(qkv, 3 * d * d)),
                n,
                d,
                3 * d,
            )?;
            // g = gmid + ln_1's input gradient.
            ln_bwd_residual(
                gpu,
                (&mut self.g, &self.gmid),
                (&self.dln, &self.resid[l], &a.ln1_mean, &a.ln1_rstd),
                (grads, &w(ln1_w, d), (ln1_w, ln1_b)),
                (n, d),
                (&mut self.part_w, &mut self.part_b),
            )?;
        }
        launch!(
            gpu,
            "embed_bwd",
            per_element(v * d),
            &mut grads.slice_mut(lay.wte..lay.wte + v * d),
            &self.g,
            &self.tokens,
            &ni,
            &di,
            &vi
        )?;
        Ok(())
    }

    /// One AdamW step with learning rate `lr`, as `AdamW::update`.
    pub fn update(&mut self, lr: f32) -> Result<(), CudaError> {
        self.adam_step += 1;
        let c = self.adam;
        let t = self.adam_step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2_sqrt = ((1.0 - (c.beta2 as f64).powi(t)).sqrt()) as f32;
        let step_size = (lr as f64 / bc1) as f32;
        let n = self.layout.total as i64;
        launch!(
            &self.gpu,
            "adamw",
            per_element(self.layout.total),
            &mut self.params,
            &self.grads,
            &mut self.m,
            &mut self.v,
            &self.decay,
            &n,
            &lr,
            &c.weight_decay,
            &c.beta1,
            &c.beta2,
            &c.eps,
            &step_size,
            &bc2_sqrt
        )
    }
}

/// The per-head geometry of the batched-GEMM attention over qkv [b·t, 3d]: the head width, the
/// scores' scale 1/√dh, qkv's row stride, and the size of one head's T×T block of `att`.
struct Heads {
    dh: usize,
    scale: f32,
    row: usize,
    tt: usize,
}

impl Heads {
    fn new(t: usize, d: usize, h: usize) -> Heads {
        let dh = d / h;
        Heads {
            dh,
            scale: 1.0 / (dh as f32).sqrt(),
            row: 3 * d,
            tt: t * t,
        }
    }
}

/// Causal attention of one block over `b` sequences of `t` tokens, width `d`, `h` heads: the
/// probabilities into `att` [b, h, t, t] and the heads' outputs into `z` [b·t, d], from `qkv`
/// [b·t, 3d] (after RoPE).
fn attention_fwd(
    gpu: &Gpu,
    how: Attention,
    qkv: &CudaSlice<f32>,
    (att, z): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
    (b, t, d, h): (usize, usize, usize, usize),
) -> Result<(), CudaError> {
    let (bi, ti, di, hi) = (b as i32, t as i32, d as i32, h as i32);
    let rows = b * h * t;
    match how {
        Attention::Warp => launch!(
            gpu,
            "attn_fwd",
            per_warp(rows),
            qkv,
            att,
            z,
            &bi,
            &ti,
            &di,
            &hi
        ),
        Attention::Gemm => {
            let Heads { dh, scale, row, tt } = Heads::new(t, d, h);
            let ri = rows as i32;
            // Scores, query-major: column-major (keys x queries) = Kᵀ Q, per head and sequence.
            for head in 0..h {
                let (o, p) = (head * dh, head * tt);
                gpu.gemm_batched(
                    (true, false),
                    (t, t, dh),
                    scale,
                    (&qkv.slice(d + o..), row, t * row),
                    (&qkv.slice(o..), row, t * row),
                    (&mut att.slice_mut(p..), t, h * tt),
                    b,
                )?;
            }
            launch!(gpu, "softmax_causal", per_warp(rows), &mut *att, &ri, &ti)?;
            // z (dh x queries) = V P, P column-major (keys x queries).
            for head in 0..h {
                let (o, p) = (head * dh, head * tt);
                gpu.gemm_batched(
                    (false, false),
                    (dh, t, t),
                    1.0,
                    (&qkv.slice(2 * d + o..), row, t * row),
                    (&att.slice(p..), t, h * tt),
                    (&mut z.slice_mut(o..), d, t * d),
                    b,
                )?;
            }
            Ok(())
        }
    }
}

/// The backward pass of [`attention_fwd`]: from the output gradient `dz`, the gradients of
/// q, k and v into `dqkv` (overwritten; RoPE not yet undone), with `datt` as scratch.
fn attention_bwd(
    gpu: &Gpu,
    how: Attention,
    (qkv, att, dz): (&CudaSlice<f32>, &CudaSlice<f32>, &CudaSlice<f32>),
    (datt, dqkv): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
    (b, t, d, h): (usize, usize, usize, usize),
) -> Result<(), CudaError> {
    let (bi, ti, di, hi) = (b as i32, t as i32, d as i32, h as i32);
    let rows = b * h * t;
    match how {
        Attention::Warp => {
            let cfg = per_warp(rows);
            let dq = (&mut *datt, &mut *dqkv);
            launch!(
                gpu,
                "attn_bwd_q",
                cfg,
                qkv,
                att,
                dz,
                dq.0,
                dq.1,
                &bi,
                &ti,
                &di,
                &hi
            )?;
            launch!(
                gpu,
                "attn_bwd_kv",
                cfg,
                qkv,
                att,
                dz,
                &*datt,
                dqkv,
                &bi,
                &ti,
                &di,
                &hi
            )
        }
        Attention::Gemm => {
            let Heads { dh, scale, row, tt } = Heads::new(t, d, h);
            let ri = rows as i32;
            // d loss / d P, query-major: column-major (keys x queries) = Vᵀ dz.
            for head in 0..h {
                let (o, p) = (head * dh, head * tt);
                gpu.gemm_batched(
                    (true, false),
                    (t, t, dh),
                    1.0,
                    (&qkv.slice(2 * d + o..), row, t * row),
                    (&dz.slice(o..), d, t * d),
                    (&mut datt.slice_mut(p..), t, h * tt),
                    b,
                )?;
            }
            launch!(
                gpu,
                "softmax_causal_bwd",
                per_warp(rows),
                &mut *datt,
                att,
                &ri,
                &ti
            )?;
            for head in 0..h {
                let (o, p) = (head * dh, head * tt);
                let ds = (&datt.slice(p..), t, h * tt);
                // Column-major (dh x tokens): dq = scale · K dS, dk = scale · Q dSᵀ, dv = dz Pᵀ.
                gpu.gemm_batched(
                    (false, false),
                    (dh, t, t),
                    scale,
                    (&qkv.slice(d + o..), row, t * row),
                    ds,
                    (&mut dqkv.slice_mut(o..), row, t * row),
                    b,
                )?;
                gpu.gemm_batched(
                    (false, true),
                    (dh, t, t),
                    scale,
                    (&qkv.slice(o..), row, t * row),
                    ds,
                    (&mut dqkv.slice_mut(d + o..), row, t * row),
                    b,
                )?;
                gpu.gemm_batched(
                    (false, true),
                    (dh, t, t),
                    1.0,
                    (&dz.slice(o..), d, t * d),
                    (&att.slice(p..), t, h * tt),
                    (&mut dqkv.slice_mut(2 * d + o..), row, t * row),
                    b,
                )?;
            }
            Ok(())
        }
    }
}

/// LayerNorm forward over `rows` rows of width `d`: the output, mean and 1/std.
fn ln_fwd(
    gpu: &Gpu,
    (y, mean, rstd): (
        &mut CudaSlice<f32>,
        &mut CudaSlice<f32>,
        &mut CudaSlice<f32>,
    ),
    x: &CudaSlice<f32>,
    (w, b): (&CudaView<'_, f32>, &CudaView<'_, f32>),
    (rows, d, eps): (usize, usize, f32),
) -> Result<(), CudaError> {
    let (ri, di) = (rows as i32, d as i32);
    launch!(
        gpu,
        "ln_fwd",
        per_warp(rows),
        y,
        mean,
        rstd,
        x,
        w,
        b,
        &ri,
        &di,
        &eps
    )
}

/// A LayerNorm's input gradient from its output gradient (`saved`: dy, x, mean, 1/std),
/// written into `dx` or added to it.
fn ln_bwd_dx(
    gpu: &Gpu,
    dx: &mut CudaSlice<f32>,
    (dy, x, mean, rstd): Saved<'_>,
    w: &CudaView<'_, f32>,
    (rows, d): (usize, usize),
    accumulate: bool,
) -> Result<(), CudaError> {
    let (ri, di, acc) = (rows as i32, d as i32, accumulate as i32);
    launch!(
        gpu,
        "ln_bwd_dx",
        per_warp(rows),
        dx,
        dy,
        x,
        mean,
        rstd,
        w,
        &ri,
        &di,
        &acc
    )
}

/// The backward pass of a LayerNorm inside a residual block: `out = residual + dx` (dx the
/// LayerNorm's input gradient) and its weight and bias gradients at `offsets` of `grads`.
fn ln_bwd_residual(
    gpu: &Gpu,
    (out, residual): (&mut CudaSlice<f32>, &CudaSlice<f32>),
    saved: Saved<'_>,
    (grads, w, offsets): (&mut CudaSlice<f32>, &CudaView<'_, f32>, (usize, usize)),
    shape: (usize, usize),
    parts: (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
) -> Result<(), CudaError> {
    gpu.stream
        .memcpy_dtod(residual, out)
        .map_err(|e| crate::gpu::driver("copy", e))?;
    ln_bwd_dx(gpu, out, saved, w, shape, true)?;
    ln_weight_grads(gpu, grads, offsets, saved, shape, parts)
}

/// A LayerNorm's weight and bias gradients (overwritten) at `(w_off, b_off)` of `grads`, from
/// its output gradient `dy` and input `x` over `rows` rows: fixed row chunks, then the chunks
/// in order.
fn ln_weight_grads(
    gpu: &Gpu,
    grads: &mut CudaSlice<f32>,
    (w_off, b_off): (usize, usize),
    (dy, x, mean, rstd): Saved<'_>,
    (rows, d): (usize, usize),
    (part_w, part_b): (&mut CudaSlice<f32>, &mut CudaSlice<f32>),
) -> Result<(), CudaError> {
    let chunks = rows.div_ceil(LN_CHUNK);
    let (ri, di, ci, ki) = (rows as i32, d as i32, LN_CHUNK as i32, chunks as i32);
    launch!(
        gpu,
        "ln_bwd_wb_partial",
        per_element(chunks * d),
        &mut *part_w,
        &mut *part_b,
        dy,
        x,
        mean,
        rstd,
        &ri,
        &di,
        &ci
    )?;
    launch!(
        gpu,
        "sum_chunks",
        per_element(d),
        &mut grads.slice_mut(w_off..w_off + d),
        &*part_w,
        &ki,
        &di
    )?;
    launch!(
        gpu,
        "sum_chunks",
        per_element(d),
        &mut grads.slice_mut(b_off..b_off + d),
        &*part_b,
        &ki,
        &di
    )
}
