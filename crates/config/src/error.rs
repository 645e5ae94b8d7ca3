//! Configuration errors. Each names the key, the offending value and what is allowed, on one line.

use thiserror::Error;

/// An error in a configuration file, a `--set` override or a value's range.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// A value outside its allowed range, or of the wrong type.
    #[error("invalid {key} = {value}: allowed {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    /// A key that no section defines.
    #[error("unknown key {key}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    /// An override that is not `section.key=value`.
    #[error("malformed override '{0}': expected section.key=value, e.g. task.p=31")]
    MalformedOverride(String),
    /// A TOML file that does not parse.
    #[error("{path}: not valid TOML: {reason}")]
    Toml { path: String, reason: String },
    /// A file that cannot be read.
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(key: &str, value: impl ToString, allowed: impl ToString) -> Self {
        ConfigError::Invalid {
            key: one_line(key),
            value: one_line(&value.to_string()),
            allowed: allowed.to_string(),
        }
    }
}

/// Escapes control characters (newlines above all) so an echoed value stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars().flat_map(char::escape_default).collect()
    } else {
        s.to_string()
    }
}
