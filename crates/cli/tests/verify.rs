//! Checkpoints are checksummed: `modicl verify` finds a changed byte, `eval` refuses it with
//! one line naming the file, and `train --resume` sets it aside and starts from the newest
//! intact checkpoint. `eval --checkpoint N` of a step not kept lists the steps that were.

mod common;

use std::fs;
use std::path::Path;

use common::{assert_bad, plan_tiny, run, text, train_tiny_kept};

/// Flips 400 bytes inside the tensor data of `path`, keeping its size and header.
fn flip_400(path: &Path) {
    let mut b = fs::read(path).unwrap();
    let at = b.len() - 600;
    b[at..at + 400].iter_mut().for_each(|x| *x = !*x);
    fs::write(path, b).unwrap();
}

#[test]
fn a_changed_checkpoint_is_found_refused_and_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_tiny_kept(d);
    let o = run(d, &["verify", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("all intact") && out.contains("finished"),
        "{out}"
    );
    assert!(!out.contains("BAD"), "{out}");

    flip_400(&d.join("r/checkpoints/step_30/model.safetensors"));
    let o = run(d, &["verify", "r"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let bad: Vec<&str> = out.lines().filter(|l| l.contains("BAD")).collect();
    assert_eq!(bad.len(), 1, "{out}");
    assert!(
        bad[0].contains("checkpoints/step_30") && bad[0].contains("model.safetensors"),
        "{out}"
    );
    let o = run(d, &["verify", "r", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["problems"], 1, "{v}");

    // eval: one line naming the file, exit status 1 (the data, not the request, is wrong).
    let o = run(d, &["eval", "r", "--checkpoint", "30"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("step_30/model.safetensors") && err.contains("checksum"),
        "{err}"
    );

    // A resume of the unfinished run starts from step 10 and keeps the bad checkpoint aside.
    fs::remove_file(d.join("r/DONE")).unwrap();
    let o = run(d, &["verify", "r"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("resume would start from step 10"),
        "{}",
        text(&o)
    );
    let o = run(d, &["train", "--resume", "r", "--threads", "1", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("skipped checkpoint step 30") && err.contains("corrupt-step_30"),
        "{err}"
    );
    assert!(d
        .join("r/checkpoints/corrupt-step_30/model.safetensors")
        .is_file());
    let o = run(d, &["verify", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("set aside"));
}

#[test]
fn eval_of_a_step_not_kept_lists_the_steps_that_were() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    train_tiny_kept(d);
    let args = ["eval", "r", "--checkpoint", "20"];
    let o = run(d, &args);
    assert_bad(&o, &args, &["step 20 was not kept", "10, 30 and best_ood"]);
}

#[test]
fn verify_covers_every_run_of_a_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    plan_tiny(d, &["--grid", "optim.lr=0.003,0.001"]);
    let o = run(
        d,
        &["sweep", "run-one", "sw", "--index", "0", "--threads", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(d, &["verify", "sw"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("all intact") && out.contains("not started"),
        "{out}"
    );
    assert!(out.contains("2 runs: 1 started, 0 with problems"), "{out}");
    let run0 = d
        .join("sw/runs")
        .read_dir()
        .unwrap()
        .flatten()
        .find(|e| e.path().join("DONE").is_file());
    let ck = run0
        .unwrap()
        .path()
        .join("checkpoints/best_ood/model.safetensors");
    flip_400(&ck);
    let o = run(d, &["verify", "sw"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 with problems"));
    // Neither a run nor a sweep: bad input.
    let args = ["verify", "tiny.toml"];
    assert_bad(&run(d, &args), &args, &["neither a run directory"]);
}
