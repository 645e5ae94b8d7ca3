//! Every figure modicl draws (training curves, per-shot accuracy, every probe, the phase
//! diagrams and heatmaps of a sweep) keeps its text at 8 pt or more when scaled to a 6.5-inch
//! journal column, read from the SVG files themselves: a `<text>`'s font-size against the
//! `<svg>`'s width. Text to read is black or white (white on dark heatmap cells); the point
//! labels of the PCA scatters are drawn in their points' colours (grey for "no class") and are
//! data markers, not text to read, so they are left out.

mod common;

use std::path::{Path, PathBuf};

use common::{plan_tiny, run, text, train_tiny_kept};

/// The pixel width that stands for 6.5 inches.
const COLUMN_PT: f64 = 6.5 * 72.0;

fn svgs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            svgs(&p, out);
        } else if p.extension().is_some_and(|x| x == "svg") {
            out.push(p);
        }
    }
}

/// The value of attribute `name` in a tag's text.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let i = tag.find(&key)? + key.len();
    Some(&tag[i..i + tag[i..].find('"')?])
}

/// Whether a fill is black or white: text to read.
fn ink(fill: &str) -> bool {
    fill.eq_ignore_ascii_case("#000000") || fill.eq_ignore_ascii_case("#FFFFFF")
}

/// (width, the smallest font-size of text to read, how many such texts) of one SVG.
fn smallest_text(svg: &str) -> (f64, f64, usize) {
    let head = &svg[..svg.find('>').unwrap()];
    let width: f64 = attr(head, "width").unwrap().parse().unwrap();
    let (mut least, mut n) = (f64::INFINITY, 0);
    for chunk in svg.split("<text").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        if !attr(tag, "fill").is_some_and(ink) {
            continue;
        }
        let size: f64 = attr(tag, "font-size").unwrap().parse().unwrap();
        least = least.min(size);
        n += 1;
    }
    (width, least, n)
}

#[test]
fn every_figure_keeps_8_pt_text_at_column_width() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_tiny_kept(dir);
    let o = run(
        dir,
        &["probe", "all", "r", "--threads", "1", "--format", "pdf"],
    );
    assert!(o.status.success(), "{}", text(&o));
    plan_tiny(
        dir,
        &["--grid", "task.n_base=1,2", "--grid", "task.alpha=0.6,0.8"],
    );
    for args in [
        &["sweep", "run", "sw", "--jobs", "1", "--threads", "1"][..],
        &["sweep", "collect", "sw"],
        &["plot", "phase", "sw", "--format", "pdf"],
    ] {
        let o = run(dir, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let mut files = Vec::new();
    svgs(dir, &mut files);
    let kinds: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "curves.svg",
        "shots.svg",
        "kshot.svg",
        "random.svg",
        "single.svg",
        "layer0.svg",
        "all_heads.svg",
        "embedding.svg",
        "phase.svg",
        "accuracy.svg",
    ] {
        assert!(kinds.iter().any(|k| k == want), "no {want} among {kinds:?}");
    }
    let mut worst = (f64::INFINITY, String::new());
    for f in &files {
        let svg = std::fs::read_to_string(f).unwrap();
        // Translucent elements become PDF forms that svg2pdf orders differently each run.
        assert!(
            !svg.contains("opacity=\"0."),
            "{}: a translucent element",
            f.display()
        );
        // Where PDFs were asked for, each SVG has one.
        if !f.starts_with(dir.join("r/plots")) {
            assert!(f.with_extension("pdf").is_file(), "{}: no PDF", f.display());
        }
        let (width, least, n) = smallest_text(&svg);
        assert!(n > 0, "{}: no text", f.display());
        // The size, in points, the smallest text has when the figure is a column wide.
        let pt = least * COLUMN_PT / width;
        assert!(
            pt >= 8.0 - 1e-9,
            "{}: text of {least} px in a {width}-px figure is {pt:.2} pt at 6.5 inches",
            f.display()
        );
        if pt < worst.0 {
            worst = (pt, f.display().to_string());
        }
    }
    eprintln!(
        "{} figures; the smallest text is {:.2} pt ({})",
        files.len(),
        worst.0,
        worst.1
    );
}

#[test]
fn the_check_itself_sees_small_text_and_skips_coloured_labels() {
    let svg = "<svg width=\"936\" height=\"10\">\
        <text x=\"0\" font-size=\"16\" fill=\"#000000\">a</text>\
        <text x=\"0\" font-size=\"9\" fill=\"#BB651B\">(1,2)</text>\
        <text x=\"0\" font-size=\"9\" fill=\"#5A5A5A\">(1,-)</text>\
        <text x=\"0\" font-size=\"15\" fill=\"#FFFFFF\">b</text></svg>";
    let (w, least, n) = smallest_text(svg);
    assert_eq!((w, least, n), (936.0, 15.0, 2));
    // 15 px in 936 px is 7.5 pt at 6.5 inches: below the bar.
    assert!(least * COLUMN_PT / w < 8.0);
}

#[test]
fn format_pdf_adds_a_vector_pdf_next_to_png_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_tiny_kept(dir);
    let plots = dir.join("r/plots");
    std::fs::remove_dir_all(&plots).unwrap();
    let o = run(dir, &["plot", "curves", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !plots.join("curves.pdf").exists(),
        "PDF without --format pdf"
    );
    let o = run(dir, &["plot", "curves", "r", "--format", "pdf"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("curves.pdf"), "{}", text(&o));
    let pdf = std::fs::read(plots.join("curves.pdf")).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let body = String::from_utf8_lossy(&pdf);
    // One page the size of the SVG (1 pixel = 1 point), text as a font, no bitmap.
    let svg = std::fs::read_to_string(plots.join("curves.svg")).unwrap();
    let head = &svg[..svg.find('>').unwrap()];
    let (w, h) = (attr(head, "width").unwrap(), attr(head, "height").unwrap());
    assert!(
        body.contains(&format!("/MediaBox [0 0 {w} {h}]")),
        "no {w} x {h} page"
    );
    assert!(body.contains("/FontFile2"), "text not embedded as a font");
    assert!(!body.contains("/Subtype /Image"), "a bitmap in the PDF");
    // The same figure gives the same bytes.
    let o = run(dir, &["plot", "curves", "r", "--format", "pdf"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read(plots.join("curves.pdf")).unwrap() == pdf);
    let o = run(dir, &["plot", "curves", "r", "--format", "jpg"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
