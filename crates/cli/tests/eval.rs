//! `modicl eval` of a checkpoint reproduces, exactly, the metrics that training recorded in
//! metrics.csv at that step (both are ratios and sums of the same counts and losses), whatever
//! the thread count.

mod common;

use std::path::Path;

use common::{eval_json, train_tiny_kept};

/// The (loss, acc, acc_last) rows of metrics.csv at `step`, by set.
fn recorded(run_dir: &Path, step: u64) -> Vec<(String, [f64; 3])> {
    let mut r = csv::Reader::from_path(run_dir.join("metrics.csv")).unwrap();
    let head = r.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (step_c, set_c) = (col("step"), col("set"));
    let metric_c = ["loss", "acc", "acc_last"].map(col);
    r.records()
        .map(|row| row.unwrap())
        .filter(|row| row[step_c].parse::<u64>().unwrap() == step)
        .map(|row| {
            let m = metric_c.map(|c| row[c].parse::<f64>().unwrap());
            (row[set_c].to_string(), m)
        })
        .collect()
}

/// What `modicl eval r --checkpoint which --json` reports: step and (loss, acc, acc_last) by
/// set.
fn evaluated(dir: &Path, which: &str, threads: &str) -> (u64, Vec<(String, [f64; 3])>) {
    let v = eval_json(dir, "r", which, threads);
    let sets = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let m = ["loss", "acc", "acc_last"].map(|k| s[k].as_f64().unwrap());
            (s["set"].as_str().unwrap().to_string(), m)
        })
        .collect();
    (v["step"].as_u64().unwrap(), sets)
}

#[test]
fn eval_of_a_checkpoint_equals_the_metrics_recorded_at_its_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Steps 10 and 30 are both evaluated and kept.
    train_tiny_kept(d);
    for (which, step, threads) in [("last", 30, "2"), ("10", 10, "1"), ("10", 10, "2")] {
        let (at, got) = evaluated(d, which, threads);
        assert_eq!(at, step, "{which}");
        let mut want = recorded(&d.join("r"), step);
        want.retain(|(set, _)| set != "train_batch");
        assert_eq!(got.len(), 4, "{which}: {got:?}");
        // Bit for bit: the same counts and the same loss sum.
        let bits = |v: &[(String, [f64; 3])]| -> Vec<(String, [u64; 3])> {
            v.iter()
                .map(|(s, m)| (s.clone(), m.map(f64::to_bits)))
                .collect()
        };
        assert_eq!(bits(&got), bits(&want), "{which}: {got:?} vs {want:?}");
    }
}
