//! `modicl train`: one run, fresh or resumed, with a progress bar and a summary at the end.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use modicl_config::EarlyStop;
use modicl_trainer::oracles::SetOracles;
use modicl_trainer::{Observer, Outcome, Record, RunDir, SetName, Trainer};

use crate::args::TrainArgs;
use crate::report;

/// Raised by Ctrl-C; the loop finishes its step, checkpoints and returns.
static STOP: AtomicBool = AtomicBool::new(false);

/// Stopped by Ctrl-C after writing checkpoints (exit status 130); says how to continue.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(pub String);

/// A rayon pool with `threads` workers (all cores when `None`).
pub fn pool(threads: Option<u32>) -> anyhow::Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(t) = threads {
        b = b.num_threads(t as usize);
    }
    b.build().context("starting the thread pool")
}

pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let gpu = a.device.check()?;
    let on_gpu = gpu.is_some();
    let attention = crate::args::attention(a.attention.as_deref(), on_gpu)?;
    let mut trainer = match &a.resume {
        Some(dir) => Trainer::resume(RunDir::new(dir))?,
        None => {
            let mut cfg = a.cfg.resolve()?;
            cfg.train.tensorboard |= a.tensorboard;
            // Before the run directory is made (the trainer checks again on resume).
            cfg.train.precision.check_device(on_gpu)?;
            if let Some(info) = &gpu {
                modicl_trainer::check_gpu_fits(&cfg, info)?;
            }
            let root = a
                .run_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.train.name));
            Trainer::create(cfg, RunDir::new(root), a.overwrite)?
        }
    };
    // Output only (not in the config hash), so a resumed run may switch it on.
    trainer.cfg.train.tensorboard |= a.tensorboard;
    // Not in the configuration either: a run may move between devices on resume.
    trainer.device = a.device.trainer();
    trainer.gpu_attention = attention;
    if a.resume.is_some() {
        // A fresh run's configuration printed its warnings when it was resolved.
        for w in &trainer.ds.warnings {
            eprintln!("warning: {w}");
        }
    }
    for s in &trainer.skipped {
        eprintln!("{}", report::skipped_line(s));
    }
    let dir = trainer.dir.root.display().to_string();
    if a.resume.is_some() && trainer.dir.is_done() {
        println!("{dir} has already finished (DONE); nothing to do");
        return Ok(());
    }
    print_header(&trainer);
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupt: finishing this step and writing a checkpoint (Ctrl-C again to quit now)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    let mut progress = Progress::new(a.quiet || !std::io::stderr().is_terminal());
    let outcome = pool(a.threads)?.install(|| trainer.run(&mut progress, &STOP));
    progress.finish();
    match outcome? {
        Outcome::Interrupted { step } => Err(Interrupted(format!(
            "interrupted at step {step}; checkpoint written, continue with: modicl train --resume {dir}"
        ))
        .into()),
        Outcome::Finished(summary) => {
            let last = trainer.records.last();
            let oracles = SetOracles::of(&trainer.ds);
            if let Some(r) = last {
                println!(
                    "\nfinal metrics (step {}):\n{}rm_last, mr_last: what Ratio Matching and Modular Regression reach at the last shot on the set's inputs; of_rm, of_mr: acc_last as a fraction of each\n",
                    r.step,
                    report::table(&r.sets, Some(&oracles))
                );
            }
            if let Some(b) = trainer.best_record() {
                println!("{}", early_stopped(&trainer, b, &oracles));
            }
            if !summary.stages.is_empty() {
                println!(
                    "{}",
                    report::stages_table(&summary.stages, trainer.cfg.task.p)
                );
            }
            println!(
                "{} steps in {:.1} s ({:.2} steps/s; {:.2} steps/s without evaluation and checkpoints)",
                summary.steps_run, summary.wall_s, summary.steps_per_s, summary.train_only_steps_per_s
            );
            write_plots(
                &trainer.dir,
                &trainer.records,
                trainer.best.as_ref().map(|b| b.step),
                trainer.cfg.task.p,
                &summary.stages,
            )?;
            let page = crate::html_report::run_report(&trainer.dir.root)?;
            println!("report: {}", page.display());
            println!("run directory: {dir}");
            Ok(())
        }
    }
}

/// The early-stopped table, or, when the best o.o.d.-test accuracy is within sampling noise
/// of chance, a line that says so (the table would be noise presented as a result).
fn early_stopped(t: &Trainer, b: &Record, oracles: &SetOracles) -> String {
    let table = format!(
        "early-stopped metrics (best o.o.d.-test {}, step {}):\n{}",
        match t.cfg.train.early_stop {
            EarlyStop::AccLast => "last-shot accuracy",
            EarlyStop::Acc => "all-shot accuracy",
            EarlyStop::Loss => "loss",
        },
        b.step,
        report::table(&b.sets, Some(oracles))
    );
    let Some(m) = b.set(SetName::OodTest) else {
        return table;
    };
    let chance = 1.0 / t.cfg.task.p as f64;
    // The evaluations that competed for best_ood: from the end of warm-up on.
    let evals = t
        .records
        .iter()
        .filter(|r| r.step >= t.cfg.train.warmup)
        .count();
    let (noise, threshold) =
        modicl_trainer::eval::within_chance_noise(m.acc_last(), m.count_last, chance, evals);
    if !noise {
        return table;
    }
    let what = match t.cfg.train.early_stop {
        EarlyStop::AccLast => "the best o.o.d.-test last-shot accuracy".to_string(),
        by => format!(
            "the o.o.d.-test last-shot accuracy of the best step by {}",
            by.as_str()
        ),
    };
    format!(
        "no early-stopped result: {what}, {:.4} at step {}, is \
         within sampling noise of chance (1/{} = {chance:.4}; best of {evals} evaluations of {} \
         sequences each, noise bound {threshold:.4}); checkpoints/best_ood holds that step anyway\n",
        m.acc_last(),
        b.step,
        t.cfg.task.p,
        m.count_last
    )
}

/// Writes `plots/curves`, `plots/shots` and, with a task-count curriculum, `plots/stages` (PNG
/// and SVG) and prints their paths.
pub fn write_plots(
    dir: &RunDir,
    records: &[Record],
    best: Option<u64>,
    p: u32,
    stages: &[modicl_trainer::StageSummary],
) -> anyhow::Result<()> {
    let name = dir.root.file_name().map_or_else(
        || dir.root.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut paths = report::curves(records, best, p, &dir.plots().join("curves"), &name)?;
    paths.extend(report::shots(
        records,
        best,
        p,
        &dir.plots().join("shots"),
        &name,
    )?);
    paths.extend(report::stages(
        records,
        stages,
        p,
        &dir.plots().join("stages"),
        &name,
    )?);
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn print_header(t: &Trainer) {
    let resumed = if t.step > 0 {
        format!(", resuming at step {}", t.step)
    } else {
        String::new()
    };
    println!(
        "run {} -> {}{resumed}\n{} pre-training tasks, {} o.o.d. tasks, {} train / {} test inputs, {} parameters",
        t.cfg.train.name,
        t.dir.root.display(),
        t.ds.n_id(),
        t.ds.n_ood(),
        t.ds.inputs.train.len(),
        t.ds.inputs.test.len(),
        t.model.layout.total
    );
    let width = t.cfg.rows().iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (key, value, _) in t.cfg.rows() {
        println!("  {key:<width$}  {value}");
    }
    println!();
}

/// A progress bar on a terminal; a log line per evaluation otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    started: Instant,
    first_step: u64,
    total: u64,
    last_eval: String,
}

impl Progress {
    fn new(plain: bool) -> Progress {
        Progress {
            bar: None,
            plain,
            started: Instant::now(),
            first_step: 0,
            total: 0,
            last_eval: String::new(),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn start(&mut self, t: &Trainer) {
        self.total = t.cfg.train.steps;
        self.first_step = t.step;
        self.started = Instant::now();
        if !self.plain {
            let bar = ProgressBar::new(self.total);
            bar.set_style(
                ProgressStyle::with_template("{bar:24} {pos}/{len} {per_sec:.dim} eta {eta} {msg}")
                    .expect("valid template"),
            );
            bar.set_position(t.step);
            bar.reset_eta();
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, step: u64, lr: f64, loss: f32, acc: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
            bar.set_message(format!(
                "lr {lr:.2e} loss {loss:.3} acc {acc:.3}{}",
                self.last_eval
            ));
        }
    }

    fn eval(&mut self, r: &Record) {
        let acc = |set: SetName| r.set(set).map_or(f64::NAN, |m| m.acc_last());
        self.last_eval = format!(
            " | last-shot id {:.3}/{:.3} ood {:.3}/{:.3}",
            acc(SetName::IdTrain),
            acc(SetName::IdTest),
            acc(SetName::OodTrain),
            acc(SetName::OodTest)
        );
        if self.plain {
            let secs = self.started.elapsed().as_secs_f64();
            let rate = (r.step - self.first_step) as f64 / secs.max(1e-9);
            let eta = (self.total - r.step) as f64 / rate.max(1e-9);
            let train = r.set(SetName::TrainBatch);
            println!(
                "step {}/{} lr {:.2e} loss {:.4} acc {:.3}{} | {:.2} steps/s, eta {:.0} s",
                r.step,
                self.total,
                r.lr,
                train.map_or(f64::NAN, |m| m.loss),
                train.map_or(f64::NAN, |m| m.acc()),
                self.last_eval,
                rate,
                eta
            );
        }
    }
}
