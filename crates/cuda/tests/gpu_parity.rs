//! The CUDA engine against the CPU engine on random weights, in f32: logits, every gradient
//! tensor, five AdamW steps (‖gpu − cpu‖ / ‖cpu‖ ≤ 1e-5 each), and the same bytes on a repeat.
//! Needs a GPU: without one every test prints SKIPPED and the reason. tools/gpu/check.sh
//! runs this binary on a GPU machine and reads the `PARITY` lines it prints.

use modicl_cuda::{Attention, Gpu, GpuModel, Precision};
use modicl_data::{Dataset, TaskConfig};
use modicl_engine::{Activation, AdamW, AdamWConfig, Model, ModelConfig, Workspace};

const TOL: f64 = 1e-5;

/// GPU 0, opened, or None (SKIPPED printed) without one.
fn gpu_or_skip() -> Option<Gpu> {
    modicl_cuda::device_or_skip().map(|_| Gpu::open().unwrap())
}

use modicl_testkit::rel;

/// A data set, a model and an optimizer config for one case.
fn case(act: Activation, tied: bool) -> (Dataset, ModelConfig, AdamWConfig) {
    let ds = Dataset::build(&TaskConfig {
        p: 11,
        n_base: 2,
        batch: 16,
        examples: 8,
        ..TaskConfig::default()
    })
    .unwrap();
    let mut cfg = ModelConfig::official(11, 64, 4, 2);
    cfg.act = act;
    cfg.tied = tied;
    (ds, cfg, AdamWConfig::default())
}

fn report(what: &str, err: f64) {
    eprintln!("PARITY {what} {err:.3e}");
    assert!(err <= TOL, "{what}: relative error {err:.3e} > {TOL:e}");
}

#[test]
fn forward_backward_and_adamw_match_the_cpu_engine() {
    let Some(gpu) = gpu_or_skip() else { return };
    let mut gpu = Some(gpu);
    let cases = [
        (Activation::Relu, true, Attention::Warp),
        (Activation::GeluTanh, false, Attention::Warp),
        (Activation::Relu, true, Attention::Gemm),
    ];
    for (act, tied, how) in cases {
        let (ds, cfg, adam) = case(act, tied);
        let positions: Vec<usize> = ds.seq.target_positions().collect();
        let (b, t) = (16, ds.seq.input_len());
        let mut cpu = Model::new(cfg.clone(), 5).unwrap();
        let mut ws = Workspace::new(&cfg, b, t);
        let mut grads = vec![0f32; cpu.layout.total];
        let mut opt = AdamW::new(adam, cpu.layout.total);
        let g = gpu.take().unwrap_or_else(|| Gpu::open().unwrap());
        let mut dev = GpuModel::new(g, &cpu, adam, None, b, t).unwrap();
        dev.set_attention(how);
        let layout = cpu.layout.clone();
        let tie = if tied { "tied" } else { "untied" };
        let name = format!("{act:?} {tie} {}-attention", how.as_str());
        for step in 0..5u64 {
            let batch = ds.train_batch(step);
            let lc = cpu
                .forward(&mut ws, &batch.tokens, batch.seq_len, &positions, None)
                .unwrap();
            let lg = dev
                .forward(&batch.tokens, batch.seq_len, &positions)
                .unwrap();
            assert_eq!(lc.count, lg.count);
            if step == 0 {
                let s = lc.count * cfg.vocab;
                report(
                    &format!("{name} logits"),
                    rel(&dev.logits().unwrap(), &ws.logits[..s]),
                );
                report(
                    &format!("{name} loss"),
                    ((lg.mean - lc.mean) as f64 / lc.mean as f64).abs(),
                );
            }
            cpu.backward(&mut ws, &mut grads);
            dev.backward().unwrap();
            if step == 0 {
                let dg = dev.grads().unwrap();
                for s in &layout.specs {
                    let r = s.offset..s.offset + s.len;
                    report(
                        &format!("{name} grad {}", s.name),
                        rel(&dg[r.clone()], &grads[r]),
                    );
                }
            }
            opt.update(&mut cpu.params, &grads, &layout, 1e-3);
            dev.update(1e-3).unwrap();
        }
        report(
            &format!("{name} params after 5 AdamW steps"),
            rel(&dev.params().unwrap(), &cpu.params),
        );
    }
}

#[test]
fn the_same_steps_give_the_same_bytes_on_the_gpu() {
    let Some(_) = gpu_or_skip() else { return };
    let run = |how: Attention| {
        let (ds, cfg, adam) = case(Activation::Relu, true);
        let positions: Vec<usize> = ds.seq.target_positions().collect();
        let cpu = Model::new(cfg, 9).unwrap();
        let mut dev = GpuModel::new(
            Gpu::open().unwrap(),
            &cpu,
            adam,
            None,
            16,
            ds.seq.input_len(),
        )
        .unwrap();
        dev.set_attention(how);
        for step in 0..3u64 {
            let batch = ds.train_batch(step);
            dev.forward(&batch.tokens, batch.seq_len, &positions)
                .unwrap();
            dev.backward().unwrap();
            dev.update(1e-3).unwrap();
        }
        dev.params().unwrap()
    };
    for how in [Attention::Warp, Attention::Gemm] {
        let (a, b) = (run(how), run(how));
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        eprintln!(
            "DETERMINISM {}-attention {}",
            how.as_str(),
            if same { "same bytes" } else { "DIFFERENT" }
        );
        assert!(same, "two GPU runs differ ({} attention)", how.as_str());
    }
}

/// Logits and gradients of one batch at a reduced precision, against the f32 CPU engine:
/// ‖gpu − cpu‖/‖cpu‖ of each, printed as `LABEL logits .. gradients ..` and checked against
/// `bound`.
fn reduced_precision_within(p: Precision, label: &str, bound: f64) {
    let Some(_) = gpu_or_skip() else { return };
    for how in [Attention::Warp, Attention::Gemm] {
        let gpu = Gpu::open().unwrap();
        gpu.set_precision(p).unwrap();
        let (ds, cfg, adam) = case(Activation::Relu, true);
        let positions: Vec<usize> = ds.seq.target_positions().collect();
        let (b, t) = (16, ds.seq.input_len());
        let cpu = Model::new(cfg.clone(), 5).unwrap();
        let mut ws = Workspace::new(&cfg, b, t);
        let mut grads = vec![0f32; cpu.layout.total];
        let mut dev = GpuModel::new(gpu, &cpu, adam, None, b, t).unwrap();
        dev.set_attention(how);
        let batch = ds.train_batch(0);
        let lc = cpu
            .forward(&mut ws, &batch.tokens, batch.seq_len, &positions, None)
            .unwrap();
        dev.forward(&batch.tokens, batch.seq_len, &positions)
            .unwrap();
        cpu.backward(&mut ws, &mut grads);
        dev.backward().unwrap();
        let logits = rel(&dev.logits().unwrap(), &ws.logits[..lc.count * cfg.vocab]);
        let g = rel(&dev.grads().unwrap(), &grads);
        let how = how.as_str();
        eprintln!(
            "{label} {how}-attention logits {logits:.3e} gradients {g:.3e} (bound {bound:.0e})"
        );
        assert!(
            logits <= bound && g <= bound,
            "{label} {how}: logits {logits:.3e}, gradients {g:.3e}"
        );
    }
}

/// TF32 keeps 10 of f32's 23 mantissa bits in the products' inputs: a relative error of about
/// 2^-11 per input, accumulated in f32. Logits and gradients of this small model stay within
/// 1e-2 of the f32 CPU engine.
#[test]
fn tf32_stays_within_its_stated_tolerance() {
    reduced_precision_within(Precision::Tf32, "TF32", 1e-2);
}

/// bf16 keeps 7 of the 23 stored mantissa bits in both operands of every product: about 2^-9
/// relative per operand, f32 accumulation. Logits and gradients of this small model stay within
/// 5e-2 of the f32 CPU engine (attention, LayerNorm, softmax and the loss stay f32).
#[test]
fn bf16_stays_within_its_stated_tolerance() {
    reduced_precision_within(Precision::Bf16, "BF16", 5e-2);
}
