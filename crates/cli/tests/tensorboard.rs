//! `--tensorboard`: event files that TensorBoard's own reader reads back, value for value equal
//! to metrics.csv.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, text, TINY};

/// (tag, step) -> value, from metrics.csv: every set's loss, acc and acc_last, and lr.
fn from_metrics(run_dir: &Path) -> BTreeMap<(String, u64), f32> {
    let mut out = BTreeMap::new();
    let mut rd = csv::Reader::from_path(run_dir.join("metrics.csv")).unwrap();
    for r in rd.records() {
        let r = r.unwrap();
        let (step, set): (u64, &str) = (r[0].parse().unwrap(), &r[1]);
        out.insert(
            ("lr".to_string(), step),
            r[2].parse::<f64>().unwrap() as f32,
        );
        for (i, m) in ["loss", "acc", "acc_last"].iter().enumerate() {
            out.insert(
                (format!("{set}/{m}"), step),
                r[3 + i].parse::<f64>().unwrap() as f32,
            );
        }
    }
    out
}

/// Reads a protobuf varint at `*i`.
fn varint(b: &[u8], i: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let x = b[*i];
        *i += 1;
        v |= ((x & 0x7f) as u64) << shift;
        if x < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The fields of a protobuf message: (field, wire type, bytes of a length-delimited or fixed
/// value, or the varint).
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>, u64)> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = varint(b, &mut i);
        let (f, w) = (key >> 3, key & 7);
        match w {
            0 => out.push((f, w, Vec::new(), varint(b, &mut i))),
            1 => {
                out.push((f, w, b[i..i + 8].to_vec(), 0));
                i += 8
            }
            5 => {
                out.push((f, w, b[i..i + 4].to_vec(), 0));
                i += 4
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                out.push((f, w, b[i..i + n].to_vec(), 0));
                i += n
            }
            _ => panic!("wire type {w}"),
        }
    }
    out
}

/// Decodes the event file here (framing, then Event/Summary/Value fields).
fn decode(path: &Path) -> (String, BTreeMap<(String, u64), f32>) {
    let b = std::fs::read(path).unwrap();
    let mut i = 0;
    let (mut version, mut out) = (String::new(), BTreeMap::new());
    while i < b.len() {
        let n = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) as usize;
        let data = &b[i + 12..i + 12 + n];
        i += 12 + n + 4;
        let ev = fields(data);
        let step = ev.iter().find(|f| f.0 == 2).map_or(0, |f| f.3);
        for (f, _, bytes, _) in &ev {
            if *f == 3 {
                version = String::from_utf8(bytes.clone()).unwrap();
            }
            if *f == 5 {
                for (_, _, value, _) in fields(bytes).iter().filter(|v| v.0 == 1) {
                    let vf = fields(value);
                    let tag =
                        String::from_utf8(vf.iter().find(|x| x.0 == 1).unwrap().2.clone()).unwrap();
                    let x = f32::from_le_bytes(
                        vf.iter()
                            .find(|x| x.0 == 2)
                            .unwrap()
                            .2
                            .clone()
                            .try_into()
                            .unwrap(),
                    );
                    out.insert((tag, step), x);
                }
            }
        }
    }
    assert_eq!(i, b.len(), "trailing bytes");
    (version, out)
}

/// A Python with the `tensorboard` package: `MODICL_TENSORBOARD_PYTHON` when set (.ci/run
/// installs one), else a virtual environment made once per target folder; None (with the reason
/// printed) when it cannot be installed. With `MODICL_REQUIRE_TENSORBOARD` set (.ci/run, once
/// its install worked) a failure is a panic, so the check cannot pass by skipping.
fn tensorboard_python() -> Option<PathBuf> {
    let found = find_tensorboard_python();
    assert!(
        found.is_some() || std::env::var_os("MODICL_REQUIRE_TENSORBOARD").is_none(),
        "MODICL_REQUIRE_TENSORBOARD is set but no Python with tensorboard could be had"
    );
    found
}

fn find_tensorboard_python() -> Option<PathBuf> {
    if let Some(py) = std::env::var_os("MODICL_TENSORBOARD_PYTHON") {
        return Some(PathBuf::from(py));
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tensorboard-venv");
    let py = venv.join("bin/python");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok(&py) {
        return Some(py);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED TensorBoard's reader: python3 -m venv failed");
        return None;
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "tensorboard"])
        .output();
    match pip {
        Ok(o) if o.status.success() && ok(&py) => Some(py),
        Ok(o) => {
            eprintln!(
                "SKIPPED TensorBoard's reader: pip install tensorboard failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED TensorBoard's reader: {e}");
            None
        }
    }
}

const READ: &str = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
"#;

#[test]
fn event_files_hold_every_metric_and_tensorboard_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let args = [
        "train",
        "--config",
        "tiny.toml",
        "--run-dir",
        "r",
        "--threads",
        "1",
        "--quiet",
        "--tensorboard",
    ];
    let o = run(dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    let want = from_metrics(&dir.join("r"));
    assert!(want.len() > 40, "{}", want.len());
    // The config hash ignores the output-only key: the checkpoint resumes without it.
    assert!(std::fs::read_to_string(dir.join("r/config.toml"))
        .unwrap()
        .contains("tensorboard = true"));
    // Decoded here, framing checked.
    let file = dir.join("r/tb").join(modicl_trainer::tensorboard::FILE);
    let (version, got) = decode(&file);
    assert_eq!(version, "brain.Event:2");
    assert_eq!(got, want);
    // And by TensorBoard itself.
    let Some(py) = tensorboard_python() else {
        return;
    };
    let o = Command::new(py)
        .args(["-c", READ])
        .arg(dir.join("r/tb"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read: BTreeMap<String, Vec<(u64, f64)>> = serde_json::from_slice(&o.stdout).unwrap();
    let mut n = 0;
    for ((tag, step), v) in &want {
        let series = read
            .get(tag)
            .unwrap_or_else(|| panic!("TensorBoard has no {tag}"));
        let (_, x) = series
            .iter()
            .find(|(s, _)| s == step)
            .unwrap_or_else(|| panic!("{tag} step {step} missing"));
        assert!(
            (*x as f32 == *v) || (x.is_nan() && v.is_nan()),
            "{tag} step {step}: {x} vs {v}"
        );
        n += 1;
    }
    eprintln!("TensorBoard read back all {n} values");
}
