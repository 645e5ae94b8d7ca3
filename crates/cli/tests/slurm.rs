//! `modicl sweep slurm` against a real SLURM: plan a 4-run sweep, submit it as a job array,
//! wait, check status and collect; one element fails (its task file is missing), shows as
//! failed, and succeeds when re-submitted (only it is re-submitted).
//!
//! Needs a cluster, so it is ignored by default; `.ci/run` runs it (as root) inside a
//! throw-away one: `tools/slurm/slurm-local.sh run -- cargo test --workspace --test slurm --
//! --ignored`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{plan_tiny, run as modicl, TINY};

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = modicl(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Submits the sweep's pending runs and returns the job id.
fn submit(dir: &Path) -> (String, String) {
    let out = ok(dir, &["sweep", "slurm", "sw", "--submit", "--cpus", "1"]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no job id in {out}"))
        .to_string();
    (id, out)
}

/// Waits until no element of job `id` is pending or running.
fn wait(id: &str) {
    let start = Instant::now();
    loop {
        let o = Command::new("squeue")
            .args(["-h", "-j", id, "-t", "PD,R,CG,CF,S,RQ"])
            .output()
            .expect("squeue runs");
        if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "job {id} still running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn states(dir: &Path) -> Vec<(String, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&ok(dir, &["sweep", "status", "sw", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let st = &r["status"];
            (
                st["state"].as_str().unwrap().to_string(),
                st["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs a SLURM cluster: run inside tools/slurm/slurm-local.sh (see .ci/run)"]
fn a_sweep_runs_as_a_slurm_job_array() {
    assert!(
        std::env::var_os("SLURM_CONF").is_some(),
        "SLURM_CONF is not set: no cluster to submit to; run this test inside \
         tools/slurm/slurm-local.sh run -- ..."
    );
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("tiny.toml"), TINY).unwrap();
    // Three explicit task lists of 4 tasks each; run 0 generates its own (n_base 1).
    for (f, tasks) in [
        ("a.txt", "1 2\n3 4\n5 6\n2 5\n"),
        ("b.txt", "1 1\n2 2\n3 3\n4 4\n"),
        ("c.txt", "0 1\n1 0\n6 6\n3 5\n"),
    ] {
        fs::write(d.join(f), tasks).unwrap();
    }
    let p = |f: &str| format!("file:{}", d.join(f).display());
    let axis = format!(
        "task.source=generate,{},{},{}",
        p("a.txt"),
        p("b.txt"),
        p("c.txt")
    );
    plan_tiny(d, &["--set", "task.n_base=1", "--grid", &axis]);
    // Element 3 will fail: its task file disappears after planning.
    fs::rename(d.join("c.txt"), d.join("c.txt.away")).unwrap();
    let (id, out) = submit(d);
    assert!(out.contains("4 array elements: 0-3"), "{out}");
    let script = fs::read_to_string(d.join("sw/slurm/array.sh")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-3") && script.contains("sweep run-one"),
        "{script}"
    );
    wait(&id);
    let st = states(d);
    assert_eq!(
        st.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["done", "done", "done", "failed"],
        "{st:?}"
    );
    assert!(
        st[3].1.contains("c.txt"),
        "the error names the file: {}",
        st[3].1
    );
    let text = ok(d, &["sweep", "status", "sw"]);
    assert!(
        text.contains("3 done") && text.contains("1 failed"),
        "{text}"
    );
    // The element's own log holds the error too.
    let logs: Vec<_> = fs::read_dir(d.join("sw/slurm/logs")).unwrap().collect();
    assert_eq!(logs.len(), 4);

    // Re-submission runs only what is not done.
    fs::rename(d.join("c.txt.away"), d.join("c.txt")).unwrap();
    let (id2, out) = submit(d);
    assert_ne!(id, id2);
    assert!(out.contains("1 array elements: 3"), "{out}");
    wait(&id2);
    assert!(states(d).iter().all(|s| s.0 == "done"), "{:?}", states(d));
    let subs: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("sw/slurm/submissions.json")).unwrap()).unwrap();
    assert_eq!(subs.as_array().unwrap().len(), 2);
    let out = ok(d, &["sweep", "slurm", "sw"]);
    assert!(out.contains("nothing to submit"), "{out}");

    ok(d, &["sweep", "collect", "sw"]);
    let csv = fs::read_to_string(d.join("sw/results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    for r in rows {
        assert!(r.contains(",done,"), "{r}");
        assert!(r.contains(",30,"), "final step 30 in {r}");
    }
    for run in fs::read_dir(d.join("sw/runs")).unwrap() {
        let run = run.unwrap().path();
        if run.is_dir() {
            let m = fs::read_to_string(run.join("metrics.csv")).unwrap();
            assert!(
                m.lines().any(|l| l.starts_with("30,ood_test,")),
                "{}",
                run.display()
            );
        }
    }
}
