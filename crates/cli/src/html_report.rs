//! `modicl report`: one self-contained HTML page per run or per sweep (docs/reports.md).
//!
//! Figures are the run's SVG files, inlined; a figure too large to inline (over
//! [`INLINE_SVG_MAX`] bytes) is inlined as its PNG sibling, base64-encoded. The page loads
//! nothing: no network, no external script or font. A few lines of script sort the sweep's table
//! and record whether every figure rendered (`data-figures` on `<body>`); the page reads fully
//! without it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use modicl_sweeps::collect::{self, Row};
use modicl_sweeps::SweepDir;
use modicl_trainer::{metrics, rundir, RunDir, SetName};
use serde_json::Value;

use crate::args::{LabelArgs, Labels, PhaseArgs, ReportArgs, Shots};
use crate::report;

/// SVG files larger than this are shown through their PNG.
pub const INLINE_SVG_MAX: u64 = 300_000;

/// HTML-escapes text.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Standard base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(A[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:12px 16px;color:#222;line-height:1.4}\
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}\
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}\
th{background:#f2f2f2;cursor:pointer}td.t,th.t{text-align:left}.scroll{overflow-x:auto}\
figure{margin:12px 0}figure svg,figure img{max-width:100%;height:auto;display:block}figcaption{font-size:.85em;color:#555}\
.bad{color:#a00;font-weight:bold}.note{background:#fff7e0;border:1px solid #e6c200;padding:6px 10px}pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.85em}";

/// The script: every figure has a size (recorded on `<body>` for checks); tables sort on a header
/// click.
const SCRIPT: &str = "<script>\
(function(){var bad=0;document.querySelectorAll('figure > svg, figure > img').forEach(function(e){var r=e.getBoundingClientRect();if(!(r.width>0&&r.height>0))bad++;});\
document.body.setAttribute('data-figures',bad?('bad:'+bad):'ok');\
document.querySelectorAll('table.sort').forEach(function(t){t.querySelectorAll('th').forEach(function(h,i){h.title='sort';h.addEventListener('click',function(){\
var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=h.getAttribute('data-asc')!=='1';h.setAttribute('data-asc',asc?'1':'0');\
rows.sort(function(x,y){var a=x.cells[i].getAttribute('data-v')||x.cells[i].textContent,c=y.cells[i].getAttribute('data-v')||y.cells[i].textContent;\
var p=parseFloat(a),q=parseFloat(c);var r=(!isNaN(p)&&!isNaN(q))?p-q:a.localeCompare(c);return asc?r:-r;});rows.forEach(function(r){b.appendChild(r);});});});});})();\
</script>";

/// An HTML page being written.
struct Page {
    html: String,
}

impl Page {
    fn new(title: &str) -> Page {
        Page {
            html: format!(
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
                esc(title),
                esc(title)
            ),
        }
    }
    fn h2(&mut self, s: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", esc(s));
    }
    fn p(&mut self, s: &str) {
        let _ = writeln!(self.html, "<p>{}</p>", esc(s));
    }
    fn raw(&mut self, s: &str) {
        self.html.push_str(s);
    }
    fn problem(&mut self, s: &str) {
        let _ = writeln!(self.html, "<p class=\"bad\">{}</p>", esc(s));
    }
    fn note(&mut self, s: &str) {
        let _ = writeln!(self.html, "<p class=\"note\">{}</p>", esc(s));
    }
    /// Inlines the figure at `<stem>.svg` (or its PNG when the SVG is large); returns whether
    /// there was one.
    fn figure(&mut self, stem: &Path, caption: &str) -> bool {
        let with = |ext: &str| {
            let mut p = stem.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let (svg, png) = (with(".svg"), with(".png"));
        let svg_len = std::fs::metadata(&svg).map(|m| m.len()).ok();
        let body = match svg_len {
            Some(n) if n <= INLINE_SVG_MAX => std::fs::read_to_string(&svg).ok().map(|s| {
                let start = s.find("<svg").unwrap_or(0);
                s[start..].to_string()
            }),
            _ => std::fs::read(&png).ok().map(|b| {
                format!(
                    "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
                    esc(caption),
                    base64(&b)
                )
            }),
        };
        match body {
            Some(b) => {
                let _ = writeln!(
                    self.html,
                    "<figure>{b}<figcaption>{}</figcaption></figure>",
                    esc(caption)
                );
                true
            }
            None => false,
        }
    }
    fn finish(mut self) -> String {
        self.html.push_str(SCRIPT);
        self.html.push_str("\n</body></html>\n");
        self.html
    }
}

fn f3(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or("-".into(), |x| format!("{x:.3}"))
}

/// The metrics table of one evaluation (summary.json's `last` or `best_ood`).
fn summary_table(v: &Value) -> String {
    let mut t = String::from("<div class=\"scroll\"><table><thead><tr><th class=\"t\">set</th><th>loss</th><th>accuracy (all shots)</th><th>accuracy (last shot)</th><th>Ratio Matching (last shot)</th><th>fraction of RM</th><th>Modular Regression (last shot)</th><th>fraction of MR</th></tr></thead><tbody>");
    for set in [
        "id_train",
        "id_test",
        "ood_train",
        "ood_test",
        "train_batch",
    ] {
        if let Some(s) = v["sets"].get(set) {
            let _ = write!(t, "<tr><td class=\"t\">{set}</td>");
            for key in [
                "loss", "acc", "acc_last", "rm_last", "rm_frac", "mr_last", "mr_frac",
            ] {
                let _ = write!(t, "<td>{}</td>", f3(s[key].as_f64()));
            }
            t += "</tr>";
        }
    }
    t += "</tbody></table></div>\n";
    if let Some(b) = v["ood_gen_rm"].as_bool() {
        let _ = writeln!(
            t,
            "<p>O.o.d. generalization at the Ratio Matching level (o.o.d.-test last-shot accuracy at least 0.8 of Ratio Matching's, above chance noise): {}.</p>",
            if b { "yes" } else { "no" }
        );
    }
    t
}

/// Every file with extension `ext` under `dir`, sorted.
fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Writes `<run>/report.html` and returns its path.
pub fn run_report(dir: &Path) -> anyhow::Result<PathBuf> {
    let run = RunDir::new(dir);
    let cfg = run.read_config()?;
    let name = cfg.train.name.clone();
    let mut page = Page::new(&format!("modicl run {name}"));
    page.p(&format!(
        "Run directory {}; p = {}, {} examples per sequence, d {}, {} blocks.",
        dir.display(),
        cfg.task.p,
        cfg.task.examples,
        cfg.model.d_model,
        cfg.model.layers
    ));
    let interventions = cfg.interventions();
    if !interventions.is_empty() {
        page.p(&format!(
            "Training interventions: {}.",
            interventions.join("; ")
        ));
    }
    let k = cfg.task.examples as usize;
    let records = metrics::read(&run.metrics(), &run.shots(), u64::MAX, k);
    let summary: Option<Value> = std::fs::read_to_string(run.summary())
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let last_step = records.as_ref().ok().and_then(|r| r.last().map(|x| x.step));
    if run.is_done() {
        page.p(&format!("Status: finished, {} steps.", cfg.train.steps));
    } else {
        page.note(&format!(
            "Status: not finished (no DONE file): in progress or interrupted; last evaluation at step {} of {}.",
            last_step.map_or("-".into(), |s| s.to_string()),
            cfg.train.steps
        ));
    }
    if let Err(e) = &records {
        page.problem(&format!(
            "metrics could not be read: {e}. The curves below are missing or stale."
        ));
    }
    page.h2("Metrics");
    match &summary {
        Some(s) => {
            page.raw(&format!("<p>Final (step {}):</p>", s["last"]["step"]));
            page.raw(&summary_table(&s["last"]));
            if !s["best_ood"].is_null() {
                page.raw(&format!(
                    "<p>Early-stopped (best o.o.d.-test evaluation by {}, step {}):</p>",
                    match s["early_stop"].as_str().unwrap_or("acc_last") {
                        "loss" => "loss",
                        "acc" => "all-shot accuracy",
                        _ => "last-shot accuracy",
                    },
                    s["best_ood"]["step"]
                ));
                page.raw(&summary_table(&s["best_ood"]));
            }
        }
        None => {
            if let Ok(Some(r)) = records.as_ref().map(|r| r.last()) {
                page.raw(&format!("<p>Latest evaluation (step {}; summary.json is written at the end):</p><pre>{}</pre>", r.step, esc(&report::table(&r.sets, None))));
            } else {
                page.p("No evaluation yet.");
            }
        }
    }
    if let Some(s) = &summary {
        page.p(&format!(
            "Timing: {} steps in {:.1} s ({:.2} steps/s; {:.2} steps/s without evaluation and checkpoints); {} parameters.",
            s["steps_run"], s["wall_s"].as_f64().unwrap_or(f64::NAN), s["steps_per_s"].as_f64().unwrap_or(f64::NAN),
            s["train_only_steps_per_s"].as_f64().unwrap_or(f64::NAN), s["params"]
        ));
    }
    page.h2("Curves");
    if let Ok(r) = &records {
        if !r.is_empty() {
            let best = rundir::read_state(&run.best_ood()).ok().map(|s| s.step);
            let _ = report::curves(r, best, cfg.task.p, &run.plots().join("curves"), &name);
            let _ = report::shots(r, best, cfg.task.p, &run.plots().join("shots"), &name);
        }
    }
    if !page.figure(
        &run.plots().join("curves"),
        "Loss and accuracies against step (plots/curves)",
    ) {
        page.p("No curves yet.");
    }
    page.figure(
        &run.plots().join("shots"),
        "Accuracy against shot at the last evaluation and the early-stopping step (plots/shots)",
    );
    let stages: Vec<modicl_trainer::StageSummary> = summary
        .as_ref()
        .and_then(|s| serde_json::from_value(s["stages"].clone()).ok())
        .unwrap_or_default();
    if !stages.is_empty() {
        page.h2("Tasks added by the curriculum");
        page.p("Each stage of the task-count curriculum adds tasks to the training batches. Until they enter, they are tasks the model has never been trained on, on the training inputs: a free o.o.d. measurement. \"before\" is the last evaluation before they entered.");
        page.raw(&format!(
            "<pre>{}</pre>",
            esc(&report::stages_table(&stages, cfg.task.p))
        ));
        if let (Ok(mut r), Ok(ds)) = (records, modicl_data::Dataset::for_run(&cfg)) {
            let added = ds.curriculum.added();
            if metrics::read_stages(&run.stages(), &mut r, added, k).is_ok() {
                let _ = report::stages(&r, &stages, cfg.task.p, &run.plots().join("stages"), &name);
            }
        }
        page.figure(
            &run.plots().join("stages"),
            "Last-shot accuracy on the tasks each stage adds, against step (plots/stages)",
        );
    }
    page.h2("Checkpoints");
    match run.complete_checkpoints() {
        Ok(steps) => {
            let best = rundir::read_state(&run.best_ood()).ok().map(|s| s.step);
            page.p(&format!(
                "Kept: {}{}.",
                if steps.is_empty() {
                    "none".into()
                } else {
                    steps
                        .iter()
                        .map(|s| format!("step {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                best.map_or(String::new(), |b| format!(
                    "; best_ood (early-stopped) = step {b}"
                ))
            ));
        }
        Err(e) => page.problem(&format!("checkpoints could not be listed: {e}")),
    }
    let probes = dir.join("probes");
    let svgs = files_under(&probes, "svg");
    if !svgs.is_empty() {
        page.h2("Probes");
        page.p("Every figure under probes/ (docs/probes.md explains each).");
        for svg in svgs {
            let stem = svg.with_extension("");
            let rel = svg.strip_prefix(dir).unwrap_or(&svg).display().to_string();
            page.figure(&stem, &rel);
        }
    }
    page.h2("Configuration");
    let toml = std::fs::read_to_string(run.config()).unwrap_or_default();
    page.raw(&format!(
        "<details open><summary>config.toml</summary><pre>{}</pre></details>\n",
        esc(&toml)
    ));
    let out = dir.join("report.html");
    rundir::write_atomic(&out, page.finish().as_bytes())?;
    Ok(out)
}

/// Writes `<sweep>/report.html` (and each run's report) and returns its path.
pub fn sweep_report(dir: &Path, label: &LabelArgs) -> anyhow::Result<PathBuf> {
    let sd = SweepDir::new(dir);
    let m = sd.read()?;
    let metric = label.metric.metric();
    let rows: Vec<Row> = collect::collect(&sd, &m, label.pass, metric);
    let title = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut page = Page::new(&format!("modicl sweep {title}"));
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for r in &rows {
        *counts.entry(r.state.name()).or_default() += 1;
    }
    page.p(&format!(
        "{} runs: {}. Phases are labelled on the {} accuracy with pass = {} (docs/sweeps.md); the rm phase adds ood-gen-rm where the o.o.d.-test last-shot accuracy reaches 0.8 of Ratio Matching's, above chance noise.",
        rows.len(),
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        match label.metric {
            Shots::Last => "last-shot",
            Shots::All => "all-shot",
        },
        label.pass
    ));
    if rows.iter().any(|r| r.state.name() != "done") {
        page.note("Not every run is done: the diagrams and the table show what has finished or been evaluated so far.");
    }
    page.h2("Phase diagrams");
    let plots = dir.join("plots");
    // Both labellings: the paper-style one, and the one with ood-gen-rm (phase_rm*).
    let drawn = [Labels::Paper, Labels::Rm]
        .into_iter()
        .try_for_each(|labels| {
            crate::phase_plot::phase(&PhaseArgs {
                sweep: dir.to_path_buf(),
                label: label.clone(),
                labels,
            })
        });
    match drawn {
        Ok(()) => {
            // The phase diagrams first, then the accuracy heatmaps.
            let mut svgs = files_under(&plots, "svg");
            svgs.sort_by_key(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("phase"))
            });
            for svg in svgs {
                let rel = svg.strip_prefix(dir).unwrap_or(&svg).display().to_string();
                page.figure(&svg.with_extension(""), &rel);
            }
        }
        Err(e) => page.note(&format!("no phase diagram yet: {e}")),
    }
    page.h2("Runs");
    let mut t = String::from(
        "<div class=\"scroll\"><table class=\"sort\"><thead><tr><th>#</th><th class=\"t\">run</th>",
    );
    for (k, _) in &m.axes {
        let _ = write!(t, "<th>{}</th>", esc(k));
    }
    t += "<th>n_id</th><th>alpha</th><th class=\"t\">state</th><th>step</th><th>id train</th><th>id test</th><th>ood train</th><th>ood test</th><th>ood test / RM</th><th class=\"t\">phase</th><th class=\"t\">rm phase</th><th>best step</th><th>best ood test</th><th class=\"t\">phase at best</th><th class=\"t\">rm phase at best</th><th class=\"t\">report</th></tr></thead><tbody>\n";
    for r in &rows {
        let run_dir = RunDir::new(dir.join("runs").join(&r.name));
        let link = if run_dir.config().is_file() {
            match run_report(&run_dir.root) {
                Ok(p) => {
                    let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                    format!("<a href=\"{}\">report</a>", esc(&rel))
                }
                Err(e) => format!("<span class=\"bad\">{}</span>", esc(&e.to_string())),
            }
        } else {
            "-".into()
        };
        let four = |s: Option<&modicl_trainer::train::StepSummary>| {
            s.and_then(|s| collect::four(s, metric))
        };
        let (last, best) = (four(r.last.as_ref()), four(r.best_ood.as_ref()));
        let num = |v: Option<f64>| format!("<td data-v=\"{}\">{}</td>", v.unwrap_or(-1.0), f3(v));
        let _ = write!(
            t,
            "<tr><td>{}</td><td class=\"t\">{}</td>",
            r.index,
            esc(&r.name)
        );
        for (_, v) in &r.values {
            let _ = write!(t, "<td>{}</td>", esc(v.trim_matches('"')));
        }
        let _ = write!(
            t,
            "<td>{}</td><td>{}</td><td class=\"t\">{}</td><td>{}</td>",
            r.n_id,
            r.alpha,
            r.state.name(),
            r.last.as_ref().map_or("-".into(), |s| s.step.to_string())
        );
        for v in [
            last.map(|f| f.id_train),
            last.map(|f| f.id_test),
            last.map(|f| f.ood_train),
            last.map(|f| f.ood_test),
        ] {
            t += &num(v);
        }
        // The o.o.d.-test last-shot accuracy as a fraction of Ratio Matching's.
        t += &num(r
            .last
            .as_ref()
            .and_then(|s| s.set(SetName::OodTest))
            .and_then(|m| m.rm_frac));
        let name = |p: Option<modicl_sweeps::phase::Phase>| p.map_or("-", |p| p.as_str());
        let _ = write!(
            t,
            "<td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td>",
            name(r.phase_last),
            name(r.phase_rm_last),
            r.best_ood
                .as_ref()
                .map_or("-".into(), |s| s.step.to_string())
        );
        t += &num(best.map(|f| f.ood_test));
        let _ = writeln!(
            t,
            "<td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{link}</td></tr>",
            name(r.phase_best_ood),
            name(r.phase_rm_best_ood)
        );
    }
    t += "</tbody></table></div>\n<p>Click a column header to sort (the table reads without script, in run order).</p>\n";
    page.raw(&t);
    let out = dir.join("report.html");
    rundir::write_atomic(&out, page.finish().as_bytes())?;
    Ok(out)
}

pub fn report(a: &ReportArgs) -> anyhow::Result<()> {
    let out = if a.path.join("sweep.json").is_file() {
        sweep_report(&a.path, &a.label)?
    } else if a.path.join("config.toml").is_file() {
        run_report(&a.path)?
    } else {
        return Err(modicl_trainer::TrainError::NotARun(format!(
            "{} is neither a run directory (config.toml) nor a sweep directory (sweep.json)",
            a.path.display()
        ))
        .into());
    };
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{base64, esc};

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn escaping_covers_markup() {
        assert_eq!(
            esc("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
