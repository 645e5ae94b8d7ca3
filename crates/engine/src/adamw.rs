//! AdamW with PyTorch semantics (`torch.optim.AdamW`, single-tensor path).

use rayon::prelude::*;

use crate::params::ParamLayout;

/// Optimizer hyper-parameters other than the learning rate, which is given per step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Decoupled weight decay, applied to matrices (the embedding included), not LayerNorm.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// The paper's: betas (0.9, 0.98), eps 1e-8, weight decay 2.0.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 2.0,
        }
    }
}

/// Optimizer state: first and second moments, and the number of steps taken.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u64,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig, n_params: usize) -> AdamW {
        AdamW {
            cfg,
            m: vec![0.0; n_params],
            v: vec![0.0; n_params],
            step: 0,
        }
    }

    /// One update: p ← p·(1 − lr·wd) on decayed tensors, then the bias-corrected Adam step
    /// p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps).
    pub fn update(&mut self, params: &mut [f32], grads: &[f32], layout: &ParamLayout, lr: f32) {
        self.step += 1;
        let c = self.cfg;
        // Bias corrections in f64, as PyTorch computes them (Python floats).
        let t = self.step as i32;
        let bc1 = 1.0 - (c.beta1 as f64).powi(t);
        let bc2_sqrt = ((1.0 - (c.beta2 as f64).powi(t)).sqrt()) as f32;
        let step_size = (lr as f64 / bc1) as f32;
        for s in &layout.specs {
            let r = s.offset..s.offset + s.len;
            let decay = if s.decay {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            const CHUNK: usize = 1 << 14;
            params[r.clone()]
                .par_chunks_mut(CHUNK)
                .zip(grads[r.clone()].par_chunks(CHUNK))
                .zip(
                    self.m[r.clone()]
                        .par_chunks_mut(CHUNK)
                        .zip(self.v[r].par_chunks_mut(CHUNK)),
                )
                .for_each(|((p, g), (m, v))| {
                    for i in 0..p.len() {
                        p[i] *= decay;
                        m[i] = c.beta1 * m[i] + (1.0 - c.beta1) * g[i];
                        v[i] = c.beta2 * v[i] + (1.0 - c.beta2) * g[i] * g[i];
                        let denom = v[i].sqrt() / bc2_sqrt + c.eps;
                        p[i] -= step_size * m[i] / denom;
                    }
                });
        }
    }
}
