//! What a run's numbers look like to a person: tables and plots of metrics records.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use modicl_plots::{line_charts, Corner, Panel, Series};
use modicl_trainer::oracles::SetOracles;
use modicl_trainer::{Metric, Record, SetMetrics, SetName, StageSummary};

/// The palette colour of a set's lines.
fn color(set: SetName) -> usize {
    match set {
        SetName::TrainBatch => 7,
        SetName::IdTrain => 0,
        SetName::IdTest => 1,
        SetName::OodTrain => 2,
        SetName::OodTest => 3,
    }
}

/// A table of loss and accuracies, one row per set; with `oracles`, also Ratio Matching's and
/// Modular Regression's last-shot accuracy on each set's inputs and the model's fraction of each.
pub fn table(sets: &[SetMetrics], oracles: Option<&SetOracles>) -> String {
    // Column widths of the metrics, in the order of Metric::ALL.
    const WIDTHS: [usize; 3] = [8, 9, 10];
    let mut out = format!("{:<12}", "set");
    for (m, w) in Metric::ALL.iter().zip(WIDTHS) {
        let _ = write!(out, " {m:>w$}");
    }
    let _ = write!(out, " {:>10}", "samples");
    if oracles.is_some() {
        let _ = write!(
            out,
            " {:>8} {:>6} {:>8} {:>6}",
            "rm_last", "of_rm", "mr_last", "of_mr"
        );
    }
    out.push('\n');
    for m in sets {
        let _ = write!(out, "{:<12}", m.set);
        for (&metric, w) in Metric::ALL.iter().zip(WIDTHS) {
            let _ = write!(out, " {:>w$.4}", m.get(metric));
        }
        let _ = write!(out, " {:>10}", m.count);
        // A training batch of a context-length curriculum's shorter stage ends before the
        // last shot: the full-length oracles do not apply to it.
        if let (Some(_), true) = (oracles, m.ends_early()) {
            let _ = write!(out, " {:>8} {:>6} {:>8} {:>6}", "-", "-", "-", "-");
        } else if let Some(o) = oracles {
            let o = o.get(m.set);
            let acc = m.acc_last();
            let _ = write!(
                out,
                " {:>8.4} {:>6.2} {:>8.4} {:>6.2}",
                o.rm,
                acc / o.rm,
                o.mr,
                acc / o.mr
            );
        }
        out.push('\n');
    }
    out
}

/// Loss, all-shot accuracy and last-shot accuracy against step (log x), with the
/// early-stopping step marked: `<stem>.png` and `<stem>.svg`.
pub fn curves(
    records: &[Record],
    best: Option<u64>,
    p: u32,
    stem: &Path,
    title: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let series = |metric: Metric| -> Vec<Series> {
        SetName::ALL
            .into_iter()
            .map(|name| Series {
                label: name.to_string(),
                color: color(name),
                dashed: name == SetName::TrainBatch,
                points: records
                    .iter()
                    .filter_map(|r| r.set(name).map(|m| (r.step as f64, m.get(metric))))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let marker = best.map(|s| (s as f64, format!("early-stopped checkpoint (step {s})")));
    let panel = |metric: Metric, title: &str, y: &str, range: Option<(f64, f64)>| Panel {
        title: title.to_string(),
        x_label: "step".into(),
        y_label: y.to_string(),
        log_x: true,
        y_range: range,
        series: series(metric),
        marker: marker.clone(),
        // Chance on the accuracy panels; ln p (a uniform guess) on the loss panel.
        hline: Some(match range {
            Some(_) => (1.0 / p as f64, format!("chance 1/{p}")),
            None => ((p as f64).ln(), format!("uniform guess, ln {p}")),
        }),
        dots: true,
        legend: Corner::Below,
    };
    let panels = [
        panel(Metric::Loss, "loss", "cross-entropy", None),
        panel(
            Metric::Acc,
            "accuracy, all shots",
            "accuracy",
            Some((0.0, 1.0)),
        ),
        panel(
            Metric::AccLast,
            "accuracy, last shot",
            "accuracy",
            Some((0.0, 1.0)),
        ),
    ];
    // Two across: the legend takes the fourth cell.
    Ok(line_charts(stem, title, &panels, 2)?)
}

/// The tasks each stage of a task-count curriculum adds, read at the last evaluation before they
/// entered the training batches and at the end, as a table (`train`'s output, the run report).
pub fn stages_table(stages: &[StageSummary], p: u32) -> String {
    let chance = 1.0 / p as f64;
    let mut out = format!(
        "tasks added by the task-count curriculum, on the training inputs (chance 1/{p} = {chance:.4}; \
         \"before\": the last evaluation before they entered the training batches):\n\
         {:>5} {:>7} {:>5} | {:>11} {:>8} {:>6} {:>6} | {:>10} {:>8}\n",
        "stage", "from", "tasks", "before step", "acc_last", "of_rm", "noise?", "last step", "acc_last"
    );
    let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for s in stages {
        let b = s.before.as_ref();
        let _ = writeln!(
            out,
            "{:>5} {:>7} {:>5} | {:>11} {:>8} {:>6} {:>6} | {:>10} {:>8}",
            s.stage,
            s.from,
            s.tasks,
            dash(b.map(|b| b.step.to_string())),
            dash(b.map(|b| format!("{:.4}", b.set.acc_last))),
            dash(b.and_then(|b| b.set.rm_frac).map(|f| format!("{f:.2}"))),
            dash(b.map(|b| if b.above_chance { "no" } else { "yes" }.into())),
            dash(s.last.as_ref().map(|l| l.step.to_string())),
            dash(s.last.as_ref().map(|l| format!("{:.4}", l.set.acc_last))),
        );
    }
    out.push_str("noise?: whether acc_last is within sampling noise of chance (one evaluation)\n");
    out
}

/// The last-shot accuracy on the tasks each stage of a task-count curriculum adds, against step,
/// one panel per stage with the step they entered the training batches marked, and the
/// o.o.d.-test last-shot accuracy beside them: `<stem>.png` and `<stem>.svg`.
pub fn stages(
    records: &[Record],
    stages: &[StageSummary],
    p: u32,
    stem: &Path,
    title: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let panels: Vec<Panel> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let added = |metric: Metric| -> Vec<(f64, f64)> {
                records
                    .iter()
                    .filter_map(|r| r.added.get(i).map(|m| (r.step as f64, m.get(metric))))
                    .collect()
            };
            let ood = records
                .iter()
                .filter_map(|r| {
                    r.set(SetName::OodTest)
                        .map(|m| (r.step as f64, m.acc_last()))
                })
                .collect();
            Panel {
                title: format!("stage {}: the {} tasks it adds", s.stage, s.tasks),
                x_label: "step".into(),
                y_label: "accuracy".into(),
                log_x: false,
                y_range: Some((0.0, 1.0)),
                series: vec![
                    Series {
                        label: "added tasks, last shot".into(),
                        color: 4,
                        dashed: false,
                        points: added(Metric::AccLast),
                    },
                    Series {
                        label: "added tasks, all shots".into(),
                        color: 5,
                        dashed: true,
                        points: added(Metric::Acc),
                    },
                    Series {
                        label: "ood_test, last shot".into(),
                        color: color(SetName::OodTest),
                        dashed: false,
                        points: ood,
                    },
                ],
                marker: Some((
                    s.from as f64,
                    format!("enter the batches (step {})", s.from),
                )),
                hline: Some((1.0 / p as f64, format!("chance 1/{p}"))),
                dots: true,
                legend: Corner::Below,
            }
        })
        .collect();
    if panels.is_empty() {
        return Ok(Vec::new());
    }
    Ok(line_charts(stem, title, &panels, 2)?)
}

/// Accuracy against shot on the four sets at the last evaluation (solid) and at the
/// early-stopping step (dashed, when it differs): `<stem>.png` and `<stem>.svg`.
pub fn shots(
    records: &[Record],
    best: Option<u64>,
    p: u32,
    stem: &Path,
    title: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let last = records
        .last()
        .ok_or_else(|| anyhow::anyhow!("the run has no evaluations yet"))?;
    // The four evaluation sets (not the training batch), in display order.
    let four = |r: &Record| -> Vec<SetMetrics> {
        SetName::EVAL
            .iter()
            .filter_map(|&name| r.set(name).cloned())
            .collect()
    };
    let mut series = shot_series(&four(last), &format!(", step {}", last.step), false);
    if let Some(b) = best.filter(|&b| b != last.step) {
        if let Some(r) = records.iter().find(|r| r.step == b) {
            series.extend(shot_series(
                &four(r),
                &format!(", step {} (early-stopped)", r.step),
                true,
            ));
        }
    }
    shots_chart(series, p, stem, title)
}

/// One per-shot panel from ready series.
pub fn shots_chart(
    series: Vec<Series>,
    p: u32,
    stem: &Path,
    title: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let panel = Panel {
        title: "accuracy per shot (examples in context)".into(),
        x_label: "shot (examples before the query)".into(),
        y_label: "accuracy".into(),
        log_x: false,
        y_range: Some((0.0, 1.0)),
        series,
        marker: None,
        hline: Some((1.0 / p as f64, format!("chance 1/{p}"))),
        dots: true,
        legend: Corner::Below,
    };
    Ok(line_charts(stem, title, &[panel], 1)?)
}

/// Series of one evaluation's per-shot accuracies, for [`shots_chart`].
pub fn shot_series(sets: &[SetMetrics], suffix: &str, dashed: bool) -> Vec<Series> {
    sets.iter()
        .map(|m| Series {
            label: format!("{}{suffix}", m.set),
            color: color(m.set),
            dashed,
            points: (0..m.shot_count.len())
                .map(|i| (i as f64, m.acc_shot(i)))
                .collect(),
        })
        .collect()
}

/// The line printed when a resume sets a corrupt checkpoint aside.
pub fn skipped_line(s: &modicl_trainer::Skipped) -> String {
    format!(
        "warning: skipped checkpoint step {}: {}; moved it to {}",
        s.step,
        s.reason,
        s.moved_to.display()
    )
}
