//! `modicl plot phase`: the paper's Fig. 1b from a collected sweep.

use std::collections::BTreeMap;

use modicl_plots::{heatmaps, Cell, Fill, Heatmap};
use modicl_sweeps::collect::{self, Row};
use modicl_sweeps::phase::Phase;
use modicl_sweeps::SweepDir;

use crate::args::PhaseArgs;

fn phase_color(p: Phase) -> usize {
    match p {
        Phase::IdMem => 0,
        Phase::IdGen => 1,
        Phase::OodMem => 2,
        Phase::OodGen => 3,
        Phase::Other => 4,
        Phase::None => 7,
    }
}

/// Axes that are not the diagram's own: each combination of their values gets its own figure.
fn facet_keys(axes: &[(String, Vec<String>)]) -> Vec<String> {
    axes.iter()
        .map(|a| a.0.clone())
        .filter(|k| !matches!(k.as_str(), "task.n_base" | "task.n_random" | "task.alpha"))
        .collect()
}

pub fn phase(a: &PhaseArgs) -> anyhow::Result<()> {
    let sd = SweepDir::new(&a.sweep);
    let m = sd.read()?;
    let last_shot = a.label.metric == "last";
    let rows = collect::collect(&sd, &m, a.label.pass, last_shot);
    let facets = facet_keys(&m.axes);
    let mut groups: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        let suffix: String = r
            .values
            .iter()
            .filter(|(k, _)| facets.contains(k))
            .map(|(k, v)| {
                format!(
                    "_{}{}",
                    k.rsplit('.').next().unwrap_or(k),
                    v.trim_matches('"')
                )
            })
            .collect::<String>()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if r.n_id == 0 {
            continue; // its configuration no longer builds: nothing to place
        }
        groups.entry(suffix).or_default().push(r);
    }
    let which = if last_shot { "last-shot" } else { "all-shot" };
    for (suffix, rows) in groups {
        let mut xs: Vec<usize> = rows.iter().map(|r| r.n_id).collect();
        xs.sort_unstable();
        xs.dedup();
        let mut ys: Vec<f64> = rows.iter().map(|r| r.alpha).collect();
        ys.sort_by(f64::total_cmp);
        ys.dedup();
        let mut cells = std::collections::HashSet::new();
        for r in &rows {
            if !cells.insert((r.n_id, r.alpha.to_bits())) {
                eprintln!(
                    "warning: several runs{suffix} share the cell n_id {} alpha {}; only one is shown (facet with another axis)",
                    r.n_id, r.alpha
                );
            }
        }
        let at = |r: &Row| {
            (
                xs.iter().position(|&x| x == r.n_id).unwrap_or(0),
                ys.iter().position(|&y| y == r.alpha).unwrap_or(0),
            )
        };
        let base = Heatmap {
            x_label: "n_id (pre-training tasks; one column per value)".into(),
            y_label: "alpha (fraction of inputs)".into(),
            x_ticks: xs.iter().map(|x| x.to_string()).collect(),
            y_ticks: ys.iter().map(|y| format!("{y}")).collect(),
            ..Heatmap::default()
        };
        let acc_of = |r: &Row, early: bool, set: &str| {
            let s = if early { &r.best_ood } else { &r.last };
            s.as_ref()
                .and_then(|s| s.sets.get(set))
                .map(|m| if last_shot { m.acc_last } else { m.acc })
        };
        let phase_map = |early: bool| {
            let mut h = base.clone();
            h.title = if early {
                "early-stopped (best o.o.d. test)".into()
            } else {
                "final".into()
            };
            h.legend = Phase::ALL
                .iter()
                .map(|&p| (p.as_str().to_string(), phase_color(p)))
                .collect();
            for r in &rows {
                let (x, y) = at(r);
                let phase = if early {
                    r.phase_best_ood
                } else {
                    r.phase_last
                };
                let (fill, text) = match phase {
                    Some(p) => (
                        Fill::Category(phase_color(p)),
                        acc_of(r, early, "ood_test").map_or(String::new(), |v| format!("{v:.2}")),
                    ),
                    None => (Fill::Empty, r.state.name().to_string()),
                };
                h.cells.push(Cell { x, y, fill, text });
            }
            h
        };
        let name = m.runs.first().map_or("sweep".into(), |_| {
            a.sweep
                .file_name()
                .map_or("sweep".into(), |n| n.to_string_lossy().into_owned())
        });
        let title = format!(
            "{name}{suffix}: phase (pass >= {} on {which} accuracy; cell: o.o.d.-test accuracy)",
            a.label.pass
        );
        let plots = sd.root.join("plots");
        let mut written = heatmaps(
            &plots.join(format!("phase{suffix}")),
            &title,
            &[phase_map(false), phase_map(true)],
            2,
        )?;
        for early in [false, true] {
            let maps: Vec<Heatmap> = ["id_train", "id_test", "ood_train", "ood_test"]
                .iter()
                .map(|set| {
                    let mut h = base.clone();
                    h.title = format!("{set} {which} accuracy (0 dark, 1 yellow)");
                    for r in &rows {
                        let (x, y) = at(r);
                        let (fill, text) = match acc_of(r, early, set) {
                            Some(v) => (Fill::Value(v), format!("{v:.2}")),
                            None => (Fill::Empty, r.state.name().to_string()),
                        };
                        h.cells.push(Cell { x, y, fill, text });
                    }
                    h
                })
                .collect();
            let tag = if early {
                "accuracy_best_ood"
            } else {
                "accuracy"
            };
            let title = format!(
                "{name}{suffix}: {} accuracies",
                if early { "early-stopped" } else { "final" }
            );
            written.extend(heatmaps(
                &plots.join(format!("{tag}{suffix}")),
                &title,
                &maps,
                2,
            )?);
        }
        for p in written {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}
