//! Data parallelism for small models: a batch split into a fixed number of shards of whole
//! sequences, each run forward and backward by one thread with every kernel on that thread,
//! and the shards' gradients summed in shard order.
//!
//! A small model's products (d 64: a few hundred rows by 64 columns) are too small to split
//! across threads without the hand-offs costing more than they save; whole shards are not.
//! The number of shards depends on the model and the batch only ([`Shards::plan`]), never on
//! the number of threads, so a step gives the same bits on any number of threads. With one
//! shard (the larger models) a step is exactly [`Model::forward`] and [`Model::backward`] on a
//! workspace whose kernels split each product across the rayon pool.

use rayon::prelude::*;

use crate::model::{Loss, Model, Workspace};
use crate::params::ModelConfig;
use crate::EngineError;

/// The most shards a batch is split into.
pub const MAX_SHARDS: usize = 8;

/// Models at most this wide are run in shards.
pub const MAX_SHARDED_WIDTH: usize = 128;

/// One shard: its first sequence in the batch, its buffers and its gradient.
#[derive(Debug)]
struct Part {
    start: usize,
    ws: Workspace,
    grads: Vec<f32>,
}

/// The workspaces of a batch of `batch` sequences of `seq` input tokens, split into shards.
#[derive(Debug)]
pub struct Shards {
    parts: Vec<Part>,
    batch: usize,
    target_loss: Vec<f32>,
    target_correct: Vec<bool>,
}

impl Shards {
    /// How many shards a batch of `batch` sequences of this model is split into: one for
    /// models wider than [`MAX_SHARDED_WIDTH`] (their products are large enough to split
    /// across threads), else up to [`MAX_SHARDS`], at least 4 sequences each.
    pub fn plan(cfg: &ModelConfig, batch: usize) -> usize {
        if cfg.d_model > MAX_SHARDED_WIDTH {
            1
        } else {
            (batch / 4).clamp(1, MAX_SHARDS)
        }
    }

    /// The shards [`Shards::plan`] gives.
    pub fn new(cfg: &ModelConfig, batch: usize, seq: usize) -> Shards {
        Shards::with_count(cfg, batch, seq, Shards::plan(cfg, batch))
    }

    /// `count` shards of (nearly) equal size, at most one per sequence; one shard is the
    /// whole batch on a workspace whose kernels use every thread.
    pub fn with_count(cfg: &ModelConfig, batch: usize, seq: usize, count: usize) -> Shards {
        let count = count.clamp(1, batch.max(1));
        let n_params = crate::params::ParamLayout::new(cfg).total;
        let parts = (0..count)
            .map(|s| {
                let (start, end) = (s * batch / count, (s + 1) * batch / count);
                if count == 1 {
                    Part {
                        start,
                        ws: Workspace::new(cfg, batch, seq),
                        grads: Vec::new(),
                    }
                } else {
                    Part {
                        start,
                        ws: Workspace::sequential(cfg, end - start, seq),
                        grads: vec![0f32; n_params],
                    }
                }
            })
            .collect();
        Shards {
            parts,
            batch,
            target_loss: Vec::new(),
            target_correct: Vec::new(),
        }
    }

    /// Number of shards.
    pub fn count(&self) -> usize {
        self.parts.len()
    }

    /// Sequences per batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Per scored position of the last forward pass, in (sequence, shot) order: cross-entropy.
    pub fn target_loss(&self) -> &[f32] {
        match &self.parts[..] {
            [one] => &one.ws.target_loss,
            _ => &self.target_loss,
        }
    }

    /// Per scored position of the last forward pass, in (sequence, shot) order: whether the
    /// argmax is the target.
    pub fn target_correct(&self) -> &[bool] {
        match &self.parts[..] {
            [one] => &one.ws.target_correct,
            _ => &self.target_correct,
        }
    }

    /// [`Model::forward`] on the whole batch (`tokens` holds `batch` sequences of `seq_len`
    /// tokens), shard by shard in parallel.
    pub fn forward(
        &mut self,
        model: &Model,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
    ) -> Result<Loss, EngineError> {
        self.run(model, tokens, seq_len, positions, None)
    }

    /// [`Model::forward`] then [`Model::backward`] on the whole batch: the gradient of the
    /// batch's mean loss, written into `grads` (layout order).
    pub fn forward_backward(
        &mut self,
        model: &Model,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
        grads: &mut [f32],
    ) -> Result<Loss, EngineError> {
        self.run(model, tokens, seq_len, positions, Some(grads))
    }

    fn run(
        &mut self,
        model: &Model,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
        grads: Option<&mut [f32]>,
    ) -> Result<Loss, EngineError> {
        if tokens.len() != self.batch * seq_len {
            return Err(EngineError::Shape(format!(
                "the shards hold {} sequences of {seq_len} tokens; got {} tokens",
                self.batch,
                tokens.len()
            )));
        }
        if let [one] = &mut self.parts[..] {
            let loss = model.forward(&mut one.ws, tokens, seq_len, positions, None)?;
            if let Some(g) = grads {
                model.backward(&mut one.ws, g);
            }
            return Ok(loss);
        }
        let scale = 1.0 / (self.batch * positions.len()).max(1) as f32;
        let backward = grads.is_some();
        self.parts.par_iter_mut().with_max_len(1).try_for_each(
            |part| -> Result<(), EngineError> {
                let rows = part.ws.batch;
                let toks = &tokens[part.start * seq_len..(part.start + rows) * seq_len];
                model.forward(&mut part.ws, toks, seq_len, positions, None)?;
                if backward {
                    model.backward_scaled(&mut part.ws, &mut part.grads, scale);
                }
                Ok(())
            },
        )?;
        self.target_loss.clear();
        self.target_correct.clear();
        for part in &self.parts {
            self.target_loss.extend_from_slice(&part.ws.target_loss);
            self.target_correct
                .extend_from_slice(&part.ws.target_correct);
        }
        if let Some(grads) = grads {
            // Each element is the sum of the shards' in shard order, whatever the threads.
            const CHUNK: usize = 1 << 12;
            let parts = &self.parts;
            grads
                .par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(c, out)| {
                    let span = c * CHUNK..c * CHUNK + out.len();
                    out.copy_from_slice(&parts[0].grads[span.clone()]);
                    for part in &parts[1..] {
                        for (o, &g) in out.iter_mut().zip(&part.grads[span.clone()]) {
                            *o += g;
                        }
                    }
                });
        }
        Ok(Loss::from_targets(&self.target_loss, &self.target_correct))
    }
}
