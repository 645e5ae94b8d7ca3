//! What the workspace's tests share, written once: the tiny run that trains in a fraction of a
//! second, and the relative error that every parity test measures. A dev-dependency only; not
//! published.

use modicl_config::Config;

/// A tiny run (p = 7, 8 tasks, d 16, 2 heads, 2 blocks, 40 steps, evaluation every 5 steps,
/// resume checkpoints every 6): it trains in a fraction of a second.
pub fn tiny() -> Config {
    let mut c = Config::resolve(None, None, &[]).expect("the defaults resolve");
    for o in [
        "task.p=7",
        "task.n_base=2",
        "task.batch=16",
        "task.examples=6",
        "model.d_model=16",
        "model.heads=2",
        "model.layers=2",
        "optim.lr=3e-3",
        "train.steps=40",
        "train.warmup=4",
        "train.eval_every=5",
        "train.checkpoints=log:3",
        "train.save_every=6",
        "eval.seqs_per_task=2",
    ] {
        c.apply_override(o).expect("a valid override");
    }
    c.check().expect("a valid configuration");
    c
}

/// The relative error ‖a − b‖ / ‖b‖ (in f64; b = 0 counts as a tiny norm, not a division by
/// zero).
pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relative_error_is_the_norm_ratio() {
        assert_eq!(rel(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel(&[3.0, 0.0], &[0.0, 4.0]) - 1.25).abs() < 1e-12);
        assert!(
            rel(&[1e-3], &[0.0]) > 1e10,
            "against zero, any difference is huge"
        );
    }

    #[test]
    fn the_tiny_run_is_tiny() {
        let c = tiny();
        assert_eq!((c.task.p, c.model.d_model, c.train.steps), (7, 16, 40));
    }
}
