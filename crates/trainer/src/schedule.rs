//! The official learning-rate schedule (`_src/scheduler.py`, cosine with one cycle).
//!
//! A multiplier on the peak learning rate: linear warm-up from 0.01 at step index 0 to 1 at
//! index `warmup`, then cosine decay towards 0.1, reached at index `steps` (never used):
//!
//! - λ(s) = 0.01 + 0.99 · s / W                         for s <= W
//! - λ(s) = 0.1 + 0.9 · (1 + cos(π (s − W) / (C − W))) / 2   for s > W
//!
//! PyTorch's `LambdaLR` gives optimizer step k (1-based) the multiplier λ(k − 1): the first
//! step runs at 0.01·lr, step W + 1 is the first at the full lr, and the last step (k = C) at
//! λ(C − 1) ≈ 0.1.

/// The multiplier for 0-based step index `s` of a run of `steps` steps with `warmup` warm-up
/// steps. `warmup` may be 0 (cosine from the first step) and must be below `steps`.
pub fn multiplier(s: u64, steps: u64, warmup: u64) -> f64 {
    assert!(
        warmup < steps,
        "warm-up ({warmup}) must be shorter than the run ({steps})"
    );
    let s = s % steps;
    if s <= warmup && warmup > 0 {
        0.01 + 0.99 * s as f64 / warmup as f64
    } else {
        let progress = (s - warmup) as f64 / (steps - warmup) as f64;
        0.1 + 0.9 * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
    }
}

/// The learning rate of optimizer step `k` (1-based), as the official training loop applies it.
pub fn lr_at(k: u64, peak: f64, steps: u64, warmup: u64) -> f64 {
    assert!(k >= 1, "optimizer steps count from 1");
    peak * multiplier(k - 1, steps, warmup)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u64 = 200_000;
    const W: u64 = 10_000;

    #[test]
    fn paper_schedule_landmarks() {
        assert_eq!(multiplier(0, C, W), 0.01);
        assert!((multiplier(W / 2, C, W) - 0.505).abs() < 1e-12);
        assert_eq!(multiplier(W, C, W), 1.0);
        // The last step runs at λ(C − 1) = 0.1 + about 6e-11, not at 0.1 itself.
        let last = multiplier(C - 1, C, W);
        assert!(last > 0.1 && last - 0.1 < 1e-10, "{last}");
        assert!((multiplier(W + (C - W) / 2, C, W) - 0.55).abs() < 1e-12);
        assert_eq!(lr_at(1, 1.5e-4, C, W), 1.5e-4 * 0.01);
        assert_eq!(lr_at(W + 1, 1.5e-4, C, W), 1.5e-4);
    }

    #[test]
    fn warm_up_rises_and_decay_falls() {
        let xs: Vec<f64> = (0..C).step_by(100).map(|s| multiplier(s, C, W)).collect();
        let peak = xs.iter().cloned().fold(0.0, f64::max);
        assert_eq!(peak, 1.0);
        let split = xs.iter().position(|&x| x == peak).unwrap_or(0);
        assert!(xs[..=split].windows(2).all(|w| w[0] <= w[1]));
        assert!(xs[split..].windows(2).all(|w| w[0] >= w[1]));
        assert!(xs.iter().all(|&x| (0.01..=1.0).contains(&x)));
    }

    #[test]
    fn no_warm_up_starts_at_the_peak() {
        assert_eq!(multiplier(0, 100, 0), 1.0);
        assert!(multiplier(99, 100, 0) > 0.1);
    }
}
