//! `modicl probe`: files, determinism, agreement with `modicl eval`, and bad input.

mod common;

use std::path::Path;

use common::{assert_bad, eval_json, run, text, train_tiny_kept};
use modicl_data::npy::decode_i64;

/// Every file under `dir`, relative path and bytes, sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A temporary folder holding the tiny run `r` (checkpoints 10 and 30).
fn trained_tiny() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    train_tiny_kept(tmp.path());
    tmp
}

/// Small label-corruption settings, so the tests stay fast.
const SMALL: [&str; 6] = ["--tasks", "3", "--trials", "2", "--sequences", "8"];

/// `modicl probe ARGS` in `dir`; panics unless it succeeds.
fn probe_ok(dir: &Path, args: &[&str]) {
    let mut all = vec!["probe"];
    all.extend_from_slice(args);
    let o = run(dir, &all);
    assert!(o.status.success(), "{all:?}: {}", text(&o));
}

#[test]
fn probe_all_writes_what_its_index_lists_and_is_deterministic() {
    let tmp = trained_tiny();
    let dir = tmp.path();
    probe_ok(dir, &[&["all", "r", "--threads", "1"][..], &SMALL].concat());
    let out = dir.join("r/probes/step_30");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["step"], 30);
    let probes = index["probes"].as_object().unwrap();
    // shots, one grid per default task (the first i.d. and the first o.o.d. task), noise, and
    // the representation probes on the first task: attention, pca, cosine; the embeddings.
    assert_eq!(probes.len(), 8, "{probes:?}");
    for prefix in [
        "shots",
        "kshot/",
        "noise",
        "attention/",
        "pca/",
        "cosine/",
        "embedding",
    ] {
        assert!(
            probes.keys().any(|k| k.starts_with(prefix)),
            "{prefix} missing: {probes:?}"
        );
    }
    for (key, entry) in probes {
        for f in entry["files"].as_array().unwrap() {
            assert!(out.join(f.as_str().unwrap()).is_file(), "{key}: {f}");
        }
    }
    // k-shot arrays: [shots, p, p]; the default shots for k = 6 are 1, 2 and 5 (13 of 31 rounds to 2).
    let grid = probes.keys().find(|k| k.starts_with("kshot/")).unwrap();
    let (shape, data) =
        decode_i64(&std::fs::read(out.join(grid).join("correct.npy")).unwrap()).unwrap();
    assert_eq!(shape, [3, 7, 7]);
    assert!(data.iter().all(|&v| v == 0 || v == 1));
    // The same probes on 2 threads, elsewhere: the same bytes.
    let again = ["all", "r", "--threads", "2", "--out", "again"];
    probe_ok(dir, &[&again[..], &SMALL].concat());
    let (a, b) = (files(&out), files(&dir.join("again")));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(x.1 == y.1, "{} differs between runs", x.0);
    }
}

#[test]
fn probe_shots_reports_the_accuracy_eval_reports() {
    let tmp = trained_tiny();
    let dir = tmp.path();
    probe_ok(
        dir,
        &[
            "shots",
            "r",
            "--checkpoint",
            "10",
            "--json",
            "--threads",
            "1",
        ],
    );
    let ev = eval_json(dir, "r", "10", "1");
    let csv = std::fs::read_to_string(dir.join("r/probes/step_10/shots.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4 * 6);
    for set in ev["sets"].as_array().unwrap() {
        let name = set["set"].as_str().unwrap();
        let want: Vec<f64> = set["acc_per_shot"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got: Vec<f64> = rows
            .iter()
            .filter(|r| &r[0] == name)
            .map(|r| r[2].parse().unwrap())
            .collect();
        assert_eq!(got, want, "{name}");
        // The oracles: RM never beats MR, both start at the same value at 0 shots.
        for r in rows.iter().filter(|r| &r[0] == name) {
            let (rm, mr): (f64, f64) = (r[5].parse().unwrap(), r[7].parse().unwrap());
            assert!(rm <= mr + 1e-12, "{r:?}");
        }
    }
}

#[test]
fn bad_probe_requests_are_one_line_errors() {
    let tmp = trained_tiny();
    let dir = tmp.path();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["probe", "kshot", "r", "--task", "3,40"],
            &["--task", "3,40", "0..7"],
        ),
        (
            &["probe", "kshot", "r", "--task", "3"],
            &["--task", "2 comma-separated"],
        ),
        (
            &["probe", "kshot", "r", "--task", "1,1", "--shots", "1,6"],
            &["--shots", "6", "0..=5"],
        ),
        (
            &[
                "probe",
                "kshot",
                "r",
                "--task",
                "1,1",
                "--examples",
                "1,2;3",
            ],
            &["--examples", "3"],
        ),
        (
            &[
                "probe",
                "kshot",
                "r",
                "--task",
                "1,1",
                "--examples",
                "1,2",
                "--shots",
                "2",
            ],
            &["--shots", "at most the 1 examples"],
        ),
        (
            &["probe", "noise", "r", "--checkpoint", "7"],
            &["--checkpoint", "10, 30"],
        ),
        (&["probe", "shots", "nowhere"], &["nowhere"]),
        (
            &[
                "probe", "pca", "r", "--task", "1,1", "--layer", "2", "--head", "0",
            ],
            &["--layer", "2", "0..2"],
        ),
        (
            &[
                "probe", "pca", "r", "--task", "1,1", "--layer", "0", "--head", "5",
            ],
            &["--head", "5", "0..2"],
        ),
        (
            &["probe", "attention", "r", "--task", "1,1", "--slot", "5"],
            &["--slot", "5", "0..=4"],
        ),
        (
            &["probe", "cosine", "r", "--task", "9,1"],
            &["--task", "9,1"],
        ),
    ];
    for (args, needles) in cases {
        let o = run(dir, args);
        assert_bad(&o, args, needles);
    }
}

#[test]
fn composite_p_drops_only_the_log_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("tiny.toml"), common::TINY).unwrap();
    let train = [
        "train",
        "--config",
        "tiny.toml",
        "--set",
        "task.p=9",
        "--set",
        "train.steps=10",
        "--run-dir",
        "r9",
        "--threads",
        "1",
        "--quiet",
    ];
    let o = run(dir, &train);
    assert!(o.status.success(), "{}", text(&o));
    for args in [
        &[
            "probe", "pca", "r9", "--task", "2,3", "--layer", "0", "--head", "1",
        ][..],
        &["probe", "embed", "r9"][..],
    ] {
        let o = run(dir, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains("p = 9 is not prime"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let pca = dir.join("r9/probes/step_10/pca/task_2_3_slot_4_xy");
    assert!(pca.join("L0H1.png").is_file() && pca.join("L0H1.svg").is_file());
}
