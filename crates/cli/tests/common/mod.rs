//! Helpers shared by the binary's integration tests.
#![allow(dead_code)] // each test file uses a different subset

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A tiny run configuration (p = 7, d 16, 30 steps): a run takes well under a second.
pub const TINY: &str =
    "[task]\np = 7\nbatch = 16\nexamples = 6\n[model]\nd_model = 16\nheads = 2\n\
layers = 2\n[train]\nsteps = 30\nwarmup = 3\neval_every = 10\ncheckpoints = \"log:2\"\n\
save_every = 10\n[eval]\nseqs_per_task = 2\n";

/// `modicl ARGS` in `dir`, not yet run.
pub fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_modicl"));
    c.args(args).current_dir(dir);
    c
}

/// Runs `modicl ARGS` in `dir` to completion.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("runs")
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `modicl eval RUN --checkpoint WHICH --json --threads T` in `dir`: its JSON, once it has
/// succeeded.
pub fn eval_json(dir: &Path, run_dir: &str, which: &str, threads: &str) -> serde_json::Value {
    let args = [
        "eval",
        run_dir,
        "--checkpoint",
        which,
        "--json",
        "--threads",
        threads,
    ];
    let o = run(dir, &args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Expects exit status 2 and a one-line error (no panic) that contains every needle.
pub fn assert_bad(o: &Output, args: &[&str], needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: stderr {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line expected, got {err}"
    );
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
    }
}

/// Writes TINY to `dir/tiny.toml` and plans sweep `dir/sw` on it with `extra` arguments
/// (`--set`, `--grid`); panics unless the plan succeeds.
pub fn plan_tiny(dir: &Path, extra: &[&str]) {
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let mut args = vec!["sweep", "plan", "sw", "--config", "tiny.toml"];
    args.extend_from_slice(extra);
    let o = run(dir, &args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
}

/// Trains TINY into `dir/r` with checkpoints 10 and 30 kept (and best_ood); panics unless it
/// succeeds.
pub fn train_tiny_kept(dir: &Path) {
    std::fs::write(dir.join("tiny.toml"), TINY).unwrap();
    let args = [
        "train",
        "--config",
        "tiny.toml",
        "--set",
        "train.checkpoints=10,30",
        "--run-dir",
        "r",
        "--threads",
        "1",
        "--quiet",
    ];
    let o = run(dir, &args);
    assert!(o.status.success(), "{}", text(&o));
}

/// Every file of a run that must not depend on interruptions (not summary.json, which
/// holds timings, nor the plots).
pub fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in ["config.toml", "metrics.csv", "shots.csv", "DONE"] {
        out.push((f.to_string(), fs::read(dir.join(f)).unwrap()));
    }
    let mut cks: Vec<String> = fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cks.sort();
    for ck in cks {
        let mut files: Vec<String> = fs::read_dir(dir.join("checkpoints").join(&ck))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        for f in files {
            let p = format!("checkpoints/{ck}/{f}");
            out.push((p.clone(), fs::read(dir.join(&p)).unwrap()));
        }
    }
    out
}

pub fn assert_same(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)]) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want));
    for (g, w) in got.iter().zip(want) {
        assert!(g.1 == w.1, "{} differs", g.0);
    }
}
