//! `modicl eval` (per-shot accuracy of a checkpoint) and `modicl plot`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use modicl_trainer::oracles::SetOracles;
use modicl_trainer::{metrics, rundir, Checkpoint, Evaluator, Metric, RunDir, UnknownName};
use serde_json::json;

use crate::args::{EvalArgs, PlotCommand};
use crate::report;
use crate::train_cmd;

/// The run directory and checkpoint directory `path` and `which` designate.
fn locate(path: &Path, which: &str) -> anyhow::Result<(RunDir, PathBuf)> {
    if path.join("config.toml").is_file() {
        let which: Checkpoint = which
            .parse()
            .map_err(|e: UnknownName| e.for_key("--checkpoint"))?;
        let run = RunDir::new(path);
        let ck = run.checkpoint(which)?;
        return Ok((run, ck));
    }
    // A checkpoint directory: <run>/checkpoints/<name>.
    let run = path.parent().and_then(Path::parent);
    match run {
        Some(r) if path.join("DONE").is_file() && r.join("config.toml").is_file() => {
            Ok((RunDir::new(r), path.to_path_buf()))
        }
        _ => Err(modicl_trainer::TrainError::NotARun(format!(
            "{} is neither a run directory (config.toml) nor a complete checkpoint inside one",
            path.display()
        ))
        .into()),
    }
}

/// A checkpoint loaded with everything needed to run its model on the run's data.
pub(crate) struct Opened {
    pub run: RunDir,
    /// The checkpoint directory and its name (`step_N`, `best_ood`).
    pub ck: PathBuf,
    pub ck_name: String,
    pub cfg: modicl_config::Config,
    pub state: rundir::CheckpointState,
    pub model: modicl_engine::Model,
    pub ds: modicl_data::Dataset,
}

/// Loads the checkpoint `which` of the run at `path` (or the checkpoint directory `path`).
pub(crate) fn open(path: &Path, which: &str) -> anyhow::Result<Opened> {
    let (run, ck) = locate(path, which)?;
    let cfg = run.read_config()?;
    let state = rundir::read_state(&ck)?;
    let model = rundir::read_model(&ck, &modicl_trainer::model_config(&cfg))?;
    let ds = modicl_data::Dataset::build(&cfg.task)?;
    let ck_name = ck
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Opened {
        run,
        ck,
        ck_name,
        cfg,
        state,
        model,
        ds,
    })
}

pub fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    a.device.check()?;
    let Opened {
        run,
        ck,
        ck_name,
        cfg,
        state,
        model,
        ds,
    } = open(&a.path, &a.checkpoint)?;
    let sizing = cfg.eval.overridden(a.seqs_per_task);
    let sets = match a.device.device {
        // On the GPU: chunks of the run's batch, per-shot counts copied back.
        crate::args::Device::Cuda => {
            let mut ev = Evaluator::for_config(&ds, &sizing);
            let mut dev = modicl_cuda::GpuModel::new(
                modicl_cuda::Gpu::open()?,
                &model,
                modicl_engine::AdamWConfig::default(),
                None,
                cfg.task.batch as usize,
                ds.seq.input_len(),
            )?;
            ev.run_gpu(&mut dev)?
        }
        crate::args::Device::Cpu => {
            train_cmd::pool(a.threads)?.install(|| -> anyhow::Result<_> {
                let mut ev = Evaluator::for_config(&ds, &sizing);
                let chunk = (cfg.task.batch as usize).clamp(1, 512);
                let mut ws = modicl_engine::Shards::new(&model.cfg, chunk, ds.seq.input_len());
                Ok(ev.run(&model, &mut ws)?)
            })?
        }
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| run.root.join("eval").join(&ck_name));
    let oracles = SetOracles::of(&ds);
    let record = metrics::Record {
        step: state.step,
        lr: f64::NAN,
        sets: sets.clone(),
        added: Vec::new(),
    };
    rundir::write_atomic(
        &out.join("shots.csv"),
        metrics::shots_csv(std::slice::from_ref(&record)).as_bytes(),
    )?;
    let doc = json!({
        "run": run.root.display().to_string(),
        "checkpoint": ck.display().to_string(),
        "step": state.step,
        "seqs_per_task": sizing.seqs_per_task,
        "target_se": sizing.target_se,
        "sets": sets.iter().map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("set".into(), json!(m.set.as_str()));
            for metric in Metric::ALL {
                o.insert(metric.to_string(), json!(m.get(metric)));
            }
            let o_set = oracles.get(m.set);
            o.insert("rm_last".into(), json!(o_set.rm));
            o.insert("mr_last".into(), json!(o_set.mr));
            o.insert("rm_frac".into(), json!(m.acc_last() / o_set.rm));
            o.insert("mr_frac".into(), json!(m.acc_last() / o_set.mr));
            o.insert("acc_per_shot".into(), json!((0..m.shot_count.len()).map(|i| m.acc_shot(i)).collect::<Vec<_>>()));
            o.insert("count_per_shot".into(), json!(m.shot_count));
            o
        }).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    rundir::write_atomic(&out.join("eval.json"), text.as_bytes())?;
    let title = format!("{} at step {} ({ck_name})", cfg.train.name, state.step);
    let plots = report::shots_chart(
        report::shot_series(&sets, "", false),
        cfg.task.p,
        &out.join("shots"),
        &title,
    )?;
    if a.json {
        println!("{text}");
    } else {
        println!(
            "{title}, {}\n{}",
            sizing.describe(),
            report::table(&sets, Some(&oracles))
        );
        let k = sets.first().map_or(0, |m| m.shot_count.len());
        print!("{:<12}", "shot");
        for i in 0..k {
            print!(" {i:>5}");
        }
        println!();
        for m in &sets {
            print!("{:<12}", m.set);
            for i in 0..k {
                print!(" {:>5.3}", m.acc_shot(i));
            }
            println!();
        }
        println!(
            "wrote {} and {}",
            out.join("shots.csv").display(),
            out.join("eval.json").display()
        );
        for p in plots {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}

pub fn plot(c: &PlotCommand) -> anyhow::Result<()> {
    let (a, kind) = match c {
        PlotCommand::Curves(a) => (a, "curves"),
        PlotCommand::Shots(a) => (a, "shots"),
        PlotCommand::Phase(a) => return crate::phase_plot::phase(a),
    };
    let run = RunDir::new(&a.run);
    if !run.config().is_file() {
        return Err(modicl_trainer::TrainError::NotARun(format!(
            "{} is not a run directory (no config.toml)",
            a.run.display()
        ))
        .into());
    }
    let cfg = run.read_config()?;
    let k = cfg.task.examples as usize;
    let records = metrics::read(&run.metrics(), &run.shots(), u64::MAX, k)
        .with_context(|| format!("reading the metrics of {}", a.run.display()))?;
    if records.is_empty() {
        bail!("{} has no evaluations yet", a.run.display());
    }
    let best = rundir::read_state(&run.best_ood()).ok().map(|s| s.step);
    let stem = a.out.clone().unwrap_or_else(|| run.plots().join(kind));
    let title = a.run.file_name().map_or_else(
        || a.run.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let paths = match kind {
        "curves" => report::curves(&records, best, cfg.task.p, &stem, &title)?,
        _ => report::shots(&records, best, cfg.task.p, &stem, &title)?,
    };
    for p in paths {
        println!("wrote {}", p.display());
    }
    Ok(())
}
