//! The trainer on the GPU against the CPU: the device evaluator's per-shot counts against the
//! host evaluator's, and a short run's metrics on either device. Needs a GPU: without one each
//! test prints SKIPPED and the reason. tools/gpu/check.sh runs this binary on a GPU machine.

use std::sync::atomic::AtomicBool;

use modicl_data::Dataset;
use modicl_engine::{AdamWConfig, Model, Shards};
use modicl_testkit::tiny;
use modicl_trainer::{model_config, Device, Evaluator, Observer, RunDir, Trainer};

struct Quiet;
impl Observer for Quiet {}

fn gpu_or_skip() -> bool {
    modicl_cuda::device_or_skip().is_some()
}

#[test]
fn the_device_evaluator_counts_as_the_host_one() {
    if !gpu_or_skip() {
        return;
    }
    let mut cfg = tiny();
    // With the sets of the tasks a task-count curriculum's stages add.
    cfg.apply_override("curriculum.tasks=2@0,4@10,8@20")
        .unwrap();
    let ds = Dataset::for_run(&cfg).unwrap();
    let model = Model::new(model_config(&cfg), 4).unwrap();
    let t = ds.seq.input_len();
    // A device batch smaller than the sets, so chunks and a short last chunk are exercised.
    let mut dev = modicl_cuda::GpuModel::new(
        modicl_cuda::Gpu::open().unwrap(),
        &model,
        AdamWConfig::default(),
        None,
        5,
        t,
    )
    .unwrap();
    let mut ws = Shards::new(&model.cfg, 5, t);
    let mut ev = Evaluator::new(&ds, 3).with_added(&ds, &cfg.eval);
    let mut host = ev.run(&model, &mut ws).unwrap();
    let mut device = ev.run_gpu(&mut dev).unwrap();
    host.extend(ev.run_added(&model, &mut ws).unwrap());
    device.extend(ev.run_added_gpu(&mut dev).unwrap());
    assert_eq!((host.len(), device.len()), (6, 6));
    for (h, d) in host.iter().zip(&device) {
        assert_eq!(h.shot_count, d.shot_count, "{:?}", h.set);
        let diff: u64 = h
            .shot_correct
            .iter()
            .zip(&d.shot_correct)
            .map(|(a, b)| a.abs_diff(*b))
            .sum();
        eprintln!(
            "EVAL {:?}: correct {} vs {} (differ in {diff}); loss {:.7} vs {:.7}",
            h.set, h.correct, d.correct, h.loss, d.loss
        );
        // Float noise may flip a near-tie; never more than one answer in a thousand.
        assert!(diff * 1000 <= h.count, "{:?}: {diff} answers differ", h.set);
        assert!((h.loss - d.loss).abs() <= 1e-5 * h.loss, "{:?}", h.set);
    }
}

#[test]
fn a_short_run_on_the_gpu_follows_the_cpu_run() {
    if !gpu_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let run = |device: Device| {
        let dir = tmp.path().join(format!("{device:?}"));
        let mut t = Trainer::create(tiny(), RunDir::new(&dir), false).unwrap();
        t.device = device;
        t.run(&mut Quiet, &AtomicBool::new(false)).unwrap();
        t.records
    };
    let (cpu, gpu) = (run(Device::Cpu), run(Device::Cuda));
    assert_eq!(cpu.len(), gpu.len());
    let mut worst = 0f64;
    for (c, g) in cpu.iter().zip(&gpu) {
        assert_eq!(c.step, g.step);
        for (a, b) in c.sets.iter().zip(&g.sets) {
            worst = worst.max((a.loss - b.loss).abs() / a.loss);
        }
    }
    eprintln!("RUN worst relative loss difference over every evaluation: {worst:.2e}");
    assert!(worst <= 1e-4, "{worst}");
}
