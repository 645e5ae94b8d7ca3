//! modicl's plots, drawn with `plotters` and written as PNG and SVG side by side.
//!
//! The crate takes plain numbers (series of points, grids), not trainer types, so any stage
//! can plot. Text is set in DejaVu Sans, embedded in the binary, so PNGs look the same on a
//! machine without fonts. Files are written atomically (temporary name, then rename).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

mod raster;
mod scatter;
pub use plotters::style::RGBColor;
pub use raster::{rasters, ColorBar, Raster, RasterFill};
pub use scatter::{scatters, Scatter, ScatterPoint};

/// Errors while drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {what}: {reason}")]
    Draw { what: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("nothing to plot: {0}")]
    Empty(String),
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    /// Index into the palette; series sharing it share a colour.
    pub color: usize,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// One chart: axes, lines and an optional marked x position.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    /// Fixed y range (accuracies: 0..1); otherwise fitted to the data.
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
    /// A vertical marker (x, label), e.g. the early-stopping step.
    pub marker: Option<(f64, String)>,
    /// A horizontal reference line (y, label), e.g. chance, drawn dotted in grey.
    pub hline: Option<(f64, String)>,
    /// Draw a dot at every data point (where the data are, on sparse or log axes).
    pub dots: bool,
    /// Where the legend goes.
    pub legend: Corner,
}

/// A corner of a chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Corner {
    #[default]
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
    /// The middle of the right edge.
    MiddleRight,
    /// Not in the panel: one legend for the whole figure, under the panels, listing each
    /// label once ([`line_charts`]).
    Below,
}

/// Colours of series 0, 1, ... (the "tab10" hues).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The Okabe-Ito palette (Okabe and Ito 2008), made to stay distinguishable under the common
/// colour-vision deficiencies: black, orange, sky blue, bluish green, yellow, blue, vermillion,
/// reddish purple.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0, 0, 0),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(240, 228, 66),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
];

/// Relative luminance (0 black .. 1 white) of a colour, for choosing text drawn on it.
pub fn luminance(c: RGBColor) -> f64 {
    let lin = |v: u8| {
        let v = v as f64 / 255.0;
        if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c.0) + 0.7152 * lin(c.1) + 0.0722 * lin(c.2)
}

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // The embedded font is known to be valid; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Draws `panels` side by side (a grid of `cols` columns) and writes `<stem>.png` and
/// `<stem>.svg`; returns both paths.
pub fn line_charts(
    stem: &Path,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<Vec<PathBuf>, PlotError> {
    if panels
        .iter()
        .all(|p| p.series.iter().all(|s| s.points.is_empty()))
    {
        return Err(PlotError::Empty(title.to_string()));
    }
    let below: Vec<LegendEntry> = {
        let mut v: Vec<LegendEntry> = Vec::new();
        for p in panels.iter().filter(|p| p.legend == Corner::Below) {
            let entries = p
                .series
                .iter()
                .filter(|s| !s.points.is_empty())
                .map(|s| {
                    LegendEntry::Line(s.label.clone(), PALETTE[s.color % PALETTE.len()], s.dashed)
                })
                .chain(p.hline.iter().map(|(_, l)| LegendEntry::Dotted(l.clone())))
                .chain(p.marker.iter().map(|(_, l)| LegendEntry::Marker(l.clone())));
            for e in entries {
                if !v.contains(&e) {
                    v.push(e);
                }
            }
        }
        v
    };
    if below.is_empty() {
        return grid_of(stem, title, panels, cols, (560, 420));
    }
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols);
    let width = 560 * cols as u32;
    // Legend rows: as many entries per row as fit the width.
    let per_row = ((width as usize - 20) / 230).max(1);
    let legend_h = 26 * below.len().div_ceil(per_row) as u32 + 12;
    let fig = LegendGrid {
        title,
        charts: panels,
        grid: (rows, cols),
        legend: &below,
        per_row,
        legend_h,
    };
    render(stem, (width, 420 * rows as u32 + 40 + legend_h), &fig)
}

/// An entry of a figure-level legend.
#[derive(Clone, Debug, PartialEq)]
enum LegendEntry {
    Line(String, RGBColor, bool),
    Dotted(String),
    Marker(String),
}

/// Panels in a grid with one legend under them.
struct LegendGrid<'a> {
    title: &'a str,
    charts: &'a [Panel],
    grid: (usize, usize),
    legend: &'a [LegendEntry],
    per_row: usize,
    legend_h: u32,
}

impl Figure for LegendGrid<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let root = root.titled(self.title, ("sans-serif", 24))?;
        let (_, h) = root.dim_in_pixel();
        let (body, foot) = root.split_vertically(h.saturating_sub(self.legend_h));
        for (area, c) in body.split_evenly(self.grid).iter().zip(self.charts) {
            c.draw_in(area)?;
        }
        for (i, e) in self.legend.iter().enumerate() {
            let (x, y) = (
                16 + 230 * (i % self.per_row) as i32,
                8 + 26 * (i / self.per_row) as i32,
            );
            let (label, style, dashed) = match e {
                LegendEntry::Line(l, c, d) => (l, c.stroke_width(3), *d),
                LegendEntry::Dotted(l) => (l, RGBColor(110, 110, 110).stroke_width(2), true),
                LegendEntry::Marker(l) => (l, BLACK.mix(0.6).stroke_width(1), false),
            };
            if matches!(e, LegendEntry::Marker(_)) {
                foot.draw(&PathElement::new(
                    vec![(x + 14, y), (x + 14, y + 16)],
                    style,
                ))?;
            } else if dashed {
                for k in 0..3 {
                    foot.draw(&PathElement::new(
                        vec![(x + 10 * k, y + 8), (x + 10 * k + 6, y + 8)],
                        style,
                    ))?;
                }
            } else {
                foot.draw(&PathElement::new(vec![(x, y + 8), (x + 28, y + 8)], style))?;
            }
            foot.draw(&Text::new(
                label.clone(),
                (x + 36, y + 1),
                ("sans-serif", 15),
            ))?;
        }
        Ok(())
    }
}

/// One chart of a figure: a line panel or a heatmap.
trait Chart {
    fn draw_in<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

impl Chart for Panel {
    fn draw_in<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_panel(area, self)
    }
}

impl Chart for Heatmap {
    fn draw_in<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_heatmap(area, self)
    }
}

/// A titled figure of charts, `cols` per row, each `cell` pixels.
struct Grid<'a, T> {
    title: &'a str,
    charts: &'a [T],
    grid: (usize, usize),
}

impl<T: Chart> Figure for Grid<'_, T> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let root = root.titled(self.title, ("sans-serif", 24))?;
        for (area, c) in root.split_evenly(self.grid).iter().zip(self.charts) {
            c.draw_in(area)?;
        }
        Ok(())
    }
}

/// Draws `charts` in a grid of `cols` columns, each `cell` pixels, to `<stem>.png`/`.svg`.
fn grid_of<T: Chart>(
    stem: &Path,
    title: &str,
    charts: &[T],
    cols: usize,
    cell: (u32, u32),
) -> Result<Vec<PathBuf>, PlotError> {
    let cols = cols.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(cols);
    let size = (cell.0 * cols as u32, cell.1 * rows as u32 + 40);
    let fig = Grid {
        title,
        charts,
        grid: (rows, cols),
    };
    render(stem, size, &fig)
}

/// Something drawn the same way on any backend.
pub trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// What drawing on backend `DB` returns.
pub type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn fit(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    (lo <= hi).then_some((lo, hi))
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult<DB> {
    let pts = || p.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) =
        fit(pts().map(|q| q.0).filter(|&x| !p.log_x || x > 0.0)).unwrap_or((1.0, 10.0));
    if x1 <= x0 {
        x1 = x0 * 2.0 + 1.0;
    }
    if p.log_x {
        x0 = x0.max(1e-9);
    }
    let (y0, y1) = p.y_range.unwrap_or_else(|| {
        let (lo, hi) = fit(pts().map(|q| q.1)).unwrap_or((0.0, 1.0));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        (lo - pad, hi + pad)
    });
    let mut b = ChartBuilder::on(area);
    b.caption(&p.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(56);
    if p.log_x {
        let mut chart = b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
        draw_mesh_and_lines(&mut chart, p, (y0, y1))
    } else {
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        draw_mesh_and_lines(&mut chart, p, (y0, y1))
    }
}

fn draw_mesh_and_lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    p: &Panel,
    y: (f64, f64),
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE)
        .x_label_formatter(&|x| format_tick(*x))
        .draw()?;
    draw_lines(chart, p, y)
}

fn draw_lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    p: &Panel,
    (y0, y1): (f64, f64),
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
{
    for s in &p.series {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = color.stroke_width(2);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|q| q.1.is_finite() && (q.0 > 0.0 || !p.log_x))
            .collect();
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        let dashed = s.dashed;
        anno.label(&s.label).legend(move |(x, y)| {
            let w = if dashed { 8 } else { 22 };
            PathElement::new(vec![(x, y), (x + w, y)], color.stroke_width(2))
        });
    }
    if p.dots {
        for s in &p.series {
            let color = PALETTE[s.color % PALETTE.len()];
            chart.draw_series(
                s.points
                    .iter()
                    .filter(|q| q.1.is_finite() && (q.0 > 0.0 || !p.log_x))
                    .map(|&q| Circle::new(q, 3, color.filled())),
            )?;
        }
    }
    if let Some((y, label)) = &p.hline {
        let style = RGBColor(110, 110, 110).stroke_width(2);
        let r = chart.x_range();
        let (x0, x1) = (r.start, r.end);
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, *y), (x1, *y)], 2, 5, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], style));
    }
    if let Some((x, label)) = &p.marker {
        let style = BLACK.mix(0.6).stroke_width(1);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*x, y0), (*x, y1)],
                style,
            )))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], style));
    }
    if p.legend == Corner::Below {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(match p.legend {
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
            Corner::MiddleRight | Corner::Below => SeriesLabelPosition::MiddleRight,
        })
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
}

/// Tick labels: 1, 10, 100, 1k, 10k, 100k, 1M; integers without a decimal point.
fn format_tick(x: f64) -> String {
    let short = |v: f64| {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    if x.abs() >= 1e6 {
        format!("{}M", short(x / 1e6))
    } else if x.abs() >= 1e4 {
        format!("{}k", short(x / 1e3))
    } else {
        short(x)
    }
}

/// Draws `fig` on an SVG and a bitmap backend and writes `<stem>.svg` and `<stem>.png`.
pub fn render(stem: &Path, size: (u32, u32), fig: &impl Figure) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let what = stem.display().to_string();
    let err = |e: String| PlotError::Draw {
        what: what.clone(),
        reason: e,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        fig.draw(root.clone()).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        fig.draw(root.clone()).map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    // Appended, not with_extension: a stem such as phase_lr0.001 has no extension to replace.
    let with = |ext: &str| {
        let mut p = stem.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (png_path, svg_path) = (with(".png"), with(".svg"));
    write_atomic(&png_path, &encode_png(&rgb, size).map_err(err)?)?;
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes a file atomically ([`modicl_core::fs::write_atomic`]), creating its folder.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    modicl_core::fs::write_atomic(path, bytes).map_err(|e| PlotError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// A vertical viridis colour bar in `side` at `x` pixels from its left edge, with tick labels
/// at its bottom, middle and top and an optional title above it.
pub(crate) fn colour_bar<DB: DrawingBackend>(
    side: &DrawingArea<DB, Shift>,
    x: i32,
    ticks: &[String; 3],
    title: Option<&str>,
) -> DrawResult<DB> {
    let (_, h) = side.dim_in_pixel();
    let (top, bottom) = (40i32, h as i32 - 50);
    let steps = 64;
    for s in 0..steps {
        let y1 = bottom - (bottom - top) * s / steps;
        let y2 = bottom - (bottom - top) * (s + 1) / steps;
        side.draw(&Rectangle::new(
            [(x, y2), (x + 16, y1)],
            scale(s as f64 / (steps - 1) as f64).filled(),
        ))?;
    }
    for (t, label) in [0.0, 0.5, 1.0].iter().zip(ticks) {
        let y = bottom - ((bottom - top) as f64 * t) as i32;
        side.draw(&Text::new(
            label.clone(),
            (x + 20, y - 6),
            ("sans-serif", 12),
        ))?;
    }
    if let Some(title) = title {
        side.draw(&Text::new(
            title.to_string(),
            (4, top - 22),
            ("sans-serif", 12),
        ))?;
    }
    Ok(())
}

/// How a heatmap cell is filled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// A palette colour (categories: phases).
    Category(usize),
    /// A value in [0, 1] on the colour scale ([`scale`]: low dark purple, high yellow).
    Value(f64),
    /// No data (light grey).
    Empty,
}

/// One cell of a heatmap: column `x`, row `y` (row 0 at the bottom).
#[derive(Clone, Debug)]
pub struct Cell {
    pub x: usize,
    pub y: usize,
    pub fill: Fill,
    pub text: String,
}

/// A heatmap on categorical axes.
#[derive(Clone, Debug, Default)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_ticks: Vec<String>,
    pub y_ticks: Vec<String>,
    pub cells: Vec<Cell>,
    /// Legend entries (label, palette index) for categorical fills.
    pub legend: Vec<(String, usize)>,
    /// Colours of [`Fill::Category`] cells and legend entries (empty: [`PALETTE`]).
    pub palette: Vec<RGBColor>,
}

/// The colour of value `v` in [0, 1] on the viridis scale (plotters' [`ViridisRGB`]): dark
/// purple at 0, through blue, teal and green, to yellow at 1. Values outside [0, 1] are clamped;
/// NaN is drawn as 0.
pub fn scale(v: f64) -> RGBColor {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ViridisRGB::get_color(v)
}

/// Draws heatmaps side by side (`cols` per row) into `<stem>.png` and `<stem>.svg`.
pub fn heatmaps(
    stem: &Path,
    title: &str,
    maps: &[Heatmap],
    cols: usize,
) -> Result<Vec<PathBuf>, PlotError> {
    if maps.iter().all(|m| m.cells.is_empty()) {
        return Err(PlotError::Empty(title.to_string()));
    }
    grid_of(stem, title, maps, cols, (620, 480))
}

fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &Heatmap) -> DrawResult<DB> {
    let (nx, ny) = (m.x_ticks.len().max(1), m.y_ticks.len().max(1));
    let pal: &[RGBColor] = if m.palette.is_empty() {
        &PALETTE
    } else {
        &m.palette
    };
    // Values get a colour bar; categories a legend.
    let bar = m.legend.is_empty() && m.cells.iter().any(|c| matches!(c.fill, Fill::Value(_)));
    // Room on the right for a categorical legend or the colour bar.
    let (plot, side) = if m.legend.is_empty() && !bar {
        (area.clone(), None)
    } else {
        let (w, _) = area.dim_in_pixel();
        let (a, b) = area.split_horizontally(w.saturating_sub(if bar { 70 } else { 110 }));
        (a, Some(b))
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(&m.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..nx as f64, 0f64..ny as f64)?;
    let xt = m.x_ticks.clone();
    let yt = m.y_ticks.clone();
    let tick = |ticks: &[String], v: f64| -> String {
        let i = (v - 0.5).round();
        if (v - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
            ticks.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(&m.x_label)
        .y_desc(&m.y_label)
        .x_labels(nx * 2 + 1)
        .y_labels(ny * 2 + 1)
        .x_label_formatter(&|v| tick(&xt, *v))
        .y_label_formatter(&|v| tick(&yt, *v))
        .label_style(("sans-serif", 13))
        .draw()?;
    for c in &m.cells {
        let color = match c.fill {
            Fill::Category(i) => pal[i % pal.len()],
            Fill::Value(v) => scale(v),
            Fill::Empty => RGBColor(225, 225, 225),
        };
        let (x, y) = (c.x as f64, c.y as f64);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x, y), (x + 1.0, y + 1.0)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x, y), (x + 1.0, y + 1.0)],
            WHITE.stroke_width(1),
        )))?;
        if !c.text.is_empty() {
            // White text on dark cells, black on light ones, whatever the colour.
            let dark = luminance(color) < 0.35;
            let style = ("sans-serif", 13)
                .into_font()
                .color(if dark { &WHITE } else { &BLACK })
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ));
            chart.draw_series(std::iter::once(Text::new(
                c.text.clone(),
                (x + 0.5, y + 0.5),
                style,
            )))?;
        }
    }
    if let Some(side) = side {
        if bar {
            colour_bar(&side, 6, &["0".into(), "0.5".into(), "1".into()], None)?;
        }
        for (i, (label, color)) in m.legend.iter().enumerate() {
            let y = 60 + 24 * i as i32;
            side.draw(&Rectangle::new(
                [(4, y), (20, y + 14)],
                pal[color % pal.len()].filled(),
            ))?;
            side.draw(&Text::new(label.clone(), (26, y), ("sans-serif", 13)))?;
        }
    }
    Ok(())
}
