//! A run is a pure function of its config: interrupted and resumed, or resumed from an older
//! checkpoint with metrics written past it, it ends byte-identical to an uninterrupted run.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use modicl_testkit::tiny;
use modicl_trainer::{Observer, Outcome, RunDir, TrainError, Trainer};

struct Quiet;
impl Observer for Quiet {}

/// Raises the stop flag after step `at`.
struct StopAt<'a>(u64, &'a AtomicBool);
impl Observer for StopAt<'_> {
    fn step(&mut self, step: u64, _: f64, _: f32, _: f64) {
        if step == self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

fn finish(dir: &Path) {
    let mut t = Trainer::resume(RunDir::new(dir)).unwrap();
    let out = t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
    assert!(matches!(out, Outcome::Finished(_)));
}

/// The files that must match byte for byte.
fn outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        "metrics.csv".to_string(),
        "shots.csv".to_string(),
        "config.toml".to_string(),
        "checkpoints/best_ood/model.safetensors".to_string(),
    ];
    if dir.join("stages.csv").is_file() {
        files.push("stages.csv".to_string());
    }
    let mut steps: Vec<String> = fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step_"))
        .collect();
    steps.sort();
    for s in steps {
        for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
            files.push(format!("checkpoints/{s}/{f}"));
        }
    }
    files
        .into_iter()
        .map(|f| {
            let bytes = fs::read(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f, bytes)
        })
        .collect()
}

/// The same files with the same bytes.
fn assert_same(got: &[(String, Vec<u8>)], want: &[(String, Vec<u8>)], when: &str) {
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{when}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.1 == w.1, "{} differs{when}", g.0);
    }
}

fn uninterrupted(root: &Path) -> Vec<(String, Vec<u8>)> {
    uninterrupted_of(root, tiny())
}

fn uninterrupted_of(root: &Path, cfg: modicl_config::Config) -> Vec<(String, Vec<u8>)> {
    let dir = root.join("straight");
    let mut t = Trainer::create(cfg, RunDir::new(&dir), false).unwrap();
    t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
    outputs(&dir)
}

#[test]
fn stop_and_resume_equals_an_uninterrupted_run() {
    stops_and_resumes(tiny(), &[1, 5, 13, 39]);
}

/// The interventions and the other statistics resume byte-identically too, stopped inside
/// each stage of the schedules: tasks 2 -> 4 -> 8 at step indices 0, 10, 20, examples 3 -> 6
/// at 0, 15, a mixture falling to 0 at 30, best_ood chosen by loss, evaluation sets sized for
/// a standard error.
#[test]
fn interventions_resume_byte_identically_mid_schedule() {
    let mut cfg = tiny();
    for o in [
        "curriculum.tasks=2@0,4@10,8@20",
        "curriculum.examples=3@0,6@15",
        "curriculum.mix_fraction=0.5",
        "curriculum.mix_tasks=2",
        "curriculum.mix_until=30",
        "train.early_stop=loss",
        "eval.target_se=0.1",
    ] {
        cfg.apply_override(o).unwrap();
    }
    cfg.check().unwrap();
    stops_and_resumes(cfg.clone(), &[7, 12, 24]);
    // The schedules change what is trained: without them the run ends elsewhere.
    let tmp = tempfile::tempdir().unwrap();
    let mut plain = cfg.clone();
    plain.apply_override("curriculum.tasks=").unwrap();
    plain.apply_override("curriculum.examples=").unwrap();
    plain.apply_override("curriculum.mix_fraction=0").unwrap();
    let on = uninterrupted_of(tmp.path(), cfg);
    let off = uninterrupted_of(&tmp.path().join("off"), plain);
    // The tasks each stage adds are evaluated at every evaluation, two stages adding tasks.
    let text = |o: &[(String, Vec<u8>)], f: &str| {
        o.iter()
            .find(|x| x.0 == f)
            .map(|x| String::from_utf8(x.1.clone()).unwrap())
    };
    let steps = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    let st = text(&on, "stages.csv").expect("stages.csv is written with a task-count curriculum");
    let mut evals = steps(&text(&on, "metrics.csv").unwrap());
    evals.dedup();
    let want: Vec<String> = evals.iter().flat_map(|s| [s.clone(), s.clone()]).collect();
    assert_eq!(steps(&st), want);
    assert!(
        st.contains("\n10,1,10,2,") && st.contains("\n20,2,20,4,"),
        "{st}"
    );
    let stages = |o: &[(String, Vec<u8>)]| text(o, "stages.csv");
    assert_eq!(stages(&off), None, "no stages.csv without one");
    let last = |o: &[(String, Vec<u8>)]| {
        o.iter()
            .find(|f| f.0 == "checkpoints/step_40/model.safetensors")
            .map(|f| f.1.clone())
            .unwrap()
    };
    assert!(last(&on) != last(&off));
}

/// Stops a run of `cfg` after each step of `at`, resumes it, and compares the outputs with an
/// uninterrupted run's.
fn stops_and_resumes(cfg: modicl_config::Config, at: &[u64]) {
    let tmp = tempfile::tempdir().unwrap();
    let want = uninterrupted_of(tmp.path(), cfg.clone());
    for &at in at {
        let dir = tmp.path().join(format!("stop{at}"));
        let stop = AtomicBool::new(false);
        let mut t = Trainer::create(cfg.clone(), RunDir::new(&dir), false).unwrap();
        match t.run(&mut StopAt(at, &stop), &stop).unwrap() {
            Outcome::Interrupted { step } => assert_eq!(step, at),
            Outcome::Finished(_) => panic!("not interrupted at {at}"),
        }
        assert!(!RunDir::new(&dir).is_done());
        finish(&dir);
        assert_same(
            &outputs(&dir),
            &want,
            &format!(" after a stop at step {at}"),
        );
    }
}

#[test]
fn resuming_from_an_older_checkpoint_recomputes_later_metrics_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let want = uninterrupted(tmp.path());
    let dir = tmp.path().join("rewind");
    let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
    // As if killed right after step 40's metrics but before its checkpoint, with debris of a
    // half-written checkpoint and a temporary file.
    fs::remove_dir_all(dir.join("checkpoints/step_40")).unwrap();
    fs::remove_file(dir.join("DONE")).unwrap();
    fs::create_dir_all(dir.join("checkpoints/.tmp-step_40-1")).unwrap();
    fs::write(dir.join(".metrics.csv.tmp-1"), b"half").unwrap();
    fs::create_dir_all(dir.join("checkpoints/step_41")).unwrap(); // no DONE: ignored
                                                                  // Resume checkpoints (every 6 steps) were pruned as the run went on: step_12 is newest.
    let r = Trainer::resume(RunDir::new(&dir)).unwrap();
    assert_eq!(r.step, 12, "newest complete checkpoint");
    assert!(r.records.iter().all(|x| x.step <= 12));
    drop(r);
    fs::remove_dir_all(dir.join("checkpoints/step_41")).unwrap();
    // As if also killed between rewriting metrics.csv and shots.csv on an earlier resume:
    // metrics.csv already trimmed to step 12, shots.csv still holding later rows.
    let m = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let trimmed: Vec<&str> = m
        .lines()
        .filter(|l| {
            l.split(',')
                .next()
                .unwrap()
                .parse::<u64>()
                .map_or(true, |s| s <= 12)
        })
        .collect();
    fs::write(dir.join("metrics.csv"), trimmed.join("\n") + "\n").unwrap();
    finish(&dir);
    assert!(!dir.join("checkpoints/.tmp-step_40-1").exists());
    assert!(!dir.join(".metrics.csv.tmp-1").exists());
    assert_same(&outputs(&dir), &want, "");
}

#[test]
fn a_kill_between_the_last_checkpoint_and_pruning_is_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let want = uninterrupted(tmp.path());
    let dir = tmp.path().join("late");
    let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
    // The last checkpoint is complete, the resume checkpoint of step 36 not yet pruned, and
    // neither summary.json nor DONE written.
    let ck = dir.join("checkpoints");
    fs::create_dir_all(ck.join("step_36")).unwrap();
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
        "DONE",
    ] {
        fs::copy(ck.join("step_12").join(f), ck.join("step_36").join(f)).unwrap();
    }
    fs::remove_file(dir.join("DONE")).unwrap();
    fs::remove_file(dir.join("summary.json")).unwrap();
    finish(&dir);
    assert!(!ck.join("step_36").exists());
    assert!(dir.join("summary.json").is_file());
    assert_same(&outputs(&dir), &want, "");
}

#[test]
fn kept_checkpoints_follow_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
    // log:3 over warm-up 4 .. 40 -> 4, 12, 40; resume checkpoints every 6 are pruned.
    assert_eq!(
        RunDir::new(&dir).complete_checkpoints().unwrap(),
        [4, 12, 40]
    );
    let rows = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let steps: Vec<&str> = rows
        .lines()
        .skip(1)
        .filter(|l| l.contains(",ood_test,"))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    // Step 1, the early log-spaced steps below eval_every 5 (eval_early 8: 2, 3, 4), every 5.
    assert_eq!(
        steps,
        ["1", "2", "3", "4", "5", "10", "15", "20", "25", "30", "35", "40"]
    );
    let shots = fs::read_to_string(dir.join("shots.csv")).unwrap();
    assert_eq!(
        shots.lines().count(),
        1 + 12 * 5 * 6,
        "12 evals x 5 sets x 6 shots"
    );
}

/// A run stopped (and checkpointed) after step 20, in a temporary directory.
fn stopped_at_20() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    let stop = AtomicBool::new(false);
    t.run(&mut StopAt(20, &stop), &stop).unwrap();
    (tmp, dir)
}

/// Flips `n` bytes of `path` from offset `at` (the file keeps its size).
fn flip(path: &Path, at: usize, n: usize) {
    let mut bytes = fs::read(path).unwrap();
    assert!(at + n <= bytes.len(), "{} is too small", path.display());
    bytes[at..at + n].iter_mut().for_each(|b| *b ^= 0xa5);
    fs::write(path, bytes).unwrap();
}

/// Loads everything resume loads from checkpoint `ck`.
fn load(ck: &Path) -> Result<(), TrainError> {
    use modicl_trainer::{adamw_config, model_config, rundir};
    let cfg = tiny();
    rundir::read_state(ck)?;
    let model = rundir::read_model(ck, &model_config(&cfg))?;
    rundir::read_optimizer(ck, &model, adamw_config(&cfg))?;
    Ok(())
}

#[test]
fn corrupt_or_truncated_checkpoints_are_clear_errors() {
    let (_tmp, dir) = stopped_at_20();
    let ck = dir.join("checkpoints/step_20");
    let model = fs::read(ck.join("model.safetensors")).unwrap();
    let mut flipped = model.clone();
    // 400 bytes inside the tensor data: the header, the names and the shapes stay valid, so
    // only the checksum can tell.
    let data = flipped.len() - 1000;
    flipped[data..data + 400]
        .iter_mut()
        .for_each(|b| *b ^= 0xff);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("model.safetensors", flipped),
        ("model.safetensors", model[..model.len() / 2].to_vec()),
        ("model.safetensors", Vec::new()),
        ("optimizer.safetensors", b"garbage".to_vec()),
        ("state.json", b"{\"step\": ".to_vec()),
    ];
    for (file, bytes) in cases {
        let keep = fs::read(ck.join(file)).unwrap();
        fs::write(ck.join(file), &bytes).unwrap();
        let err = match load(&ck) {
            Err(e) => e,
            Ok(_) => panic!("{file} with {} bytes was accepted", bytes.len()),
        };
        assert!(matches!(err, TrainError::Corrupt { .. }), "{file}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(file) && msg.contains("corrupt"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
        fs::write(ck.join(file), keep).unwrap();
    }
    load(&ck).unwrap();
    // The optimizer's moments, changed in place.
    flip(&ck.join("optimizer.safetensors"), 2000, 400);
    let msg = load(&ck).unwrap_err().to_string();
    assert!(
        msg.contains("optimizer.safetensors") && msg.contains("checksum"),
        "{msg}"
    );
}

#[test]
fn a_format_1_checkpoint_without_checksums_still_loads() {
    use modicl_trainer::rundir;
    let (_tmp, dir) = stopped_at_20();
    let ck = dir.join("checkpoints/step_20");
    let mut state = rundir::read_state(&ck).unwrap();
    assert_eq!(state.format_version, rundir::FORMAT_VERSION);
    assert_eq!(state.files.len(), 2, "{:?}", state.files);
    // What modicl wrote before checksums: format 1, no `files`, an empty DONE.
    state.format_version = 1;
    state.files.clear();
    let json = serde_json::to_string_pretty(&state).unwrap();
    assert!(!json.contains("files"));
    fs::write(ck.join("state.json"), json).unwrap();
    fs::write(ck.join("DONE"), b"").unwrap();
    load(&ck).unwrap();
    let report = modicl_trainer::verify::verify_run(&RunDir::new(&dir)).unwrap();
    let c = report
        .checks
        .iter()
        .find(|c| c.item == "checkpoints/step_20")
        .unwrap();
    assert_eq!(c.status.label(), "unverified", "{c:?}");
    assert_eq!(report.bad(), 0);
    // A format-2 state with an empty DONE is not a format-1 checkpoint: refused.
    state.format_version = 2;
    fs::write(
        ck.join("state.json"),
        serde_json::to_string(&state).unwrap(),
    )
    .unwrap();
    let msg = load(&ck).unwrap_err().to_string();
    assert!(msg.contains("DONE"), "{msg}");
}

#[test]
fn resume_sets_a_corrupt_checkpoint_aside_and_still_ends_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let want = uninterrupted(tmp.path());
    let dir = tmp.path().join("corrupt");
    let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    let stop = AtomicBool::new(false);
    t.run(&mut StopAt(20, &stop), &stop).unwrap();
    let run = RunDir::new(&dir);
    let steps = run.complete_checkpoints().unwrap();
    assert_eq!(steps.last(), Some(&20), "{steps:?}");
    let older = steps[steps.len() - 2];
    let model = dir.join("checkpoints/step_20/model.safetensors");
    flip(&model, 600, 400);
    let bad_bytes = fs::read(&model).unwrap();

    let report = modicl_trainer::verify::verify_run(&run).unwrap();
    let bad: Vec<_> = report.checks.iter().filter(|c| c.status.is_bad()).collect();
    assert_eq!(bad.len(), 1, "{:?}", report.checks);
    assert_eq!(bad[0].item, "checkpoints/step_20");
    assert!(bad[0].status.detail().contains("model.safetensors"));
    assert_eq!((report.resume_from, report.done), (older, false));

    let t = Trainer::resume(RunDir::new(&dir)).unwrap();
    assert_eq!(t.step, older);
    assert_eq!(t.skipped.len(), 1);
    let s = &t.skipped[0];
    assert_eq!(s.step, 20);
    assert!(s.reason.contains("model.safetensors"), "{}", s.reason);
    // Kept aside, not deleted, and out of resume's way.
    assert_eq!(s.moved_to, dir.join("checkpoints/corrupt-step_20"));
    assert_eq!(
        fs::read(s.moved_to.join("model.safetensors")).unwrap(),
        bad_bytes
    );
    assert!(!run.complete_checkpoints().unwrap().contains(&20));
    drop(t);
    finish(&dir);
    assert_same(
        &outputs(&dir),
        &want,
        " after a resume past a corrupt checkpoint",
    );
    let report = modicl_trainer::verify::verify_run(&run).unwrap();
    assert_eq!(report.bad(), 0, "{:?}", report.checks);
    assert!(report.done);
    assert!(report
        .checks
        .iter()
        .any(|c| c.item == "checkpoints/corrupt-step_20" && c.status.label() == "set aside"));
}

#[test]
fn a_checkpoint_that_was_not_kept_is_an_error_listing_those_that_were() {
    use modicl_trainer::Checkpoint;
    let (_tmp, dir) = stopped_at_20();
    let run = RunDir::new(&dir);
    let steps = run.complete_checkpoints().unwrap();
    let err = run.checkpoint(Checkpoint::Step(19)).unwrap_err();
    assert!(err.is_bad_input(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("step 19 was not kept"), "{msg}");
    for s in steps {
        assert!(msg.contains(&s.to_string()), "{msg} lacks {s}");
    }
    run.checkpoint(Checkpoint::Step(20)).unwrap();
}

#[test]
fn non_finite_values_stop_the_run_and_keep_the_last_good_checkpoint() {
    use modicl_trainer::{adamw_config, model_config, rundir};
    let (_tmp, dir) = stopped_at_20();
    // Poison the second moments of step 20 (a negative variance makes the update NaN), as a
    // stand-in for a diverging run; no learning rate in range does that reliably.
    let ck = dir.join("checkpoints/step_20");
    let cfg = tiny();
    let model = rundir::read_model(&ck, &model_config(&cfg)).unwrap();
    let mut opt = rundir::read_optimizer(&ck, &model, adamw_config(&cfg)).unwrap();
    opt.v.iter_mut().for_each(|v| *v = -1.0);
    let state = rundir::read_state(&ck).unwrap();
    rundir::write_checkpoint(&ck, &model, Some(&opt), &state).unwrap();
    let mut cfg_every = fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg_every.contains("save_every = 6"));
    cfg_every = cfg_every.replace("save_every = 6", "save_every = 1");
    fs::write(dir.join("config.toml"), cfg_every).unwrap();
    // The config changed, so the checkpoint's hash no longer matches: refused, clearly.
    let e = Trainer::resume(RunDir::new(&dir)).err().unwrap();
    assert!(e.to_string().contains("belongs to"), "{e}");
    let state = rundir::CheckpointState {
        config_hash: rundir::config_hash(&RunDir::new(&dir).read_config().unwrap()),
        ..state
    };
    rundir::write_checkpoint(&ck, &model, Some(&opt), &state).unwrap();
    let mut t = Trainer::resume(RunDir::new(&dir)).unwrap();
    let err = t.run(&mut Quiet, &AtomicBool::new(false)).unwrap_err();
    let TrainError::NonFinite { step, last, .. } = &err else {
        panic!("expected a non-finite stop, got {err}");
    };
    assert_eq!((*step, *last), (21, Some(20)), "{err}");
    assert!(err.to_string().contains("step 20"), "{err}");
    assert_eq!(
        RunDir::new(&dir).complete_checkpoints().unwrap().last(),
        Some(&20)
    );
    assert!(!RunDir::new(&dir).is_done());
}

#[test]
fn a_fresh_run_refuses_an_existing_run_unless_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
    let e = Trainer::create(tiny(), RunDir::new(&dir), false)
        .err()
        .unwrap();
    assert!(
        matches!(e, TrainError::RunExists { .. }) && e.is_bad_input(),
        "{e}"
    );
    Trainer::create(tiny(), RunDir::new(&dir), true).unwrap();
    let other = tmp.path().join("not-a-run");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("precious.txt"), b"x").unwrap();
    let e = Trainer::create(tiny(), RunDir::new(&other), true)
        .err()
        .unwrap();
    assert!(matches!(e, TrainError::NotARun(_)), "{e}");
    assert!(other.join("precious.txt").exists());
}

#[test]
fn early_evaluations_add_metrics_rows_and_change_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |early: u64| {
        let dir = tmp.path().join(format!("early{early}"));
        let mut cfg = tiny();
        cfg.apply_override("train.eval_every=10").unwrap();
        cfg.apply_override(&format!("train.eval_early={early}"))
            .unwrap();
        let mut t = Trainer::create(cfg, RunDir::new(&dir), false).unwrap();
        t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
        (
            outputs(&dir),
            fs::read_to_string(dir.join("metrics.csv")).unwrap(),
        )
    };
    let (plain, plain_csv) = run(0);
    let (more, more_csv) = run(8);
    let steps = |csv: &str| {
        let mut s: Vec<u64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        s.dedup();
        s
    };
    assert_eq!(steps(&plain_csv), [1, 10, 20, 30, 40]);
    assert_eq!(steps(&more_csv), [1, 2, 3, 4, 6, 7, 10, 20, 30, 40]);
    // Without the early rows the metrics are the same text.
    let regular: String = more_csv
        .lines()
        .filter(|l| {
            let s = l.split(',').next().unwrap();
            !["2", "3", "4", "6", "7"].contains(&s)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(regular, plain_csv);
    // Every checkpoint (best_ood included: early steps are never candidates) is the same bytes;
    // config.toml differs only in its eval_early line.
    let files = |v: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        v.iter()
            .filter(|f| f.0.starts_with("checkpoints/"))
            .cloned()
            .collect()
    };
    assert_same(&files(&more), &files(&plain), " with early evaluations");
}

/// The best step's loss is recorded in state.json only when it decides: the checkpoints of a
/// run at the default statistic keep the bytes they had before it could be chosen.
#[test]
fn state_json_records_the_loss_only_for_early_stopping_by_loss() {
    let tmp = tempfile::tempdir().unwrap();
    for (by, recorded) in [("acc_last", false), ("loss", true)] {
        let mut cfg = tiny();
        cfg.apply_override(&format!("train.early_stop={by}"))
            .unwrap();
        let dir = tmp.path().join(by);
        let mut t = Trainer::create(cfg, RunDir::new(&dir), false).unwrap();
        t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
        for ck in ["best_ood", "step_40"] {
            let state =
                fs::read_to_string(dir.join("checkpoints").join(ck).join("state.json")).unwrap();
            assert_eq!(state.contains("\"loss\""), recorded, "{by} {ck}: {state}");
        }
    }
}

/// `summary.json` reads the tasks each stage adds at the last evaluation before they entered
/// the batches (step 10 for tasks entering at step index 12: no evaluation at 12) and at the
/// end, with the counts of `stages.csv`.
#[test]
fn the_summary_reads_added_tasks_before_they_enter() {
    let mut cfg = tiny();
    cfg.apply_override("curriculum.tasks=2@0,4@12,8@20")
        .unwrap();
    cfg.check().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Trainer::create(cfg, RunDir::new(tmp.path()), false).unwrap();
    let Outcome::Finished(s) = t.run(&mut Quiet, &AtomicBool::new(false)).unwrap() else {
        panic!("not finished");
    };
    let got: Vec<_> = s
        .stages
        .iter()
        .map(|s| (s.stage, s.from, s.tasks, s.before.as_ref().unwrap().step))
        .collect();
    assert_eq!(got, [(1, 12, 2, 10), (2, 20, 4, 20)]);
    let text = fs::read_to_string(tmp.path().join("stages.csv")).unwrap();
    for st in &s.stages {
        for r in [st.before.as_ref().unwrap(), st.last.as_ref().unwrap()] {
            let row = format!("\n{},{},{},{},", r.step, st.stage, st.from, st.tasks);
            let line = text[text.find(&row).expect(&row) + 1..]
                .lines()
                .next()
                .unwrap();
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f[6].parse::<f64>().unwrap(), r.set.acc_last, "{line}");
            assert_eq!(f[10].parse::<u64>().unwrap(), r.set.count_last, "{line}");
        }
        assert_eq!(st.last.as_ref().unwrap().step, 40);
    }
    // summary.json holds them, and reads back.
    let json = fs::read_to_string(tmp.path().join("summary.json")).unwrap();
    let back: modicl_trainer::Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back.stages, s.stages);
}
