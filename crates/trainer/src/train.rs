//! The training loop. One [`Trainer`] owns a run: its configuration, data, model, optimizer,
//! metrics so far, and run directory. [`Trainer::run`] reads top to bottom as one step:
//! batch, forward, backward, AdamW at the scheduled learning rate, then evaluation and
//! checkpoints when due.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use modicl_config::{Config, EarlyStop};
use modicl_data::Dataset;
use modicl_engine::{AdamW, Model, Shards};
use serde::{Deserialize, Serialize};

use crate::eval::{Evaluator, SetMetrics};
use crate::metrics::{self, Record};
use crate::names::{Metric, SetName};
use crate::oracles::{self, Oracles, SetOracles};
use crate::rundir::{self, Best, CheckpointState, RunDir, FORMAT_VERSION};
use crate::schedule::lr_at;
use crate::{adamw_config, model_config, TrainError};

/// What a running trainer reports; every method has an empty default.
pub trait Observer {
    /// Before the first step: where training starts (0, or the resumed checkpoint's step).
    fn start(&mut self, _t: &Trainer) {}
    /// After every optimizer step: its learning rate and training-batch loss and accuracy.
    fn step(&mut self, _step: u64, _lr: f64, _loss: f32, _acc: f64) {}
    /// After every evaluation.
    fn eval(&mut self, _r: &Record) {}
    /// After a checkpoint is written.
    fn checkpoint(&mut self, _step: u64) {}
}

/// How [`Trainer::run`] ended.
#[derive(Debug)]
pub enum Outcome {
    /// The last step was taken; `summary.json` and `DONE` are written.
    Finished(Box<Summary>),
    /// The stop flag was raised: the step in progress was finished and checkpointed.
    Interrupted { step: u64 },
}

/// Loss and accuracies of one set, as reported in `summary.json`, with the last-shot accuracy
/// read against the two algorithms ([`crate::oracles`]; absent from summaries written before
/// they were added).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetSummary {
    pub loss: f64,
    pub acc: f64,
    pub acc_last: f64,
    /// Last-shot samples (0 in summaries written before it was added).
    #[serde(default)]
    pub count_last: u64,
    /// Ratio Matching's and Modular Regression's exact last-shot accuracy on this set's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm_last: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_last: Option<f64>,
    /// The model's last-shot accuracy as a fraction of each oracle's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm_frac: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mr_frac: Option<f64>,
}

impl SetSummary {
    /// The summary of `m`, read against the oracles of its inputs (at the last shot of the full
    /// sequence length: a training batch of a context-length curriculum's shorter stage, whose
    /// own last shot comes earlier, gets no oracle fields rather than wrong ones).
    pub fn of(m: &SetMetrics, o: Oracles) -> SetSummary {
        let acc_last = m.acc_last();
        let o = (!m.ends_early()).then_some(o);
        SetSummary {
            loss: m.loss,
            acc: m.acc(),
            acc_last,
            count_last: m.count_last,
            rm_last: o.map(|o| o.rm),
            mr_last: o.map(|o| o.mr),
            rm_frac: o.map(|o| acc_last / o.rm),
            mr_frac: o.map(|o| acc_last / o.mr),
        }
    }

    /// The value of `metric`.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Loss => self.loss,
            Metric::Acc => self.acc,
            Metric::AccLast => self.acc_last,
        }
    }
}

/// The metrics of one evaluation step, as reported in `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub step: u64,
    /// Keyed by [`SetName::as_str`]; read with [`StepSummary::set`].
    pub sets: BTreeMap<String, SetSummary>,
    /// The second label: whether this step's o.o.d.-test last-shot accuracy is o.o.d.
    /// generalization at the Ratio Matching level ([`oracles::ood_gen_rm`]); `None` in
    /// summaries written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_gen_rm: Option<bool>,
}

/// What a [`StepSummary`] is read against: the oracles of the sets, chance (1/p), and the
/// number of evaluations that competed for early stopping (for the noise bound).
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub oracles: SetOracles,
    pub chance: f64,
    pub evals: usize,
}

impl Reading {
    /// The reading of the records of a run of `cfg` on `ds`: the evaluations from the end of
    /// warm-up on are those that competed for `best_ood`.
    pub fn of(cfg: &Config, ds: &Dataset, records: &[Record]) -> Reading {
        Reading {
            oracles: SetOracles::of(ds),
            chance: 1.0 / cfg.task.p as f64,
            evals: records
                .iter()
                .filter(|r| r.step >= cfg.train.warmup)
                .count(),
        }
    }
}

impl StepSummary {
    /// The summary of one evaluation, read against `reading`.
    pub fn of(r: &Record, reading: &Reading) -> StepSummary {
        let sets: BTreeMap<String, SetSummary> = r
            .sets
            .iter()
            .map(|m| {
                (
                    m.set.to_string(),
                    SetSummary::of(m, reading.oracles.get(m.set)),
                )
            })
            .collect();
        let ood_gen_rm = r.set(SetName::OodTest).map(|m| {
            let rm = reading.oracles.get(SetName::OodTest).rm;
            oracles::ood_gen_rm(
                m.acc_last(),
                m.count_last,
                rm,
                reading.chance,
                reading.evals,
            )
        });
        StepSummary {
            step: r.step,
            sets,
            ood_gen_rm,
        }
    }

    /// The summary of set `name`.
    pub fn set(&self, name: SetName) -> Option<&SetSummary> {
        self.sets.get(name.as_str())
    }
}

/// The tasks that one stage of a task-count curriculum adds, as `summary.json` reports them:
/// read at the last evaluation before they entered the training batches (a free o.o.d.
/// measurement: are new tasks solved before they are trained?) and at the end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// The stage's number (from 1: the first stage adds nothing).
    pub stage: usize,
    /// The first step index whose batch holds them.
    pub from: u64,
    /// How many tasks the stage adds.
    pub tasks: usize,
    /// The last evaluation at or before step `from` (none when the run evaluated nothing
    /// before then), on the training inputs.
    pub before: Option<StageReading>,
    /// The last evaluation of the run.
    pub last: Option<StageReading>,
}

/// One evaluation of the tasks a stage adds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageReading {
    pub step: u64,
    #[serde(flatten)]
    pub set: SetSummary,
    /// Whether the last-shot accuracy is above chance by more than the sampling noise of one
    /// evaluation ([`crate::eval::within_chance_noise`] with one evaluation).
    pub above_chance: bool,
}

impl StageSummary {
    /// The summaries of the stages of `ds`'s task-count curriculum in `records`.
    pub fn of(ds: &Dataset, records: &[Record], reading: &Reading) -> Vec<StageSummary> {
        let at = |r: &Record, i: usize| {
            r.added.get(i).map(|m| StageReading {
                step: r.step,
                set: SetSummary::of(m, reading.oracles.train),
                above_chance: !crate::eval::within_chance_noise(
                    m.acc_last(),
                    m.count_last,
                    reading.chance,
                    1,
                )
                .0,
            })
        };
        ds.curriculum
            .added()
            .iter()
            .enumerate()
            .map(|(i, a)| StageSummary {
                stage: a.stage,
                from: a.from,
                tasks: a.tasks.len(),
                before: records
                    .iter()
                    .rev()
                    .find(|r| r.step <= a.from)
                    .and_then(|r| at(r, i)),
                last: records.last().and_then(|r| at(r, i)),
            })
            .collect()
    }
}

/// `summary.json`: the final metrics and the early-stopped ones (the best o.o.d.-test step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub format_version: u32,
    pub name: String,
    pub steps: u64,
    pub params: usize,
    pub config_hash: String,
    /// The last evaluation.
    pub last: Option<StepSummary>,
    /// The evaluation with the best o.o.d.-test last-shot accuracy (early stopping).
    pub best_ood: Option<StepSummary>,
    /// Wall-clock seconds of this process's part of the run, all included.
    pub wall_s: f64,
    /// Steps this process took, and their rate with and without evaluation and checkpoints.
    pub steps_run: u64,
    pub steps_per_s: f64,
    pub train_only_steps_per_s: f64,
    /// The step this process resumed from (0 for a fresh run).
    pub resumed_from: u64,
    /// Where this process ran the training steps: "cpu", or "cuda" and the GPU.
    #[serde(default)]
    pub device: String,
    /// The statistic that chose `best_ood` (`train.early_stop`).
    #[serde(default)]
    pub early_stop: String,
    /// The training interventions that were on ([`Config::interventions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interventions: Vec<String>,
    /// The tasks each stage of a task-count curriculum adds ([`StageSummary`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSummary>,
}

/// A checkpoint that [`Trainer::resume`] could not use: why, and where it was moved.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub step: u64,
    /// The error that loading it gave (names the file).
    pub reason: String,
    /// Its folder now (`checkpoints/corrupt-step_<N>`).
    pub moved_to: std::path::PathBuf,
}

/// One training run in progress.
pub struct Trainer {
    pub cfg: Config,
    pub dir: RunDir,
    pub ds: Dataset,
    pub model: Model,
    pub opt: AdamW,
    /// Optimizer steps taken so far.
    pub step: u64,
    pub records: Vec<Record>,
    pub best: Option<Best>,
    /// The step this trainer started from.
    pub resumed_from: u64,
    /// Checkpoints that resume found corrupt and set aside, newest first.
    pub skipped: Vec<Skipped>,
    hash: String,
    kept: BTreeSet<u64>,
    /// The early log-spaced evaluation steps (`train.eval_early`).
    early: Vec<u64>,
    /// Where the training steps run (not part of the configuration: a run may move between
    /// devices on resume).
    pub device: Device,
    /// On the GPU: how attention is computed (not part of the configuration either; the two
    /// agree to f32 rounding).
    pub gpu_attention: modicl_cuda::Attention,
}

/// Where a trainer runs its training steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    #[default]
    Cpu,
    /// GPU 0 through the CUDA backend (`modicl-cuda`): forward, backward, AdamW and the
    /// evaluations on the device (per-shot counts copied back); the weights and moments come
    /// back to the host at every evaluation and checkpoint step, for the checkpoints.
    Cuda,
}

impl Trainer {
    /// A fresh run of `cfg` in `dir`. An existing run there is an error unless `overwrite`,
    /// which deletes it (only if it is a run directory: it holds `config.toml`).
    pub fn create(cfg: Config, dir: RunDir, overwrite: bool) -> Result<Trainer, TrainError> {
        // Everything that can fail on the config fails before anything is deleted.
        let ds = Dataset::for_run(&cfg)?;
        let model = Model::new(model_config(&cfg), cfg.task.seed)?;
        let opt = AdamW::new(adamw_config(&cfg), model.layout.total);
        let root = &dir.root;
        let occupied = fs::read_dir(root).is_ok_and(|mut e| e.next().is_some());
        if occupied {
            let path = root.display().to_string();
            if !overwrite {
                return Err(TrainError::RunExists { path });
            }
            if !dir.config().is_file() {
                return Err(TrainError::NotARun(format!(
                    "--overwrite refused: {path} is not empty and holds no config.toml, so it is not a run directory"
                )));
            }
            fs::remove_dir_all(root).map_err(|e| TrainError::io(root, e))?;
        }
        rundir::write_atomic(&dir.config(), cfg.to_toml().as_bytes())?;
        let t = Trainer::assemble(cfg, dir, ds, model, opt, Vec::new(), None, 0);
        t.write_metrics()?;
        Ok(t)
    }

    /// Continues the run in `dir` from its newest intact checkpoint (or from the start when
    /// it has none). Metrics recorded after that checkpoint are dropped: they are recomputed,
    /// identically. A newer checkpoint that fails to load (a checksum mismatch, a missing or
    /// unreadable file) is moved to `checkpoints/corrupt-step_<N>` and listed in
    /// [`Trainer::skipped`]; one written by another configuration is an error.
    pub fn resume(dir: RunDir) -> Result<Trainer, TrainError> {
        if !dir.config().is_file() {
            return Err(TrainError::NotARun(format!(
                "{} is not a run directory (no config.toml)",
                dir.root.display()
            )));
        }
        let cfg = dir.read_config()?;
        let ds = Dataset::for_run(&cfg)?;
        let mcfg = model_config(&cfg);
        clean_temporaries(&dir);
        let hash = rundir::config_hash(&cfg);
        // The newest intact checkpoint; corrupt ones are set aside, newest first.
        let mut skipped = Vec::new();
        let mut loaded = None;
        for &step in dir.complete_checkpoints()?.iter().rev() {
            let ck = dir.step_dir(step);
            let load = || -> Result<_, TrainError> {
                let state = rundir::read_state(&ck)?;
                let model = rundir::read_model(&ck, &mcfg)?;
                let opt = rundir::read_optimizer(&ck, &model, adamw_config(&cfg))?;
                Ok((state, model, opt))
            };
            match load() {
                Ok((state, model, opt)) => {
                    if state.config_hash != hash || state.step != step {
                        return Err(TrainError::Corrupt {
                            path: ck.join(rundir::STATE_FILE).display().to_string(),
                            reason: format!(
                                "it belongs to step {} of config {}, not step {step} of this run's config.toml ({hash})",
                                state.step, state.config_hash
                            ),
                        });
                    }
                    loaded = Some((model, opt, step, state.best_ood));
                    break;
                }
                Err(e @ (TrainError::Corrupt { .. } | TrainError::Io { .. })) => {
                    let moved_to = dir.set_aside(step)?;
                    skipped.push(Skipped {
                        step,
                        reason: e.to_string(),
                        moved_to,
                    });
                }
                Err(e) => return Err(e),
            }
        }
        let (model, opt, step, best) = match loaded {
            Some(l) => l,
            None => {
                let model = Model::new(mcfg, cfg.task.seed)?;
                let opt = AdamW::new(adamw_config(&cfg), model.layout.total);
                (model, opt, 0, None)
            }
        };
        let mut records = if dir.metrics().is_file() {
            metrics::read(&dir.metrics(), &dir.shots(), step, ds.seq.examples)?
        } else {
            Vec::new()
        };
        let added = ds.curriculum.added();
        if !added.is_empty() && dir.stages().is_file() {
            metrics::read_stages(&dir.stages(), &mut records, added, ds.seq.examples)?;
        }
        let mut t = Trainer::assemble(cfg, dir, ds, model, opt, records, best, step);
        t.skipped = skipped;
        t.write_metrics()?;
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        cfg: Config,
        dir: RunDir,
        ds: Dataset,
        model: Model,
        opt: AdamW,
        records: Vec<Record>,
        best: Option<Best>,
        step: u64,
    ) -> Trainer {
        let kept = cfg
            .train
            .checkpoints
            .resolve(cfg.train.steps, cfg.train.warmup)
            .into_iter()
            .collect();
        Trainer {
            hash: rundir::config_hash(&cfg),
            early: cfg.train.early_eval_steps(),
            device: Device::Cpu,
            gpu_attention: modicl_cuda::Attention::default(),
            cfg,
            dir,
            ds,
            model,
            opt,
            step,
            records,
            best,
            resumed_from: step,
            skipped: Vec::new(),
            kept,
        }
    }

    /// Whether step `s` is on the regular evaluation schedule: step 1, every `eval_every`
    /// steps, and the last step. Only these can pick the `best_ood` checkpoint.
    pub fn is_eval_step(&self, s: u64) -> bool {
        s == 1 || s.is_multiple_of(self.cfg.train.eval_every) || s == self.cfg.train.steps
    }

    /// Whether step `s` is evaluated: the regular schedule and the early log-spaced steps
    /// (`train.eval_early`), which add rows to the metrics and nothing else.
    pub fn evaluates(&self, s: u64) -> bool {
        self.is_eval_step(s) || self.early.contains(&s)
    }

    /// Trains until the last step, or until `stop` is raised (checked after every step).
    pub fn run(
        &mut self,
        obs: &mut dyn Observer,
        stop: &AtomicBool,
    ) -> Result<Outcome, TrainError> {
        let started = Instant::now();
        let mut step_time = 0.0;
        let steps = self.cfg.train.steps;
        let (lr_peak, warmup) = (self.cfg.optim.lr, self.cfg.train.warmup);
        let batch_rows = self.cfg.task.batch as usize;
        let positions: Vec<usize> = self.ds.seq.target_positions().collect();
        let (seq_len, shots) = (self.ds.seq.seq_len(), self.ds.seq.examples);
        let input_len = self.ds.seq.input_len();
        let mut evaluator =
            Evaluator::for_config(&self.ds, &self.cfg.eval).with_added(&self.ds, &self.cfg.eval);
        let mut batch = self.ds.train_batch(0);
        let precision = self.cfg.train.precision;
        precision.check_device(self.device == Device::Cuda)?;
        let mut backend = match self.device {
            Device::Cpu => Backend::Host {
                shards: Shards::new(&self.model.cfg, batch_rows, input_len),
                short: BTreeMap::new(),
                grads: vec![0f32; self.model.layout.total],
            },
            Device::Cuda if self.ds.curriculum.varies_examples() => {
                return Err(modicl_config::ConfigError::invalid(
                    "curriculum.examples",
                    format!("'{}'", self.cfg.curriculum.examples),
                    "'' with --device cuda (the GPU model is built for one sequence length)",
                )
                .into());
            }
            Device::Cuda => {
                let gpu = modicl_cuda::Gpu::open_cached(Some(&self.dir.root.join("cuda-cache")))?;
                // Before the model: its memory check counts the bf16 copies.
                gpu.set_precision(crate::gpu_precision(precision))?;
                let moments = Some((&self.opt.m[..], &self.opt.v[..], self.opt.step));
                let (model, adam) = (&self.model, self.opt.cfg);
                let mut g =
                    modicl_cuda::GpuModel::new(gpu, model, adam, moments, batch_rows, input_len)?;
                g.set_attention(self.gpu_attention);
                Backend::Gpu(Box::new(g))
            }
        };
        // A process killed between writing a checkpoint and pruning older ones left them.
        self.prune(self.step)?;
        obs.start(self);
        if self.step == 0 && self.kept.contains(&0) {
            self.checkpoint(0)?;
            obs.checkpoint(0);
        }
        let first = self.step;
        // A GPU error inside the loop names the step and the checkpoint a resume starts from.
        let dir = self.dir.clone();
        let dir = &dir;
        let failed = |s: u64| move |e| gpu_failed(dir, s, e);
        while self.step < steps {
            let s = self.step + 1;
            let t0 = Instant::now();
            // The batch of step s is a pure function of (data_seed, s − 1).
            self.ds.fill_train_batch(s - 1, &mut batch);
            // A context-length curriculum's stage may hold fewer examples than the evaluation.
            let layout = self.ds.train_layout(s - 1);
            let k_s = layout.examples;
            let stage_positions: Vec<usize>;
            let (step_len, step_positions) = if k_s == shots {
                (seq_len, &positions[..])
            } else {
                stage_positions = layout.target_positions().collect();
                (layout.seq_len(), &stage_positions[..])
            };
            let lr = lr_at(s, lr_peak, steps, warmup);
            let loss = match &mut backend {
                Backend::Gpu(g) => g
                    .forward(&batch.tokens, seq_len, &positions)
                    .map_err(failed(s))?,
                Backend::Host {
                    shards,
                    short,
                    grads,
                } => {
                    let ws = if k_s == shots {
                        shards
                    } else {
                        short.entry(k_s).or_insert_with(|| {
                            Shards::new(&self.model.cfg, batch_rows, layout.input_len())
                        })
                    };
                    let tokens = &batch.tokens;
                    ws.forward_backward(&self.model, tokens, step_len, step_positions, grads)?
                }
            };
            if !loss.mean.is_finite() {
                return Err(self.non_finite(s, format!("the training loss is {}", loss.mean)));
            }
            match &mut backend {
                Backend::Gpu(g) => {
                    g.backward().map_err(failed(s))?;
                    g.update(lr as f32).map_err(failed(s))?;
                }
                Backend::Host { grads, .. } => {
                    let layout = &self.model.layout;
                    self.opt
                        .update(&mut self.model.params, grads, layout, lr as f32);
                }
            }
            self.step = s;
            let save_every = self.cfg.train.save_every;
            let planned =
                self.kept.contains(&s) || (save_every > 0 && s.is_multiple_of(save_every));
            // The host copy of the weights and moments is what checkpoints (best_ood included)
            // read: bring it up to date from the GPU when one of them may come.
            let mut synced = false;
            if let Backend::Gpu(g) = &backend {
                if planned || self.evaluates(s) {
                    self.pull(g).map_err(failed(s))?;
                    synced = true;
                }
            }
            step_time += t0.elapsed().as_secs_f64();
            let acc = loss.correct as f64 / loss.count.max(1) as f64;
            if self.evaluates(s) {
                // Training-batch metrics come from this step's forward pass (pre-update
                // weights), as the official code's; the four sets see the updated weights.
                let (sets, added) = match &mut backend {
                    Backend::Gpu(g) => {
                        let (correct, loss) = g.target_stats().map_err(failed(s))?;
                        let name = SetName::TrainBatch;
                        let mut sets = vec![SetMetrics::from_targets(name, shots, &correct, &loss)];
                        sets.extend(evaluator.run_gpu(g).map_err(failed(s))?);
                        (sets, evaluator.run_added_gpu(g).map_err(failed(s))?)
                    }
                    Backend::Host { shards, short, .. } => {
                        // A shorter stage's batch has k_s shots; the shots past it have no
                        // samples, and its last shot is its own.
                        let ws = if k_s == shots { &*shards } else { &short[&k_s] };
                        let name = SetName::TrainBatch;
                        let batch_metrics = SetMetrics::from_shards(name, k_s, ws).padded(shots);
                        let mut sets = vec![batch_metrics];
                        sets.extend(evaluator.run(&self.model, shards)?);
                        (sets, evaluator.run_added(&self.model, shards)?)
                    }
                };
                let record = Record {
                    step: s,
                    lr,
                    sets,
                    added,
                };
                self.records.push(record);
                self.write_metrics()?;
                if self.is_eval_step(s) {
                    self.update_best()?;
                }
                obs.eval(self.records.last().expect("just pushed"));
            }
            obs.step(s, lr, loss.mean, acc);
            // Read after the observer, which may raise it (Ctrl-C handlers, tests).
            let interrupted = stop.load(Ordering::SeqCst);
            if planned || interrupted {
                if let Backend::Gpu(g) = &backend {
                    if !synced {
                        self.pull(g).map_err(failed(s))?;
                    }
                }
                self.checkpoint(s)?;
                obs.checkpoint(s);
            }
            if interrupted && s < steps {
                return Ok(Outcome::Interrupted { step: s });
            }
        }
        let wall = started.elapsed().as_secs_f64();
        let run = self.step - first;
        let reading = Reading::of(&self.cfg, &self.ds, &self.records);
        let summary = Summary {
            format_version: FORMAT_VERSION,
            name: self.cfg.train.name.clone(),
            steps,
            params: self.model.layout.total,
            config_hash: self.hash.clone(),
            last: self.records.last().map(|r| StepSummary::of(r, &reading)),
            best_ood: self.best_record().map(|r| StepSummary::of(r, &reading)),
            wall_s: wall,
            steps_run: run,
            steps_per_s: run as f64 / wall.max(1e-9),
            train_only_steps_per_s: run as f64 / step_time.max(1e-9),
            resumed_from: self.resumed_from,
            device: match &backend {
                Backend::Gpu(g) => format!(
                    "cuda: {}, {}, {} attention",
                    g.gpu.info,
                    self.cfg.train.precision.as_str(),
                    g.attention().as_str()
                ),
                Backend::Host { .. } => "cpu".into(),
            },
            early_stop: self.cfg.train.early_stop.as_str().into(),
            interventions: self.cfg.interventions(),
            stages: StageSummary::of(&self.ds, &self.records, &reading),
        };
        let json = serde_json::to_string_pretty(&summary).expect("summary serialises") + "\n";
        rundir::write_atomic(&self.dir.summary(), json.as_bytes())?;
        rundir::write_atomic(&self.dir.done(), b"")?;
        Ok(Outcome::Finished(Box::new(summary)))
    }

    /// Copies the weights and the AdamW state from the GPU into the host model and optimizer.
    fn pull(&mut self, g: &modicl_cuda::GpuModel) -> Result<(), modicl_cuda::CudaError> {
        self.model.params = g.params()?;
        (self.opt.m, self.opt.v, self.opt.step) = g.moments()?;
        Ok(())
    }

    /// The record of the best o.o.d.-test step so far.
    pub fn best_record(&self) -> Option<&Record> {
        let b = self.best.as_ref()?;
        self.records.iter().find(|r| r.step == b.step)
    }

    fn state(&self, step: u64) -> CheckpointState {
        CheckpointState {
            format_version: FORMAT_VERSION,
            step,
            config_hash: self.hash.clone(),
            best_ood: self.best.clone(),
            files: BTreeMap::new(),
        }
    }

    fn non_finite(&self, step: u64, what: String) -> TrainError {
        let last = newest_checkpoint(&self.dir);
        TrainError::NonFinite { step, what, last }
    }

    /// Writes `checkpoints/step_<s>`, then removes older resume checkpoints that are not kept.
    /// Weights that are not all finite are never written: the run stops instead, so the newest
    /// checkpoint is always a good one.
    fn checkpoint(&self, s: u64) -> Result<(), TrainError> {
        if let Some(x) = self.model.params.iter().find(|x| !x.is_finite()) {
            return Err(self.non_finite(s, format!("a weight is {x}")));
        }
        rundir::write_checkpoint(
            &self.dir.step_dir(s),
            &self.model,
            Some(&self.opt),
            &self.state(s),
        )?;
        self.prune(s)
    }

    /// Removes complete checkpoints before step `s` that are not kept (resume checkpoints):
    /// renamed away first, so a kill part-way never leaves a `DONE` folder with files missing.
    fn prune(&self, s: u64) -> Result<(), TrainError> {
        for old in self.dir.complete_checkpoints()? {
            if old < s && !self.kept.contains(&old) {
                let from = self.dir.step_dir(old);
                let to = self.dir.checkpoints().join(format!(".old-step_{old}"));
                fs::rename(&from, &to).map_err(|e| TrainError::io(&from, e))?;
                let _ = fs::remove_dir_all(&to);
            }
        }
        Ok(())
    }

    /// Tracks the best o.o.d.-test evaluation (by `train.early_stop`: last-shot accuracy then
    /// all-shot by default, earliest step on ties) and keeps its weights in
    /// `checkpoints/best_ood`. Only steps from
    /// the end of warm-up on compete: an untrained model's lucky guesses are not a transient.
    fn update_best(&mut self) -> Result<(), TrainError> {
        let r = self.records.last().expect("called after an evaluation");
        let Some(m) = r.set(SetName::OodTest) else {
            return Ok(());
        };
        if r.step < self.cfg.train.warmup {
            return Ok(());
        }
        let candidate = Best {
            step: r.step,
            correct_last: m.correct_last,
            count_last: m.count_last,
            correct: m.correct,
            count: m.count,
            // Recorded only when it decides (state.json of other runs keeps its bytes), and only
            // finite (a non-finite loss never wins).
            loss: (self.cfg.train.early_stop == EarlyStop::Loss && m.loss.is_finite())
                .then_some(m.loss),
        };
        let better = match &self.best {
            None => candidate.count_last > 0,
            Some(b) => candidate.beats(b, self.cfg.train.early_stop),
        };
        if better {
            if let Some(x) = self.model.params.iter().find(|x| !x.is_finite()) {
                return Err(self.non_finite(r.step, format!("a weight is {x}")));
            }
            self.best = Some(candidate);
            let state = self.state(r.step);
            rundir::write_checkpoint(&self.dir.best_ood(), &self.model, None, &state)?;
        }
        Ok(())
    }

    fn write_metrics(&self) -> Result<(), TrainError> {
        rundir::write_atomic(
            &self.dir.metrics(),
            metrics::metrics_csv(&self.records).as_bytes(),
        )?;
        rundir::write_atomic(
            &self.dir.shots(),
            metrics::shots_csv(&self.records).as_bytes(),
        )?;
        let added = self.ds.curriculum.added();
        if !added.is_empty() {
            rundir::write_atomic(
                &self.dir.stages(),
                metrics::stages_csv(&self.records, added).as_bytes(),
            )?;
        }
        if self.cfg.train.tensorboard {
            rundir::write_atomic(
                &self.dir.root.join("tb").join(crate::tensorboard::FILE),
                &crate::tensorboard::event_file(&self.records),
            )?;
        }
        Ok(())
    }
}

/// Removes what a killed process may have left half-written: temporary files and folders.
fn clean_temporaries(dir: &RunDir) {
    for folder in [dir.root.clone(), dir.checkpoints()] {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            // Checkpoint folders (.tmp-*, .old-*) and files mid-write (.<name>.<pid>.tmp).
            let temporary = name.starts_with(".tmp-")
                || name.starts_with(".old-")
                || (name.starts_with('.') && (name.ends_with(".tmp") || name.contains(".tmp-")));
            if temporary {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

/// What runs a run's steps: the CPU engine (a batch in shards, and the gradient) or the GPU
/// backend, which keeps its own buffers.
enum Backend {
    Host {
        shards: Shards,
        /// Shards for the shorter sequences of a context-length curriculum, by examples.
        short: BTreeMap<usize, Shards>,
        grads: Vec<f32>,
    },
    Gpu(Box<modicl_cuda::GpuModel>),
}

/// The newest complete checkpoint of a run, if any.
fn newest_checkpoint(dir: &RunDir) -> Option<u64> {
    dir.complete_checkpoints()
        .ok()
        .and_then(|c| c.last().copied())
}

/// A GPU error at step `step` of the training loop.
fn gpu_failed(dir: &RunDir, step: u64, source: modicl_cuda::CudaError) -> TrainError {
    TrainError::GpuFailed {
        step,
        source,
        last: newest_checkpoint(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A training batch of a context-length curriculum's shorter stage (padded to k shots) has
    /// its own last shot, where the full-length oracles do not apply: no oracle fields.
    #[test]
    fn a_shorter_stage_batch_gets_no_oracle_reading() {
        let o = Oracles { rm: 0.5, mr: 0.8 };
        let full = SetMetrics::from_targets(
            SetName::TrainBatch,
            2,
            &[true, true, false, true],
            &[0.5; 4],
        );
        let s = SetSummary::of(&full, o);
        assert_eq!((s.rm_last, s.rm_frac), (Some(0.5), Some(2.0)));
        let short =
            SetMetrics::from_targets(SetName::TrainBatch, 1, &[true, false], &[0.5; 2]).padded(2);
        let s = SetSummary::of(&short, o);
        assert_eq!((s.acc_last, s.count_last), (0.5, 2));
        assert_eq!(
            (s.rm_last, s.mr_last, s.rm_frac, s.mr_frac),
            (None, None, None, None)
        );
    }
}
