//! `modicl verify`: checks every file of a run directory, checkpoints first, without changing
//! anything, and says what a resume would start from.

use std::fs;
use std::path::{Path, PathBuf};

use crate::rundir::{self, RunDir};
use crate::train::Summary;
use crate::{adamw_config, metrics, model_config, TrainError};

/// What one check found.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Read back whole; for checkpoints, every checksum matches.
    Intact(String),
    /// Readable, but nothing to check it against (a format-1 checkpoint has no checksums).
    Unverified(String),
    /// Not what it should be: the reason names the file.
    Bad(String),
    /// Set aside by an earlier resume (`corrupt-step_<N>`): kept for inspection, never read.
    SetAside,
}

impl Status {
    pub fn is_bad(&self) -> bool {
        matches!(self, Status::Bad(_))
    }
    /// `intact`, `unverified`, `BAD` or `set aside`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Intact(_) => "intact",
            Status::Unverified(_) => "unverified",
            Status::Bad(_) => "BAD",
            Status::SetAside => "set aside",
        }
    }
    pub fn detail(&self) -> &str {
        match self {
            Status::Intact(d) | Status::Unverified(d) | Status::Bad(d) => d,
            Status::SetAside => "moved here by a resume that found it corrupt; not used",
        }
    }
}

/// One checked item: a file, or a checkpoint folder, relative to the run directory.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub item: String,
    pub status: Status,
}

/// Everything `verify` found in one run directory.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    pub root: PathBuf,
    pub checks: Vec<Check>,
    /// Whether the run has finished (`DONE`).
    pub done: bool,
    /// The step a resume would start from: the newest intact `step_<N>` checkpoint (0: none).
    pub resume_from: u64,
}

impl RunReport {
    pub fn bad(&self) -> usize {
        self.checks.iter().filter(|c| c.status.is_bad()).count()
    }
}

/// Checks the run directory `dir`: its configuration, metrics and summary, and every
/// checkpoint (the `DONE` marker, the checksums of all its files, the tensors' names and
/// shapes against the configuration). Reads only; a run that is not a run directory at all
/// (no `config.toml`) is an error.
pub fn verify_run(dir: &RunDir) -> Result<RunReport, TrainError> {
    if !dir.config().is_file() {
        return Err(TrainError::NotARun(format!(
            "{} is not a run directory (no config.toml)",
            dir.root.display()
        )));
    }
    let mut checks = Vec::new();
    let mut push = |item: &str, status: Status| {
        checks.push(Check {
            item: item.to_string(),
            status,
        })
    };
    let cfg = match dir.read_config() {
        Ok(c) => {
            push("config.toml", Status::Intact("parses".into()));
            c
        }
        Err(e) => {
            // Nothing else can be checked without the configuration.
            push("config.toml", Status::Bad(e.to_string()));
            return Ok(RunReport {
                root: dir.root.clone(),
                checks,
                done: dir.is_done(),
                resume_from: 0,
            });
        }
    };
    let k = cfg.task.examples as usize;
    if dir.metrics().is_file() {
        match metrics::read(&dir.metrics(), &dir.shots(), u64::MAX, k) {
            Ok(r) => push(
                "metrics.csv, shots.csv",
                Status::Intact(match r.last() {
                    Some(last) => {
                        format!("{} evaluations, the last at step {}", r.len(), last.step)
                    }
                    None => "no evaluation yet".into(),
                }),
            ),
            Err(e) => push("metrics.csv, shots.csv", Status::Bad(e.to_string())),
        }
    }
    if dir.stages().is_file() {
        let read = modicl_data::Dataset::for_run(&cfg)
            .map_err(TrainError::from)
            .and_then(|ds| {
                let mut r = metrics::read(&dir.metrics(), &dir.shots(), u64::MAX, k)?;
                metrics::read_stages(&dir.stages(), &mut r, ds.curriculum.added(), k)?;
                Ok(r.iter().map(|r| r.added.len()).sum::<usize>())
            });
        match read {
            Ok(n) => push("stages.csv", Status::Intact(format!("{n} rows"))),
            Err(e) => push("stages.csv", Status::Bad(e.to_string())),
        }
    }
    if dir.summary().is_file() {
        let parsed = rundir::read_text(&dir.summary()).and_then(|t| {
            serde_json::from_str::<Summary>(&t).map_err(|e| TrainError::Corrupt {
                path: dir.summary().display().to_string(),
                reason: e.to_string(),
            })
        });
        match parsed {
            Ok(s) => push("summary.json", Status::Intact(format!("{} steps", s.steps))),
            Err(e) => push("summary.json", Status::Bad(e.to_string())),
        }
    } else if dir.is_done() {
        push(
            "summary.json",
            Status::Bad("missing, but the run is marked DONE".into()),
        );
    }

    let hash = rundir::config_hash(&cfg);
    let mut resume_from = 0;
    for (name, path) in checkpoint_folders(&dir.checkpoints()) {
        let item = format!("checkpoints/{name}");
        if name.starts_with("corrupt-step_") {
            push(&item, Status::SetAside);
            continue;
        }
        let step = name
            .strip_prefix("step_")
            .and_then(|s| s.parse::<u64>().ok());
        let status = check_checkpoint(&path, &cfg, &hash, step);
        if let (Some(s), false) = (step, status.is_bad()) {
            resume_from = resume_from.max(s);
        }
        push(&item, status);
    }
    Ok(RunReport {
        root: dir.root.clone(),
        checks,
        done: dir.is_done(),
        resume_from,
    })
}

/// The checkpoint folders (`step_<N>` by step, then `best_ood`, then set-aside ones), with
/// their names; temporaries of a write in progress are skipped.
fn checkpoint_folders(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    let key = |n: &str| match n.strip_prefix("step_").and_then(|s| s.parse::<u64>().ok()) {
        Some(s) => (0, s, n.to_string()),
        None if n.starts_with("corrupt-") => (2, 0, n.to_string()),
        None => (1, 0, n.to_string()),
    };
    out.sort_by_key(|(n, _)| key(n));
    out
}

/// One checkpoint: complete, checksums, config hash, step, and that the tensors load under
/// the run's configuration.
fn check_checkpoint(
    path: &Path,
    cfg: &modicl_config::Config,
    hash: &str,
    step: Option<u64>,
) -> Status {
    if !path.join("DONE").is_file() {
        return Status::Bad("incomplete: no DONE marker".into());
    }
    let state = match rundir::read_state(path) {
        Ok(s) => s,
        Err(e) => return Status::Bad(e.to_string()),
    };
    if state.config_hash != hash {
        return Status::Bad(format!(
            "{}: written by config {}, not by this run's config.toml ({hash})",
            path.join(rundir::STATE_FILE).display(),
            state.config_hash
        ));
    }
    if let Some(s) = step.filter(|&s| s != state.step) {
        return Status::Bad(format!(
            "{}: records step {}, the folder says {s}",
            path.join(rundir::STATE_FILE).display(),
            state.step
        ));
    }
    let model = match rundir::read_model(path, &model_config(cfg)) {
        Ok(m) => m,
        Err(e) => return Status::Bad(e.to_string()),
    };
    let mut files = vec![rundir::MODEL_FILE];
    if step.is_some() || path.join(rundir::OPTIMIZER_FILE).is_file() {
        if let Err(e) = rundir::read_optimizer(path, &model, adamw_config(cfg)) {
            return Status::Bad(e.to_string());
        }
        files.push(rundir::OPTIMIZER_FILE);
    }
    let what = format!("step {}, {}", state.step, files.join(", "));
    if state.format_version >= 2 {
        Status::Intact(format!("{what}: checksums match"))
    } else {
        Status::Unverified(format!(
            "{what}: format {} records no checksums; the tensors load",
            state.format_version
        ))
    }
}
