//! The sweeps crate end to end on tiny runs: plan -> write -> run (stopped part-way, then
//! resumed) -> collect, against a sweep that ran without a stop; and a run whose directory
//! belongs to another plan fails alone, with its FAILED file, while the others finish.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use modicl_sweeps::collect::{self, State};
use modicl_sweeps::exec::{self, RunResult, SweepObserver};
use modicl_sweeps::grid::Axis;
use modicl_sweeps::plan::{self, Manifest, PlannedRun, SweepDir};
use modicl_trainer::{Device, Metric};

/// The tiny run of the tests (30 steps here) and a sweep over two learning rates.
fn manifest() -> Manifest {
    let mut c = modicl_testkit::tiny();
    c.apply_override("train.steps=30").unwrap();
    c.check().unwrap();
    plan::plan(&c, &[Axis::parse("optim.lr=0.003,0.001").unwrap()]).unwrap()
}

/// Raises the stop flag when run `name` reaches step `at`.
struct StopAt<'a> {
    name: &'a str,
    at: u64,
    stop: &'a AtomicBool,
}

impl SweepObserver for StopAt<'_> {
    fn step(&self, run: &PlannedRun, step: u64) {
        if run.name == self.name && step == self.at {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

struct Quiet;
impl SweepObserver for Quiet {}

fn pool(
    sd: &SweepDir,
    m: &Manifest,
    obs: &dyn SweepObserver,
    stop: &AtomicBool,
) -> Vec<(usize, RunResult)> {
    exec::run_pool(sd, m, 1, 1, Device::Cpu, obs, stop).unwrap()
}

fn planned(dir: &Path) -> (SweepDir, Manifest) {
    let m = manifest();
    plan::write(dir, &m).unwrap();
    let sd = SweepDir::new(dir);
    assert_eq!(sd.read().unwrap(), m, "sweep.json reads back as planned");
    (sd, m)
}

#[test]
fn plan_run_stop_resume_collect() {
    let tmp = tempfile::tempdir().unwrap();
    let (straight, m) = planned(&tmp.path().join("straight"));
    let never = AtomicBool::new(false);
    let r = pool(&straight, &m, &Quiet, &never);
    assert_eq!(r, [(0, RunResult::Finished), (1, RunResult::Finished)]);

    // Stopped inside the first run: it is checkpointed there, the second never starts.
    let (sd, m2) = planned(&tmp.path().join("stopped"));
    let stop = AtomicBool::new(false);
    let first = m2.runs[0].name.clone();
    let at = StopAt {
        name: &first,
        at: 13,
        stop: &stop,
    };
    assert_eq!(pool(&sd, &m2, &at, &stop), [(0, RunResult::Interrupted)]);
    assert_eq!(
        collect::state(&sd, &m2.runs[0]),
        State::Interrupted { step: 13 }
    );
    assert_eq!(collect::state(&sd, &m2.runs[1]), State::Pending);
    assert_eq!(exec::pending(&sd, &m2), [0, 1]);

    // Resumed: both finish, with the bytes of the sweep that never stopped.
    let r = pool(&sd, &m2, &Quiet, &never);
    assert_eq!(r, [(0, RunResult::Finished), (1, RunResult::Finished)]);
    assert!(exec::pending(&sd, &m2).is_empty());
    for run in &m2.runs {
        assert_eq!(collect::state(&sd, run), State::Done);
        for f in [
            "metrics.csv",
            "shots.csv",
            "config.toml",
            "checkpoints/step_30/model.safetensors",
        ] {
            let a = fs::read(sd.run_dir(run).join(f)).unwrap();
            let b = fs::read(straight.run_dir(run).join(f)).unwrap();
            assert!(a == b, "{}/{f} differs after a stop and resume", run.name);
        }
    }
    // A third pass has nothing to do.
    assert!(pool(&sd, &m2, &Quiet, &never).is_empty());

    // Collected: one row per run, its axis value, final step, four accuracies and a phase.
    let rows = collect::collect(&sd, &m2, 0.8, Metric::AccLast);
    assert_eq!(rows.len(), 2);
    for (row, lr) in rows.iter().zip(["0.003", "0.001"]) {
        assert_eq!(row.values, [("optim.lr".to_string(), lr.to_string())]);
        assert_eq!(row.state, State::Done);
        assert_eq!(row.n_id, 8);
        assert_eq!(row.last.as_ref().unwrap().step, 30);
        assert!(collect::four(row.last.as_ref().unwrap(), Metric::AccLast).is_some());
        assert!(row.phase_last.is_some() && row.phase_rm_last.is_some());
    }
    let csv = collect::to_csv(&m2, &rows);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains("final_ood_test_acc_last"),
        "{csv}"
    );
    // The two learning rates trained two different models.
    assert_ne!(
        rows[0].last.as_ref().unwrap().sets,
        rows[1].last.as_ref().unwrap().sets
    );
}

#[test]
fn a_run_directory_of_another_plan_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (sd, m) = planned(tmp.path());
    // Run 0's directory holds the config of run 1: resuming it under this plan is refused.
    let dir0 = sd.run_dir(&m.runs[0]);
    fs::create_dir_all(&dir0).unwrap();
    fs::write(dir0.join("config.toml"), &m.runs[1].config).unwrap();
    let r = pool(&sd, &m, &Quiet, &AtomicBool::new(false));
    assert_eq!(r.len(), 2);
    match &r[0] {
        (0, RunResult::Failed(e)) => {
            assert!(e.contains("differs from this sweep's run 0"), "{e}")
        }
        other => panic!("run 0: {other:?}"),
    }
    assert_eq!(r[1], (1, RunResult::Finished));
    let failed = fs::read_to_string(exec::failed_path(&sd, &m.runs[0])).unwrap();
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(matches!(
        collect::state(&sd, &m.runs[0]),
        State::Failed { .. }
    ));
    assert_eq!(exec::pending(&sd, &m), [0]);
}
