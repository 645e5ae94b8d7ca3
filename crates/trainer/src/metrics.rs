//! The metrics tables of a run: `metrics.csv` (one row per evaluation step and set) and
//! `shots.csv` (accuracy per shot), written in full and atomically at every evaluation, and
//! read back exactly (floats are printed in their shortest round-trip form).

use std::fmt::Write as _;
use std::path::Path;

use crate::eval::SetMetrics;
use crate::TrainError;

/// Column header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "step,set,lr,loss,acc,acc_last,correct,count,correct_last,count_last";
/// Column header of `shots.csv`.
pub const SHOTS_HEADER: &str = "step,set,shot,acc,correct,count";

/// Every set measured at one evaluation step: the training batch first, then the four sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub step: u64,
    /// Learning rate of this step's update.
    pub lr: f64,
    pub sets: Vec<SetMetrics>,
}

impl Record {
    /// The metrics of set `name`.
    pub fn set(&self, name: &str) -> Option<&SetMetrics> {
        self.sets.iter().find(|m| m.set == name)
    }
}

/// `metrics.csv` for these records.
pub fn metrics_csv(records: &[Record]) -> String {
    let mut out = String::from(METRICS_HEADER);
    out.push('\n');
    for r in records {
        for m in &r.sets {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                r.step,
                m.set,
                r.lr,
                m.loss,
                m.acc(),
                m.acc_last(),
                m.correct,
                m.count,
                m.correct_last,
                m.count_last
            );
        }
    }
    out
}

/// `shots.csv` for these records.
pub fn shots_csv(records: &[Record]) -> String {
    let mut out = String::from(SHOTS_HEADER);
    out.push('\n');
    for r in records {
        for m in &r.sets {
            for i in 0..m.shot_count.len() {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    r.step,
                    m.set,
                    i,
                    m.acc_shot(i),
                    m.shot_correct[i],
                    m.shot_count[i]
                );
            }
        }
    }
    out
}

/// Reads `metrics.csv` and `shots.csv` back into records, up to step `until` (rows past it
/// are what a killed process wrote after its last checkpoint: ignored). A missing `shots.csv`
/// reads as empty; every record kept must then have all `k` shot rows.
pub fn read(metrics: &Path, shots: &Path, until: u64, k: usize) -> Result<Vec<Record>, TrainError> {
    let corrupt = |path: &Path, line: usize, why: &str| TrainError::Corrupt {
        path: path.display().to_string(),
        reason: format!("line {line}: {why}"),
    };
    let text = crate::rundir::read_text(metrics)?;
    let mut lines = text.lines();
    if lines.next() != Some(METRICS_HEADER) {
        return Err(corrupt(metrics, 1, "unexpected header"));
    }
    let mut records: Vec<Record> = Vec::new();
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || corrupt(metrics, i + 2, "malformed row");
        if f.len() != 10 {
            return Err(bad());
        }
        let int = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let float = |s: &str| s.parse::<f64>().map_err(|_| bad());
        let step = int(f[0])?;
        if step > until {
            continue;
        }
        let m = SetMetrics {
            set: f[1].to_string(),
            loss: float(f[3])?,
            correct: int(f[6])?,
            count: int(f[7])?,
            correct_last: int(f[8])?,
            count_last: int(f[9])?,
            shot_correct: Vec::new(),
            shot_count: Vec::new(),
        };
        match records.last_mut() {
            Some(r) if r.step == step => r.sets.push(m),
            _ => records.push(Record {
                step,
                lr: float(f[2])?,
                sets: vec![m],
            }),
        }
    }
    let text = match std::fs::read_to_string(shots) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::from(SHOTS_HEADER),
        other => other.map_err(|e| TrainError::Io {
            path: shots.display().to_string(),
            source: e,
        })?,
    };
    let mut lines = text.lines();
    if lines.next() != Some(SHOTS_HEADER) {
        return Err(corrupt(shots, 1, "unexpected header"));
    }
    for (i, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let bad = || {
            corrupt(
                shots,
                i + 2,
                "malformed row, or a row metrics.csv does not have",
            )
        };
        if f.len() != 6 {
            return Err(bad());
        }
        let int = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let (step, shot) = (int(f[0])?, int(f[2])? as usize);
        if step > until {
            continue;
        }
        let m = records
            .iter_mut()
            .find(|r| r.step == step)
            .and_then(|r| r.sets.iter_mut().find(|m| m.set == f[1]))
            .ok_or_else(bad)?;
        if shot != m.shot_count.len() {
            return Err(bad());
        }
        m.shot_correct.push(int(f[4])?);
        m.shot_count.push(int(f[5])?);
    }
    for r in &records {
        for m in &r.sets {
            if m.shot_count.len() != k {
                return Err(TrainError::Corrupt {
                    path: shots.display().to_string(),
                    reason: format!(
                        "step {} set {} has {} shot rows, expected {k}",
                        r.step,
                        m.set,
                        m.shot_count.len()
                    ),
                });
            }
        }
    }
    Ok(records)
}
