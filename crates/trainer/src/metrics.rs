//! The metrics tables of a run: `metrics.csv` (one row per evaluation step and set),
//! `shots.csv` (accuracy per shot) and, with a task-count curriculum, `stages.csv` (the tasks
//! each stage adds), written in full and atomically at every evaluation, and read back exactly
//! (floats are written in their shortest round-trip form, Rust's `{}`).

use std::path::Path;

use modicl_data::AddedTasks;

use crate::eval::SetMetrics;
use crate::names::SetName;
use crate::TrainError;

/// Column header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "step,set,lr,loss,acc,acc_last,correct,count,correct_last,count_last";
/// Column header of `shots.csv`.
pub const SHOTS_HEADER: &str = "step,set,shot,acc,correct,count";
/// Column header of `stages.csv`: the metrics of the tasks that stage `stage` of a task-count
/// curriculum adds (`tasks` of them, trained from step index `from`), on the training inputs.
pub const STAGES_HEADER: &str =
    "step,stage,from,tasks,loss,acc,acc_last,correct,count,correct_last,count_last";

/// Every set measured at one evaluation step: the training batch first, then the four sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub step: u64,
    /// Learning rate of this step's update.
    pub lr: f64,
    pub sets: Vec<SetMetrics>,
    /// The sets of the tasks each stage of a task-count curriculum adds, in stage order
    /// (`stages.csv`; empty without the curriculum).
    pub added: Vec<SetMetrics>,
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

/// The columns `loss,acc,acc_last,correct,count,correct_last,count_last` of a set.
fn totals(m: &SetMetrics) -> [String; 7] {
    [
        m.loss.to_string(),
        m.acc().to_string(),
        m.acc_last().to_string(),
        m.correct.to_string(),
        m.count.to_string(),
        m.correct_last.to_string(),
        m.count_last.to_string(),
    ]
}

/// `metrics.csv` for these records.
pub fn metrics_csv(records: &[Record]) -> String {
    table(METRICS_HEADER, |w| {
        for r in records {
            for m in &r.sets {
                let head = [r.step.to_string(), m.set.to_string(), r.lr.to_string()];
                w.write_record(head.into_iter().chain(totals(m)))?;
            }
        }
        Ok(())
    })
}

/// `stages.csv` for these records, whose `added` sets are those of `stages` in order.
pub fn stages_csv(records: &[Record], stages: &[AddedTasks]) -> String {
    table(STAGES_HEADER, |w| {
        for r in records {
            for (m, a) in r.added.iter().zip(stages) {
                let head = [
                    r.step.to_string(),
                    a.stage.to_string(),
                    a.from.to_string(),
                    a.tasks.len().to_string(),
                ];
                w.write_record(head.into_iter().chain(totals(m)))?;
            }
        }
        Ok(())
    })
}

/// Reads `stages.csv` (at `path`) into the `added` sets of `records`, for the stages of
/// `stages`: every row must be one of those stages at a step of `records`, in order; rows past
/// the last record are ignored (a killed process wrote them after its last checkpoint). Per-shot
/// counts are not kept in `stages.csv`, so the sets read back have only their totals and last
/// shot (as many shots as `k`, the earlier ones empty).
pub fn read_stages(
    path: &Path,
    records: &mut [Record],
    stages: &[AddedTasks],
    k: usize,
) -> Result<(), TrainError> {
    let text = crate::rundir::read_text(path)?;
    let until = records.last().map_or(0, |r| r.step);
    let why = "malformed row, or a row of a stage or step the run does not have";
    for (line, f) in rows(path, &text, STAGES_HEADER, why)? {
        let bad = || corrupt(path, line, why);
        let int = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
        let step = int(0)?;
        if step > until {
            continue;
        }
        let r = records
            .iter_mut()
            .find(|r| r.step == step)
            .ok_or_else(bad)?;
        let a = stages.get(r.added.len()).ok_or_else(bad)?;
        if (int(1)?, int(2)?, int(3)?) != (a.stage as u64, a.from, a.tasks.len() as u64) {
            return Err(bad());
        }
        let (correct_last, count_last) = (int(9)?, int(10)?);
        let mut shot_correct = vec![0; k];
        let mut shot_count = vec![0; k];
        shot_correct[k - 1] = correct_last;
        shot_count[k - 1] = count_last;
        r.added.push(SetMetrics {
            set: SetName::IdTrain,
            loss: f[4].parse().map_err(|_| bad())?,
            correct: int(7)?,
            count: int(8)?,
            correct_last,
            count_last,
            shot_correct,
            shot_count,
        });
    }
    Ok(())
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
                added: Vec::new(),
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
                added: Vec::new(),
            },
            Record {
                step: 10,
                lr: 0.005,
                sets: vec![set(SetName::IdTrain, f64::NAN, &[(0, 0), (3, 3)])],
                added: Vec::new(),
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

    /// `stages.csv`: written as documented, read back into the records it belongs to, and
    /// refused when a row names another stage, another stage's start or a step the run lacks.
    #[test]
    fn the_stages_table_is_written_and_read_back() {
        let v = |data: Vec<u32>| modicl_data::Vectors { dim: 2, data };
        let stages = [
            AddedTasks {
                stage: 1,
                from: 10,
                tasks: v(vec![1, 2, 3, 4]),
            },
            AddedTasks {
                stage: 2,
                from: 20,
                tasks: v(vec![5, 6]),
            },
        ];
        let mut r = records();
        r[0].added = vec![
            set(SetName::IdTrain, 1.5, &[(0, 0), (1, 4)]),
            set(SetName::IdTrain, 0.25, &[(0, 0), (2, 2)]),
        ];
        r[1].added = vec![
            set(SetName::IdTrain, 0.5, &[(0, 0), (3, 4)]),
            set(SetName::IdTrain, 2.0, &[(0, 0), (0, 2)]),
        ];
        let text = stages_csv(&r, &stages);
        assert_eq!(
            text,
            "step,stage,from,tasks,loss,acc,acc_last,correct,count,correct_last,count_last\n\
             1,1,10,2,1.5,0.25,0.25,1,4,1,4\n\
             1,2,20,1,0.25,1,1,2,2,2,2\n\
             10,1,10,2,0.5,0.75,0.75,3,4,3,4\n\
             10,2,20,1,2,0,0,0,2,0,2\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stages.csv");
        std::fs::write(&path, &text).unwrap();
        let mut back = records();
        read_stages(&path, &mut back, &stages, 2).unwrap();
        // (The records' own sets hold a NaN loss: compare what was read.)
        assert_eq!(back[0].added, r[0].added);
        assert_eq!(back[1].added, r[1].added);
        // Rows past the last record are ignored, as in metrics.csv.
        let mut first = records()[..1].to_vec();
        read_stages(&path, &mut first, &stages, 2).unwrap();
        assert_eq!(first[0].added, r[0].added);
        for bad in [
            text.replace("1,2,20,1,0.25", "1,2,21,1,0.25"),
            text.replace("10,2,20,1,2,0", "10,3,20,1,2,0"),
            text.replace("\n10,1,10", "\n5,1,10"),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let e = read_stages(&path, &mut records(), &stages, 2).unwrap_err();
            assert!(e.to_string().contains("stages.csv"), "{e}");
        }
    }
}
