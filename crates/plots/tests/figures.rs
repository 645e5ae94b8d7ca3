//! The colour scale, and figures written as PNG and SVG with the colours they should hold.

use std::path::Path;

use modicl_plots::{heatmaps, line_charts, scale, Cell, Fill, Heatmap, Panel, Series, PALETTE};
use plotters::style::RGBColor;

/// The RGB pixels of a PNG file.
fn pixels(path: &Path) -> Vec<[u8; 3]> {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn count(px: &[[u8; 3]], c: RGBColor) -> usize {
    px.iter().filter(|p| **p == [c.0, c.1, c.2]).count()
}

#[test]
fn the_colour_scale_is_viridis() {
    assert_eq!(scale(0.0), RGBColor(68, 1, 84));
    assert_eq!(scale(1.0), RGBColor(254, 232, 37));
    // Out of range and NaN are clamped to the ends.
    assert_eq!(scale(-3.0), scale(0.0));
    assert_eq!(scale(7.0), scale(1.0));
    assert_eq!(scale(f64::NAN), scale(0.0));
    // Dark to light: the green channel rises all the way.
    let greens: Vec<u8> = (0..=20).map(|i| scale(i as f64 / 20.0).1).collect();
    assert!(greens.windows(2).all(|w| w[0] < w[1]), "{greens:?}");
}

#[test]
fn a_heatmap_holds_its_colours() {
    let tmp = tempfile::tempdir().unwrap();
    let cells = (0..4)
        .map(|i| Cell {
            x: i % 2,
            y: i / 2,
            fill: match i {
                0 => Fill::Value(0.0),
                1 => Fill::Value(1.0),
                2 => Fill::Category(3),
                _ => Fill::Empty,
            },
            text: format!("{i}"),
        })
        .collect();
    let map = Heatmap {
        title: "values".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        x_ticks: vec!["a".into(), "b".into()],
        y_ticks: vec!["0.4".into(), "0.8".into()],
        cells,
        legend: vec![("red".into(), 3)],
        palette: Vec::new(),
    };
    let written = heatmaps(&tmp.path().join("map"), "a heatmap", &[map], 1).unwrap();
    assert_eq!(written.len(), 2);
    let px = pixels(&tmp.path().join("map.png"));
    // Each cell is about a quarter of a 620 x 480 chart: thousands of pixels of its colour.
    for c in [scale(0.0), scale(1.0), PALETTE[3], RGBColor(225, 225, 225)] {
        assert!(count(&px, c) > 5000, "{c:?}: {}", count(&px, c));
    }
    let svg = std::fs::read_to_string(tmp.path().join("map.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("#440154"),
        "viridis 0 in the SVG"
    );
}

#[test]
fn a_line_chart_is_written_and_an_empty_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let panel = Panel {
        title: "loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        log_x: true,
        series: vec![Series {
            label: "train".into(),
            color: 0,
            dashed: false,
            points: (1..100).map(|s| (s as f64, 1.0 / s as f64)).collect(),
        }],
        ..Panel::default()
    };
    line_charts(&tmp.path().join("c"), "curves", &[panel], 1).unwrap();
    assert!(count(&pixels(&tmp.path().join("c.png")), PALETTE[0]) > 100);
    let empty = Panel::default();
    assert!(line_charts(&tmp.path().join("e"), "nothing", &[empty], 1).is_err());
    assert!(!tmp.path().join("e.png").exists());
}
