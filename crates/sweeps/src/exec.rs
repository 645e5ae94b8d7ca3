//! Running the runs of a sweep: one at a time (`run_one`, what a SLURM array element does) or
//! as a local pool of concurrent runs. A run is locked while it trains (an advisory file lock
//! released by the OS when the process dies, even by SIGKILL), so two processes on the same
//! sweep never train the same run; a finished run is skipped and an interrupted one resumed.

use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use modicl_config::Config;
use modicl_trainer::{Observer, Outcome, RunDir, Trainer};

use crate::plan::{Manifest, PlannedRun, SweepDir};
use crate::SweepError;

/// How one attempt at a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunResult {
    /// Trained to the end now.
    Finished,
    /// Already DONE: nothing to do.
    AlreadyDone,
    /// Another process holds the run's lock.
    Busy,
    /// Stopped by the stop flag, checkpointed; resumable.
    Interrupted,
    /// Failed with this one-line error (also written to the run's FAILED file).
    Failed(String),
}

/// Progress of the runs of a pool.
pub trait SweepObserver: Sync {
    fn started(&self, _run: &PlannedRun, _from_step: u64, _steps: u64) {}
    fn step(&self, _run: &PlannedRun, _step: u64) {}
    fn finished(&self, _run: &PlannedRun, _result: &RunResult) {}
    /// Resuming the run set aside a corrupt checkpoint (and started from an older one).
    fn skipped(&self, _run: &PlannedRun, _skipped: &modicl_trainer::Skipped) {}
}

/// Indices of the runs that are not DONE.
pub fn pending(sd: &SweepDir, m: &Manifest) -> Vec<usize> {
    m.runs
        .iter()
        .filter(|r| !RunDir::new(sd.run_dir(r)).is_done())
        .map(|r| r.index)
        .collect()
}

/// The lock file of a run.
pub fn lock_path(sd: &SweepDir, run: &PlannedRun) -> PathBuf {
    sd.root.join("runs").join(format!(".{}.lock", run.name))
}

/// The marker a failed attempt leaves: one line, the error.
pub fn failed_path(sd: &SweepDir, run: &PlannedRun) -> PathBuf {
    sd.run_dir(run).join("FAILED")
}

/// Takes the run's lock, or `None` when another process holds it.
pub fn try_lock(sd: &SweepDir, run: &PlannedRun) -> Result<Option<File>, SweepError> {
    let path = lock_path(sd, run);
    let dir = path.parent().expect("lock files live in runs/");
    fs::create_dir_all(dir).map_err(|e| SweepError::io(dir, e))?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SweepError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(SweepError::io(&path, e)),
    }
}

struct Relay<'a> {
    run: &'a PlannedRun,
    obs: &'a dyn SweepObserver,
}

impl Observer for Relay<'_> {
    fn start(&mut self, t: &Trainer) {
        self.obs.started(self.run, t.step, t.cfg.train.steps);
    }
    fn step(&mut self, step: u64, _: f64, _: f32, _: f64) {
        self.obs.step(self.run, step);
    }
}

/// Trains run `index` of the sweep with `threads` threads, unless it is done or locked.
/// Failures are recorded in the run's FAILED file and returned, not raised: one failing run
/// does not stop the others. Errors are only those of the sweep itself (unreadable manifest,
/// lock file).
#[allow(clippy::too_many_arguments)]
pub fn run_one(
    sd: &SweepDir,
    m: &Manifest,
    index: usize,
    threads: usize,
    device: modicl_trainer::Device,
    obs: &dyn SweepObserver,
    stop: &AtomicBool,
) -> Result<RunResult, SweepError> {
    let run = m.runs.get(index).ok_or(SweepError::Index {
        index,
        runs: m.runs.len(),
    })?;
    let dir = RunDir::new(sd.run_dir(run));
    if dir.is_done() {
        return Ok(RunResult::AlreadyDone);
    }
    // `sweep status` probes locks for an instant: retry briefly before calling a run busy.
    let mut lock = None;
    for _ in 0..5 {
        lock = try_lock(sd, run)?;
        if lock.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(40));
    }
    let Some(_lock) = lock else {
        return Ok(RunResult::Busy);
    };
    // Checked again under the lock: another process may have finished it meanwhile.
    if dir.is_done() {
        return Ok(RunResult::AlreadyDone);
    }
    let _ = fs::remove_file(failed_path(sd, run));
    let attempt = || -> Result<RunResult, String> {
        let mut trainer = if dir.config().is_file() {
            // A run directory left by another plan must not be resumed under this one.
            let here = std::fs::read_to_string(dir.config()).map_err(|e| e.to_string())?;
            if here != run.config {
                return Err(format!(
                    "{} holds a config.toml that differs from this sweep's run {index}; move it away to start the run afresh",
                    dir.root.display()
                ));
            }
            Trainer::resume(dir.clone())
        } else {
            Config::from_toml(
                &run.config,
                &format!("run {index} of {}", sd.root.display()),
            )
            .map_err(modicl_trainer::TrainError::from)
            .and_then(|cfg| Trainer::create(cfg, dir.clone(), false))
        }
        .map_err(|e| e.to_string())?;
        trainer.device = device;
        for s in &trainer.skipped {
            obs.skipped(run, s);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| e.to_string())?;
        let mut relay = Relay { run, obs };
        match pool.install(|| trainer.run(&mut relay, stop)) {
            Ok(Outcome::Finished(_)) => Ok(RunResult::Finished),
            Ok(Outcome::Interrupted { .. }) => Ok(RunResult::Interrupted),
            Err(e) => Err(e.to_string()),
        }
    };
    let result = match attempt() {
        Ok(r) => r,
        Err(msg) => {
            let line = msg.replace(['\n', '\r'], " ");
            let path = failed_path(sd, run);
            modicl_trainer::rundir::write_atomic(&path, format!("{line}\n").as_bytes())?;
            RunResult::Failed(line)
        }
    };
    obs.finished(run, &result);
    Ok(result)
}

/// Runs every run of the sweep that is not done, `jobs` at a time, splitting `threads`
/// between them; returns each attempted run's result, by index.
#[allow(clippy::too_many_arguments)]
pub fn run_pool(
    sd: &SweepDir,
    m: &Manifest,
    jobs: usize,
    threads: usize,
    device: modicl_trainer::Device,
    obs: &dyn SweepObserver,
    stop: &AtomicBool,
) -> Result<Vec<(usize, RunResult)>, SweepError> {
    let todo = pending(sd, m);
    let jobs = jobs.clamp(1, todo.len().max(1));
    let per_run = (threads / jobs).max(1);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = todo.get(i) else {
                    break;
                };
                match run_one(sd, m, index, per_run, device, obs, stop) {
                    Ok(r) => results.lock().expect("no panics").push((index, r)),
                    Err(e) => {
                        first_error.lock().expect("no panics").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("no panics") {
        return Err(e);
    }
    let mut r = results.into_inner().expect("no panics");
    r.sort_by_key(|x| x.0);
    Ok(r)
}
