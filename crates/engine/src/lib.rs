//! modicl's engine: the paper's transformer with a hand-written forward and backward pass, and
//! AdamW, on CPU.
//!
//! - [`params`]: the model's shape, the parameter layout under the official PyTorch state_dict
//!   names (one flat buffer), initialisation and safetensors import/export;
//! - [`model`]: forward (with opt-in activation recording, [`record`]), loss and backward;
//! - [`shard`]: a batch split into shards of sequences run on one thread each (small models);
//! - [`adamw`]: the optimizer, with PyTorch's semantics;
//! - [`ops`]: the kernels (strided GEMM on the `gemm` crate, LayerNorm, RoPE, activations).
//!
//! Parameters, gradients and optimizer moments share one layout, so a second backend (CUDA) is
//! another implementation of the same ops over the same buffers.

pub mod adamw;
mod attention;
pub mod model;
pub mod ops;
pub mod params;
pub mod record;
pub mod shard;
mod simd;

pub use adamw::{AdamW, AdamWConfig};
pub use model::{Loss, Model, Workspace};
pub use params::{Activation, ModelConfig, ParamLayout, ParamSpec};
pub use record::{Recorder, Tensor};
pub use shard::Shards;

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An invalid model shape.
    #[error("{0}")]
    Config(String),
    /// Inputs that do not fit the workspace or the vocabulary.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A malformed or mismatched weights file.
    #[error("weights: {0}")]
    Format(String),
}

/// Matrix-product FLOPs of one training step (forward + backward = 3 × forward), counting
/// attention as full T×T: 3·[N·(24·L·d² ... scaled by the MLP ratio) + 4·L·N·T·d + 2·N·V·d].
pub fn step_flops(c: &ModelConfig, batch: usize, seq: usize) -> f64 {
    let (n, d, l, v) = (
        (batch * seq) as f64,
        c.d_model as f64,
        c.layers as f64,
        c.vocab as f64,
    );
    let per_layer =
        2.0 * n * d * (3.0 * d + d + 2.0 * c.mlp_ratio as f64 * d) + 4.0 * n * seq as f64 * d;
    3.0 * (l * per_layer + 2.0 * n * v * d)
}
