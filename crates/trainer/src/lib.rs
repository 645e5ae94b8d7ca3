//! modicl's trainer: one run from a [`Config`] to a run directory.
//!
//! - [`train`]: the training loop (readable top to bottom: batch, forward, backward, AdamW,
//!   evaluation, checkpoints), fresh or resumed;
//! - [`eval`]: the four evaluation sets and the metrics (exact integer counts);
//! - [`metrics`]: `metrics.csv` and `shots.csv`;
//! - [`names`]: the names of sets, metrics and checkpoints, as enums;
//! - [`oracles`]: accuracy read against Ratio Matching and Modular Regression, and the label
//!   "o.o.d. generalization at the Ratio Matching level";
//! - [`rundir`]: the run directory's layout, atomic writes and checkpoints;
//! - [`schedule`]: the official learning-rate schedule;
//! - [`verify`]: checks every file and checkpoint of a run directory.

pub mod eval;
pub mod metrics;
pub mod names;
pub mod oracles;
pub mod rundir;
pub mod schedule;
pub mod tensorboard;
pub mod train;
pub mod verify;

use std::path::Path;

use modicl_config::{Act, Config, ConfigError};
use modicl_data::DataError;
use modicl_engine::{Activation, AdamWConfig, EngineError, ModelConfig};

pub use eval::{Evaluator, SetMetrics};
pub use metrics::Record;
pub use names::{Checkpoint, Metric, SetName, UnknownName};
pub use rundir::RunDir;
pub use train::{Device, Observer, Outcome, Skipped, StageReading, StageSummary, Summary, Trainer};

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The CUDA backend: a missing driver, library or GPU, a kernel that does not compile, a
    /// GPU too small or out of memory.
    #[error(transparent)]
    Cuda(#[from] modicl_cuda::CudaError),
    /// A file or folder that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A run-directory file that does not hold what it should.
    #[error("{path} is corrupt or truncated: {reason}")]
    Corrupt { path: String, reason: String },
    /// Starting a fresh run where one already exists.
    #[error("{path} already holds a run: continue it with --resume {path}, replace it with --overwrite, or choose another --run-dir")]
    RunExists { path: String },
    /// Not a run directory (no config.toml), or no checkpoint to evaluate.
    #[error("{0}")]
    NotARun(String),
    /// The GPU failed during training (out of memory, say): the steps since the newest
    /// checkpoint are lost, that checkpoint is kept.
    #[error("{source} at step {step}; the run stopped, its newest checkpoint is kept ({}); continue it with --resume", last.map(|s| format!("step {s}")).unwrap_or_else(|| "none was written yet".into()))]
    GpuFailed {
        step: u64,
        source: modicl_cuda::CudaError,
        last: Option<u64>,
    },
    /// The loss or the weights stopped being finite.
    #[error("{what} at step {step}; the run stopped, its last good checkpoint is kept ({})", last.map(|s| format!("step {s}")).unwrap_or_else(|| "none was written yet".into()))]
    NonFinite {
        step: u64,
        what: String,
        last: Option<u64>,
    },
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> TrainError {
        TrainError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the error comes from what the user asked for (exit status 2) rather than from
    /// the run itself or the machine (exit status 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            TrainError::Config(_) | TrainError::RunExists { .. } | TrainError::NotARun(_) => true,
            TrainError::Data(e) => e.is_bad_input(),
            TrainError::Engine(EngineError::Config(_)) => true,
            // What the machine cannot do that the user asked of it: exit status 2.
            TrainError::Cuda(e) | TrainError::GpuFailed { source: e, .. } => {
                !matches!(e, modicl_cuda::CudaError::Driver(_))
            }
            _ => false,
        }
    }
}

/// The CUDA backend's arithmetic for a config's `train.precision`.
pub fn gpu_precision(p: modicl_config::Precision) -> modicl_cuda::Precision {
    match p {
        modicl_config::Precision::F32 => modicl_cuda::Precision::F32,
        modicl_config::Precision::Tf32 => modicl_cuda::Precision::Tf32,
        modicl_config::Precision::Bf16 => modicl_cuda::Precision::Bf16,
    }
}

/// Whether a configuration can run on the GPU `info` (no context-length curriculum there) and
/// its model and batch fit in the free memory of `info`, the GPU that `--device cuda` would use ([`modicl_cuda::CudaError::TooSmall`], naming both, if not): for
/// checking before a run directory is made. The trainer checks again when it starts.
pub fn check_gpu_fits(cfg: &Config, info: &modicl_cuda::DeviceInfo) -> Result<(), TrainError> {
    if cfg.curriculum.examples.is_on() {
        return Err(ConfigError::invalid(
            "curriculum.examples",
            format!("'{}'", cfg.curriculum.examples),
            "'' with --device cuda (the GPU model is built for one sequence length)",
        )
        .into());
    }
    let seq = modicl_data::SequenceLayout {
        n_var: cfg.task.n_var as usize,
        examples: cfg.task.examples as usize,
    };
    let needed = modicl_cuda::GpuModel::bytes_needed(
        &model_config(cfg),
        cfg.task.batch as usize,
        seq.input_len(),
        gpu_precision(cfg.train.precision),
    );
    Ok(modicl_cuda::check_fits(
        needed,
        info.free_bytes,
        &info.name,
    )?)
}

/// The engine's model shape for a configuration (vocabulary p + 18, the official tokenizer).
pub fn model_config(cfg: &Config) -> ModelConfig {
    let m = &cfg.model;
    ModelConfig {
        mlp_ratio: m.mlp_ratio as usize,
        act: match m.act {
            Act::Relu => Activation::Relu,
            Act::Gelu => Activation::GeluTanh,
        },
        tied: m.tied,
        rope_theta: m.rope_theta,
        ln_eps: m.ln_eps as f32,
        ..ModelConfig::official(
            cfg.task.p as usize,
            m.d_model as usize,
            m.heads as usize,
            m.layers as usize,
        )
    }
}

/// The engine's optimizer settings for a configuration (the learning rate is given per step).
pub fn adamw_config(cfg: &Config) -> AdamWConfig {
    let o = &cfg.optim;
    AdamWConfig {
        beta1: o.beta1 as f32,
        beta2: o.beta2 as f32,
        eps: o.eps as f32,
        weight_decay: o.weight_decay as f32,
    }
}
