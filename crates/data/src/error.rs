//! Errors of the data crate.

use modicl_config::ConfigError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    /// A configuration value that cannot produce a valid data set.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An unreadable or malformed task list.
    #[error("invalid task.source = '{spec}': {reason}")]
    TaskFile { spec: String, reason: String },
    /// A file that could not be written (export).
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
}

impl DataError {
    /// Whether the user's input is at fault (the CLI exits with status 2) rather than the system.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, DataError::Write { .. })
    }
}
