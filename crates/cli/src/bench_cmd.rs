//! `modicl bench`.

use crate::bench::{self, BenchSpec};
use anyhow::Context;
use serde_json::json;

use crate::args::BenchArgs;

pub fn bench(a: &BenchArgs) -> anyhow::Result<()> {
    a.device.check()?;
    let on_gpu = a.device.device == crate::args::Device::Cuda;
    if let Some(n) = a.shards.filter(|_| on_gpu) {
        let e = modicl_config::ConfigError::invalid("--shards", n, "only with --device cpu");
        return Err(e.into());
    }
    let attention = crate::args::attention(a.attention.as_deref(), on_gpu)?;
    if a.profile && !on_gpu {
        let e = modicl_config::ConfigError::invalid("--profile", true, "only with --device cuda");
        return Err(e.into());
    }
    let c = &a.cfg;
    let from_config =
        c.preset.is_some() || c.config.is_some() || !c.set.is_empty() || c.tasks.is_some();
    // A run's exact step (its model, batch and data), or one of the reference sizes.
    let mut precision = modicl_cuda::Precision::F32;
    let (spec, ds) = if from_config {
        let cfg = c.resolve()?;
        cfg.train.precision.check_device(on_gpu)?;
        precision = modicl_trainer::gpu_precision(cfg.train.precision);
        let ds = modicl_data::Dataset::build(&cfg.task)?;
        let spec = BenchSpec {
            name: "config",
            model: modicl_trainer::model_config(&cfg),
            batch: cfg.task.batch as usize,
            examples: cfg.task.examples as usize,
            default_steps: 20,
        };
        (spec, Some(ds))
    } else {
        (
            BenchSpec::named(a.model.as_deref().unwrap_or("small"))
                .expect("clap restricts the names"),
            None,
        )
    };
    let steps = a.steps.map_or(spec.default_steps, |s| s as usize);
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a.threads {
        pool = pool.num_threads(t as usize);
    }
    let pool = pool.build().context("starting the thread pool")?;
    let profiled = if a.profile { bench::PROFILED_STEPS } else { 0 };
    let bar = indicatif::ProgressBar::new((a.warmup as usize + steps + profiled) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "bench {msg} {bar:30} {pos}/{len} steps, eta {eta}",
        )
        .expect("valid template"),
    );
    bar.set_message(spec.name);
    let tick = || bar.inc(1);
    let r = if on_gpu {
        let name = c.preset.clone().unwrap_or_else(|| spec.name.into());
        let ds = match ds {
            Some(ds) => ds,
            None => bench::reference_data(&spec)?,
        };
        let model = (&spec.model, precision);
        let counts = (a.warmup as usize, steps, a.profile);
        bench::run_on_gpu(&name, model, attention, &ds, counts, &tick)?
    } else {
        let shards = a.shards.map(|n| n as usize);
        let counts = (a.warmup as usize, steps);
        pool.install(|| match &ds {
            Some(ds) => bench::run_on(
                &c.preset.clone().unwrap_or_else(|| "config".into()),
                &spec.model,
                ds,
                counts,
                shards,
                &tick,
            ),
            None => bench::run(&spec, counts, shards, &tick),
        })?
    };
    bar.finish_and_clear();
    if a.json {
        println!(
            "{}",
            json!({
                "model": r.model,
                "threads": r.threads,
                "shards": r.shards,
                "ms_per_step": r.ms_per_step,
                "step_ms_all": r.step_ms_all,
                "tokens_per_s": r.tokens_per_s,
                "gflops": r.gflops,
                "peak_rss_mb": r.peak_rss_mb,
                "params": r.params,
                "batch": spec.batch,
                "loss_first": r.loss_first,
                "loss_last": r.loss_last,
                "device": r.device.as_ref().map_or("cpu".to_string(), |d| d.name.clone()),
                "device_mem_mb": r.device.as_ref().map(|d| d.mem_mib),
                "device_mem_estimate_mb": r.device.as_ref().map(|d| d.estimate_mib),
                "attention": on_gpu.then_some(attention.as_str()),
                "tflops": r.gflops / 1e3,
                "profile": r.profile.iter().map(|o| json!({
                    "op": o.name, "calls_per_step": o.calls, "ms_per_step": o.ms,
                })).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "{}: {} params, batch {} x {} tokens, {} threads{}\n  {:.1} ms/step (median of {}), {:.0} tokens/s, {:.1} GFLOP/s, peak RSS {:.0} MB",
            r.model,
            r.params,
            spec.batch,
            3 * spec.examples - 1,
            r.threads,
            r.shards
                .map_or(String::new(), |n| format!(", {n} shard{}", if n == 1 { "" } else { "s" })),
            r.ms_per_step,
            r.step_ms_all.len(),
            r.tokens_per_s,
            r.gflops,
            r.peak_rss_mb
        );
        if let Some(d) = &r.device {
            println!(
                "  on {}, {} attention: {:.0} MiB of device memory used (model, buffers, cuBLAS; {:.0} MiB predicted)",
                d.name, attention.as_str(), d.mem_mib, d.estimate_mib
            );
        }
        if !r.profile.is_empty() {
            print!("{}", profile_table(&r.profile, r.ms_per_step));
        }
    }
    Ok(())
}

/// Where a step's device time goes (`bench --profile`): the 20 costliest operations, then the
/// sum over all of them against the step time.
fn profile_table(ops: &[modicl_cuda::OpTime], step_ms: f64) -> String {
    let total: f64 = ops.iter().map(|o| o.ms).sum();
    let mut t = format!(
        "  device time per step, by operation ({} profiled steps):\n    {:<44} {:>5} {:>9} {:>6}\n",
        bench::PROFILED_STEPS,
        "operation",
        "calls",
        "ms",
        "share"
    );
    for o in ops.iter().take(20) {
        t += &format!(
            "    {:<44} {:>5} {:>9.3} {:>5.1}%\n",
            o.name,
            o.calls,
            o.ms,
            100.0 * o.ms / total.max(1e-12)
        );
    }
    if ops.len() > 20 {
        t += &format!("    ... and {} more\n", ops.len() - 20);
    }
    t += &format!(
        "    kernels and products together: {total:.3} ms of the {step_ms:.3} ms step (the rest: copies, launch gaps, the host)\n"
    );
    t
}
