//! modicl's plots, drawn with `plotters` and written as PNG and SVG side by side, and as PDF
//! too once [`also_pdf`] is on (the SVG converted by `svg2pdf`, vector, for LaTeX).
//!
//! The crate takes plain numbers (series of points, grids), not trainer types, so any stage
//! can plot. Text is set in DejaVu Sans, embedded in the binary, so PNGs look the same on a
//! machine without fonts. Files are written atomically (temporary name, then rename).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};

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

/// The most charts side by side in one figure; more wrap to further rows, so that a figure
/// scaled to a column keeps its text at [`Type::MIN_PT`] without dwarfing the charts.
pub const MAX_COLS: usize = 4;

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

/// Text sizes and spacings for a figure of a given pixel width, set in points of that figure
/// scaled to a 6.5-inch journal column: the smallest text (ticks, legends, cell labels) is
/// [`Type::MIN_PT`] = 8 pt there. A figure narrower than [`Type::MIN_WIDTH`] pixels is sized as
/// if it were that wide, so its text stays readable on a screen too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Type {
    px_per_pt: f64,
}

impl Type {
    /// The column a figure is checked against, in inches.
    pub const COLUMN_INCHES: f64 = 6.5;
    /// The smallest text size, in points at column width.
    pub const MIN_PT: f64 = 8.0;
    /// Narrower figures get the text sizes of one this wide.
    pub const MIN_WIDTH: u32 = 800;

    /// The sizes for a figure `width` pixels wide.
    pub fn for_width(width: u32) -> Type {
        Type {
            px_per_pt: width.max(Self::MIN_WIDTH) as f64 / (Self::COLUMN_INCHES * 72.0),
        }
    }

    /// The size to ask plotters for so that text is `pt` points: plotters sets a font of size
    /// s at s / 1.24 pixels (its size is a line height), in SVG and bitmap alike.
    pub fn pt(self, pt: f64) -> f64 {
        (pt * self.px_per_pt * PLOTTERS_LINE).ceil()
    }

    /// Tick labels, legends, colour-bar ticks and cell text: 8 pt.
    pub fn small(self) -> f64 {
        self.pt(Self::MIN_PT)
    }

    /// Axis labels: 9 pt.
    pub fn label(self) -> f64 {
        self.pt(9.0)
    }

    /// Panel titles: 9.5 pt.
    pub fn caption(self) -> f64 {
        self.pt(9.5)
    }

    /// The figure's title: 11 pt.
    pub fn title(self) -> f64 {
        self.pt(11.0)
    }

    /// A length laid out for 13-pixel text, scaled with the text.
    pub fn sp(self, px: i32) -> i32 {
        (px as f64 * self.small() / 13.0).round() as i32
    }

    /// [`Type::sp`] for sizes.
    pub fn spu(self, px: u32) -> u32 {
        self.sp(px as i32).max(0) as u32
    }
}

/// Solid greys, never translucent colours: a PDF draws each translucent element through a
/// form of its own, and svg2pdf orders those differently from run to run.
/// Black at 60% on white.
pub(crate) const GREY_40: RGBColor = RGBColor(102, 102, 102);
/// Black at 50% on white.
pub(crate) const GREY_50: RGBColor = RGBColor(128, 128, 128);
/// Black at 40% on white.
pub(crate) const GREY_60: RGBColor = RGBColor(153, 153, 153);
/// Grid lines: black at 20% on white, plotters' default, made solid.
pub(crate) const GRID: RGBColor = RGBColor(204, 204, 204);

/// The ratio of a plotters font size to the size of the text it draws.
const PLOTTERS_LINE: f64 = 1.24;

static FONT: Once = Once::new();

/// The embedded DejaVu Sans.
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

static PDF: AtomicBool = AtomicBool::new(false);

/// From now on, every figure is also written as `<stem>.pdf` (vector; text in the embedded
/// font), or no longer when `on` is false. The PNG and SVG are written either way.
pub fn also_pdf(on: bool) {
    PDF.store(on, Ordering::SeqCst);
}

/// The SVG text `svg` as a one-page PDF, 1 pixel to 1 point, text set in the embedded font.
pub fn svg_to_pdf(svg: &str) -> Result<Vec<u8>, String> {
    use svg2pdf::usvg;
    static OPTIONS: OnceLock<usvg::Options<'static>> = OnceLock::new();
    let opt = OPTIONS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT_BYTES.to_vec());
        db.set_sans_serif_family("DejaVu Sans");
        usvg::Options {
            font_family: "DejaVu Sans".into(),
            fontdb: Arc::new(db),
            ..usvg::Options::default()
        }
    });
    let tree = usvg::Tree::from_str(svg, opt).map_err(|e| e.to_string())?;
    svg2pdf::to_pdf(
        &tree,
        svg2pdf::ConversionOptions::default(),
        svg2pdf::PageOptions::default(),
    )
    .map_err(|e| e.to_string())
}

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = FONT_BYTES;
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
    let cols = cols.clamp(1, panels.len().max(1)).min(MAX_COLS);
    let rows = panels.len().div_ceil(cols);
    let width = 560 * cols as u32;
    let t = Type::for_width(width);
    // The legend takes the first empty cell of the grid if there is one, else a band under it
    // as deep as its entries need.
    let spare = rows * cols > panels.len();
    let legend_h = if spare {
        0
    } else {
        let place = flow(below.iter().map(|e| legend_width(e, t)), width as i32);
        let lines = place.last().map_or(0, |p| p.1 + 1) as u32;
        t.spu(26) * lines + t.spu(12)
    };
    let fig = LegendGrid {
        title,
        charts: panels,
        grid: (rows, cols),
        legend: &below,
        legend_h,
    };
    let height = 420 * rows as u32 + t.spu(40) + legend_h;
    render(stem, (width, height), &fig)
}

/// An entry of a figure-level legend.
#[derive(Clone, Debug, PartialEq)]
enum LegendEntry {
    Line(String, RGBColor, bool),
    Dotted(String),
    Marker(String),
}

impl LegendEntry {
    fn label(&self) -> &str {
        match self {
            LegendEntry::Line(l, ..) | LegendEntry::Dotted(l) | LegendEntry::Marker(l) => l,
        }
    }
}

/// The width of a legend entry: a swatch, then the label at about 0.6 em per character.
fn legend_width(e: &LegendEntry, t: Type) -> i32 {
    t.sp(56) + text_width(e.label(), t)
}

/// About how wide `label` is in small text (0.6 em per character).
pub(crate) fn text_width(label: &str, t: Type) -> i32 {
    (0.6 * t.small() * label.chars().count() as f64) as i32
}

/// Places items of the given widths left to right from x = 16 in `width` pixels, wrapping
/// to a new line when the next would run past the edge: (x, line) of each.
pub(crate) fn flow(widths: impl Iterator<Item = i32>, width: i32) -> Vec<(i32, usize)> {
    let (mut x, mut line) = (16, 0);
    widths
        .map(|w| {
            if x > 16 && x + w > width {
                (x, line) = (16, line + 1);
            }
            let at = (x, line);
            x += w;
            at
        })
        .collect()
}

/// Panels in a grid with one legend under them.
struct LegendGrid<'a> {
    title: &'a str,
    charts: &'a [Panel],
    grid: (usize, usize),
    legend: &'a [LegendEntry],
    /// The depth of the band under the panels; 0: the legend is in the grid's first free cell.
    legend_h: u32,
}

impl Figure for LegendGrid<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let t = Type::for_width(root.dim_in_pixel().0);
        let root = root.titled(self.title, ("sans-serif", t.title()))?;
        let (_, h) = root.dim_in_pixel();
        let (body, band) = root.split_vertically(h.saturating_sub(self.legend_h));
        let cells = body.split_evenly(self.grid);
        for (area, c) in cells.iter().zip(self.charts) {
            c.draw_in(area, t)?;
        }
        let sp = |v: i32| t.sp(v);
        let (foot, top) = match cells.get(self.charts.len()) {
            Some(cell) if self.legend_h == 0 => (cell.clone(), sp(40)),
            _ => (band, sp(8)),
        };
        let widths = self.legend.iter().map(|e| legend_width(e, t));
        let place = flow(widths, foot.dim_in_pixel().0 as i32);
        for (e, &(x, line)) in self.legend.iter().zip(&place) {
            let y = top + sp(26) * line as i32;
            let (label, style, dashed) = match e {
                LegendEntry::Line(l, c, d) => (l, c.stroke_width(sp(3) as u32), *d),
                LegendEntry::Dotted(l) => {
                    (l, RGBColor(110, 110, 110).stroke_width(sp(2) as u32), true)
                }
                LegendEntry::Marker(l) => (l, GREY_40.stroke_width(sp(1) as u32), false),
            };
            // Text is placed by its top-left corner: the swatch goes at its middle.
            let mid = y + (t.small() * 0.55) as i32;
            if matches!(e, LegendEntry::Marker(_)) {
                foot.draw(&PathElement::new(
                    vec![(x + sp(14), mid - sp(8)), (x + sp(14), mid + sp(8))],
                    style,
                ))?;
            } else if dashed {
                for k in 0..3 {
                    foot.draw(&PathElement::new(
                        vec![(x + sp(10) * k, mid), (x + sp(10) * k + sp(6), mid)],
                        style,
                    ))?;
                }
            } else {
                foot.draw(&PathElement::new(vec![(x, mid), (x + sp(28), mid)], style))?;
            }
            foot.draw(&Text::new(
                label.clone(),
                (x + sp(36), y),
                ("sans-serif", t.small()),
            ))?;
        }
        Ok(())
    }
}

/// One chart of a figure: a line panel or a heatmap.
/// Its text sizes come from the whole figure's width ([`Type`]).
trait Chart {
    fn draw_in<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, t: Type)
        -> DrawResult<DB>;
}

impl Chart for Panel {
    fn draw_in<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        t: Type,
    ) -> DrawResult<DB> {
        draw_panel(area, self, t)
    }
}

impl Chart for Heatmap {
    fn draw_in<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        t: Type,
    ) -> DrawResult<DB> {
        draw_heatmap(area, self, t)
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
        let t = Type::for_width(root.dim_in_pixel().0);
        let root = root.titled(self.title, ("sans-serif", t.title()))?;
        for (area, c) in root.split_evenly(self.grid).iter().zip(self.charts) {
            c.draw_in(area, t)?;
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
    let cols = cols.clamp(1, charts.len().max(1)).min(MAX_COLS);
    let rows = charts.len().div_ceil(cols);
    let width = cell.0 * cols as u32;
    let size = (width, cell.1 * rows as u32 + Type::for_width(width).spu(40));
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

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    t: Type,
) -> DrawResult<DB> {
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
    b.caption(&p.title, ("sans-serif", t.caption()))
        .margin(t.spu(12))
        .x_label_area_size(t.spu(42))
        .y_label_area_size(t.spu(56));
    if p.log_x {
        let mut chart = b.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?;
        draw_mesh_and_lines(&mut chart, p, (y0, y1), t)
    } else {
        let mut chart = b.build_cartesian_2d(x0..x1, y0..y1)?;
        draw_mesh_and_lines(&mut chart, p, (y0, y1), t)
    }
}

fn draw_mesh_and_lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    p: &Panel,
    y: (f64, f64),
    t: Type,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .y_labels(6)
        .label_style(("sans-serif", t.small()))
        .axis_desc_style(("sans-serif", t.label()))
        .light_line_style(WHITE)
        .bold_line_style(GRID)
        .x_label_formatter(&|x| format_tick(*x))
        .draw()?;
    draw_lines(chart, p, y, t)
}

fn draw_lines<'a, DB, X>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    p: &Panel,
    (y0, y1): (f64, f64),
    t: Type,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
{
    for s in &p.series {
        let color = PALETTE[s.color % PALETTE.len()];
        let style = color.stroke_width(t.spu(2));
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|q| q.1.is_finite() && (q.0 > 0.0 || !p.log_x))
            .collect();
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, t.spu(6), t.spu(4), style))?
        } else {
            chart.draw_series(LineSeries::new(pts, style))?
        };
        let dashed = s.dashed;
        let (short, long) = (t.sp(8), t.sp(22));
        anno.label(&s.label).legend(move |(x, y)| {
            let w = if dashed { short } else { long };
            PathElement::new(vec![(x, y), (x + w, y)], style)
        });
    }
    if p.dots {
        for s in &p.series {
            let color = PALETTE[s.color % PALETTE.len()];
            chart.draw_series(
                s.points
                    .iter()
                    .filter(|q| q.1.is_finite() && (q.0 > 0.0 || !p.log_x))
                    .map(|&q| Circle::new(q, t.spu(3), color.filled())),
            )?;
        }
    }
    if let Some((y, label)) = &p.hline {
        let style = RGBColor(110, 110, 110).stroke_width(t.spu(2));
        let r = chart.x_range();
        let (x0, x1) = (r.start, r.end);
        let (dash, gap, w) = (t.spu(2), t.spu(5), t.sp(8));
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, *y), (x1, *y)],
                dash,
                gap,
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + w, y)], style));
    }
    if let Some((x, label)) = &p.marker {
        let style = GREY_40.stroke_width(t.spu(1));
        let h = t.sp(6);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*x, y0), (*x, y1)],
                style,
            )))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y - h), (x, y + h)], style));
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
        .label_font(("sans-serif", t.small()))
        .background_style(WHITE)
        .border_style(GREY_60)
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
    let mut written = vec![png_path, svg_path];
    if PDF.load(Ordering::SeqCst) {
        let pdf_path = with(".pdf");
        write_atomic(&pdf_path, &svg_to_pdf(&svg).map_err(err)?)?;
        written.push(pdf_path);
    }
    Ok(written)
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
    t: Type,
) -> DrawResult<DB> {
    let (_, h) = side.dim_in_pixel();
    let (top, bottom) = (t.sp(40), h as i32 - t.sp(50));
    let bw = t.sp(16);
    let steps = 64;
    for s in 0..steps {
        let y1 = bottom - (bottom - top) * s / steps;
        let y2 = bottom - (bottom - top) * (s + 1) / steps;
        side.draw(&Rectangle::new(
            [(x, y2), (x + bw, y1)],
            scale(s as f64 / (steps - 1) as f64).filled(),
        ))?;
    }
    for (f, label) in [0.0, 0.5, 1.0].iter().zip(ticks) {
        let y = bottom - ((bottom - top) as f64 * f) as i32;
        side.draw(&Text::new(
            label.clone(),
            (x + bw + t.sp(4), y - t.sp(6)),
            ("sans-serif", t.small()),
        ))?;
    }
    if let Some(title) = title {
        side.draw(&Text::new(
            title.to_string(),
            (4, top - t.sp(22)),
            ("sans-serif", t.small()),
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

fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    m: &Heatmap,
    t: Type,
) -> DrawResult<DB> {
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
        let side = if bar {
            t.spu(70)
        } else {
            // The longest label, at about 0.6 em per character, after a swatch.
            let chars = m
                .legend
                .iter()
                .map(|(l, _)| l.chars().count())
                .max()
                .unwrap_or(0);
            t.spu(34) + (0.6 * t.small() * chars as f64) as u32
        };
        let (a, b) = area.split_horizontally(w.saturating_sub(side));
        (a, Some(b))
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(&m.title, ("sans-serif", t.caption()))
        .margin(t.spu(12))
        .x_label_area_size(t.spu(42))
        .y_label_area_size(t.spu(52))
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
        .label_style(("sans-serif", t.small()))
        .axis_desc_style(("sans-serif", t.label()))
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
            let style = ("sans-serif", t.small())
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
            colour_bar(&side, 6, &["0".into(), "0.5".into(), "1".into()], None, t)?;
        }
        let sp = |v: i32| t.sp(v);
        for (i, (label, color)) in m.legend.iter().enumerate() {
            let y = sp(60) + sp(24) * i as i32;
            side.draw(&Rectangle::new(
                [(4, y), (4 + sp(16), y + sp(14))],
                pal[color % pal.len()].filled(),
            ))?;
            side.draw(&Text::new(
                label.clone(),
                (4 + sp(22), y),
                ("sans-serif", t.small()),
            ))?;
        }
    }
    Ok(())
}
