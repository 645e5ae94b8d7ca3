//! The `task` section: which tasks, which inputs, how sequences and batches are formed.
//!
//! Its defaults (and those of the `eval` section) are declared with the keys, in the crate
//! root's table.

use std::fmt;
use std::path::PathBuf;

use crate::kind::{self, Kind};
use crate::ConfigError;

/// The modulus of the official code's task lists.
pub const OFFICIAL_P: u32 = 29;

/// Where the pre-training task list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskSource {
    /// Drawn with `task.seed`: `n_base` parallelogram groups plus `n_random` random tasks.
    Generate,
    /// An explicit list read from a file (JSON or text, one task per line).
    File(PathBuf),
    /// One of the exact lists drawn by the official code (p = 29), embedded in modicl.
    Official { seed: u64, n_base: u32 },
}

impl TaskSource {
    /// What [`TaskSource::parse`] accepts, as shown in errors.
    pub const ALLOWED: &'static str = "'generate', 'file:PATH' or 'official:seed=S,n_base=N'";

    /// Parses `generate`, `file:PATH` or `official:seed=S,n_base=N`.
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        const ALLOWED: &str = TaskSource::ALLOWED;
        let s = s.trim();
        if s == "generate" {
            return Ok(TaskSource::Generate);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(ConfigError::invalid(key, format!("'{s}'"), ALLOWED));
            }
            return Ok(TaskSource::File(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("official:") {
            let (mut seed, mut n_base) = (None, None);
            for part in rest.split(',') {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| ConfigError::invalid(key, format!("'{s}'"), ALLOWED))?;
                let v: u64 = v.trim().parse().map_err(|_| {
                    ConfigError::invalid(
                        key,
                        format!("'{s}'"),
                        format!("{ALLOWED} with integer S and N"),
                    )
                })?;
                let slot = match k.trim() {
                    "seed" => &mut seed,
                    "n_base" => &mut n_base,
                    _ => return Err(ConfigError::invalid(key, format!("'{s}'"), ALLOWED)),
                };
                if slot.replace(v).is_some() {
                    let allowed = format!("{ALLOWED}, each key once");
                    return Err(ConfigError::invalid(key, format!("'{s}'"), allowed));
                }
            }
            return match (seed, n_base) {
                (Some(seed), Some(n)) if n <= u32::MAX as u64 => Ok(TaskSource::Official {
                    seed,
                    n_base: n as u32,
                }),
                _ => Err(ConfigError::invalid(key, format!("'{s}'"), ALLOWED)),
            };
        }
        Err(ConfigError::invalid(key, format!("'{s}'"), ALLOWED))
    }
}

impl fmt::Display for TaskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskSource::Generate => write!(f, "generate"),
            TaskSource::File(p) => write!(f, "file:{}", p.display()),
            TaskSource::Official { seed, n_base } => {
                write!(f, "official:seed={seed},n_base={n_base}")
            }
        }
    }
}

/// How the inputs of a training batch are shared between tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchLayout {
    /// As the official code: every task sees the identical stream of inputs within a batch;
    /// sequence j of task t and of task t' differ only in their z tokens.
    Shared,
    /// Each task draws its own stream of inputs.
    Independent,
}

impl BatchLayout {
    /// The names of the variants, in their order.
    pub const NAMES: &'static [&'static str] = &["shared", "independent"];
    const ALL: [BatchLayout; 2] = [BatchLayout::Shared, BatchLayout::Independent];

    /// Parses one of [`BatchLayout::NAMES`].
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Kind::Enum(Self::NAMES).pick(key, s).map(|i| Self::ALL[i])
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// How the p^n_var inputs are split into training and test inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputSplit {
    /// A permutation from modicl's own generator (`Rng`, keyed by `task.data_seed`).
    Modicl,
    /// The official code's permutation: numpy's legacy `np.random.seed(data_seed)` and
    /// `np.random.shuffle`, bit for bit (data_seed below 2^32).
    Official,
}

impl InputSplit {
    /// The names of the variants, in their order.
    pub const NAMES: &'static [&'static str] = &["modicl", "official"];
    const ALL: [InputSplit; 2] = [InputSplit::Modicl, InputSplit::Official];

    /// Parses one of [`InputSplit::NAMES`].
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Kind::Enum(Self::NAMES).pick(key, s).map(|i| Self::ALL[i])
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// How many o.o.d. tasks to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OodCap {
    /// At most this many (the official code keeps 256).
    Count(u32),
    /// Every task vector that is not a pre-training task.
    All,
}

impl OodCap {
    /// What [`OodCap::parse`] accepts, as shown in errors.
    pub const ALLOWED: &'static str = "an integer in 1..=16777216 or \"all\"";

    /// Reads a count in `1..=2^24` or the string `"all"`.
    pub fn parse(key: &str, v: &toml::Value) -> Result<Self, ConfigError> {
        if v.as_str() == Some("all") {
            return Ok(OodCap::All);
        }
        match kind::int(1, 1 << 24).read(key, v) {
            Ok(toml::Value::Integer(n)) => Ok(OodCap::Count(n as u32)),
            _ => Err(ConfigError::invalid(key, v, Self::ALLOWED)),
        }
    }

    /// The value as written in a config file.
    pub fn to_value(self) -> toml::Value {
        match self {
            OodCap::Count(n) => toml::Value::Integer(n.into()),
            OodCap::All => toml::Value::String("all".into()),
        }
    }
}

/// The `task` section.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskConfig {
    /// Modulus p of the task family z = W·X mod p.
    pub p: u32,
    /// Number of input variables (length of W and X).
    pub n_var: u32,
    /// Parallelogram base tasks; each brings three partners (4·n_base tasks).
    pub n_base: u32,
    /// Further random pre-training tasks drawn from the rest.
    pub n_random: u32,
    /// Fraction of the p^n_var inputs used for training.
    pub alpha: f64,
    /// Examples (x, y, z) per sequence.
    pub examples: u32,
    /// Cap on the number of o.o.d. tasks.
    pub ood_cap: OodCap,
    /// Official compatibility: floor the o.o.d. count to a multiple of 8.
    pub official_compat: bool,
    /// Seed of the task draw (and, later, of model initialisation).
    pub seed: u64,
    /// Seed of the input split, training batches and evaluation sets.
    pub data_seed: u64,
    /// Sequences per training batch; must be a multiple of the number of pre-training tasks.
    pub batch: u32,
    /// Where the pre-training tasks come from.
    pub source: TaskSource,
    /// How inputs are shared between tasks in a batch.
    pub layout: BatchLayout,
    /// How the inputs are split into training and test inputs.
    pub split: InputSplit,
}

/// The `eval` section.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// Sequences per task in each of the four evaluation sets.
    pub seqs_per_task: u32,
    /// The worst-case last-shot standard error each set is sized for (0 = off).
    pub target_se: f64,
}

impl EvalConfig {
    /// The sizing in words: "16 sequences per task", and the per-set minimum when it is set.
    pub fn describe(&self) -> String {
        let mut s = format!("{} sequences per task", self.seqs_per_task);
        if self.target_se > 0.0 {
            let n = (0.25 / (self.target_se * self.target_se)).ceil();
            s += &format!(
                " or more, at least {n} per set (eval.target_se = {})",
                self.target_se
            );
        }
        s
    }

    /// This sizing, or, when `seqs_per_task` is given (a command's `--seqs-per-task`), exactly
    /// that many sequences per task in every set.
    pub fn overridden(&self, seqs_per_task: Option<u32>) -> EvalConfig {
        match seqs_per_task {
            Some(n) => EvalConfig {
                seqs_per_task: n,
                target_se: 0.0,
            },
            None => self.clone(),
        }
    }

    /// Sequences per task of a set with `tasks` tasks: `seqs_per_task`, raised so that the set
    /// holds at least ceil(0.25 / target_se^2) sequences (a binomial standard error of at most
    /// `target_se` at any accuracy) when `target_se` is set.
    pub fn per_task(&self, tasks: usize) -> usize {
        let base = self.seqs_per_task as usize;
        if self.target_se <= 0.0 || tasks == 0 {
            return base;
        }
        let needed = (0.25 / (self.target_se * self.target_se)).ceil() as usize;
        base.max(needed.div_ceil(tasks))
    }
}

/// Whether p is prime (trial division; p <= 65536).
pub fn is_prime(p: u32) -> bool {
    p >= 2
        && (2..)
            .take_while(|d| d * d <= p)
            .all(|d| !p.is_multiple_of(d))
}

impl TaskConfig {
    /// Things worth telling the user that are not errors, one line each (no `warning:`
    /// prefix): a p that is not prime.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !is_prime(self.p) {
            w.push(format!(
                "task.p = {} is not prime: Z_p is not a field, so some tasks are not invertible and \
                 the paper's oracles (ratio matching, modular regression) do not apply",
                self.p
            ));
        }
        w
    }
}
