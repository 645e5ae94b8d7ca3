//! modicl's sweeps: many runs from one base configuration and grid axes.
//!
//! - [`grid`]: axes (`key=v1,v2`, ranges, elided and log2 sequences);
//! - [`plan`]: the manifest (`sweep.json`): one resolved config per run, validated up front;
//! - [`exec`]: running runs, one (a SLURM array element) or a local pool, with a lock per run;
//! - [`collect`]: per-run state and the results table;
//! - [`phase`]: phase labels from the four accuracies;
//! - [`slurm`]: job-array scripts and submission;
//! - [`preset`]: named sweeps (the paper's grid, a CPU grid).

pub mod collect;
pub mod exec;
pub mod grid;
pub mod phase;
pub mod plan;
pub mod preset;
pub mod slurm;

use std::path::Path;

pub use grid::Axis;
pub use plan::{Manifest, PlannedRun, SweepDir};

/// Sweep errors.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Config(#[from] modicl_config::ConfigError),
    /// A malformed grid axis.
    #[error("invalid grid axis '{axis}': {reason}")]
    Grid { axis: String, reason: String },
    /// Runs whose configuration cannot train, all of them.
    #[error("{} of the planned runs are invalid: {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0} already holds a sweep (sweep.json or runs/); plan into another directory")]
    Exists(String),
    #[error("{path} is not a sweep directory: {reason}")]
    NotASweep { path: String, reason: String },
    #[error("run index {index} is out of range: the sweep has {runs} runs (0..{runs})")]
    Index { index: usize, runs: usize },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Train(#[from] modicl_trainer::TrainError),
    /// sbatch or another SLURM command failed.
    #[error("{0}")]
    Slurm(String),
}

impl SweepError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SweepError {
        SweepError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the error comes from what the user asked for (exit status 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SweepError::Config(_)
                | SweepError::Grid { .. }
                | SweepError::Invalid(_)
                | SweepError::Exists(_)
                | SweepError::NotASweep { .. }
                | SweepError::Index { .. }
        )
    }
}
