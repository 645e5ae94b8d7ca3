//! Scatter plots whose points are text labels (a PCA of inputs labelled "(x, y)") or dots.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{grid_of, Chart, DrawResult, PlotError, Type};

/// One point: where, its label, its colour.
#[derive(Clone, Debug)]
pub struct ScatterPoint {
    pub x: f64,
    pub y: f64,
    pub label: String,
    pub color: RGBColor,
}

/// A scatter chart. With `text`, each point is drawn as its label (centred on it); without,
/// as a dot.
#[derive(Clone, Debug, Default)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    pub text: bool,
    /// Text size (labels) or dot radius, in pixels of a figure 800 pixels wide: scaled with
    /// the figure's text ([`Type`]).
    pub size: u32,
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if lo > hi {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.06).max(1e-9);
    (lo - pad, hi + pad)
}

impl Chart for Scatter {
    fn draw_in<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        t: Type,
    ) -> DrawResult<DB> {
        let (x0, x1) = range(self.points.iter().map(|p| p.x));
        let (y0, y1) = range(self.points.iter().map(|p| p.y));
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", t.caption()))
            .margin(t.spu(10))
            .x_label_area_size(t.spu(38))
            .y_label_area_size(t.spu(52))
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(5)
            .label_style(("sans-serif", t.small()))
            .axis_desc_style(("sans-serif", t.label()))
            .light_line_style(WHITE)
            .bold_line_style(crate::GRID)
            .draw()?;
        let size = t.spu(self.size.max(1)).max(1);
        if self.text {
            chart.draw_series(self.points.iter().map(|p| {
                let style = ("sans-serif", size as f64)
                    .into_font()
                    .color(&p.color)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                Text::new(p.label.clone(), (p.x, p.y), style)
            }))?;
        } else {
            chart.draw_series(
                self.points
                    .iter()
                    .map(|p| Circle::new((p.x, p.y), size, p.color.filled())),
            )?;
        }
        Ok(())
    }
}

/// Draws `charts` in rows of `cols`, each `cell` pixels, to `<stem>.png` and `<stem>.svg`.
pub fn scatters(
    stem: &Path,
    title: &str,
    charts: &[Scatter],
    cols: usize,
    cell: (u32, u32),
) -> Result<Vec<PathBuf>, PlotError> {
    if charts.iter().all(|c| c.points.is_empty()) {
        return Err(PlotError::Empty(title.to_string()));
    }
    grid_of(stem, title, charts, cols, cell)
}
