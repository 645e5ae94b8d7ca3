//! Rasters: grids of many small cells (a p × p map of queries, a shot × shot matrix), drawn
//! without per-cell text or borders, with sparse integer ticks, an optional colour bar and one
//! legend for the whole figure.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{
    colour_bar, flow, render, scale, text_width, DrawResult, Figure, PlotError, Type, GREY_50,
};

/// What fills a raster cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RasterFill {
    /// A fixed colour (a category).
    Color(RGBColor),
    /// A value on the raster's colour bar (viridis over `bar.min..bar.max`).
    Value(f64),
    /// No data: light grey.
    Empty,
}

/// A colour bar for [`RasterFill::Value`] cells.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorBar {
    pub min: f64,
    pub max: f64,
    pub label: String,
}

/// One raster: `nx` × `ny` cells, cell (x, y) at `cells[y·nx + x]`, y = 0 at the bottom. Tick
/// labels count from `x0` and `y0`.
#[derive(Clone, Debug)]
pub struct Raster {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub nx: usize,
    pub ny: usize,
    pub x0: i64,
    pub y0: i64,
    pub cells: Vec<RasterFill>,
    pub bar: Option<ColorBar>,
    /// Tick labels per column and per row instead of numbers (an empty string: no tick); empty
    /// vectors: numbered ticks.
    pub x_names: Vec<String>,
    pub y_names: Vec<String>,
}

/// Rasters wider or taller than this many cells are drawn as block means (values) or the
/// top-left cell's colour (categories) of s × s cells, so figures stay small; the data files
/// keep every cell.
pub const MAX_DRAWN: usize = 160;

impl Raster {
    /// The raster as drawn: itself, or blocks of `s` × `s` cells when larger than
    /// [`MAX_DRAWN`] on a side. Returns the raster and `s`.
    fn drawn(&self) -> (std::borrow::Cow<'_, Raster>, usize) {
        let s = self.nx.max(self.ny).div_ceil(MAX_DRAWN).max(1);
        if s == 1 {
            return (std::borrow::Cow::Borrowed(self), 1);
        }
        let (bx, by) = (self.nx.div_ceil(s), self.ny.div_ceil(s));
        let mut cells = Vec::with_capacity(bx * by);
        for j in 0..by {
            for i in 0..bx {
                let (mut sum, mut n) = (0.0, 0usize);
                let mut first = None;
                for y in j * s..((j + 1) * s).min(self.ny) {
                    for x in i * s..((i + 1) * s).min(self.nx) {
                        let c = self.cells[y * self.nx + x];
                        first.get_or_insert(c);
                        if let RasterFill::Value(v) = c {
                            sum += v;
                            n += 1;
                        }
                    }
                }
                cells.push(if n > 0 {
                    RasterFill::Value(sum / n as f64)
                } else {
                    first.unwrap_or(RasterFill::Empty)
                });
            }
        }
        let r = Raster {
            nx: bx,
            ny: by,
            cells,
            title: format!("{} ({s}x{s} block means)", self.title),
            x_names: Vec::new(),
            y_names: Vec::new(),
            ..self.clone()
        };
        (std::borrow::Cow::Owned(r), s)
    }
}

/// A step giving at most about `most` ticks over `n` cells: 1, 2, 5, 10, 20, ...
fn tick_step(n: usize, most: usize) -> usize {
    let mut step = 1;
    for s in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] {
        step = s;
        if n / s <= most {
            break;
        }
    }
    step
}

fn draw_raster<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    r: &Raster,
    t: Type,
) -> DrawResult<DB> {
    let (r, block) = r.drawn();
    let r = r.as_ref();
    let (plot, side) = match &r.bar {
        Some(_) => {
            let (w, _) = area.dim_in_pixel();
            let (a, b) = area.split_horizontally(w.saturating_sub(t.spu(78)));
            (a, Some(b))
        }
        None => (area.clone(), None),
    };
    let (nx, ny) = (r.nx.max(1), r.ny.max(1));
    let mut chart = ChartBuilder::on(&plot)
        .caption(&r.title, ("sans-serif", t.caption()))
        .margin(t.spu(10))
        .x_label_area_size(t.spu(40))
        .y_label_area_size(t.spu(46))
        .build_cartesian_2d(0f64..nx as f64, 0f64..ny as f64)?;
    // Fewer ticks across than down: labels side by side need more room.
    let (sx, sy) = (tick_step(nx * block, 5), tick_step(ny * block, 7));
    let (x0, y0) = (r.x0, r.y0);
    let fmt = |v: f64, step: usize, origin: i64, names: &[String]| -> String {
        let i = (v - 0.5).round();
        if (v - 0.5 - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        let i = i as usize;
        if !names.is_empty() {
            return names.get(i).cloned().unwrap_or_default();
        }
        // Cell (or block) i covers i·block..(i+1)·block: label it with the multiple of the
        // step it holds, if any.
        let first = (i * block).div_ceil(step) * step;
        if first < (i + 1) * block {
            format!("{}", first as i64 + origin)
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(&r.x_label)
        .y_desc(&r.y_label)
        .x_labels(nx * 2 + 1)
        .y_labels(ny * 2 + 1)
        .x_label_formatter(&|v| fmt(*v, sx, x0, &r.x_names))
        .y_label_formatter(&|v| fmt(*v, sy, y0, &r.y_names))
        .label_style(("sans-serif", t.small()))
        .axis_desc_style(("sans-serif", t.label()))
        .draw()?;
    let color = |f: &RasterFill| match *f {
        RasterFill::Color(c) => c,
        RasterFill::Value(v) => {
            let (lo, hi) = r.bar.as_ref().map_or((0.0, 1.0), |b| (b.min, b.max));
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
            scale(t)
        }
        RasterFill::Empty => RGBColor(225, 225, 225),
    };
    chart.draw_series(r.cells.iter().enumerate().map(|(i, f)| {
        let (x, y) = ((i % nx) as f64, (i / nx) as f64);
        Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color(f).filled())
    }))?;
    if let (Some(side), Some(bar)) = (side, &r.bar) {
        let ticks = [bar.min, (bar.min + bar.max) / 2.0, bar.max].map(|v| format!("{v:.2}"));
        colour_bar(&side, 8, &ticks, Some(&bar.label), t)?;
    }
    Ok(())
}

struct RasterGrid<'a> {
    title: &'a str,
    maps: &'a [Raster],
    grid: (usize, usize),
    legend: &'a [(String, RGBColor)],
}

impl Figure for RasterGrid<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let t = Type::for_width(root.dim_in_pixel().0);
        let root = root.titled(self.title, ("sans-serif", t.title()))?;
        let (body, foot) = if self.legend.is_empty() {
            (root.clone(), None)
        } else {
            let (_, h) = root.dim_in_pixel();
            let rows = legend_places(self.legend, root.dim_in_pixel().0, t)
                .last()
                .copied()
                .map_or(0, |(_, r)| r as u32 + 1);
            let (a, b) = root.split_vertically(h.saturating_sub(t.spu(8) + t.spu(26) * rows));
            (a, Some(b))
        };
        for (area, m) in body.split_evenly(self.grid).iter().zip(self.maps) {
            draw_raster(area, m, t)?;
        }
        if let Some(foot) = foot {
            let sp = |v: i32| t.sp(v);
            let width = foot.dim_in_pixel().0;
            for ((x, row), (label, c)) in legend_places(self.legend, width, t)
                .into_iter()
                .zip(self.legend)
            {
                let y = sp(8) + sp(26) * row as i32;
                let swatch = [(x, y), (x + sp(16), y + sp(16))];
                foot.draw(&Rectangle::new(swatch, c.filled()))?;
                foot.draw(&Rectangle::new(swatch, GREY_50))?;
                foot.draw(&Text::new(
                    label.clone(),
                    (x + sp(22), y + sp(1)),
                    ("sans-serif", t.small()),
                ))?;
            }
        }
        Ok(())
    }
}

/// Where each legend entry goes in a figure `width` pixels wide: (x, row) ([`crate::flow`]).
fn legend_places(legend: &[(String, RGBColor)], width: u32, t: Type) -> Vec<(i32, usize)> {
    let widths = legend.iter().map(|(l, _)| t.sp(40) + text_width(l, t));
    flow(widths, width as i32)
}

/// Draws `maps` in rows of `cols` (at most [`crate::MAX_COLS`]), each `cell` pixels, with one legend of categories under
/// them, to `<stem>.png` and `<stem>.svg`.
pub fn rasters(
    stem: &Path,
    title: &str,
    maps: &[Raster],
    cols: usize,
    cell: (u32, u32),
    legend: &[(String, RGBColor)],
) -> Result<Vec<PathBuf>, PlotError> {
    if maps.iter().all(|m| m.cells.is_empty()) {
        return Err(PlotError::Empty(title.to_string()));
    }
    let cols = cols.clamp(1, maps.len().max(1)).min(crate::MAX_COLS);
    let rows = maps.len().div_ceil(cols);
    let width = cell.0 * cols as u32;
    let t = Type::for_width(width);
    let rows_of_legend = legend_places(legend, width, t)
        .last()
        .copied()
        .map_or(0, |(_, r)| r as u32 + 1);
    let foot = if legend.is_empty() {
        0
    } else {
        t.spu(8) + t.spu(26) * rows_of_legend
    };
    let size = (width, cell.1 * rows as u32 + t.spu(40) + foot);
    render(
        stem,
        size,
        &RasterGrid {
            title,
            maps,
            grid: (rows, cols),
            legend,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::tick_step;

    #[test]
    fn ticks_stay_few() {
        assert_eq!(tick_step(5, 7), 1);
        assert_eq!(tick_step(29, 7), 5);
        assert_eq!(tick_step(31, 7), 5);
        assert_eq!(tick_step(97, 7), 20);
        assert_eq!(tick_step(121, 5), 50);
        assert_eq!(tick_step(29, 5), 5);
    }
}
