//! Evaluation: loss and accuracy (all shots, last shot, per shot) from exact integer counts, on
//! the training batch and the four fixed evaluation sets.

use std::collections::HashMap;

use modicl_config::EvalConfig;
use modicl_data::{Batch, Dataset, EvalSet};
use modicl_engine::{EngineError, Model, Shards};

use crate::names::{Metric, SetName};

/// Metrics of one set at one step. Accuracies are ratios of the integer counts.
#[derive(Clone, Debug, PartialEq)]
pub struct SetMetrics {
    pub set: SetName,
    /// Mean cross-entropy over every scored position (all shots).
    pub loss: f64,
    pub correct: u64,
    pub count: u64,
    /// Correct predictions at the last shot (the query after k − 1 examples).
    pub correct_last: u64,
    pub count_last: u64,
    /// Per shot i = 0..k−1 (i examples in context): correct predictions and predictions.
    pub shot_correct: Vec<u64>,
    pub shot_count: Vec<u64>,
}

/// Whether the best of `evals` evaluations, accuracy `acc` on `n` samples each, is within
/// sampling noise of chance `chance` (1/p): below chance + (sqrt(2 ln evals) + 2)·σ with
/// σ = sqrt(chance·(1 − chance)/n). Under chance alone, the best of `evals` draws sits
/// about sqrt(2 ln evals)·σ above it; two more σ keep a false "above chance" rare. Returns
/// the verdict and the threshold.
pub fn within_chance_noise(acc: f64, n: u64, chance: f64, evals: usize) -> (bool, f64) {
    let sigma = (chance * (1.0 - chance) / n.max(1) as f64).sqrt();
    let z = (2.0 * (evals.max(1) as f64).ln()).sqrt() + 2.0;
    let threshold = chance + z * sigma;
    (acc < threshold, threshold)
}

impl SetMetrics {
    fn new(set: SetName, shots: usize) -> SetMetrics {
        SetMetrics {
            set,
            loss: 0.0,
            correct: 0,
            count: 0,
            correct_last: 0,
            count_last: 0,
            shot_correct: vec![0; shots],
            shot_count: vec![0; shots],
        }
    }
    /// Accuracy over all shots.
    pub fn acc(&self) -> f64 {
        ratio(self.correct, self.count)
    }
    /// Accuracy at the last shot.
    pub fn acc_last(&self) -> f64 {
        ratio(self.correct_last, self.count_last)
    }
    /// The value of `metric`.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Loss => self.loss,
            Metric::Acc => self.acc(),
            Metric::AccLast => self.acc_last(),
        }
    }
    /// These metrics with shots up to `k`, the shots past its own counted as having no
    /// samples (a training batch of a context-length curriculum's shorter stage); the totals
    /// and the last shot stay its own.
    pub fn padded(mut self, k: usize) -> SetMetrics {
        if self.shot_count.len() < k {
            self.shot_count.resize(k, 0);
            self.shot_correct.resize(k, 0);
        }
        self
    }

    /// Whether these metrics end before their last shot: a training batch of a
    /// context-length curriculum's shorter stage, [`SetMetrics::padded`] to k shots (its last
    /// shot is its own, earlier one).
    pub fn ends_early(&self) -> bool {
        self.shot_count.last() == Some(&0) && self.count_last > 0
    }

    /// Accuracy at shot `i`.
    pub fn acc_shot(&self, i: usize) -> f64 {
        ratio(self.shot_correct[i], self.shot_count[i])
    }

    /// Adds the scored positions a forward pass left in `ws` (rows × shots, sequence-major).
    /// `loss_sum` accumulates in f64 in a fixed order, so results do not depend on threads.
    fn add(&mut self, correct: &[bool], loss: &[f32], loss_sum: &mut f64) {
        let k = self.shot_count.len();
        for (j, (&c, &l)) in correct.iter().zip(loss).enumerate() {
            let shot = j % k;
            self.shot_count[shot] += 1;
            self.shot_correct[shot] += c as u64;
            *loss_sum += l as f64;
        }
        self.count = self.shot_count.iter().sum();
        self.correct = self.shot_correct.iter().sum();
        self.count_last = self.shot_count[k - 1];
        self.correct_last = self.shot_correct[k - 1];
    }

    /// The metrics of the forward pass that `ws` holds (the training batch).
    pub fn from_shards(set: SetName, shots: usize, ws: &Shards) -> SetMetrics {
        SetMetrics::from_targets(set, shots, ws.target_correct(), ws.target_loss())
    }

    /// Adds per-shot counts of `seqs` sequences: correct answers and summed loss per shot.
    fn add_counts(&mut self, correct: &[u32], loss: &[f64], seqs: u64, loss_sum: &mut f64) {
        for (j, (&c, &l)) in correct.iter().zip(loss).enumerate() {
            self.shot_count[j] += seqs;
            self.shot_correct[j] += c as u64;
            *loss_sum += l;
        }
        let k = self.shot_count.len();
        self.count = self.shot_count.iter().sum();
        self.correct = self.shot_correct.iter().sum();
        self.count_last = self.shot_count[k - 1];
        self.correct_last = self.shot_correct[k - 1];
    }

    /// The metrics of per-target correctness and loss in (sequence, shot) order (a forward
    /// pass on either device).
    pub fn from_targets(set: SetName, shots: usize, correct: &[bool], loss: &[f32]) -> SetMetrics {
        let mut m = SetMetrics::new(set, shots);
        let mut sum = 0.0;
        m.add(correct, loss, &mut sum);
        m.loss = sum / m.count.max(1) as f64;
        m
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// The four fixed evaluation sets of a dataset (and, for a run with a task-count curriculum,
/// the sets of the tasks each stage adds) and the workspaces to run them.
pub struct Evaluator {
    sets: Vec<(SetName, Batch)>,
    /// The sets of [`Evaluator::with_added`], in stage order: tasks of the pre-training list on
    /// the training inputs, so their metrics carry the name `id_train`.
    added: Vec<(SetName, Batch)>,
    positions: Vec<usize>,
    shots: usize,
    /// Workspaces for chunks that do not fit the caller's, keyed by rows.
    spare: HashMap<usize, Shards>,
}

impl Evaluator {
    /// Builds the four sets with `per_task` sequences per task.
    pub fn new(ds: &Dataset, per_task: usize) -> Evaluator {
        Evaluator::sized(ds, |_| per_task)
    }

    /// Builds the four sets as the `[eval]` section sizes them: `seqs_per_task` sequences per
    /// task, raised for sets with few tasks when `target_se` is set ([`EvalConfig::per_task`]).
    pub fn for_config(ds: &Dataset, cfg: &EvalConfig) -> Evaluator {
        Evaluator::sized(ds, |e| cfg.per_task(ds.eval_parts(e).0.len()))
    }

    /// Adds the sets of the tasks that each stage of the dataset's task-count curriculum adds
    /// ([`Dataset::added_set`]), sized as `cfg` sizes a set of that many tasks; evaluated by
    /// [`Evaluator::run_added`]. Nothing is added when the curriculum is off.
    pub fn with_added(mut self, ds: &Dataset, cfg: &EvalConfig) -> Evaluator {
        self.added = ds
            .curriculum
            .added()
            .iter()
            .map(|a| {
                let per_task = cfg.per_task(a.tasks.len());
                (SetName::IdTrain, ds.added_set(a, per_task))
            })
            .collect();
        self
    }

    /// Builds the four sets with `per_task(set)` sequences per task.
    fn sized(ds: &Dataset, per_task: impl Fn(EvalSet) -> usize) -> Evaluator {
        Evaluator {
            sets: EvalSet::ALL
                .iter()
                .map(|&e| (SetName::from(e), ds.eval_set(e, per_task(e))))
                .collect(),
            added: Vec::new(),
            positions: ds.seq.target_positions().collect(),
            shots: ds.seq.examples,
            spare: HashMap::new(),
        }
    }

    /// Evaluates `model` on the four sets, in chunks of `ws.batch()` rows (the last chunk of a
    /// set in workspaces of its own, built once). `ws` is overwritten.
    pub fn run(&mut self, model: &Model, ws: &mut Shards) -> Result<Vec<SetMetrics>, EngineError> {
        self.host(false, model, ws)
    }

    /// As [`Evaluator::run`], on the sets of [`Evaluator::with_added`] (empty without them).
    pub fn run_added(
        &mut self,
        model: &Model,
        ws: &mut Shards,
    ) -> Result<Vec<SetMetrics>, EngineError> {
        self.host(true, model, ws)
    }

    fn host(
        &mut self,
        added: bool,
        model: &Model,
        ws: &mut Shards,
    ) -> Result<Vec<SetMetrics>, EngineError> {
        let Evaluator {
            sets,
            added: added_sets,
            positions,
            shots,
            spare,
        } = self;
        let chunk = ws.batch();
        let sets = if added { added_sets } else { sets };
        by_chunks(sets, *shots, chunk, |b, tokens, rows, m, sum| {
            let w = if rows == chunk {
                &mut *ws
            } else {
                spare
                    .entry(rows)
                    .or_insert_with(|| Shards::new(&model.cfg, rows, b.seq_len - 1))
            };
            w.forward(model, tokens, b.seq_len, positions)?;
            m.add(w.target_correct(), w.target_loss(), sum);
            Ok(())
        })
    }

    /// As [`Evaluator::run`], on the GPU: chunks of at most the device model's batch, and per
    /// chunk only the per-shot counts and loss sums copied back. The device's buffers are
    /// overwritten.
    pub fn run_gpu(
        &mut self,
        dev: &mut modicl_cuda::GpuModel,
    ) -> Result<Vec<SetMetrics>, modicl_cuda::CudaError> {
        self.device(false, dev)
    }

    /// As [`Evaluator::run_added`], on the GPU.
    pub fn run_added_gpu(
        &mut self,
        dev: &mut modicl_cuda::GpuModel,
    ) -> Result<Vec<SetMetrics>, modicl_cuda::CudaError> {
        self.device(true, dev)
    }

    fn device(
        &mut self,
        added: bool,
        dev: &mut modicl_cuda::GpuModel,
    ) -> Result<Vec<SetMetrics>, modicl_cuda::CudaError> {
        let positions = &self.positions;
        let sets = if added { &self.added } else { &self.sets };
        by_chunks(sets, self.shots, dev.batch(), |b, tokens, rows, m, sum| {
            dev.forward(tokens, b.seq_len, positions)?;
            let (correct, loss) = dev.shot_counts(positions.len())?;
            m.add_counts(&correct, &loss, rows as u64, sum);
            Ok(())
        })
    }
}

/// The metrics of each set, from `eval` called on its sequences in chunks of at most `chunk`:
/// (set's batch, the chunk's tokens, its sequences, the set's metrics, its loss sum).
fn by_chunks<E>(
    sets: &[(SetName, Batch)],
    shots: usize,
    chunk: usize,
    mut eval: impl FnMut(&Batch, &[u32], usize, &mut SetMetrics, &mut f64) -> Result<(), E>,
) -> Result<Vec<SetMetrics>, E> {
    let mut out = Vec::with_capacity(sets.len());
    for (set, b) in sets {
        let mut m = SetMetrics::new(*set, shots);
        let mut sum = 0.0;
        let mut r0 = 0;
        while r0 < b.rows {
            let rows = chunk.min(b.rows - r0);
            let tokens = &b.tokens[r0 * b.seq_len..(r0 + rows) * b.seq_len];
            eval(b, tokens, rows, &mut m, &mut sum)?;
            r0 += rows;
        }
        m.loss = sum / m.count.max(1) as f64;
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::within_chance_noise;

    #[test]
    fn chance_noise_scales_with_samples_and_evaluations() {
        // p = 11, 840 last-shot samples: sigma = 0.0099; best of 21 evaluations: bound
        // 1/11 + (sqrt(2 ln 21) + 2)·sigma = 0.1353.
        let chance = 1.0 / 11.0;
        let (noise, bound) = within_chance_noise(0.0905, 840, chance, 21);
        assert!(noise);
        assert!((bound - 0.1353).abs() < 5e-4, "{bound}");
        assert!(!within_chance_noise(0.14, 840, chance, 21).0);
        // More evaluations raise the bound; more samples lower it.
        assert!(within_chance_noise(0.13, 840, chance, 200).0);
        assert!(!within_chance_noise(0.13, 8400, chance, 21).0);
        // Below chance is noise too.
        assert!(within_chance_noise(0.0, 840, chance, 1).0);
    }
}
