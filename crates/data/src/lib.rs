//! modicl's tasks and data.
//!
//! Everything a run trains and evaluates on, as a pure function of its [`TaskConfig`]:
//!
//! - the task family z = W·X mod p ([`vectors`]);
//! - the pre-training and o.o.d. task sets ([`TaskSets`]: the parallelogram rule, random tasks,
//!   explicit lists, or the official lists);
//! - one split of the p^n_var inputs into train and test inputs, shared by all tasks;
//! - balanced training batches, where the batch of step s depends on `(data_seed, s)` alone;
//! - the four fixed evaluation sets (i.d./o.o.d. tasks x train/test inputs);
//! - what the two candidate algorithms reach on them ([`oracle`]: Ratio Matching and Modular
//!   Regression as exact predictors and their per-shot accuracy curves).
//!
//! The crate has no numeric-framework dependency; tokens are `u32` ids equal to the values.

pub mod batch;
mod error;
pub mod export;
pub mod npy;
pub mod oracle;
pub mod tasks;
pub mod vectors;
pub mod zn;

pub use batch::{Batch, SequenceLayout};
pub use error::DataError;
pub use modicl_config::{
    BatchLayout, ConfigError, CurriculumSection, InputSplit as SplitKind, OodCap, TaskConfig,
    TaskSource,
};
pub use tasks::TaskSets;
pub use vectors::{label, Space, Vectors};

use modicl_core::numpy::Mt19937;
use modicl_core::rng::{Domain, Rng};

/// The four evaluation sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EvalSet {
    /// Pre-training tasks on training inputs.
    IdTrain,
    /// Pre-training tasks on held-out inputs.
    IdTest,
    /// O.o.d. tasks on training inputs.
    OodTrain,
    /// O.o.d. tasks on held-out inputs.
    OodTest,
}

impl EvalSet {
    pub const ALL: [EvalSet; 4] = [
        EvalSet::IdTrain,
        EvalSet::IdTest,
        EvalSet::OodTrain,
        EvalSet::OodTest,
    ];

    /// `id_train`, `id_test`, `ood_train`, `ood_test`.
    pub fn name(self) -> &'static str {
        match self {
            EvalSet::IdTrain => "id_train",
            EvalSet::IdTest => "id_test",
            EvalSet::OodTrain => "ood_train",
            EvalSet::OodTest => "ood_test",
        }
    }
}

/// The train/test split of the inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSplit {
    /// The first round(alpha · p^n_var) inputs of a seeded permutation.
    pub train: Vectors,
    /// The rest.
    pub test: Vectors,
}

/// The order of the inputs (indices into the space, `x·p + y` for two variables) whose first
/// `n_train` are the training inputs.
pub fn split_permutation(
    kind: SplitKind,
    data_seed: u64,
    size: u32,
) -> Result<Vec<u32>, DataError> {
    let mut perm: Vec<u32> = (0..size).collect();
    match kind {
        SplitKind::Modicl => {
            let n = perm.len();
            Rng::stream(data_seed, Domain::InputSplit, 0).partial_shuffle(&mut perm, n)
        }
        SplitKind::Official => {
            let seed = u32::try_from(data_seed).map_err(|_| {
                ConfigError::invalid(
                    "task.data_seed",
                    data_seed,
                    "an integer in 0..=4294967295 with task.split = 'official' (numpy's seed range)",
                )
            })?;
            Mt19937::new(seed).shuffle(&mut perm);
        }
    }
    Ok(perm)
}

/// Everything derived from a task configuration.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub config: TaskConfig,
    pub space: Space,
    pub tasks: TaskSets,
    pub inputs: InputSplit,
    pub seq: SequenceLayout,
    /// Things worth telling the user that are not errors (e.g. a p that is not prime).
    pub warnings: Vec<String>,
    /// The training interventions ([`Dataset::with_curriculum`]); off by default.
    pub curriculum: Curriculum,
}

/// The training interventions a dataset's batches follow: a task-count curriculum, a
/// context-length curriculum and a few-task mixture. Evaluation sets never change.
#[derive(Clone, Debug, Default)]
pub struct Curriculum {
    /// The schedules, as configured (their lookups: [`Stages::at`](modicl_config::Stages::at),
    /// [`CurriculumSection::mix_at`]).
    section: CurriculumSection,
    /// The tasks of each stage of the task-count curriculum, in stage order: prefixes of the
    /// pre-training list.
    prefixes: Vec<Vectors>,
    /// What each stage after the first adds to the one before ([`Curriculum::added`]).
    added: Vec<AddedTasks>,
}

impl Curriculum {
    /// The number of pre-training tasks that step index `index` trains on, if a task-count
    /// curriculum is on.
    pub fn tasks_at(&self, index: u64) -> Option<usize> {
        self.stage(index).map(Vectors::len)
    }

    /// The examples per sequence of step index `index`, if a context-length curriculum is on.
    pub fn examples_at(&self, index: u64) -> Option<usize> {
        self.section.examples.at(index).map(|s| s.count as usize)
    }

    /// Whether a context-length curriculum is on.
    pub fn varies_examples(&self) -> bool {
        self.section.examples.is_on()
    }

    fn stage(&self, index: u64) -> Option<&Vectors> {
        let stage = self.section.tasks.at(index)?;
        self.prefixes
            .iter()
            .find(|v| v.len() == stage.count as usize)
    }

    /// Sequences of a batch of `rows` that step index `index` relabels to the mixture's
    /// tasks: round(rows · fraction), the fraction falling linearly from `mix_fraction` at
    /// index 0 to 0 at `mix_until`.
    pub fn mixed_rows(&self, index: u64, rows: usize) -> usize {
        (self.section.mix_at(index) * rows as f64).round() as usize
    }

    /// How many of the first pre-training tasks the mixture's sequences go to.
    fn mix_tasks(&self) -> usize {
        self.section.mix_tasks as usize
    }

    /// The tasks each stage of the task-count curriculum adds to the one before (every stage
    /// but the first), in stage order; empty when the curriculum is off.
    pub fn added(&self) -> &[AddedTasks] {
        &self.added
    }
}

/// The tasks that one stage of a task-count curriculum adds: a free o.o.d. measurement until
/// they enter the training batches.
#[derive(Clone, Debug, PartialEq)]
pub struct AddedTasks {
    /// The stage's number (0 is the first stage, which adds nothing, so this is at least 1).
    pub stage: usize,
    /// The first step index whose batch holds them (step `from` + 1 is the first step trained
    /// on them; an evaluation at step `from` has never seen them).
    pub from: u64,
    /// The tasks, in list order.
    pub tasks: Vectors,
}

impl Dataset {
    /// Builds the task sets and the input split, checking everything that the configuration
    /// alone could not.
    pub fn build(cfg: &TaskConfig) -> Result<Dataset, DataError> {
        let space = Space::new(cfg.p, cfg.n_var).ok_or_else(|| {
            let max_dim = (1..=8u32)
                .take_while(|&d| (cfg.p as u64).pow(d) <= vectors::MAX_SPACE)
                .last()
                .unwrap_or(0);
            ConfigError::invalid(
                "task.n_var",
                format!("{} (with task.p = {})", cfg.n_var, cfg.p),
                format!(
                    "p^n_var <= {}, i.e. n_var <= {max_dim} for p = {}",
                    vectors::MAX_SPACE,
                    cfg.p
                ),
            )
        })?;
        let warnings = cfg.warnings();
        let n = space.size as usize;
        let n_train = (cfg.alpha * n as f64).round_ties_even() as usize;
        if n_train == 0 || n_train >= n {
            return Err(ConfigError::invalid(
                "task.alpha",
                format!("{} ({} of {} inputs for training)", cfg.alpha, n_train, n),
                "a fraction that leaves at least one training and one test input",
            )
            .into());
        }
        let tasks = tasks::build(cfg, space)?;
        let n_id = tasks.id.len();
        if !(cfg.batch as usize).is_multiple_of(n_id) {
            let below = cfg.batch as usize / n_id * n_id;
            let above = below + n_id;
            let near = if below == 0 {
                format!("{above}")
            } else {
                format!("{below} or {above}")
            };
            return Err(ConfigError::invalid(
                "task.batch",
                cfg.batch,
                format!("a multiple of the {n_id} pre-training tasks (nearest: {near})"),
            )
            .into());
        }
        let perm = split_permutation(cfg.split, cfg.data_seed, space.size)?;
        let inputs = InputSplit {
            train: space.vectors(&perm[..n_train]),
            test: space.vectors(&perm[n_train..]),
        };
        Ok(Dataset {
            config: cfg.clone(),
            space,
            tasks,
            inputs,
            seq: SequenceLayout {
                n_var: cfg.n_var as usize,
                examples: cfg.examples as usize,
            },
            warnings,
            curriculum: Curriculum::default(),
        })
    }

    /// The dataset a run of `cfg` trains on: its tasks and inputs, and its curriculum.
    pub fn for_run(cfg: &modicl_config::Config) -> Result<Dataset, DataError> {
        Dataset::build(&cfg.task)?.with_curriculum(&cfg.curriculum)
    }

    /// This dataset with the training interventions of `c`, checked against its tasks: each
    /// stage's count divides the batch, the last stage trains every pre-training task, and
    /// the mixture's tasks are pre-training tasks.
    pub fn with_curriculum(mut self, c: &CurriculumSection) -> Result<Dataset, DataError> {
        let (n_id, batch) = (self.n_id(), self.config.batch);
        let stages = &c.tasks.0;
        if let Some(last) = stages.last() {
            let bad = |why: String| {
                DataError::from(ConfigError::invalid(
                    "curriculum.tasks",
                    format!("'{}'", c.tasks),
                    why,
                ))
            };
            if last.count as usize != n_id {
                return Err(bad(format!(
                    "stages whose last count is the {n_id} pre-training tasks"
                )));
            }
            if let Some(s) = stages.iter().find(|s| !batch.is_multiple_of(s.count)) {
                return Err(bad(format!(
                    "counts that divide task.batch = {batch} ({} does not)",
                    s.count
                )));
            }
        }
        // The mixture's tasks are the first ones, which every stage trains.
        let first = stages.first().map_or(n_id, |s| s.count as usize);
        if c.mix_fraction > 0.0 && c.mix_tasks as usize > first {
            let why = if first < n_id {
                format!("at most the {first} tasks of the first stage of curriculum.tasks")
            } else {
                format!("at most the {n_id} pre-training tasks")
            };
            return Err(ConfigError::invalid("curriculum.mix_tasks", c.mix_tasks, why).into());
        }
        let d = self.tasks.id.dim;
        let tasks = |lo: u32, hi: u32| Vectors {
            dim: d,
            data: self.tasks.id.data[lo as usize * d..hi as usize * d].to_vec(),
        };
        self.curriculum = Curriculum {
            section: c.clone(),
            prefixes: stages.iter().map(|s| tasks(0, s.count)).collect(),
            added: stages
                .windows(2)
                .enumerate()
                .map(|(i, w)| AddedTasks {
                    stage: i + 1,
                    from: w[1].from,
                    tasks: tasks(w[0].count, w[1].count),
                })
                .collect(),
        };
        Ok(self)
    }

    pub fn n_id(&self) -> usize {
        self.tasks.id.len()
    }
    pub fn n_ood(&self) -> usize {
        self.tasks.ood.len()
    }
    /// Sequences of each pre-training task in a training batch.
    pub fn seqs_per_task(&self) -> usize {
        self.config.batch as usize / self.n_id()
    }

    /// The training batch of `step`: a pure function of `(data_seed, step)`.
    pub fn train_batch(&self, step: u64) -> Batch {
        let mut b = Batch::default();
        self.fill_train_batch(step, &mut b);
        b
    }

    /// [`Dataset::train_batch`] into an existing buffer, allocating nothing once it has the shape.
    ///
    /// With a task-count curriculum the batch holds the same number of sequences, spread over
    /// the stage's tasks (a prefix of the list); with a context-length curriculum its
    /// sequences hold the stage's examples; with a few-task mixture, evenly spaced rows are
    /// then relabelled to the mixture's tasks (their inputs kept).
    pub fn fill_train_batch(&self, step: u64, out: &mut Batch) {
        let mut rng = Rng::stream(self.config.data_seed, Domain::TrainBatch, step);
        let tasks = self.curriculum.stage(step).unwrap_or(&self.tasks.id);
        let seq = self.train_layout(step);
        batch::fill(
            out,
            batch::Draw {
                tasks,
                inputs: &self.inputs.train,
                per_task: self.config.batch as usize / tasks.len(),
            },
            self.space.p,
            seq,
            self.config.layout,
            &mut rng,
        );
        let mixed = self.curriculum.mixed_rows(step, out.rows);
        let mix = self.curriculum.mix_tasks();
        for i in 0..mixed {
            let r = i * out.rows / mixed;
            let t = i % mix;
            batch::relabel(out, r, t, self.tasks.id.get(t), self.space.p, seq);
        }
    }

    /// The sequence layout of the training batch of step index `step`: the dataset's, or the
    /// context-length curriculum's examples per sequence at that step.
    pub fn train_layout(&self, step: u64) -> SequenceLayout {
        SequenceLayout {
            examples: self
                .curriculum
                .examples_at(step)
                .unwrap_or(self.seq.examples),
            ..self.seq
        }
    }

    /// The tasks and inputs of an evaluation set.
    pub fn eval_parts(&self, set: EvalSet) -> (&Vectors, &Vectors) {
        match set {
            EvalSet::IdTrain => (&self.tasks.id, &self.inputs.train),
            EvalSet::IdTest => (&self.tasks.id, &self.inputs.test),
            EvalSet::OodTrain => (&self.tasks.ood, &self.inputs.train),
            EvalSet::OodTest => (&self.tasks.ood, &self.inputs.test),
        }
    }

    /// The evaluation set of the tasks that a task-count curriculum's stage adds: `per_task`
    /// sequences of each, on the training inputs (as the batches that will train them). A pure
    /// function of `(data_seed, stage, per_task)`; uses the configured batch layout.
    pub fn added_set(&self, added: &AddedTasks, per_task: usize) -> Batch {
        let rng = Rng::stream(self.config.data_seed, Domain::StageSet, added.stage as u64);
        self.fixed_set(&added.tasks, &self.inputs.train, per_task, rng)
    }

    /// A fixed evaluation set: `per_task` sequences of every task of the set, task-major, with
    /// every example drawn from the set's inputs (context and query alike). A pure function of
    /// `(data_seed, set, per_task)`; uses the configured batch layout.
    pub fn eval_set(&self, set: EvalSet, per_task: usize) -> Batch {
        let (tasks, inputs) = self.eval_parts(set);
        let rng = Rng::stream(self.config.data_seed, Domain::EvalSet, set as u64);
        self.fixed_set(tasks, inputs, per_task, rng)
    }

    /// `per_task` sequences of every task of `tasks`, task-major, every example drawn from
    /// `inputs` with `rng`, in the configured batch layout.
    fn fixed_set(&self, tasks: &Vectors, inputs: &Vectors, per_task: usize, mut rng: Rng) -> Batch {
        let mut b = Batch::default();
        batch::fill(
            &mut b,
            batch::Draw {
                tasks,
                inputs,
                per_task,
            },
            self.space.p,
            self.seq,
            self.config.layout,
            &mut rng,
        );
        b
    }
}
