//! `modicl sweep` on this machine: plan, run with a pool, status, collect, phase plots; bad
//! grids; one failing run does not stop the others; two processes never train the same run.

mod common;

use std::fs;
use std::process::Stdio;

use common::{assert_bad, cmd, plan_tiny, run, text, TINY};

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("tiny.toml"), TINY).unwrap();
    tmp
}

#[test]
fn plan_run_status_collect_and_plot() {
    let tmp = setup();
    let d = tmp.path();
    let plan = [
        "sweep",
        "plan",
        "sw",
        "--config",
        "tiny.toml",
        "--grid",
        "task.n_base=1,2",
        "--grid",
        "task.alpha=0.5:0.8:0.3",
    ];
    let o = run(d, &plan);
    assert!(o.status.success(), "{}", text(&o));
    // The plan writes the manifest and nothing else.
    let entries: Vec<String> = fs::read_dir(d.join("sw"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["sweep.json"]);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("sw/sweep.json")).unwrap()).unwrap();
    let names: Vec<&str> = m["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "n_base1_alpha0.5",
            "n_base1_alpha0.8",
            "n_base2_alpha0.5",
            "n_base2_alpha0.8"
        ]
    );
    let again = run(d, &plan);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    let o = run(
        d,
        &[
            "sweep",
            "run",
            "sw",
            "--jobs",
            "2",
            "--threads",
            "2",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4 of 4 runs done"), "{}", text(&o));
    let o = run(d, &["sweep", "status", "sw"]);
    assert!(text(&o).contains("4 runs: 4 done"), "{}", text(&o));
    // Everything done: a second run does nothing.
    let o = run(d, &["sweep", "run", "sw", "--quiet"]);
    assert!(
        o.status.success() && !text(&o).contains("starting"),
        "{}",
        text(&o)
    );

    let o = run(d, &["sweep", "collect", "sw", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["last"]["step"], 30);
        assert!(r["phase_last"].is_string(), "{r}");
        assert!([4, 8].contains(&r["n_id"].as_u64().unwrap()));
    }
    let csv = fs::read_to_string(d.join("sw/results.csv")).unwrap();
    let head = csv.lines().next().unwrap();
    for col in [
        "task.n_base",
        "task.alpha",
        "final_ood_test_acc_last",
        "best_ood_phase",
        "final_ood_test_rm_last",
        "final_ood_test_rm_frac",
        "final_id_train_mr_last",
        "final_phase_rm",
        "best_ood_phase_rm",
    ] {
        assert!(head.contains(col), "{col} not in {head}");
    }
    // Every done run has both labellings, and the second keeps the first unless it says
    // ood-gen-rm.
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let names: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    let col = |n: &str| names.iter().position(|h| h == n).unwrap();
    for r in rows.records() {
        let r = r.unwrap();
        let (paper, rm) = (&r[col("final_phase")], &r[col("final_phase_rm")]);
        assert!(
            !paper.is_empty() && (rm == paper || rm == "ood-gen-rm"),
            "{paper} {rm}"
        );
        let (acc, of, rm_last): (f64, f64, f64) = (
            r[col("final_ood_test_acc_last")].parse().unwrap(),
            r[col("final_ood_test_rm_frac")].parse().unwrap(),
            r[col("final_ood_test_rm_last")].parse().unwrap(),
        );
        assert!((of - acc / rm_last).abs() < 1e-12 && rm_last > 0.0 && rm_last <= 1.0);
    }
    let o = run(d, &["plot", "phase", "sw", "--labels", "rm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(d.join("sw/plots/phase_rm.png").is_file() && d.join("sw/plots/phase_rm.svg").is_file());
    let o = run(d, &["plot", "phase", "sw"]);
    assert!(o.status.success(), "{}", text(&o));
    for f in ["phase", "accuracy", "accuracy_best_ood"] {
        let png = fs::read(d.join(format!("sw/plots/{f}.png"))).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        assert!(d.join(format!("sw/plots/{f}.svg")).is_file());
    }
}

#[test]
fn a_failing_run_does_not_stop_the_others_and_is_retried() {
    let tmp = setup();
    let d = tmp.path();
    fs::write(d.join("t.txt"), "1 2\n3 4\n5 6\n2 5\n").unwrap();
    let axis = format!("task.source=generate,file:{}", d.join("t.txt").display());
    plan_tiny(d, &["--set", "task.n_base=1", "--grid", &axis]);
    fs::rename(d.join("t.txt"), d.join("t.away")).unwrap();
    let o = run(d, &["sweep", "run", "sw", "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("1 of 2 runs done, 1 failed"),
        "{}",
        text(&o)
    );
    let o = run(d, &["sweep", "status", "sw"]);
    let t = text(&o);
    assert!(
        t.contains("failed") && t.contains("t.txt") && t.contains("1 done"),
        "{t}"
    );
    let o = run(d, &["sweep", "collect", "sw"]);
    assert!(text(&o).contains("failed"), "{}", text(&o));
    let csv = fs::read_to_string(d.join("sw/results.csv")).unwrap();
    assert!(csv.contains(",failed,") && csv.contains("t.txt"), "{csv}");
    fs::rename(d.join("t.away"), d.join("t.txt")).unwrap();
    let o = run(d, &["sweep", "run-one", "sw", "--index", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(d, &["sweep", "status", "sw"]);
    assert!(text(&o).contains("2 runs: 2 done"), "{}", text(&o));
}

#[test]
fn two_processes_never_train_the_same_run() {
    let tmp = setup();
    let d = tmp.path();
    plan_tiny(
        d,
        &[
            "--set",
            "train.steps=300",
            "--grid",
            "task.n_base=1,2",
            "--grid",
            "task.seed=1,2,3",
        ],
    );
    let spawn = || {
        cmd(d, &["sweep", "run", "sw", "--quiet", "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let all = text(&a) + &text(&b);
    for i in 0..6 {
        let starts = all
            .lines()
            .filter(|l| l.starts_with(&format!("run {i} ")) && l.contains("starting at step 0"))
            .count();
        assert_eq!(starts, 1, "run {i} trained {starts} times:\n{all}");
    }
    let o = run(d, &["sweep", "status", "sw"]);
    assert!(text(&o).contains("6 runs: 6 done"), "{}", text(&o));
}

fn bad(dir: &std::path::Path, args: &[&str], needles: &[&str]) {
    assert_bad(&run(dir, args), args, needles);
}

#[test]
fn bad_grids_and_sweeps_are_one_line_errors() {
    let tmp = setup();
    let d = tmp.path();
    let p = ["sweep", "plan", "x", "--config", "tiny.toml", "--grid"];
    let with = |g: &'static str| [&p[..], &[g]].concat();
    bad(d, &with("task.alpha="), &["'task.alpha='", "no values"]);
    bad(d, &with("task.alpha"), &["'task.alpha'", "key=values"]);
    bad(d, &with("task.alpha=0.9:0.1:0.1"), &["start <= stop"]);
    bad(d, &with("task.n_base=2,4,...,100x"), &["not a number"]);
    bad(
        d,
        &with("task.nbase=1,2"),
        &["unknown key task.nbase", "task.n_base"],
    );
    bad(
        d,
        &with("task.alpha=0.5,1.5"),
        &["run 1", "task.alpha = 1.5"],
    );
    // Every invalid run is reported at once, before anything runs.
    let o = run(
        d,
        &[
            "sweep",
            "plan",
            "x",
            "--config",
            "tiny.toml",
            "--grid",
            "task.n_base=1,3,5",
            "--grid",
            "task.batch=16,20",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("3 of the planned runs are invalid"), "{err}");
    assert!(
        err.contains("run 2 (") && err.contains("run 3 (") && err.contains("run 4 ("),
        "{err}"
    );
    assert!(!d.join("x").exists(), "nothing written");
    bad(d, &["sweep", "run", "nowhere"], &["not a sweep directory"]);
    bad(
        d,
        &["sweep", "status", "nowhere"],
        &["not a sweep directory"],
    );
    plan_tiny(d, &["--grid", "task.n_base=1,2"]);
    bad(
        d,
        &["sweep", "run-one", "sw", "--index", "2"],
        &["index 2 is out of range", "2 runs"],
    );
}
