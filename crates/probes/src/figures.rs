//! The probes' figures (PNG and SVG side by side, through modicl-plots).

use std::path::{Path, PathBuf};

use modicl_plots::{
    line_charts, rasters, scatters, ColorBar, Corner, Panel, RGBColor, Raster, RasterFill, Scatter,
    ScatterPoint, Series,
};

use crate::kshot::KshotGrid;
use crate::linalg::{discrete_logs, Pca};
use crate::noise::{RandomLocation, SingleLocation};
use crate::oracle::Curve;
use crate::repr::{Attention, Cosine, Embedding, Structure};
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
                y_range: Some((0.0, 1.02)),
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
                ],
                marker: None,
                hline: Some((1.0 / p as f64, format!("chance 1/{p}"))),
                dots: true,
                legend: Corner::Below,
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
        x_names: Vec::new(),
        y_names: Vec::new(),
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
            format!("{k} shot: model {}", pct(g.summary[s].model_correct)),
            p,
            |i| ink(c[i]),
        ));
    }
    for s in 0..n {
        let (r, k) = (g.at(&g.rm, s), g.spec.shots[s]);
        maps.push(query_map(
            format!("{k} shot: RM {}", pct(g.summary[s].rm_explained)),
            p,
            |i| ink(r[i]),
        ));
    }
    for s in 0..n {
        let (c, r) = (g.at(&g.correct, s), g.at(&g.rm, s));
        let (sm, k) = (&g.summary[s], g.spec.shots[s]);
        maps.push(query_map(
            format!(
                "{k} shot: +{} -{}",
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
        let (m, k) = (g.at(&g.mr, s), g.spec.shots[s]);
        maps.push(query_map(
            format!("{k} shot: MR {}", pct(g.summary[s].mr_explained)),
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
        x_names: Vec::new(),
        y_names: Vec::new(),
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

/// A colour on a hue wheel for value i of n (dark enough to read as text on white).
pub fn hue(i: usize, n: usize) -> RGBColor {
    let h = 0.85 * i as f64 / n.max(1) as f64 * 6.0;
    let (c, l) = (0.75, 0.42);
    let c = c * (1.0 - (2.0 * l - 1.0f64).abs());
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let u = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(u(r), u(g), u(b))
}

/// An n × n value raster of `value(i, j)` (None: no data), row i = 0 drawn at the top.
fn matrix_raster(
    title: String,
    (x_label, y_label): (&str, &str),
    n: usize,
    value: impl Fn(usize, usize) -> Option<f64>,
    bar: ColorBar,
) -> Raster {
    let mut cells = vec![RasterFill::Empty; n * n];
    for i in 0..n {
        for j in 0..n {
            if let Some(v) = value(i, j) {
                cells[(n - 1 - i) * n + j] = RasterFill::Value(v);
            }
        }
    }
    Raster {
        title,
        x_label: x_label.into(),
        y_label: y_label.into(),
        nx: n,
        ny: n,
        x0: 0,
        y0: 0,
        cells,
        bar: Some(bar),
        x_names: Vec::new(),
        y_names: Vec::new(),
    }
}

/// Token names of a sequence of examples: x0 y0 z0 x1 ...
fn token_name(i: usize) -> String {
    format!("{}{}", ["x", "y", "z"][i % 3], i / 3)
}

/// Attention of one layer, one row per head: sequence 0 (left) and the mean over the p^2
/// sequences (right), the first `n` tokens, query on the vertical axis (first at the top).
pub fn attention_layer(
    stem: &Path,
    title: &str,
    a: &Attention,
    layer: usize,
    n: usize,
) -> Result<Vec<PathBuf>, ProbeError> {
    let n = n.min(a.t);
    // Name every x token of every `step`-th example: at most 4 names across, 8 down.
    let names = |most: usize| -> Vec<String> {
        let step = (n / 3).div_ceil(most).max(1);
        (0..n)
            .map(|i| {
                if i % 3 == 0 && (i / 3) % step == 0 {
                    token_name(i)
                } else {
                    String::new()
                }
            })
            .collect()
    };
    let (across, down) = (names(4), names(8));
    let mut maps = Vec::new();
    for h in 0..a.heads {
        for (which, m) in [("sequence 0", &a.first), ("mean over inputs", &a.mean)] {
            let base = (layer * a.heads + h) * a.t * a.t;
            let mut r = matrix_raster(
                format!("head {h}, {which}"),
                ("key token", "query token"),
                n,
                |q, k| (k <= q).then(|| m[base + q * a.t + k]),
                ColorBar {
                    min: 0.0,
                    max: 1.0,
                    label: "attention".into(),
                },
            );
            r.x_names = across.clone();
            r.y_names = down.iter().rev().cloned().collect();
            maps.push(r);
        }
    }
    Ok(rasters(stem, title, &maps, 2, (430, 400), &[])?)
}

/// Discrete-log labels of 0..p, "-" for 0 (it has no log).
fn log_text(logs: &[Option<u32>], n: usize) -> String {
    logs.get(n)
        .copied()
        .flatten()
        .map_or("-".to_string(), |l| l.to_string())
}

/// A head's PCA over the p^2 inputs: text labels (x, y) coloured by x, and, at prime p, the
/// same points labelled by discrete logs (log_g x, log_g y) coloured by log_g x.
pub fn pca_head(
    stem: &Path,
    title: &str,
    pca: &Pca,
    s: &Structure,
    p: u32,
    root: Option<u32>,
) -> Result<Vec<PathBuf>, ProbeError> {
    let pu = p as usize;
    let axes = |c: usize| format!("PC{} ({:.1}%)", c + 1, 100.0 * pca.explained[c]);
    let size = if pu > 17 { 9 } else { 12 };
    let mut charts = vec![Scatter {
        title: format!(
            "labels (x, y); structure {:.2} (top-2 {:.2}, circles {:.2})",
            s.score, s.top2, s.circularity
        ),
        x_label: axes(0),
        y_label: axes(1),
        points: (0..pu * pu)
            .map(|r| ScatterPoint {
                x: pca.score(r, 0),
                y: pca.score(r, 1),
                label: format!("({},{})", r / pu, r % pu),
                color: hue(r / pu, pu),
            })
            .collect(),
        text: true,
        size,
    }];
    if let Some(g) = root {
        let logs = discrete_logs(g, p);
        charts.push(Scatter {
            title: format!("labels (log{g} x, log{g} y); - marks 0, which has no log"),
            x_label: axes(0),
            y_label: axes(1),
            points: (0..pu * pu)
                .map(|r| {
                    let (x, y) = (r / pu, r % pu);
                    ScatterPoint {
                        x: pca.score(r, 0),
                        y: pca.score(r, 1),
                        label: format!("({},{})", log_text(&logs, x), log_text(&logs, y)),
                        color: logs[x].map_or(RGBColor(90, 90, 90), |l| hue(l as usize, pu - 1)),
                    }
                })
                .collect(),
            text: true,
            size,
        });
    }
    Ok(scatters(stem, title, &charts, 2, (720, 640))?)
}

/// Every head's top-2 PCA as dots coloured by x, best structure score first.
pub fn all_heads(
    stem: &Path,
    title: &str,
    heads: &[(usize, usize, Pca, Structure)],
    p: u32,
) -> Result<Vec<PathBuf>, ProbeError> {
    let pu = p as usize;
    let charts: Vec<Scatter> = heads
        .iter()
        .map(|(l, h, pca, s)| Scatter {
            title: format!("layer {l} head {h}: score {:.2}", s.score),
            x_label: format!("PC1 ({:.0}%)", 100.0 * pca.explained[0]),
            y_label: format!("PC2 ({:.0}%)", 100.0 * pca.explained[1]),
            points: (0..pu * pu)
                .map(|r| ScatterPoint {
                    x: pca.score(r, 0),
                    y: pca.score(r, 1),
                    label: String::new(),
                    color: hue(r / pu, pu),
                })
                .collect(),
            text: false,
            size: 2,
        })
        .collect();
    let cols = (charts.len() as f64).sqrt().ceil() as usize;
    Ok(scatters(stem, title, &charts, cols, (360, 330))?)
}

/// The number-token embeddings: PCA with (n, log) labels, and the spectra.
pub fn embedding(
    stem: &Path,
    title: &str,
    e: &Embedding,
    p: u32,
) -> Result<Vec<PathBuf>, ProbeError> {
    let pu = p as usize;
    let logs = e.root.map(|g| discrete_logs(g, p));
    let label = |n: usize| match &logs {
        Some(l) => format!("{n}:{}", log_text(l, n)),
        None => n.to_string(),
    };
    let mut files = scatters(
        stem,
        title,
        &[Scatter {
            title: match e.root {
                Some(g) => format!("number embeddings, labels n:log{g} n (- for 0)"),
                None => format!("number embeddings (p = {p} is not prime: no discrete logs)"),
            },
            x_label: format!("PC1 ({:.1}%)", 100.0 * e.pca.explained[0]),
            y_label: format!("PC2 ({:.1}%)", 100.0 * e.pca.explained[1]),
            points: (0..pu)
                .map(|n| ScatterPoint {
                    x: e.pca.score(n, 0),
                    y: e.pca.score(n, 1),
                    label: label(n),
                    color: hue(n, pu),
                })
                .collect(),
            text: true,
            size: 14,
        }],
        1,
        (900, 640),
    )?;
    let bars = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .skip(1)
            .map(|(f, &x)| (f as f64, x))
            .collect()
    };
    let top = e
        .additive
        .iter()
        .chain(e.multiplicative.iter().flatten())
        .skip(1)
        .fold(0f64, |a, &b| a.max(b));
    let y_range = Some((0.0, (top * 1.15).max(1e-9)));
    let mut panels = vec![Panel {
        title: "over Z_p: frequency f of n (f and p - f added)".into(),
        x_label: "frequency f".into(),
        y_range,
        y_label: "share of power (f >= 1)".into(),
        series: vec![Series {
            label: "embedding power".into(),
            color: 0,
            dashed: false,
            points: bars(&e.additive),
        }],
        legend: Corner::UpperRight,
        ..Panel::default()
    }];
    if let (Some(m), Some(g)) = (&e.multiplicative, e.root) {
        panels.push(Panel {
            title: format!("over the multiplicative group: frequency of log{g} n"),
            x_label: "frequency f".into(),
            y_range,
            y_label: "share of power (f >= 1)".into(),
            series: vec![Series {
                label: "embedding power".into(),
                color: 1,
                dashed: false,
                points: bars(m),
            }],
            legend: Corner::UpperRight,
            ..Panel::default()
        });
    }
    let mut spec = stem.as_os_str().to_owned();
    spec.push("_spectrum");
    files.extend(line_charts(
        Path::new(&spec),
        &format!("{title}: Fourier spectra"),
        &panels,
        2,
    )?);
    Ok(files)
}

/// Cosine-similarity heatmaps at slot e's x token (over x, y = 1), y and z tokens (over all
/// inputs, row x·p + y).
pub fn cosine(stem: &Path, title: &str, c: &Cosine, p: u32) -> Result<Vec<PathBuf>, ProbeError> {
    let pu = p as usize;
    let map = |name: &str, m: &[f64], n: usize, what: &str| {
        matrix_raster(
            format!("{name} token"),
            (what, &format!("{what} (first at the top)")),
            n,
            |i, j| Some(m[i * n + j]),
            ColorBar {
                min: -1.0,
                max: 1.0,
                label: "cosine".into(),
            },
        )
    };
    let maps = [
        map("x", &c.x, pu, "x (y = 1)"),
        map("y", &c.y, pu * pu, "input x·p + y"),
        map("z", &c.z, pu * pu, "input x·p + y"),
    ];
    Ok(rasters(stem, title, &maps, 3, (460, 430), &[])?)
}
