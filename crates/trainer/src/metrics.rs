//! The metrics tables of a run: `metrics.csv` (one row per evaluation step and set) and
//! `shots.csv` (accuracy per shot), written in full and atomically at every evaluation, and
//! read back exactly (floats are written in their shortest round-trip form, Rust's `{}`).

use std::path::Path;

use crate::eval::SetMetrics;
use crate::names::SetName;
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
    pub fn set(&self, name: SetName) -> Option<&SetMetrics> {
        self.sets.iter().find(|m| m.set == name)
    }
}

/// A CSV table: `header`, then the rows `fill` writes (each field as [`ToString`] gives it).
fn table(header: &str, fill: impl FnOnce(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header.split(','))
        .and_then(|()| fill(&mut w))
        .expect("CSV is written to memory");
    let bytes = w.into_inner().expect("CSV is written to memory");
    String::from_utf8(bytes).expect("UTF-8 fields make UTF-8 CSV")
}

/// `metrics.csv` for these records.
pub fn metrics_csv(records: &[Record]) -> String {
    table(METRICS_HEADER, |w| {
        for r in records {
            for m in &r.sets {
                w.write_record([
                    r.step.to_string(),
                    m.set.to_string(),
                    r.lr.to_string(),
                    m.loss.to_string(),
                    m.acc().to_string(),
                    m.acc_last().to_string(),
                    m.correct.to_string(),
                    m.count.to_string(),
                    m.correct_last.to_string(),
                    m.count_last.to_string(),
                ])?;
            }
        }
        Ok(())
    })
}

/// `shots.csv` for these records.
pub fn shots_csv(records: &[Record]) -> String {
    table(SHOTS_HEADER, |w| {
        for r in records {
            for m in &r.sets {
                for i in 0..m.shot_count.len() {
                    w.write_record([
                        r.step.to_string(),
                        m.set.to_string(),
                        i.to_string(),
                        m.acc_shot(i).to_string(),
                        m.shot_correct[i].to_string(),
                        m.shot_count[i].to_string(),
                    ])?;
                }
            }
        }
        Ok(())
    })
}

fn corrupt(path: &Path, line: u64, why: &str) -> TrainError {
    TrainError::Corrupt {
        path: path.display().to_string(),
        reason: format!("line {line}: {why}"),
    }
}

/// The rows of the CSV `text` (read from `path`) with their line numbers, once its header is
/// checked to be `header` and every row to have as many fields (`bad_row` says what is wrong
/// otherwise).
fn rows(
    path: &Path,
    text: &str,
    header: &str,
    bad_row: &str,
) -> Result<Vec<(u64, csv::StringRecord)>, TrainError> {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let line = |e: &csv::Error| e.position().map_or(0, |p| p.line());
    let head = r.headers().map_err(|e| corrupt(path, line(&e), bad_row))?;
    if !head.iter().eq(header.split(',')) {
        return Err(corrupt(path, 1, "unexpected header"));
    }
    let n = head.len();
    r.records()
        .map(|row| {
            let row = row.map_err(|e| corrupt(path, line(&e), bad_row))?;
            let at = row.position().map_or(0, |p| p.line());
            if row.len() != n {
                return Err(corrupt(path, at, bad_row));
            }
            Ok((at, row))
        })
        .collect()
}

/// Reads `metrics.csv` and `shots.csv` back into records, up to step `until` (rows past it
/// are what a killed process wrote after its last checkpoint: ignored). A missing `shots.csv`
/// reads as empty; every record kept must then have all `k` shot rows.
pub fn read(metrics: &Path, shots: &Path, until: u64, k: usize) -> Result<Vec<Record>, TrainError> {
    let text = crate::rundir::read_text(metrics)?;
    let mut records: Vec<Record> = Vec::new();
    for (line, f) in rows(metrics, &text, METRICS_HEADER, "malformed row")? {
        let bad = || corrupt(metrics, line, "malformed row");
        let int = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
        let float = |i: usize| f[i].parse::<f64>().map_err(|_| bad());
        let step = int(0)?;
        if step > until {
            continue;
        }
        let m = SetMetrics {
            set: f[1].parse().map_err(|_| bad())?,
            loss: float(3)?,
            correct: int(6)?,
            count: int(7)?,
            correct_last: int(8)?,
            count_last: int(9)?,
            shot_correct: Vec::new(),
            shot_count: Vec::new(),
        };
        match records.last_mut() {
            Some(r) if r.step == step => r.sets.push(m),
            _ => records.push(Record {
                step,
                lr: float(2)?,
                sets: vec![m],
            }),
        }
    }
    let text = match std::fs::read_to_string(shots) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{SHOTS_HEADER}\n"),
        other => other.map_err(|e| TrainError::Io {
            path: shots.display().to_string(),
            source: e,
        })?,
    };
    let why = "malformed row, or a row metrics.csv does not have";
    for (line, f) in rows(shots, &text, SHOTS_HEADER, why)? {
        let bad = || corrupt(shots, line, why);
        let int = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
        let (step, shot) = (int(0)?, int(2)? as usize);
        if step > until {
            continue;
        }
        let set: SetName = f[1].parse().map_err(|_| bad())?;
        let m = records
            .iter_mut()
            .find(|r| r.step == step)
            .and_then(|r| r.sets.iter_mut().find(|m| m.set == set))
            .ok_or_else(bad)?;
        if shot != m.shot_count.len() {
            return Err(bad());
        }
        m.shot_correct.push(int(4)?);
        m.shot_count.push(int(5)?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Metric;

    fn set(set: SetName, loss: f64, shots: &[(u64, u64)]) -> SetMetrics {
        let (shot_correct, shot_count): (Vec<u64>, Vec<u64>) = shots.iter().copied().unzip();
        let last = *shots.last().unwrap();
        SetMetrics {
            set,
            loss,
            correct: shot_correct.iter().sum(),
            count: shot_count.iter().sum(),
            correct_last: last.0,
            count_last: last.1,
            shot_correct,
            shot_count,
        }
    }

    fn records() -> Vec<Record> {
        vec![
            Record {
                step: 1,
                lr: 1e-7,
                sets: vec![
                    set(
                        SetName::TrainBatch,
                        2.397_895_336_151_123,
                        &[(1, 3), (0, 3)],
                    ),
                    set(SetName::OodTest, 0.1 + 0.2, &[(2, 3), (1, 3)]),
                ],
            },
            Record {
                step: 10,
                lr: 0.005,
                sets: vec![set(SetName::IdTrain, f64::NAN, &[(0, 0), (3, 3)])],
            },
        ]
    }

    /// The bytes written: a format change shows here first (docs/run-directory.md).
    #[test]
    fn the_tables_are_written_as_documented() {
        let r = records();
        assert_eq!(
            metrics_csv(&r),
            "step,set,lr,loss,acc,acc_last,correct,count,correct_last,count_last\n\
             1,train_batch,0.0000001,2.397895336151123,0.16666666666666666,0,1,6,0,3\n\
             1,ood_test,0.0000001,0.30000000000000004,0.5,0.3333333333333333,3,6,1,3\n\
             10,id_train,0.005,NaN,1,1,3,3,3,3\n"
        );
        assert_eq!(
            shots_csv(&r[1..]),
            "step,set,shot,acc,correct,count\n10,id_train,0,NaN,0,0\n10,id_train,1,1,3,3\n"
        );
        // The metric columns are the metrics, in their order.
        let head: Vec<&str> = METRICS_HEADER.split(',').collect();
        assert_eq!(head[3..6], Metric::ALL.map(Metric::as_str));
    }

    #[test]
    fn the_tables_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let (m, s) = (dir.path().join("metrics.csv"), dir.path().join("shots.csv"));
        let r = records();
        std::fs::write(&m, metrics_csv(&r)).unwrap();
        std::fs::write(&s, shots_csv(&r)).unwrap();
        let back = read(&m, &s, u64::MAX, 2).unwrap();
        assert_eq!(back.len(), 2);
        // NaN != NaN: compare the bits of every float.
        assert_eq!(back[0], r[0]);
        assert_eq!(back[1].lr, r[1].lr);
        assert!(back[1].sets[0].loss.is_nan());
        assert_eq!(back[1].sets[0].shot_count, r[1].sets[0].shot_count);
        assert_eq!(read(&m, &s, 9, 2).unwrap(), r[..1]);

        std::fs::write(&s, "step,set,shot,acc,correct,count\n1,train,0,1,1,1\n").unwrap();
        let e = read(&m, &s, u64::MAX, 2).unwrap_err().to_string();
        assert!(e.contains("shots.csv") && e.contains("line 2"), "{e}");
        std::fs::write(&m, "step,set\n").unwrap();
        let e = read(&m, &s, u64::MAX, 2).unwrap_err().to_string();
        assert!(e.contains("line 1: unexpected header"), "{e}");
        std::fs::write(&m, format!("{METRICS_HEADER}\n1,id_test,0.1\n")).unwrap();
        let e = read(&m, &s, u64::MAX, 2).unwrap_err().to_string();
        assert!(e.contains("line 2: malformed row"), "{e}");
    }
}
