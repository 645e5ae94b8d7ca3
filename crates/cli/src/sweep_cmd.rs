//! `modicl sweep ...`: plan, run (local pool or one run), slurm, status, collect.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use modicl_config::Config;
use modicl_sweeps::collect::{self, State};
use modicl_sweeps::exec::{self, RunResult, SweepObserver};
use modicl_sweeps::phase::Phase;
use modicl_sweeps::preset::{SweepPreset, SWEEP_PRESETS};
use modicl_sweeps::slurm::{self, SlurmOptions};
use modicl_sweeps::{plan, Axis, PlannedRun, SweepDir};
use modicl_trainer::SetName;
use serde_json::json;

use crate::args::{
    CollectArgs, PlanArgs, RunOneArgs, SlurmArgs, StatusArgs, SweepCommand, SweepRunArgs,
};
use crate::report;

/// Raised by Ctrl-C: every active run finishes its step and checkpoints.
static STOP: AtomicBool = AtomicBool::new(false);

pub fn sweep(c: &SweepCommand) -> anyhow::Result<()> {
    match c {
        SweepCommand::Plan(a) => plan_cmd(a),
        SweepCommand::Run(a) => run(a),
        SweepCommand::RunOne(a) => run_one(a),
        SweepCommand::Slurm(a) => slurm_cmd(a),
        SweepCommand::Status(a) => status(a),
        SweepCommand::Collect(a) => collect_cmd(a),
        SweepCommand::Presets => {
            for p in SWEEP_PRESETS {
                println!("{:<12} {}", p.name, p.about);
            }
            Ok(())
        }
    }
}

fn plan_cmd(a: &PlanArgs) -> anyhow::Result<()> {
    let mut cfg_args = a.cfg.clone();
    let mut grid = Vec::new();
    // A named sweep brings its base preset, overrides and axes; flags come after.
    if let Some(sp) = a.cfg.preset.as_deref().and_then(SweepPreset::named) {
        cfg_args.preset = Some(sp.base.to_string());
        let mut sets: Vec<String> = sp.sets.iter().map(|s| s.to_string()).collect();
        sets.extend(a.cfg.set.iter().cloned());
        cfg_args.set = sets;
        grid.extend(sp.axes.iter().map(|s| s.to_string()));
    }
    let base: Config = cfg_args.resolve()?;
    let mut axes: Vec<Axis> = grid
        .iter()
        .map(|g| Axis::parse(g))
        .collect::<Result<_, _>>()?;
    let named = axes.len();
    for g in &a.grid {
        let axis = Axis::parse(g)?;
        match axes.iter().position(|x| x.key == axis.key) {
            // A --grid on a named sweep's key replaces that axis, in its place.
            Some(i) if i < named => axes[i] = axis,
            Some(_) => {
                return Err(modicl_sweeps::SweepError::Grid {
                    axis: g.clone(),
                    reason: format!("{} is given twice", axis.key),
                }
                .into())
            }
            None => axes.push(axis),
        }
    }
    let m = plan::plan(&base, &axes)?;
    plan::write(&a.dir, &m)?;
    println!(
        "planned {} runs in {} ({}):",
        m.runs.len(),
        a.dir.display(),
        if axes.is_empty() {
            "no axes".to_string()
        } else {
            axes.iter()
                .map(|x| format!("{} x{}", x.key, x.values.len()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    for r in m.runs.iter().take(8) {
        println!("  {:>4}  {}", r.index, r.name);
    }
    if m.runs.len() > 8 {
        println!("  ... ({} more)", m.runs.len() - 8);
    }
    println!(
        "next: modicl sweep run {0} [--jobs N], or modicl sweep slurm {0} --submit",
        a.dir.display()
    );
    Ok(())
}

fn install_ctrlc() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: active runs finish their step and checkpoint (Ctrl-C again to quit now)"
        );
    })
    .context("installing the Ctrl-C handler")
}

fn threads(t: Option<u32>) -> usize {
    t.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t as usize,
    )
}

/// One bar for the sweep, one per active run; or log lines.
struct Bars {
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    runs: Mutex<Vec<(usize, ProgressBar)>>,
}

impl SweepObserver for Bars {
    fn skipped(&self, run: &PlannedRun, s: &modicl_trainer::Skipped) {
        let line = format!(
            "run {} {}: {}",
            run.index,
            run.name,
            report::skipped_line(s)
        );
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
    fn started(&self, run: &PlannedRun, from: u64, steps: u64) {
        match &self.multi {
            Some(m) => {
                let b = m.add(ProgressBar::new(steps));
                b.set_style(
                    ProgressStyle::with_template("  {prefix:<28} {bar:20} {pos}/{len} eta {eta}")
                        .expect("valid template"),
                );
                b.set_prefix(run.name.clone());
                b.set_position(from);
                b.reset_eta();
                self.runs.lock().expect("no panics").push((run.index, b));
            }
            None => println!(
                "run {} {}: starting at step {from} of {steps}",
                run.index, run.name
            ),
        }
    }
    fn step(&self, run: &PlannedRun, step: u64) {
        if let Some((_, b)) = self
            .runs
            .lock()
            .expect("no panics")
            .iter()
            .find(|x| x.0 == run.index)
        {
            b.set_position(step);
        }
    }
    fn finished(&self, run: &PlannedRun, r: &RunResult) {
        let mut runs = self.runs.lock().expect("no panics");
        if let Some(pos) = runs.iter().position(|x| x.0 == run.index) {
            let (_, b) = runs.remove(pos);
            b.finish_and_clear();
        }
        let line = format!("run {} {}: {}", run.index, run.name, describe(r));
        match (&self.multi, &self.overall) {
            (Some(m), Some(o)) => {
                o.inc(1);
                let _ = m.println(line);
            }
            _ => println!("{line}"),
        }
    }
}

fn describe(r: &RunResult) -> String {
    match r {
        RunResult::Finished => "done".into(),
        RunResult::AlreadyDone => "already done".into(),
        RunResult::Busy => "skipped: another process is running it".into(),
        RunResult::Interrupted => "interrupted (checkpointed; resumes on the next run)".into(),
        RunResult::Failed(e) => format!("FAILED: {e}"),
    }
}

fn run(a: &SweepRunArgs) -> anyhow::Result<()> {
    a.device.check()?;
    let sd = SweepDir::new(&a.dir);
    let m = sd.read()?;
    install_ctrlc()?;
    let pending = exec::pending(&sd, &m).len();
    let plain = a.quiet || !std::io::stderr().is_terminal();
    let (multi, overall) = if plain {
        (None, None)
    } else {
        let multi = MultiProgress::new();
        let o = multi.add(ProgressBar::new(pending as u64));
        o.set_style(
            ProgressStyle::with_template("sweep {bar:30} {pos}/{len} runs, elapsed {elapsed}")
                .expect("valid template"),
        );
        (Some(multi), Some(o))
    };
    println!(
        "{}: {} runs, {} not done; {} at a time",
        a.dir.display(),
        m.runs.len(),
        pending,
        a.jobs
    );
    let bars = Bars {
        multi,
        overall,
        runs: Mutex::new(Vec::new()),
    };
    let results = exec::run_pool(
        &sd,
        &m,
        a.jobs as usize,
        threads(a.threads),
        a.device.trainer(),
        &bars,
        &STOP,
    )?;
    if let Some(o) = &bars.overall {
        o.finish_and_clear();
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|r| matches!(r.1, RunResult::Failed(_)))
        .collect();
    let left = exec::pending(&sd, &m).len();
    println!(
        "{} of {} runs done{}",
        m.runs.len() - left,
        m.runs.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                ", {} failed (modicl sweep status {})",
                failed.len(),
                a.dir.display()
            )
        }
    );
    if STOP.load(Ordering::SeqCst) {
        return Err(crate::train_cmd::Interrupted(format!(
            "interrupted; active runs checkpointed, continue with: modicl sweep run {}",
            a.dir.display()
        ))
        .into());
    }
    if !failed.is_empty() {
        anyhow::bail!("{} runs failed", failed.len());
    }
    if left > 0 {
        println!(
            "runs held by another process are not done yet: modicl sweep status {}",
            a.dir.display()
        );
    }
    Ok(())
}

fn run_one(a: &RunOneArgs) -> anyhow::Result<()> {
    a.device.check()?;
    let sd = SweepDir::new(&a.dir);
    let m = sd.read()?;
    install_ctrlc()?;
    struct Log;
    impl SweepObserver for Log {
        fn skipped(&self, run: &PlannedRun, s: &modicl_trainer::Skipped) {
            eprintln!(
                "run {} {}: {}",
                run.index,
                run.name,
                report::skipped_line(s)
            );
        }
        fn started(&self, run: &PlannedRun, from: u64, steps: u64) {
            println!(
                "run {} {}: starting at step {from} of {steps}",
                run.index, run.name
            );
        }
    }
    let r = exec::run_one(
        &sd,
        &m,
        a.index,
        threads(a.threads),
        a.device.trainer(),
        &Log,
        &STOP,
    )?;
    let run = &m.runs[a.index];
    println!("run {} {}: {}", run.index, run.name, describe(&r));
    match r {
        RunResult::Failed(e) => anyhow::bail!("run {} failed: {e}", a.index),
        // Not trained here: a SLURM element must not report success for it.
        RunResult::Busy => anyhow::bail!(
            "run {} is being trained by another process (its lock is held)",
            a.index
        ),
        RunResult::Interrupted => Err(crate::train_cmd::Interrupted(format!(
            "interrupted; checkpoint written, continue with: modicl sweep run-one {} --index {}",
            a.dir.display(),
            a.index
        ))
        .into()),
        _ => Ok(()),
    }
}

fn slurm_cmd(a: &SlurmArgs) -> anyhow::Result<()> {
    let sd = SweepDir::new(&a.dir);
    let m = sd.read()?;
    let opts = SlurmOptions {
        partition: a.partition.clone(),
        time: a.time.clone(),
        gpus: a.gpus.clone(),
        cpus: a.cpus,
        mem: a.mem.clone(),
        max_parallel: a.max_parallel.map(|k| k as usize),
        extra: a.sbatch_option.clone(),
        modicl: std::env::current_exe().context("locating the modicl binary")?,
    };
    let (path, indices) = slurm::write_script(&sd, &m, &opts)?;
    if indices.is_empty() {
        println!(
            "every run of {} is done: nothing to submit",
            a.dir.display()
        );
        return Ok(());
    }
    println!(
        "wrote {} ({} array elements: {})",
        path.display(),
        indices.len(),
        slurm::array_spec(&indices)
    );
    if a.submit {
        let id = slurm::submit(&sd, &path, &indices)?;
        println!(
            "submitted job {id}; follow it with: modicl sweep status {}",
            a.dir.display()
        );
    } else {
        println!(
            "submit it with: sbatch {}  (or rerun with --submit)",
            path.display()
        );
    }
    Ok(())
}

fn status(a: &StatusArgs) -> anyhow::Result<()> {
    let sd = SweepDir::new(&a.dir);
    let m = sd.read()?;
    let states: Vec<(usize, String, State)> = m
        .runs
        .iter()
        .map(|r| (r.index, r.name.clone(), collect::state(&sd, r)))
        .collect();
    if a.json {
        let v: Vec<_> = states
            .iter()
            .map(|(i, n, s)| json!({"index": i, "name": n, "status": s}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut counts = std::collections::BTreeMap::new();
    for (i, n, s) in &states {
        *counts.entry(s.name()).or_insert(0) += 1;
        let detail = match s {
            State::Running { step } | State::Interrupted { step } => format!("step {step}"),
            State::Failed { error } => error.clone(),
            _ => String::new(),
        };
        println!("{i:>5}  {n:<32} {:<12} {detail}", s.name());
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{} runs: {}", states.len(), summary.join(", "));
    Ok(())
}

fn collect_cmd(a: &CollectArgs) -> anyhow::Result<()> {
    let sd = SweepDir::new(&a.dir);
    let m = sd.read()?;
    let metric = a.label.metric.metric();
    let rows = collect::collect(&sd, &m, a.label.pass, metric);
    let csv = collect::to_csv(&m, &rows);
    let json_text = serde_json::to_string_pretty(&json!({
        "pass": a.label.pass,
        "metric": a.label.metric.as_str(),
        "runs": rows,
    }))? + "\n";
    modicl_trainer::rundir::write_atomic(&a.dir.join("results.csv"), csv.as_bytes())?;
    modicl_trainer::rundir::write_atomic(&a.dir.join("results.json"), json_text.as_bytes())?;
    if a.json {
        print!("{json_text}");
        return Ok(());
    }
    println!(
        "{:>5}  {:<28} {:>5} {:>5} {:<11} {:>8} {:>8} {:>8} {:>8} {:>7}  {:<8} {:<8} {:<10} {:<10}",
        "index",
        "name",
        "n_id",
        "alpha",
        "state",
        "id_tr",
        "id_te",
        "ood_tr",
        "ood_te",
        "ood/RM",
        "phase",
        "phase@es",
        "rm-phase",
        "rm-phase@es"
    );
    for r in &rows {
        let acc = |set: SetName| {
            r.last
                .as_ref()
                .and_then(|s| s.set(set))
                .map_or("-".to_string(), |m| format!("{:.3}", m.get(metric)))
        };
        // The o.o.d.-test last-shot accuracy as a fraction of Ratio Matching's.
        let of_rm = r
            .last
            .as_ref()
            .and_then(|s| s.set(SetName::OodTest))
            .and_then(|m| m.rm_frac)
            .map_or("-".to_string(), |f| format!("{f:.2}"));
        let name = |p: Option<Phase>| p.map_or("-", |p| p.as_str());
        println!(
            "{:>5}  {:<28} {:>5} {:>5} {:<11} {:>8} {:>8} {:>8} {:>8} {:>7}  {:<8} {:<8} {:<10} {:<10}",
            r.index,
            r.name,
            r.n_id,
            r.alpha,
            r.state.name(),
            acc(SetName::IdTrain),
            acc(SetName::IdTest),
            acc(SetName::OodTrain),
            acc(SetName::OodTest),
            of_rm,
            name(r.phase_last),
            name(r.phase_best_ood),
            name(r.phase_rm_last),
            name(r.phase_rm_best_ood)
        );
    }
    println!(
        "wrote {} and {} (pass = {} on {}-shot accuracy; rm-phase: the same, with ood-gen-rm where o.o.d.-test last-shot reaches {} of Ratio Matching's, above chance noise)",
        a.dir.join("results.csv").display(),
        a.dir.join("results.json").display(),
        a.label.pass,
        a.label.metric.as_str(),
        modicl_trainer::oracles::RM_LEVEL
    );
    Ok(())
}
