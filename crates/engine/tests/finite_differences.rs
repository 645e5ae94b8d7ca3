//! Every parameter tensor's gradient against central finite differences of the loss, on random
//! weights (not only at initialisation: LayerNorm weights and biases are randomised too).

use modicl_engine::{Activation, Model, ModelConfig, Workspace};

fn check(act: Activation, tied: bool) {
    let cfg = ModelConfig {
        act,
        tied,
        ..ModelConfig::official(7, 16, 2, 2)
    };
    let mut model = Model::new(cfg.clone(), 11).unwrap();
    // Random weights of a realistic size everywhere, so no gradient is trivially zero.
    let mut rng = modicl_core::rng::Rng::stream(5, modicl_core::rng::Domain::ModelInit, 1);
    for x in model.params.iter_mut() {
        *x += (rng.normal() * 0.1) as f32;
    }
    let (b, k) = (3usize, 4usize);
    let s = 3 * k;
    let tokens: Vec<u32> = (0..b * s).map(|_| rng.below(7)).collect();
    let positions: Vec<usize> = (0..k).map(|i| 3 * i + 1).collect();
    let mut ws = Workspace::new(&cfg, b, s - 1);
    model
        .forward(&mut ws, &tokens, s, &positions, None)
        .unwrap();
    let mut grads = vec![0f32; model.layout.total];
    model.backward(&mut ws, &mut grads);

    // Per tensor: the directional derivative along a random unit direction u,
    // (L(θ + h·u) − L(θ − h·u)) / 2h, against g·u. Summing over the whole tensor gives the
    // float32 forward pass enough signal for a tight check.
    let specs = model.layout.specs.clone();
    for spec in &specs {
        let r = spec.offset..spec.offset + spec.len;
        let mut u: Vec<f32> = (0..spec.len).map(|_| rng.normal() as f32).collect();
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        u.iter_mut().for_each(|x| *x /= norm);
        let analytic: f64 = grads[r.clone()]
            .iter()
            .zip(&u)
            .map(|(g, u)| *g as f64 * *u as f64)
            .sum();
        let orig = model.params[r.clone()].to_vec();
        // Float32 forward passes: large h suffers truncation (and ReLU kinks), small h
        // round-off. Take the step that agrees best; a wrong gradient disagrees at every h.
        let (mut err, mut numeric) = (f64::INFINITY, 0.0);
        for h in [3e-3f32, 1e-3, 3e-4] {
            let mut loss_at = |sign: f32| {
                for ((p, o), u) in model.params[r.clone()].iter_mut().zip(&orig).zip(&u) {
                    *p = o + sign * h * u;
                }
                model
                    .forward(&mut ws, &tokens, s, &positions, None)
                    .unwrap()
                    .mean as f64
            };
            let fd = (loss_at(1.0) - loss_at(-1.0)) / (2.0 * h as f64);
            if (fd - analytic).abs() < err {
                (err, numeric) = ((fd - analytic).abs(), fd);
            }
        }
        model.params[r].copy_from_slice(&orig);
        assert!(
            err <= 1e-2 * numeric.abs().max(analytic.abs()) + 1e-4,
            "{} ({act:?}, tied {tied}): g·u = {analytic:.6e}, finite difference {numeric:.6e}",
            spec.name
        );
    }
}

#[test]
fn relu_tied_gradients_match_finite_differences() {
    check(Activation::Relu, true);
}

#[test]
fn gelu_untied_gradients_match_finite_differences() {
    check(Activation::GeluTanh, false);
}
