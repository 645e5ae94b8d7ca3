//! `modicl plot phase`: the paper's Fig. 1b from a collected sweep.

use std::collections::BTreeMap;

use modicl_plots::{heatmaps, Cell, Fill, Heatmap, RGBColor, OKABE_ITO};
use modicl_sweeps::collect::{self, Row};
use modicl_sweeps::phase::{Labelling, Phase};
use modicl_sweeps::SweepDir;
use modicl_trainer::{Checkpoint, SetName};

use crate::args::PhaseArgs;

/// The phases' colours: Okabe-Ito hues, distinguishable under the common colour-vision
/// deficiencies (orange, sky blue, reddish purple, bluish green, yellow), grey for none, and
/// blue for the second labelling's ood-gen-rm.
fn phase_palette() -> Vec<RGBColor> {
    vec![
        OKABE_ITO[1],
        OKABE_ITO[2],
        OKABE_ITO[7],
        OKABE_ITO[3],
        OKABE_ITO[4],
        RGBColor(150, 150, 150),
        OKABE_ITO[5],
    ]
}

/// A phase's index in [`phase_palette`].
fn phase_color(p: Phase) -> usize {
    match p {
        Phase::IdMem => 0,
        Phase::IdGen => 1,
        Phase::OodMem => 2,
        Phase::OodGen => 3,
        Phase::Other => 4,
        Phase::None => 5,
        Phase::OodGenRm => 6,
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
    let metric = a.label.metric.metric();
    let labelling = Labelling::from(a.labels);
    let rows = collect::collect(&sd, &m, a.label.pass, metric);
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
    let which = format!("{}-shot", a.label.metric.as_str());
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
        let acc_of = |r: &Row, c: Checkpoint, set: SetName| {
            r.at(c).0.and_then(|s| s.set(set)).map(|m| m.get(metric))
        };
        let phase_map = |c: Checkpoint| {
            let mut h = base.clone();
            h.title = match c {
                Checkpoint::BestOod => "early-stopped (best o.o.d. test)".into(),
                _ => "final".into(),
            };
            h.palette = phase_palette();
            h.legend = labelling
                .phases()
                .iter()
                .map(|&p| (p.as_str().to_string(), phase_color(p)))
                .collect();
            for r in &rows {
                let (x, y) = at(r);
                let (fill, text) = match r.labelled(c, labelling).1 {
                    Some(p) => (
                        Fill::Category(phase_color(p)),
                        acc_of(r, c, SetName::OodTest).map_or(String::new(), |v| format!("{v:.2}")),
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
        let (stem, labels) = match labelling {
            Labelling::Paper => ("phase", String::new()),
            Labelling::Rm => ("phase_rm", " + ood-gen-rm".to_string()),
        };
        let title = format!(
            "{name}{suffix}: phase (pass {}, {which}{labels}; cell: o.o.d.-test acc.)",
            a.label.pass
        );
        // Side by side up to 4 columns of cells; wider grids one map per row, so that 8 pt
        // cell text fits its cell when the figure is a column wide.
        let cols = if xs.len() > 4 { 1 } else { 2 };
        let plots = sd.root.join("plots");
        let mut written = heatmaps(
            &plots.join(format!("{stem}{suffix}")),
            &title,
            &[phase_map(Checkpoint::Last), phase_map(Checkpoint::BestOod)],
            cols,
        )?;
        for c in [Checkpoint::Last, Checkpoint::BestOod] {
            let maps: Vec<Heatmap> = SetName::EVAL
                .iter()
                .map(|&set| {
                    let mut h = base.clone();
                    h.title = format!("{set} {which} accuracy");
                    for r in &rows {
                        let (x, y) = at(r);
                        let (fill, text) = match acc_of(r, c, set) {
                            Some(v) => (Fill::Value(v), format!("{v:.2}")),
                            None => (Fill::Empty, r.state.name().to_string()),
                        };
                        h.cells.push(Cell { x, y, fill, text });
                    }
                    h
                })
                .collect();
            let (tag, when) = match c {
                Checkpoint::Last => ("accuracy".to_string(), "final"),
                c => (format!("accuracy_{c}"), "early-stopped"),
            };
            let title = format!("{name}{suffix}: {when} accuracies");
            written.extend(heatmaps(
                &plots.join(format!("{tag}{suffix}")),
                &title,
                &maps,
                cols,
            )?);
        }
        for p in written {
            println!("wrote {}", p.display());
        }
    }
    Ok(())
}
