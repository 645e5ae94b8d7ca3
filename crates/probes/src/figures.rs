//! The probes' figures (PNG and SVG side by side, through modicl-plots).

use std::path::{Path, PathBuf};

use modicl_plots::{
    line_charts, rasters, ColorBar, Corner, Panel, RGBColor, Raster, RasterFill, Series,
};

use crate::kshot::KshotGrid;
use crate::noise::{RandomLocation, SingleLocation};
use crate::oracle::Curve;
use crate::ProbeError;

/// Correct / explained.
pub const INK: RGBColor = RGBColor(35, 35, 35);
/// Wrong / not explained.
pub const PAPER: RGBColor = RGBColor(246, 239, 220);
/// The model is right where Ratio Matching cannot answer.
pub const RED: RGBColor = RGBColor(214, 39, 40);
/// Ratio Matching would answer, the model is wrong.
pub const BLUE: RGBColor = RGBColor(31, 119, 180);
/// Model and Ratio Matching agree.
pub const WHITE: RGBColor = RGBColor(255, 255, 255);

/// One panel of the per-shot figure: a set's name, the model's per-shot accuracy, and the
/// oracle curves for the set's inputs.
pub struct ShotsPanel<'a> {
    pub set: &'a str,
    pub model: &'a [f64],
    pub rm: &'a Curve,
    pub mr: &'a Curve,
}

/// The model's per-shot accuracy on each set with the RM and MR oracle curves (with guessing)
/// and chance, one panel per set.
pub fn shots(
    stem: &Path,
    title: &str,
    panels: &[ShotsPanel<'_>],
    p: u32,
) -> Result<Vec<PathBuf>, ProbeError> {
    let pts = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(i, &a)| (i as f64, a)).collect()
    };
    let chart: Vec<Panel> = panels
        .iter()
        .map(|s| {
            let k = s.model.len();
            Panel {
                title: s.set.to_string(),
                x_label: "shots (examples in context)".into(),
                y_label: "accuracy".into(),
                log_x: false,
                // Headroom above 1 keeps the legend off the curves (Modular Regression reaches 1).
                y_range: Some((0.0, 1.55)),
                series: vec![
                    Series {
                        label: "model".into(),
                        color: 0,
                        dashed: false,
                        points: pts(s.model),
                    },
                    Series {
                        label: "Ratio Matching + guess".into(),
                        color: 1,
                        dashed: true,
                        points: pts(&s.rm.acc[..k.min(s.rm.acc.len())]),
                    },
                    Series {
                        label: "Modular Regression + guess".into(),
                        color: 2,
                        dashed: true,
                        points: pts(&s.mr.acc[..k.min(s.mr.acc.len())]),
                    },
                    Series {
                        label: format!("chance 1/{p}"),
                        color: 7,
                        dashed: true,
                        points: vec![
                            (0.0, 1.0 / p as f64),
                            ((k.max(2) - 1) as f64, 1.0 / p as f64),
                        ],
                    },
                ],
                marker: None,
                legend: Corner::UpperRight,
            }
        })
        .collect();
    Ok(line_charts(stem, title, &chart, 2)?)
}

/// A p × p map of the queries (x horizontal, y vertical, 0 at the lower left) from a per-query
/// colour, queries in canonical order (index x·p + y).
fn query_map(title: String, p: usize, color: impl Fn(usize) -> RGBColor) -> Raster {
    let mut cells = vec![RasterFill::Empty; p * p];
    for x in 0..p {
        for y in 0..p {
            cells[y * p + x] = RasterFill::Color(color(x * p + y));
        }
    }
    Raster {
        title,
        x_label: "x".into(),
        y_label: "y".into(),
        nx: p,
        ny: p,
        x0: 0,
        y0: 0,
        cells,
        bar: None,
    }
}

/// Fig. 5's rows for every shot count (columns): the model's correct map, the queries Ratio
/// Matching explains, their difference (red: model right where RM cannot be; blue: RM right,
/// model wrong), and the queries Modular Regression explains. Needs n_var = 2.
pub fn kshot(stem: &Path, title: &str, g: &KshotGrid) -> Result<Vec<PathBuf>, ProbeError> {
    let p = g.spec.p as usize;
    let mut maps = Vec::new();
    let n = g.spec.shots.len();
    let pct = |v: f64| format!("{:.1}%", 100.0 * v);
    let ink = |b: bool| if b { INK } else { PAPER };
    for s in 0..n {
        let (c, k) = (g.at(&g.correct, s), g.spec.shots[s]);
        maps.push(query_map(
            format!(
                "{k}-shot: model correct {}",
                pct(g.summary[s].model_correct)
            ),
            p,
            |i| ink(c[i]),
        ));
    }
    for s in 0..n {
        let r = g.at(&g.rm, s);
        maps.push(query_map(
            format!("RM explains {}", pct(g.summary[s].rm_explained)),
            p,
            |i| ink(r[i]),
        ));
    }
    for s in 0..n {
        let (c, r) = (g.at(&g.correct, s), g.at(&g.rm, s));
        let sm = &g.summary[s];
        maps.push(query_map(
            format!(
                "model - RM: +{} -{}",
                pct(sm.model_beyond_rm),
                pct(sm.rm_not_model)
            ),
            p,
            |i| match (c[i], r[i]) {
                (true, false) => RED,
                (false, true) => BLUE,
                _ => WHITE,
            },
        ));
    }
    for s in 0..n {
        let m = g.at(&g.mr, s);
        maps.push(query_map(
            format!("MR explains {}", pct(g.summary[s].mr_explained)),
            p,
            |i| ink(m[i]),
        ));
    }
    let legend = [
        ("correct / explained".to_string(), INK),
        ("wrong / not explained".to_string(), PAPER),
        ("model right, RM cannot".to_string(), RED),
        ("RM right, model wrong".to_string(), BLUE),
    ];
    Ok(rasters(stem, title, &maps, n, (280, 290), &legend)?)
}

fn value_raster(
    title: String,
    (x_label, y_label): (&str, &str),
    grid: &[Vec<f64>],
    (nx, x0, y0): (usize, i64, i64),
    bar: ColorBar,
) -> Raster {
    let ny = grid.len();
    let mut cells = vec![RasterFill::Empty; nx * ny];
    for (y, row) in grid.iter().enumerate() {
        for (x, &v) in row.iter().enumerate().take(nx) {
            if v.is_finite() {
                cells[y * nx + x] = RasterFill::Value(v);
            }
        }
    }
    Raster {
        title,
        x_label: x_label.into(),
        y_label: y_label.into(),
        nx,
        ny,
        x0,
        y0,
        cells,
        bar: Some(bar),
    }
}

/// Random-location corruption: accuracy and loss at the query by context length (shot) and
/// number of wrong labels, for each set given.
pub fn noise_random(
    stem: &Path,
    title: &str,
    sets: &[(&str, &RandomLocation)],
) -> Result<Vec<PathBuf>, ProbeError> {
    let max_loss = sets
        .iter()
        .flat_map(|(_, r)| r.loss.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let mut maps = Vec::new();
    for (name, r) in sets {
        let nx = r.acc.len();
        maps.push(value_raster(
            format!("{name}: accuracy"),
            ("wrong labels in context", "shot (examples in context)"),
            &r.acc,
            (nx, 0, 0),
            ColorBar {
                min: 0.0,
                max: 1.0,
                label: "accuracy".into(),
            },
        ));
    }
    for (name, r) in sets {
        let nx = r.loss.len();
        maps.push(value_raster(
            format!("{name}: loss"),
            ("wrong labels in context", "shot (examples in context)"),
            &r.loss,
            (nx, 0, 0),
            ColorBar {
                min: 0.0,
                max: max_loss.max(1e-6),
                label: "loss (nats)".into(),
            },
        ));
    }
    Ok(rasters(stem, title, &maps, sets.len(), (440, 400), &[])?)
}

/// Single-location corruption: accuracy at shot i (rows) when only example j's label (columns)
/// is wrong, one map per set.
pub fn noise_single(
    stem: &Path,
    title: &str,
    sets: &[(&str, &SingleLocation)],
) -> Result<Vec<PathBuf>, ProbeError> {
    let maps: Vec<Raster> = sets
        .iter()
        .map(|(name, s)| {
            let k = s.acc.len();
            value_raster(
                format!(
                    "{name} (no label wrong: {:.2} at the last shot)",
                    s.baseline[k - 1]
                ),
                ("corrupted example j", "shot i"),
                &s.acc,
                (k, 0, 0),
                ColorBar {
                    min: 0.0,
                    max: 1.0,
                    label: "accuracy".into(),
                },
            )
        })
        .collect();
    Ok(rasters(stem, title, &maps, 2, (440, 400), &[])?)
}
