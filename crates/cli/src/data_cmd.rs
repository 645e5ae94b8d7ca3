//! `modicl data show`, `modicl data export`, `modicl config keys`.

use std::fmt::Write as _;

use anyhow::Context;
use modicl_config::{Config, DEFAULT_PRESET, FIELDS};
use modicl_data::export::{export as export_data, ExportOptions};
use modicl_data::{Dataset, EvalSet, TaskSource, Vectors};
use serde_json::json;

use crate::args::{ExportArgs, ShowArgs};

fn fmt_vec(v: &[u32]) -> String {
    let inner: Vec<String> = v.iter().map(|c| c.to_string()).collect();
    format!("({})", inner.join(", "))
}

fn fmt_list(v: &Vectors, n: usize) -> String {
    let mut s: Vec<String> = v.iter().take(n).map(fmt_vec).collect();
    if v.len() > n {
        s.push("...".into());
    }
    s.join(" ")
}

fn vectors_json(v: &Vectors) -> serde_json::Value {
    json!(v.iter().collect::<Vec<_>>())
}

pub fn show(a: &ShowArgs) -> anyhow::Result<()> {
    let cfg = a.cfg.resolve()?;
    let ds = Dataset::build(&cfg.task)?;
    let batch = ds.train_batch(0);
    let spt = ds.seqs_per_task();
    // The first sequence of each of the first tasks: under the shared layout they have the
    // same inputs and differ only in z.
    let rows: Vec<usize> = (0..ds.n_id()).take(a.sequences).map(|t| t * spt).collect();
    let t = &cfg.task;
    if a.json {
        let config = FIELDS
            .iter()
            .map(|f| Ok((f.key.to_string(), serde_json::to_value(f.get(&cfg))?)))
            .collect::<serde_json::Result<serde_json::Map<_, _>>>()?;
        let out = json!({
            "config": config,
            "p": t.p,
            "n_var": t.n_var,
            "source": t.source.to_string(),
            "n_id_tasks": ds.n_id(),
            "n_ood_tasks": ds.n_ood(),
            "n_parallelogram_groups": ds.tasks.n_base,
            "n_inputs": ds.space.size,
            "n_train_inputs": ds.inputs.train.len(),
            "n_test_inputs": ds.inputs.test.len(),
            "examples": ds.seq.examples,
            "seq_len": ds.seq.seq_len(),
            "input_len": ds.seq.input_len(),
            "batch": t.batch,
            "seqs_per_task": spt,
            "layout": t.layout.as_str(),
            "id_tasks": vectors_json(&ds.tasks.id),
            "ood_tasks": vectors_json(&ds.tasks.ood),
            "train_inputs": vectors_json(&ds.inputs.train),
            "test_inputs": vectors_json(&ds.inputs.test),
            "sample_sequences": rows.iter().map(|&r| json!({
                "step": 0,
                "row": r,
                "task_index": batch.task[r],
                "task": ds.tasks.id.get(batch.task[r] as usize),
                "tokens": batch.row(r),
            })).collect::<Vec<_>>(),
            "warnings": ds.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut s = String::new();
    let source = match &t.source {
        TaskSource::Generate => format!("generate (seed {})", t.seed),
        other => other.to_string(),
    };
    let kinds = if ds.tasks.n_base > 0 || matches!(t.source, TaskSource::Generate) {
        format!(
            " ({} parallelogram groups + {} random)",
            ds.tasks.n_base, t.n_random
        )
    } else {
        String::new()
    };
    let per = cfg.eval.seqs_per_task as usize;
    let _ = writeln!(
        s,
        "task family   z = W·X mod {} with W, X in Z_{}^{}",
        t.p, t.p, t.n_var
    );
    let _ = writeln!(s, "source        {source}");
    let _ = writeln!(s, "i.d. tasks    {}{kinds}", ds.n_id());
    let _ = writeln!(
        s,
        "o.o.d. tasks  {} (cap {})",
        ds.n_ood(),
        FIELDS
            .iter()
            .find(|f| f.key == "task.ood_cap")
            .map(|f| f.get(&cfg).to_string())
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "inputs        {} = {} train (alpha {}, data_seed {}) + {} test",
        ds.space.size,
        ds.inputs.train.len(),
        t.alpha,
        t.data_seed,
        ds.inputs.test.len()
    );
    let _ = writeln!(
        s,
        "sequences     {} examples = {} tokens; the model reads {}, scored on {} z positions",
        ds.seq.examples,
        ds.seq.seq_len(),
        ds.seq.input_len(),
        ds.seq.examples
    );
    let _ = writeln!(
        s,
        "batch         {} = {} sequences x {} tasks, layout {}",
        t.batch,
        spt,
        ds.n_id(),
        t.layout.as_str()
    );
    let sizes: Vec<String> = EvalSet::ALL
        .iter()
        .map(|&e| format!("{} {}", e.name(), ds.eval_parts(e).0.len() * per))
        .collect();
    let _ = writeln!(
        s,
        "eval sets     {per} sequences per task: {}",
        sizes.join(", ")
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "i.d. tasks    {}", fmt_list(&ds.tasks.id, a.list));
    let _ = writeln!(s, "o.o.d. tasks  {}", fmt_list(&ds.tasks.ood, a.list));
    let _ = writeln!(s, "train inputs  {}", fmt_list(&ds.inputs.train, a.list));
    let _ = writeln!(s, "test inputs   {}", fmt_list(&ds.inputs.test, a.list));
    if ds.tasks.n_base > 0 {
        let _ = writeln!(s, "\nparallelogram groups (a, b) (a, y') (x', b) (x', y'):");
        for g in 0..ds.tasks.n_base.min(3) {
            let v: Vec<String> = ds.tasks.group(g).iter().map(|w| fmt_vec(w)).collect();
            let _ = writeln!(s, "  {}", v.join(" "));
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(
            s,
            "\ntraining step 0, first sequence of the first {} tasks (x y z | ...):",
            rows.len()
        );
        let ex = ds.seq.example_len();
        for &r in &rows {
            let task = ds.tasks.id.get(batch.task[r] as usize);
            let shown: Vec<String> = batch
                .row(r)
                .chunks_exact(ex)
                .take(8)
                .map(|e| {
                    e.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            let more = if ds.seq.examples > 8 { " | ..." } else { "" };
            let _ = writeln!(
                s,
                "  row {r:>5}  W = {:<10} {}{more}",
                fmt_vec(task),
                shown.join(" | ")
            );
        }
    }
    print!("{s}");
    Ok(())
}

pub fn export(a: &ExportArgs) -> anyhow::Result<()> {
    let cfg = a.cfg.resolve()?;
    let ds = Dataset::build(&cfg.task)?;
    let bar = indicatif::ProgressBar::new(a.steps);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "exporting {bar:30} {pos}/{len} steps, {per_sec}, eta {eta}",
        )
        .expect("valid template"),
    );
    let tick = |n: u64| bar.set_position(n);
    let toml = cfg.to_toml();
    let written = export_data(
        &ds,
        &a.out,
        &ExportOptions {
            steps: a.steps,
            eval_seqs_per_task: a.eval.then_some(cfg.eval.seqs_per_task as usize),
            config_toml: &toml,
            on_step: Some(&tick),
        },
    )
    .with_context(|| format!("exporting to {}", a.out.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} files to {} ({} i.d. tasks, {} o.o.d. tasks, {} steps of {} sequences)",
        written.len(),
        a.out.display(),
        ds.n_id(),
        ds.n_ood(),
        a.steps,
        cfg.task.batch
    );
    Ok(())
}

/// Every key with the value a run without `--preset` gets (the default preset's), its help
/// and what is allowed.
pub fn print_keys() -> anyhow::Result<()> {
    let d = Config::resolve(None, None, &[])?;
    let mut s = format!(
        "# every key, with the value a run without --preset gets (the default preset, {DEFAULT_PRESET})\n"
    );
    for f in FIELDS {
        let _ = writeln!(
            s,
            "{} = {}\n    {}\n    allowed: {}",
            f.key,
            f.get(&d),
            f.help,
            f.allowed()
        );
    }
    print!("{s}");
    Ok(())
}
