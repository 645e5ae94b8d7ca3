//! `modicl verify`: every checkpoint and file of a run or of a sweep's runs, checked.

use modicl_sweeps::SweepDir;
use modicl_trainer::verify::{self, RunReport};
use modicl_trainer::RunDir;
use serde_json::json;

use crate::args::VerifyArgs;

/// Found problems (exit status 1); the report is printed already.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Problems(String);

pub fn verify(a: &VerifyArgs) -> anyhow::Result<()> {
    let reports = if a.path.join("config.toml").is_file() {
        vec![(None, Some(verify::verify_run(&RunDir::new(&a.path))?))]
    } else if a.path.join("sweep.json").is_file() {
        let sd = SweepDir::new(&a.path);
        let m = sd.read()?;
        let mut out = Vec::new();
        for run in &m.runs {
            let dir = RunDir::new(sd.run_dir(run));
            let r = if dir.config().is_file() {
                Some(verify::verify_run(&dir)?)
            } else {
                None
            };
            out.push((Some(format!("run {} {}", run.index, run.name)), r));
        }
        out
    } else {
        return Err(modicl_trainer::TrainError::NotARun(format!(
            "{} is neither a run directory (config.toml) nor a sweep directory (sweep.json)",
            a.path.display()
        ))
        .into());
    };
    let bad: usize = started(&reports).map(RunReport::bad).sum();
    let runs_bad = started(&reports).filter(|r| r.bad() > 0).count();
    if a.json {
        let doc: Vec<_> = reports
            .iter()
            .map(|(label, r)| match r {
                Some(r) => json!({
                    "run": r.root.display().to_string(),
                    "label": label,
                    "done": r.done,
                    "resume_from": r.resume_from,
                    "problems": r.bad(),
                    "checks": r.checks.iter().map(|c| json!({
                        "item": c.item, "status": c.status.label(), "detail": c.status.detail()
                    })).collect::<Vec<_>>(),
                }),
                None => json!({ "label": label, "started": false }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (label, r) in &reports {
            match r {
                Some(r) => print_report(label.as_deref(), r),
                None => println!("{}: not started", label.as_deref().unwrap_or("?")),
            }
        }
        if reports.len() > 1 {
            println!(
                "\n{} runs: {} started, {} with problems",
                reports.len(),
                started(&reports).count(),
                runs_bad
            );
        }
    }
    if bad > 0 {
        return Err(Problems(format!(
            "{bad} problem{} found in {}",
            if bad == 1 { "" } else { "s" },
            a.path.display()
        ))
        .into());
    }
    Ok(())
}

/// The reports of the runs that have started.
fn started(reports: &[(Option<String>, Option<RunReport>)]) -> impl Iterator<Item = &RunReport> {
    reports.iter().filter_map(|(_, r)| r.as_ref())
}

fn print_report(label: Option<&str>, r: &RunReport) {
    let name = match label {
        Some(l) => format!("{l} ({})", r.root.display()),
        None => r.root.display().to_string(),
    };
    let next = if r.done {
        "finished (DONE)".to_string()
    } else if r.resume_from == 0 {
        "not finished; a resume would start from step 0 (no intact checkpoint)".to_string()
    } else {
        format!(
            "not finished; a resume would start from step {}",
            r.resume_from
        )
    };
    println!("{name}: {next}");
    let width = r.checks.iter().map(|c| c.item.len()).max().unwrap_or(0);
    for c in &r.checks {
        println!(
            "  {:<10} {:<width$}  {}",
            c.status.label(),
            c.item,
            c.status.detail()
        );
    }
    let bad = r.bad();
    if bad == 0 {
        println!("  all intact");
    } else {
        println!(
            "  {bad} problem{}: resume sets a corrupt step checkpoint aside (checkpoints/corrupt-step_N) and starts from the newest intact one",
            if bad == 1 { "" } else { "s" }
        );
    }
}
