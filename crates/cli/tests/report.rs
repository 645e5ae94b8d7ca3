//! `modicl report`: self-contained pages for runs and sweeps, in every state, checked in
//! headless Chromium when it is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{plan_tiny, run, text, train_tiny_kept};

fn page(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A page loads nothing: no external script, style, image, font or link target on the web.
fn assert_self_contained(html: &str, what: &str) {
    for bad in [
        "src=\"http",
        "href=\"http",
        "<link",
        "@import",
        "url(",
        "<script src",
    ] {
        assert!(!html.contains(bad), "{what}: contains {bad}");
    }
}

/// The Chromium binary, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| {
            let o = Command::new("which").arg(n).output().ok()?;
            o.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
}

/// Loads `html` in headless Chromium: no console error, every figure rendered with a size
/// (the page's own check), and screenshots at desktop and phone width, kept under the test's
/// target folder for a person to look at.
fn check_in_browser(html: &Path, name: &str) {
    let Some(bin) = chromium() else {
        // .ci/run sets MODICL_REQUIRE_BROWSER once it has Chromium: there, no skipping.
        assert!(
            std::env::var_os("MODICL_REQUIRE_BROWSER").is_none(),
            "MODICL_REQUIRE_BROWSER is set but no chromium was found"
        );
        eprintln!("SKIPPED browser check of {name}: no chromium (apt-get install chromium)");
        return;
    };
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let base = |extra: &[&str]| {
        let mut c = Command::new(&bin);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
        ]);
        c.args(extra);
        c.arg(&url);
        c.output().expect("chromium runs")
    };
    let o = base(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&o.stdout);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        dom.contains("data-figures=\"ok\""),
        "{name}: a figure did not render (or the script did not run): {}",
        &dom[..dom.len().min(300)]
    );
    for line in log.lines() {
        let l = line.to_lowercase();
        assert!(
            !(l.contains("console") && (l.contains("error") || l.contains("uncaught"))),
            "{name}: console error: {line}"
        );
        assert!(
            !l.contains("failed to load") && !l.contains("net::err"),
            "{name}: failed request: {line}"
        );
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (label, size) in [("desktop", "1280,2400"), ("phone", "390,2400")] {
        let file = shots.join(format!("{name}-{label}.png"));
        let o = base(&[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={size}"),
        ]);
        assert!(
            o.status.success() && file.is_file(),
            "{name} {label}: no screenshot"
        );
        eprintln!("screenshot: {}", file.display());
    }
}

#[test]
fn train_writes_a_self_contained_run_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_tiny_kept(dir);
    let report = dir.join("r/report.html");
    let html = page(&report);
    assert_self_contained(&html, "run report");
    for needle in [
        "Status: finished",
        "Final (step 30)",
        "Early-stopped",
        "plots/curves",
        "Kept: step 10, step 30",
        "config.toml",
        "<svg",
    ] {
        assert!(html.contains(needle), "run report lacks {needle}");
    }
    // With probes, their figures join the page.
    let o = run(dir, &["probe", "shots", "r", "--threads", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(dir, &["report", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = page(&report);
    assert!(
        html.contains("probes/step_30/shots.svg"),
        "probe figure missing"
    );
    check_in_browser(&report, "run");
}

#[test]
fn unfinished_and_damaged_runs_give_pages_that_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_tiny_kept(dir);
    std::fs::remove_file(dir.join("r/DONE")).unwrap();
    std::fs::remove_file(dir.join("r/summary.json")).unwrap();
    let o = run(dir, &["report", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = page(&dir.join("r/report.html"));
    assert!(html.contains("not finished"), "in-progress run not flagged");
    assert!(
        html.contains("Latest evaluation (step 30"),
        "no latest evaluation"
    );
    // A truncated metrics.csv: the page names the problem.
    let m = dir.join("r/metrics.csv");
    let bytes = std::fs::read(&m).unwrap();
    std::fs::write(&m, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let o = run(dir, &["report", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = page(&dir.join("r/report.html"));
    assert!(
        html.contains("metrics could not be read"),
        "truncated metrics not named"
    );
    check_in_browser(&dir.join("r/report.html"), "damaged-run");
}

#[test]
fn a_sweep_report_has_its_table_and_links() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    plan_tiny(dir, &["--grid", "task.n_base=1,2,4"]);
    // Nothing run: every run pending, and still a page.
    let o = run(dir, &["report", "sw"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = page(&dir.join("sw/report.html"));
    assert!(
        html.contains("3 pending"),
        "{}",
        &html[..html.len().min(2000)]
    );
    assert!(html.contains("no phase diagram yet") || html.contains("Not every run is done"));
    // One run done, one failed, one pending.
    let o = run(
        dir,
        &["sweep", "run-one", "sw", "--index", "0", "--threads", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::create_dir_all(dir.join("sw/runs/n_base2")).unwrap();
    std::fs::write(dir.join("sw/runs/n_base2/FAILED"), "boom").unwrap();
    let o = run(dir, &["report", "sw"]);
    assert!(o.status.success(), "{}", text(&o));
    let html = page(&dir.join("sw/report.html"));
    assert_self_contained(&html, "sweep report");
    for needle in [
        "1 done",
        "1 failed",
        "1 pending",
        "<table class=\"sort\"",
        "href=\"runs/n_base1/report.html\"",
        "Not every run is done",
    ] {
        assert!(html.contains(needle), "sweep report lacks {needle}");
    }
    assert!(dir.join("sw/runs/n_base1/report.html").is_file());
    check_in_browser(&dir.join("sw/report.html"), "sweep");
}
