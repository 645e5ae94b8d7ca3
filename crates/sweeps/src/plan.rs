//! A sweep plan: a base configuration times the grid axes, one resolved config per run, in a
//! manifest (`sweep.json`) that is all `sweep plan` writes.

use std::path::{Path, PathBuf};

use modicl_config::{Config, Value};
use serde::{Deserialize, Serialize};

use crate::grid::Axis;
use crate::SweepError;

/// Version of the sweep directory format.
pub const FORMAT_VERSION: u32 = 1;

/// One run of a sweep.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlannedRun {
    pub index: usize,
    /// Directory name under `<sweep>/runs/`, from the axis values.
    pub name: String,
    /// The axis values of this run, in axis order, as `(key, TOML value)`.
    pub values: Vec<(String, String)>,
    /// The run's resolved configuration (what its config.toml will hold).
    pub config: String,
}

/// `sweep.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format_version: u32,
    /// The base configuration, resolved, as TOML.
    pub base: String,
    /// Axis keys and their values (TOML literals), in order; the first varies slowest.
    pub axes: Vec<(String, Vec<String>)>,
    pub runs: Vec<PlannedRun>,
}

/// A sweep directory.
#[derive(Clone, Debug)]
pub struct SweepDir {
    pub root: PathBuf,
}

impl SweepDir {
    pub fn new(root: impl Into<PathBuf>) -> SweepDir {
        SweepDir { root: root.into() }
    }
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("sweep.json")
    }
    pub fn run_dir(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("runs").join(&run.name)
    }
    pub fn read(&self) -> Result<Manifest, SweepError> {
        let path = self.manifest_path();
        let text = std::fs::read_to_string(&path).map_err(|e| SweepError::NotASweep {
            path: self.root.display().to_string(),
            reason: e.to_string(),
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| SweepError::NotASweep {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| SweepError::NotASweep {
            path: path.display().to_string(),
            reason,
        };
        if m.format_version != FORMAT_VERSION {
            return Err(bad(format!("format version {}", m.format_version)));
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in m.runs.iter().enumerate() {
            if r.index != i {
                return Err(bad(format!("run at position {i} has index {}", r.index)));
            }
            let safe = !r.name.is_empty()
                && !r.name.starts_with('.')
                && r.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !safe || !names.insert(r.name.as_str()) {
                return Err(bad(format!(
                    "run {i} has a bad or repeated name '{}'",
                    r.name
                )));
            }
        }
        Ok(m)
    }
}

fn literal(v: &Value) -> String {
    v.to_string()
}

/// A run name fragment for a value: characters allowed in a run name only.
fn fragment(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Plans the runs of `base` times `axes` (the first axis varies slowest). Every run's config
/// is checked, its data built and its model shape validated; all problems are reported at once.
pub fn plan(base: &Config, axes: &[Axis]) -> Result<Manifest, SweepError> {
    let mut seen = std::collections::HashSet::new();
    for a in axes {
        if !seen.insert(a.key.as_str()) {
            return Err(SweepError::Grid {
                axis: a.key.clone(),
                reason: "the key is given twice".into(),
            });
        }
        if a.key == "train.name" {
            return Err(SweepError::Grid {
                axis: a.key.clone(),
                reason: "run names come from the axis values".into(),
            });
        }
    }
    // Short names must be unique to name runs; fall back to full keys otherwise.
    let shorts: Vec<&str> = axes.iter().map(Axis::short).collect();
    let label = |i: usize| -> String {
        let s = shorts[i];
        if shorts.iter().filter(|&&t| t == s).count() > 1 {
            axes[i].key.replace('.', "-")
        } else {
            s.to_string()
        }
    };
    let total = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .unwrap_or(usize::MAX);
    if total > 100_000 {
        return Err(SweepError::Grid {
            axis: axes
                .iter()
                .map(|a| a.key.as_str())
                .collect::<Vec<_>>()
                .join(" x "),
            reason: format!("{total} runs; at most 100000"),
        });
    }
    let mut runs = Vec::with_capacity(total);
    let mut problems = Vec::new();
    for index in 0..total {
        // Mixed radix, last axis fastest.
        let mut rest = index;
        let mut pick = vec![0; axes.len()];
        for (i, a) in axes.iter().enumerate().rev() {
            pick[i] = rest % a.values.len();
            rest /= a.values.len();
        }
        let mut cfg = base.clone();
        let mut values = Vec::new();
        let mut parts = Vec::new();
        let mut bad = None;
        for (i, a) in axes.iter().enumerate() {
            let v = &a.values[pick[i]];
            values.push((a.key.clone(), literal(v)));
            parts.push(format!("{}{}", label(i), fragment(v)));
            if bad.is_none() {
                if let Err(e) = modicl_config::field(&a.key).and_then(|f| f.set(&mut cfg, v)) {
                    bad = Some(e.to_string());
                }
            }
        }
        let name = if parts.is_empty() {
            base.train.name.clone()
        } else {
            parts.join("_")
        };
        let what = values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let check = match bad {
            Some(e) => Err(e),
            None => validate(&mut cfg, &name),
        };
        if let Err(e) = check {
            problems.push(format!("run {index} ({what}): {e}"));
        }
        runs.push(PlannedRun {
            index,
            name,
            values,
            config: cfg.to_toml(),
        });
    }
    let mut seen_names = std::collections::HashMap::new();
    for r in &runs {
        if let Some(first) = seen_names.insert(r.name.clone(), r.index) {
            problems.push(format!(
                "runs {first} and {} would share the directory runs/{} (repeated or indistinguishable axis values)",
                r.index, r.name
            ));
        }
    }
    if !problems.is_empty() {
        return Err(SweepError::Invalid(problems));
    }
    Ok(Manifest {
        format_version: FORMAT_VERSION,
        base: base.to_toml(),
        axes: axes
            .iter()
            .map(|a| (a.key.clone(), a.values.iter().map(literal).collect()))
            .collect(),
        runs,
    })
}

/// Everything `modicl train` would check before its first step.
fn validate(cfg: &mut Config, name: &str) -> Result<(), String> {
    let field = modicl_config::field("train.name").map_err(|e| e.to_string())?;
    field
        .set(cfg, &Value::String(name.into()))
        .map_err(|e| e.to_string())?;
    cfg.check().map_err(|e| e.to_string())?;
    modicl_data::Dataset::for_run(cfg).map_err(|e| e.to_string())?;
    modicl_trainer::model_config(cfg)
        .validate()
        .map_err(|e| e.to_string())
}

/// Writes the manifest of a new sweep into `dir`, which must not hold one already.
pub fn write(dir: &Path, m: &Manifest) -> Result<(), SweepError> {
    let sd = SweepDir::new(dir);
    let runs_left = std::fs::read_dir(dir.join("runs")).is_ok_and(|mut e| e.next().is_some());
    if sd.manifest_path().exists() || runs_left {
        return Err(SweepError::Exists(dir.display().to_string()));
    }
    let text = serde_json::to_string_pretty(m).expect("manifest serialises") + "\n";
    modicl_trainer::rundir::write_atomic(&sd.manifest_path(), text.as_bytes())?;
    Ok(())
}
