//! The benchmark harness of `modicl bench`: timing full training steps (forward, backward,
//! AdamW) at two reference sizes or at a run's exact configuration.

use std::time::Instant;

use modicl_data::{Dataset, TaskConfig};

use modicl_engine::{step_flops, AdamW, AdamWConfig, Model, ModelConfig, Shards};

/// A benchmark configuration.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub name: &'static str,
    pub model: ModelConfig,
    pub batch: usize,
    /// Examples per sequence (the model reads 3k − 1 tokens).
    pub examples: usize,
    pub default_steps: usize,
}

impl BenchSpec {
    /// `small`: d 256, 4 heads, 2 blocks, batch 64; `paper`: d 512, 4 heads, 4 blocks, batch 128;
    /// both with 32 examples per sequence and the official vocabulary for p = 29 (47).
    pub fn named(name: &str) -> Option<BenchSpec> {
        match name {
            "small" => Some(BenchSpec {
                name: "small",
                model: ModelConfig::official(29, 256, 4, 2),
                batch: 64,
                examples: 32,
                default_steps: 10,
            }),
            "paper" => Some(BenchSpec {
                name: "paper",
                model: ModelConfig::official(29, 512, 4, 4),
                batch: 128,
                examples: 32,
                default_steps: 3,
            }),
            _ => None,
        }
    }
}

/// What one benchmark measured.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub model: String,
    pub threads: usize,
    /// Median over the timed steps.
    pub ms_per_step: f64,
    pub step_ms_all: Vec<f64>,
    pub tokens_per_s: f64,
    pub gflops: f64,
    pub peak_rss_mb: f64,
    pub params: usize,
    pub loss_first: f32,
    pub loss_last: f32,
    /// On a GPU: what it ran on and the device memory it used.
    pub device: Option<DeviceUse>,
    /// On the CPU: the shards each batch was split into.
    pub shards: Option<usize>,
    /// With `--profile` (GPU): each kernel's and product's calls and device milliseconds per
    /// step, the most first.
    pub profile: Vec<modicl_cuda::OpTime>,
}

/// Peak resident memory of this process so far (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What [`time_steps`] measured: the timed steps' milliseconds, their median, and the first
/// and last step's loss.
struct Timed {
    times: Vec<f64>,
    ms: f64,
    first: f32,
    last: f32,
}

impl Timed {
    /// The result for a model `cfg` on batches of `(rows, tokens)`, run on `device` (or the
    /// CPU).
    fn result(
        self,
        name: &str,
        cfg: &ModelConfig,
        (rows, t): (usize, usize),
        device: Option<DeviceUse>,
    ) -> BenchResult {
        BenchResult {
            model: name.to_string(),
            threads: rayon::current_num_threads(),
            ms_per_step: self.ms,
            step_ms_all: self.times,
            tokens_per_s: (rows * t) as f64 / (self.ms / 1e3),
            gflops: step_flops(cfg, rows, t) / (self.ms / 1e3) / 1e9,
            peak_rss_mb: peak_rss_mb(),
            params: modicl_engine::ParamLayout::new(cfg).total,
            loss_first: self.first,
            loss_last: self.last,
            device,
            shards: None,
            profile: Vec::new(),
        }
    }
}

/// Runs `step` on the batches of steps 0, 1, ...: `warmup` untimed, then `steps` timed, calling
/// `tick` after each.
fn time_steps(
    ds: &Dataset,
    warmup: usize,
    steps: usize,
    tick: &dyn Fn(),
    step: &mut dyn FnMut(&[u32]) -> anyhow::Result<f32>,
) -> anyhow::Result<Timed> {
    let mut times = Vec::with_capacity(steps);
    let (mut first, mut last) = (0.0, 0.0);
    let mut batch = ds.train_batch(0);
    for i in 0..warmup + steps {
        ds.fill_train_batch(i as u64, &mut batch);
        let start = Instant::now();
        let loss = step(&batch.tokens)?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if i == 0 {
            first = loss;
        }
        last = loss;
        if i >= warmup {
            times.push(ms);
        }
        tick();
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let ms = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(Timed {
        times,
        ms,
        first,
        last,
    })
}

/// The GPU a bench ran on and the device memory it took.
#[derive(Clone, Debug)]
pub struct DeviceUse {
    /// The GPU and the precision of the products.
    pub name: String,
    /// Measured: the device's free memory before the model was built less after the last step
    /// (MiB): the model, its buffers and whatever cuBLAS allocated.
    pub mem_mib: f64,
    /// What `GpuModel::bytes_needed`, the memory check before a run, predicted (MiB).
    pub estimate_mib: f64,
}

/// Runs `warmup` untimed and `steps` timed training steps on real batches of the paper's data
/// (8 tasks, p = 29), in the current rayon pool; `tick` is called after every step.
pub fn run(
    spec: &BenchSpec,
    (warmup, steps): (usize, usize),
    shards: Option<usize>,
    tick: &dyn Fn(),
) -> anyhow::Result<BenchResult> {
    let ds = reference_data(spec)?;
    run_on(spec.name, &spec.model, &ds, (warmup, steps), shards, tick)
}

/// The dataset [`run`] times a reference size on.
pub fn reference_data(spec: &BenchSpec) -> anyhow::Result<Dataset> {
    let task = TaskConfig {
        n_base: 2,
        batch: spec.batch as u32,
        examples: spec.examples as u32,
        ..TaskConfig::default()
    };
    Ok(Dataset::build(&task)?)
}

/// Steps profiled after the timed ones by `bench --profile`.
pub const PROFILED_STEPS: usize = 5;

/// One training step on the GPU, ending with the loss copied back.
fn gpu_step(
    dev: &mut modicl_cuda::GpuModel,
    tokens: &[u32],
    seq_len: usize,
    positions: &[usize],
) -> anyhow::Result<f32> {
    let loss = dev.forward(tokens, seq_len, positions)?;
    dev.backward()?;
    dev.update(1.5e-4)?;
    dev.gpu.sync()?;
    Ok(loss.mean)
}

/// Like [`run_on`], with the training steps on GPU 0 (`modicl-cuda`'s `GpuModel`); each timed
/// step ends with the loss copied back, so the times include the whole step. With `profile`,
/// [`PROFILED_STEPS`] more steps follow with every kernel and product timed on the device.
pub fn run_on_gpu(
    name: &str,
    (model_cfg, precision): (&ModelConfig, modicl_cuda::Precision),
    attention: modicl_cuda::Attention,
    ds: &Dataset,
    (warmup, steps, profile): (usize, usize, bool),
    tick: &dyn Fn(),
) -> anyhow::Result<BenchResult> {
    let batch_rows = ds.config.batch as usize;
    let positions: Vec<usize> = ds.seq.target_positions().collect();
    let (s, t) = (ds.seq.seq_len(), ds.seq.input_len());
    let model = Model::new(model_cfg.clone(), 1)?;
    let gpu = modicl_cuda::Gpu::open()?;
    gpu.set_precision(precision)?;
    let info = format!("{}, {}", gpu.info, precision.as_str());
    let free_before = gpu.free_memory()?;
    let mut dev =
        modicl_cuda::GpuModel::new(gpu, &model, AdamWConfig::default(), None, batch_rows, t)?;
    dev.set_attention(attention);
    let timed = time_steps(ds, warmup, steps, tick, &mut |tokens| {
        gpu_step(&mut dev, tokens, s, &positions)
    })?;
    let mut ops = Vec::new();
    if profile {
        let mut batch = ds.train_batch(0);
        dev.gpu.profile_start();
        for i in 0..PROFILED_STEPS {
            ds.fill_train_batch((warmup + steps + i) as u64, &mut batch);
            gpu_step(&mut dev, &batch.tokens, s, &positions)?;
            tick();
        }
        ops = dev.gpu.profile_stop()?;
        for o in &mut ops {
            o.calls /= PROFILED_STEPS;
            o.ms /= PROFILED_STEPS as f64;
        }
    }
    let used = free_before.saturating_sub(dev.gpu.free_memory()?);
    let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
    let estimate = modicl_cuda::GpuModel::bytes_needed(model_cfg, batch_rows, t, precision);
    let device = DeviceUse {
        name: info,
        mem_mib: mib(used),
        estimate_mib: mib(estimate),
    };
    let mut r = timed.result(name, model_cfg, (batch_rows, t), Some(device));
    r.profile = ops;
    Ok(r)
}

/// Like [`run`], on any model and dataset (batches of the dataset's configured size): the
/// exact training step of a run's configuration, its batch in `count` shards (the engine's
/// plan when `None`).
pub fn run_on(
    name: &str,
    model_cfg: &ModelConfig,
    ds: &Dataset,
    (warmup, steps): (usize, usize),
    count: Option<usize>,
    tick: &dyn Fn(),
) -> anyhow::Result<BenchResult> {
    let batch_rows = ds.config.batch as usize;
    let positions: Vec<usize> = ds.seq.target_positions().collect();
    let (s, t) = (ds.seq.seq_len(), ds.seq.input_len());
    let mut model = Model::new(model_cfg.clone(), 1)?;
    let n = count.unwrap_or_else(|| Shards::plan(model_cfg, batch_rows));
    let mut shards = Shards::with_count(model_cfg, batch_rows, t, n);
    let mut grads = vec![0f32; model.layout.total];
    let mut opt = AdamW::new(AdamWConfig::default(), model.layout.total);
    let layout = model.layout.clone();
    let timed = time_steps(ds, warmup, steps, tick, &mut |tokens| {
        let loss = shards.forward_backward(&model, tokens, s, &positions, &mut grads)?;
        opt.update(&mut model.params, &grads, &layout, 1.5e-4);
        Ok(loss.mean)
    })?;
    let mut r = timed.result(name, model_cfg, (batch_rows, t), None);
    r.shards = Some(n);
    Ok(r)
}
