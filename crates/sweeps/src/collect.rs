//! What the run directories of a sweep say: per-run state (`sweep status`) and the results
//! table with phase labels (`sweep collect`). Read from the run directories themselves, so it
//! works the same for local and SLURM sweeps.

use std::fmt::Write as _;

use modicl_config::Config;
use modicl_trainer::train::{StepSummary, Summary};
use modicl_trainer::RunDir;
use serde::Serialize;

use crate::exec::{failed_path, lock_path, try_lock};
use crate::phase::{label, Four, Phase};
use crate::plan::{Manifest, PlannedRun, SweepDir};

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    /// Not started.
    Pending,
    /// A process holds its lock now.
    Running {
        step: u64,
    },
    /// Started, not running, not done: resumable from `step`.
    Interrupted {
        step: u64,
    },
    Done,
    /// The last attempt failed with this error.
    Failed {
        error: String,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running { .. } => "running",
            State::Interrupted { .. } => "interrupted",
            State::Done => "done",
            State::Failed { .. } => "failed",
        }
    }
}

/// The state of one run, from its directory (and its lock).
pub fn state(sd: &SweepDir, run: &PlannedRun) -> State {
    let dir = RunDir::new(sd.run_dir(run));
    if dir.is_done() {
        return State::Done;
    }
    let step = dir
        .complete_checkpoints()
        .ok()
        .and_then(|c| c.last().copied())
        .unwrap_or(0);
    // Probing the lock takes it for an instant; runners retry briefly (exec::run_one).
    if lock_path(sd, run).exists() && matches!(try_lock(sd, run), Ok(None)) {
        return State::Running { step };
    }
    if let Ok(text) = std::fs::read_to_string(failed_path(sd, run)) {
        return State::Failed {
            error: text.trim().to_string(),
        };
    }
    if dir.config().is_file() {
        State::Interrupted { step }
    } else {
        State::Pending
    }
}

/// One row of the results table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub index: usize,
    pub name: String,
    /// Axis values, as TOML literals.
    pub values: Vec<(String, String)>,
    pub state: State,
    /// Number of pre-training tasks and input fraction (the phase diagram's axes).
    pub n_id: usize,
    pub alpha: f64,
    pub last: Option<StepSummary>,
    pub best_ood: Option<StepSummary>,
    pub phase_last: Option<Phase>,
    pub phase_best_ood: Option<Phase>,
}

/// The four last-shot (or all-shot) accuracies of an evaluation.
pub fn four(s: &StepSummary, last_shot: bool) -> Option<Four> {
    let get = |set: &str| {
        s.sets
            .get(set)
            .map(|m| if last_shot { m.acc_last } else { m.acc })
    };
    Some(Four {
        id_train: get("id_train")?,
        id_test: get("id_test")?,
        ood_train: get("ood_train")?,
        ood_test: get("ood_test")?,
    })
}

/// The results table: every run, its state, final and early-stopped metrics and phases.
pub fn collect(sd: &SweepDir, m: &Manifest, pass: f64, last_shot: bool) -> Vec<Row> {
    m.runs
        .iter()
        .map(|run| {
            let cfg = Config::from_toml(&run.config, "manifest").ok();
            let n_id = cfg
                .as_ref()
                .and_then(|c| modicl_data::Dataset::build(&c.task).ok())
                .map_or(0, |d| d.n_id());
            let st = state(sd, run);
            let summary: Option<Summary> = (st == State::Done)
                .then(|| std::fs::read_to_string(RunDir::new(sd.run_dir(run)).summary()).ok())
                .flatten()
                .and_then(|t| serde_json::from_str(&t).ok());
            let (last, best) = summary.map_or((None, None), |s| (s.last, s.best_ood));
            let phase = |s: &Option<StepSummary>| {
                s.as_ref()
                    .and_then(|s| four(s, last_shot))
                    .map(|a| label(a, pass))
            };
            Row {
                index: run.index,
                name: run.name.clone(),
                values: run.values.clone(),
                state: st,
                n_id,
                alpha: cfg.as_ref().map_or(f64::NAN, |c| c.task.alpha),
                phase_last: phase(&last),
                phase_best_ood: phase(&best),
                last,
                best_ood: best,
            }
        })
        .collect()
}

const SETS: [&str; 4] = ["id_train", "id_test", "ood_train", "ood_test"];

/// The table as CSV: one row per run.
pub fn to_csv(m: &Manifest, rows: &[Row]) -> String {
    let mut head: Vec<String> = vec!["index".into(), "name".into()];
    head.extend(m.axes.iter().map(|a| a.0.clone()));
    head.extend(["n_id", "alpha", "state", "error"].map(String::from));
    for which in ["final", "best_ood"] {
        head.push(format!("{which}_step"));
        for s in SETS {
            head.push(format!("{which}_{s}_acc"));
            head.push(format!("{which}_{s}_acc_last"));
        }
        head.push(format!("{which}_phase"));
    }
    let mut out = head.join(",") + "\n";
    for r in rows {
        let mut f: Vec<String> = vec![r.index.to_string(), r.name.clone()];
        f.extend(r.values.iter().map(|v| csv_field(&v.1)));
        f.push(r.n_id.to_string());
        f.push(r.alpha.to_string());
        f.push(r.state.name().into());
        f.push(match &r.state {
            State::Failed { error } => csv_field(error),
            _ => String::new(),
        });
        for (s, p) in [(&r.last, r.phase_last), (&r.best_ood, r.phase_best_ood)] {
            match s {
                Some(s) => {
                    f.push(s.step.to_string());
                    for set in SETS {
                        let m = s.sets.get(set);
                        f.push(m.map_or(String::new(), |m| m.acc.to_string()));
                        f.push(m.map_or(String::new(), |m| m.acc_last.to_string()));
                    }
                }
                None => f.extend(std::iter::repeat_n(String::new(), 1 + 2 * SETS.len())),
            }
            f.push(p.map_or(String::new(), |p| p.as_str().into()));
        }
        let _ = writeln!(out, "{}", f.join(","));
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
