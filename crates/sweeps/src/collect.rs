//! What the run directories of a sweep say: per-run state (`sweep status`) and the results
//! table with phase labels (`sweep collect`). Read from the run directories themselves, so it
//! works the same for local and SLURM sweeps.

use modicl_config::Config;
use modicl_trainer::train::{SetSummary, StepSummary, Summary};
use modicl_trainer::{Checkpoint, Metric, RunDir, SetName};
use serde::Serialize;

use crate::exec::{failed_path, lock_path, try_lock};
use crate::phase::{label, label_rm, Four, Labelling, Phase};
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
    /// The second labelling ([`Labelling::Rm`]); `None` also when the summary predates it.
    pub phase_rm_last: Option<Phase>,
    pub phase_rm_best_ood: Option<Phase>,
}

impl Row {
    /// The evaluation at checkpoint `c` (`last` or `best_ood`) and its paper-style phase.
    pub fn at(&self, c: Checkpoint) -> (Option<&StepSummary>, Option<Phase>) {
        self.labelled(c, Labelling::Paper)
    }

    /// The evaluation at checkpoint `c` and its phase in labelling `l`.
    pub fn labelled(&self, c: Checkpoint, l: Labelling) -> (Option<&StepSummary>, Option<Phase>) {
        let (paper, rm) = match c {
            Checkpoint::Last => (self.phase_last, self.phase_rm_last),
            Checkpoint::BestOod => (self.phase_best_ood, self.phase_rm_best_ood),
            Checkpoint::Step(_) => return (None, None),
        };
        let s = match c {
            Checkpoint::Last => self.last.as_ref(),
            _ => self.best_ood.as_ref(),
        };
        match l {
            Labelling::Paper => (s, paper),
            Labelling::Rm => (s, rm),
        }
    }
}

/// The four accuracies (`metric`: last-shot or all-shot) of an evaluation.
pub fn four(s: &StepSummary, metric: Metric) -> Option<Four> {
    let get = |set: SetName| s.set(set).map(|m| m.get(metric));
    Some(Four {
        id_train: get(SetName::IdTrain)?,
        id_test: get(SetName::IdTest)?,
        ood_train: get(SetName::OodTrain)?,
        ood_test: get(SetName::OodTest)?,
    })
}

/// The results table: every run, its state, final and early-stopped metrics and phases, the
/// phases labelled on `metric`.
pub fn collect(sd: &SweepDir, m: &Manifest, pass: f64, metric: Metric) -> Vec<Row> {
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
                    .and_then(|s| four(s, metric))
                    .map(|a| label(a, pass))
            };
            let phase_rm = |s: &Option<StepSummary>| {
                let s = s.as_ref()?;
                Some(label_rm(label(four(s, metric)?, pass), s.ood_gen_rm?))
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
                phase_rm_last: phase_rm(&last),
                phase_rm_best_ood: phase_rm(&best),
                last,
                best_ood: best,
            }
        })
        .collect()
}

/// The evaluations of a row that the table shows.
const SHOWN: [Checkpoint; 2] = [Checkpoint::Last, Checkpoint::BestOod];

/// The column prefix of an evaluation: `final` for the last one, else the checkpoint's name.
fn prefix(c: Checkpoint) -> String {
    match c {
        Checkpoint::Last => "final".into(),
        c => c.to_string(),
    }
}

/// The accuracies the table shows for each set.
const ACCURACIES: [Metric; 2] = [Metric::Acc, Metric::AccLast];

/// The oracle readings the table shows for each set, after its accuracies: Ratio Matching's and
/// Modular Regression's last-shot accuracy and the model's fraction of each.
const ORACLE_COLUMNS: [&str; 4] = ["rm_last", "rm_frac", "mr_last", "mr_frac"];

fn oracle_fields(m: Option<&SetSummary>) -> [String; 4] {
    let show = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    match m {
        Some(m) => [m.rm_last, m.rm_frac, m.mr_last, m.mr_frac].map(show),
        None => Default::default(),
    }
}

/// The table as CSV: one row per run.
pub fn to_csv(m: &Manifest, rows: &[Row]) -> String {
    let mut head: Vec<String> = vec!["index".into(), "name".into()];
    head.extend(m.axes.iter().map(|a| a.0.clone()));
    head.extend(["n_id", "alpha", "state", "error"].map(String::from));
    for which in SHOWN.map(prefix) {
        head.push(format!("{which}_step"));
        for s in SetName::EVAL {
            head.extend(ACCURACIES.map(|a| format!("{which}_{s}_{a}")));
            head.extend(ORACLE_COLUMNS.map(|o| format!("{which}_{s}_{o}")));
        }
        head.push(format!("{which}_phase"));
        head.push(format!("{which}_phase_rm"));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = |fields: &[String]| w.write_record(fields).expect("CSV is written to memory");
    write(&head);
    for r in rows {
        let mut f: Vec<String> = vec![r.index.to_string(), r.name.clone()];
        f.extend(r.values.iter().map(|v| v.1.clone()));
        f.push(r.n_id.to_string());
        f.push(r.alpha.to_string());
        f.push(r.state.name().into());
        f.push(match &r.state {
            State::Failed { error } => error.clone(),
            _ => String::new(),
        });
        for c in SHOWN {
            let (s, p) = r.at(c);
            f.push(s.map_or(String::new(), |s| s.step.to_string()));
            for set in SetName::EVAL {
                let m = s.and_then(|s| s.set(set));
                f.extend(ACCURACIES.map(|a| m.map_or(String::new(), |m| m.get(a).to_string())));
                f.extend(oracle_fields(m));
            }
            f.push(p.map_or(String::new(), |p| p.as_str().into()));
            let rm = r.labelled(c, Labelling::Rm).1;
            f.push(rm.map_or(String::new(), |p| p.as_str().into()));
        }
        write(&f);
    }
    let bytes = w.into_inner().expect("CSV is written to memory");
    String::from_utf8(bytes).expect("UTF-8 fields make UTF-8 CSV")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn summary(step: u64, acc_last: f64) -> StepSummary {
        let sets: BTreeMap<String, SetSummary> = SetName::EVAL
            .iter()
            .map(|s| {
                let m = SetSummary {
                    loss: 1.0,
                    acc: 0.5,
                    acc_last,
                    count_last: 100,
                    rm_last: Some(0.5),
                    rm_frac: Some(acc_last / 0.5),
                    mr_last: Some(0.625),
                    mr_frac: Some(acc_last / 0.625),
                };
                (s.to_string(), m)
            })
            .collect();
        StepSummary {
            step,
            sets,
            ood_gen_rm: Some(acc_last >= 0.4),
        }
    }

    /// The bytes of results.csv: quoted only where a field needs it (docs/sweeps.md).
    #[test]
    fn results_csv_columns_and_quoting() {
        let m = Manifest {
            format_version: crate::plan::FORMAT_VERSION,
            base: String::new(),
            axes: vec![("task.source".into(), vec![])],
            runs: Vec::new(),
        };
        let done = Row {
            index: 0,
            name: "a".into(),
            values: vec![("task.source".into(), "\"file:x,y\"".into())],
            state: State::Done,
            n_id: 4,
            alpha: 0.8,
            last: Some(summary(30, 1.0)),
            best_ood: Some(summary(10, 0.25)),
            phase_last: Some(Phase::OodGen),
            phase_best_ood: Some(Phase::None),
            phase_rm_last: Some(Phase::OodGen),
            phase_rm_best_ood: Some(Phase::None),
        };
        let failed = Row {
            index: 1,
            name: "b".into(),
            values: vec![("task.source".into(), "\"generate\"".into())],
            state: State::Failed {
                error: "no file, \"c.txt\"".into(),
            },
            last: None,
            best_ood: None,
            phase_last: None,
            phase_best_ood: None,
            phase_rm_last: None,
            phase_rm_best_ood: None,
            ..done.clone()
        };
        let csv = to_csv(&m, &[done, failed]);
        let mut lines = csv.lines();
        let mut head = "index,name,task.source,n_id,alpha,state,error".to_string();
        for which in ["final", "best_ood"] {
            head += &format!(",{which}_step");
            for s in ["id_train", "id_test", "ood_train", "ood_test"] {
                head += &format!(",{which}_{s}_acc,{which}_{s}_acc_last");
                head += &format!(",{which}_{s}_rm_last,{which}_{s}_rm_frac");
                head += &format!(",{which}_{s}_mr_last,{which}_{s}_mr_frac");
            }
            head += &format!(",{which}_phase,{which}_phase_rm");
        }
        assert_eq!(lines.next(), Some(head.as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "0,a,\"\"\"file:x,y\"\"\",4,0.8,done,,\
                 30,0.5,1,0.5,2,0.625,1.6,0.5,1,0.5,2,0.625,1.6,\
                 0.5,1,0.5,2,0.625,1.6,0.5,1,0.5,2,0.625,1.6,ood-gen,ood-gen,\
                 10,0.5,0.25,0.5,0.5,0.625,0.4,0.5,0.25,0.5,0.5,0.625,0.4,\
                 0.5,0.25,0.5,0.5,0.625,0.4,0.5,0.25,0.5,0.5,0.625,0.4,none,none"
            )
        );
        let failed = format!(
            "1,b,\"\"\"generate\"\"\",4,0.8,failed,\"no file, \"\"c.txt\"\"\"{}",
            ",".repeat(54)
        );
        assert_eq!(lines.next(), Some(failed.as_str()));
        assert_eq!(lines.next(), None);
    }
}
