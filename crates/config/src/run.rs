//! The `model`, `optim` and `train` sections: the network, the optimizer and the loop.
//!
//! Their defaults are declared with the keys, in the crate root's table.

use crate::{ConfigError, Kind};

/// MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// ReLU, as the paper's models.
    Relu,
    /// GELU, tanh approximation.
    Gelu,
}

impl Act {
    /// The names of the variants, in their order.
    pub const NAMES: &'static [&'static str] = &["relu", "gelu"];
    const ALL: [Act; 2] = [Act::Relu, Act::Gelu];

    /// Parses one of [`Act::NAMES`].
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Kind::Enum(Self::NAMES).pick(key, s).map(|i| Self::ALL[i])
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The arithmetic of the matrix products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// IEEE f32 throughout (the CPU engine's; parity with PyTorch's fp32).
    F32,
    /// Matrix products on TF32 tensor cores (10-bit mantissa inputs, f32 accumulation); every
    /// other operation in f32. GPU only.
    Tf32,
    /// Matrix products with both operands rounded to bf16 (8-bit mantissa), f32 accumulation
    /// and output, as PyTorch's bf16 autocast (the official runs'); f32 master weights, and
    /// attention, LayerNorm, softmax, loss and AdamW in f32. GPU only.
    Bf16,
}

impl Precision {
    /// The names of the variants, in their order.
    pub const NAMES: &'static [&'static str] = &["f32", "tf32", "bf16"];
    const ALL: [Precision; 3] = [Precision::F32, Precision::Tf32, Precision::Bf16];

    /// Parses one of [`Precision::NAMES`].
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Kind::Enum(Self::NAMES).pick(key, s).map(|i| Self::ALL[i])
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The one-line error for this precision on the CPU (`on_gpu` false): only f32 runs there.
    pub fn check_device(self, on_gpu: bool) -> Result<(), ConfigError> {
        if self == Precision::F32 || on_gpu {
            return Ok(());
        }
        Err(ConfigError::invalid(
            "train.precision",
            format!("'{}'", self.as_str()),
            "'f32' on the CPU ('tf32' and 'bf16' need --device cuda)",
        ))
    }
}

/// The o.o.d.-test statistic that picks the early-stopping (`best_ood`) checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EarlyStop {
    /// Last-shot accuracy, then all-shot accuracy (the official code's choice).
    AccLast,
    /// All-shot accuracy, then last-shot: k times as many predictions as the last shot alone.
    Acc,
    /// Mean cross-entropy over all shots, lowest wins; then last-shot accuracy.
    Loss,
}

impl EarlyStop {
    /// The names of the variants, in their order.
    pub const NAMES: &'static [&'static str] = &["acc_last", "acc", "loss"];
    const ALL: [EarlyStop; 3] = [EarlyStop::AccLast, EarlyStop::Acc, EarlyStop::Loss];

    /// Parses one of [`EarlyStop::NAMES`].
    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Kind::Enum(Self::NAMES).pick(key, s).map(|i| Self::ALL[i])
    }
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The `model` section. The vocabulary follows from `task.p` (p + 18, the official tokenizer).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSection {
    pub d_model: u32,
    pub heads: u32,
    pub layers: u32,
    pub mlp_ratio: u32,
    pub act: Act,
    /// Output head tied to the token embedding.
    pub tied: bool,
    pub rope_theta: f64,
    pub ln_eps: f64,
}

/// The `optim` section (AdamW).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimSection {
    /// Peak learning rate.
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Which steps keep a named checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointSteps {
    /// `n` log-spaced steps from the end of warm-up to the last step, exactly the official
    /// `sorted(set(np.logspace(log10(warmup), log10(steps), n, dtype=int)))` (truncation makes
    /// some of them one below the round number), plus the last step.
    Log(u32),
    /// Exactly these steps (0 = the initial weights), plus the last step.
    List(Vec<u64>),
}

impl CheckpointSteps {
    /// What [`CheckpointSteps::parse`] accepts, as shown in errors.
    pub const ALLOWED: &'static str =
        "'log:N' (N in 1..=1000) or a list of steps such as [0, 1000, 5000] or '0,1000,5000'";

    pub fn parse(key: &str, v: &toml::Value) -> Result<Self, ConfigError> {
        let bad = || ConfigError::invalid(key, v, Self::ALLOWED);
        let steps = |items: Vec<Option<i64>>| -> Result<Self, ConfigError> {
            let mut out = Vec::with_capacity(items.len());
            for s in items {
                match s {
                    Some(s) if s >= 0 => out.push(s as u64),
                    _ => return Err(bad()),
                }
            }
            out.sort_unstable();
            out.dedup();
            Ok(CheckpointSteps::List(out))
        };
        match v {
            toml::Value::Array(a) => steps(a.iter().map(|x| x.as_integer()).collect()),
            toml::Value::Integer(n) => steps(vec![Some(*n)]),
            toml::Value::String(s) => {
                let s = s.trim();
                if let Some(n) = s.strip_prefix("log:") {
                    return match n.trim().parse::<u32>() {
                        Ok(n) if (1..=1000).contains(&n) => Ok(CheckpointSteps::Log(n)),
                        _ => Err(bad()),
                    };
                }
                if s.is_empty() {
                    return Ok(CheckpointSteps::List(Vec::new()));
                }
                steps(s.split(',').map(|x| x.trim().parse().ok()).collect())
            }
            _ => Err(bad()),
        }
    }

    pub fn to_value(&self) -> toml::Value {
        match self {
            CheckpointSteps::Log(n) => toml::Value::String(format!("log:{n}")),
            CheckpointSteps::List(l) => {
                toml::Value::Array(l.iter().map(|&s| toml::Value::Integer(s as i64)).collect())
            }
        }
    }

    /// The resolved, sorted steps for a run of `steps` steps with `warmup` warm-up steps;
    /// always includes the last step, never a step past it.
    pub fn resolve(&self, steps: u64, warmup: u64) -> Vec<u64> {
        let mut out: Vec<u64> = match self {
            CheckpointSteps::List(l) => l.iter().copied().filter(|&s| s <= steps).collect(),
            CheckpointSteps::Log(n) => {
                // numpy: y = arange(n) * (hi − lo)/(n − 1) + lo, y[−1] = hi (n > 1), then
                // 10**y truncated to int. The same libm pow and log10 give the same steps,
                // 249 for 10^log10(250) included.
                let (lo, hi) = (
                    (warmup.max(1) as f64).log10(),
                    (steps.max(1) as f64).log10(),
                );
                let n = *n as usize;
                let step = if n > 1 {
                    (hi - lo) / (n - 1) as f64
                } else {
                    0.0
                };
                (0..n)
                    .map(|i| {
                        let y = if n > 1 && i == n - 1 {
                            hi
                        } else {
                            i as f64 * step + lo
                        };
                        10f64.powf(y) as u64
                    })
                    .filter(|&s| s <= steps)
                    .collect()
            }
        };
        out.push(steps);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The `train` section.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSection {
    /// Run name: the run directory defaults to `runs/<name>`.
    pub name: String,
    /// Optimizer steps.
    pub steps: u64,
    /// Linear warm-up steps (from 0.01·lr to lr), then cosine decay to 0.1·lr.
    pub warmup: u64,
    /// Evaluate the four sets every this many steps (and at step 1 and the last step).
    pub eval_every: u64,
    /// Extra evaluations at this many log-spaced steps before the first `eval_every`
    /// ([`TrainSection::early_eval_steps`]).
    pub eval_early: u64,
    /// Named checkpoints kept in `checkpoints/step_<N>/`.
    pub checkpoints: CheckpointSteps,
    /// A resume checkpoint every this many steps (replaced by the next; 0 = none).
    pub save_every: u64,
    /// Also write the metrics as TensorBoard event files under `<run>/tb/`.
    pub tensorboard: bool,
    /// The arithmetic of the matrix products (`tf32`: GPU only).
    pub precision: Precision,
    /// The statistic that picks the `best_ood` checkpoint.
    pub early_stop: EarlyStop,
}

impl TrainSection {
    /// The early evaluation steps: `round(eval_every^(i/eval_early))` for i = 1 .. eval_early − 1,
    /// deduplicated, each in 2 .. eval_every − 1 and before the last step (step 1 is always
    /// evaluated). With eval_every 250 and 8: 2, 4, 8, 16, 32, 63, 125.
    pub fn early_eval_steps(&self) -> Vec<u64> {
        let n = self.eval_early;
        let mut out: Vec<u64> = (1..n)
            .map(|i| (self.eval_every as f64).powf(i as f64 / n as f64).round() as u64)
            .filter(|&s| s >= 2 && s < self.eval_every && s < self.steps)
            .collect();
        out.dedup();
        out
    }
}

/// What a run name may be, as shown in errors.
pub(crate) const NAME_ALLOWED: &str =
    "1 to 128 characters from A-Z a-z 0-9 . _ - (not starting with '.')";

/// A run name: what may appear as one path component.
pub(crate) fn check_name(key: &str, s: &str) -> Result<String, ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(ConfigError::invalid(key, format!("'{s}'"), NAME_ALLOWED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_evaluations_are_log_spaced_below_eval_every() {
        let mut t = crate::Config::resolve(Some("cpu"), None, &[])
            .unwrap()
            .train;
        t.eval_every = 250;
        t.eval_early = 8;
        assert_eq!(t.early_eval_steps(), [2, 4, 8, 16, 32, 63, 125]);
        t.eval_every = 1000;
        assert_eq!(t.early_eval_steps(), [2, 6, 13, 32, 75, 178, 422]);
        t.eval_early = 0;
        assert!(t.early_eval_steps().is_empty());
        // Few steps between 1 and eval_every: duplicates are dropped, nothing reaches it.
        t.eval_every = 5;
        t.eval_early = 16;
        assert_eq!(t.early_eval_steps(), [2, 3, 4]);
        // Nothing at or past the last step.
        t.eval_every = 1000;
        t.eval_early = 8;
        t.steps = 50;
        assert_eq!(t.early_eval_steps(), [2, 6, 13, 32]);
    }

    #[test]
    fn log_checkpoints_match_numpy_logspace() {
        // sorted(set(np.logspace(np.log10(a), np.log10(b), n, dtype=int))), computed with
        // numpy 2, plus the last step, which modicl always keeps.
        let cases: &[(u64, u64, u32, &[u64])] = &[
            (250, 5000, 6, &[249, 455, 828, 1508, 2746, 4999, 5000]),
            (
                10000,
                200000,
                10,
                &[
                    10000, 13949, 19458, 27144, 37864, 52819, 73680, 102780, 143374, 200000,
                ],
            ),
            (20, 2000, 8, &[20, 38, 74, 143, 277, 536, 1035, 2000]),
            (
                100,
                6000,
                12,
                &[
                    100, 145, 210, 305, 443, 643, 933, 1353, 1964, 2850, 4135, 6000,
                ],
            ),
            (10, 1000, 3, &[10, 100, 1000]),
            (50, 500, 1, &[49, 500]),
            (4, 40, 3, &[4, 12, 40]),
            (20, 1500, 4, &[20, 84, 355, 1500]),
            (20, 120, 4, &[20, 36, 66, 119, 120]),
        ];
        for &(warmup, steps, n, want) in cases {
            let got = CheckpointSteps::Log(n).resolve(steps, warmup);
            assert_eq!(got, want, "log:{n} over {warmup}..{steps}");
        }
    }

    #[test]
    fn explicit_checkpoints_parse_and_clip() {
        let v = crate::parse_value("[5000, 0, 100, 100]");
        let c = CheckpointSteps::parse("train.checkpoints", &v).unwrap();
        assert_eq!(c, CheckpointSteps::List(vec![0, 100, 5000]));
        assert_eq!(c.resolve(1000, 10), [0, 100, 1000]);
        let s = crate::parse_value("0,10");
        assert_eq!(
            CheckpointSteps::parse("k", &s).unwrap(),
            CheckpointSteps::List(vec![0, 10])
        );
        for bad in ["log:0", "log:x", "1,-2", "a,b", "[1.5]", "true"] {
            let e = CheckpointSteps::parse("train.checkpoints", &crate::parse_value(bad));
            assert!(e.is_err(), "{bad}");
        }
    }
}

/// A growing schedule: from step index `from` on (counting optimizer steps from 0), train with
/// `count` of something: the first `count` pre-training tasks (`curriculum.tasks`) or `count`
/// examples per sequence (`curriculum.examples`). Empty: off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stages(pub Vec<Stage>);

/// One stage of a [`Stages`] schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub count: u32,
    /// The first step index (0-based: step s + 1 trains on index s) of this stage.
    pub from: u64,
}

impl Stages {
    /// What [`Stages::parse`] accepts, as shown in errors.
    pub const ALLOWED: &'static str = "'' (off) or stages 'COUNT@STEP,...' such as '8@0,20@2000,40@6000': counts above 0 strictly increasing, steps strictly increasing from 0";

    pub fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::invalid(key, format!("'{s}'"), Self::ALLOWED);
        let s = s.trim();
        if s.is_empty() {
            return Ok(Stages(Vec::new()));
        }
        let mut out: Vec<Stage> = Vec::new();
        for part in s.split(',') {
            let (count, from) = part.trim().split_once('@').ok_or_else(bad)?;
            let stage = Stage {
                count: count.trim().parse().map_err(|_| bad())?,
                from: from.trim().parse().map_err(|_| bad())?,
            };
            let ordered = match out.last() {
                None => stage.from == 0,
                Some(prev) => stage.count > prev.count && stage.from > prev.from,
            };
            if stage.count == 0 || !ordered {
                return Err(bad());
            }
            out.push(stage);
        }
        Ok(Stages(out))
    }

    /// Whether the schedule is on.
    pub fn is_on(&self) -> bool {
        !self.0.is_empty()
    }

    /// The stage that step index `index` (0-based) trains in, if the schedule is on.
    pub fn at(&self, index: u64) -> Option<Stage> {
        self.0.iter().rev().find(|s| s.from <= index).copied()
    }
}

impl std::fmt::Display for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|s| format!("{}@{}", s.count, s.from))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The `curriculum` section: training interventions, all off by default.
#[derive(Clone, Debug, PartialEq)]
pub struct CurriculumSection {
    /// The task-count curriculum: a growing prefix of the pre-training task list.
    pub tasks: Stages,
    /// The context-length curriculum: examples per sequence growing over steps.
    pub examples: Stages,
    /// The few-task mixture: this fraction of each batch's sequences at the first step is
    /// relabelled to the first `mix_tasks` tasks, falling linearly to 0 at step `mix_until`.
    pub mix_fraction: f64,
    pub mix_tasks: u32,
    pub mix_until: u64,
}

impl CurriculumSection {
    /// The mixture's fraction at step index `index` (0-based): `mix_fraction`·(1 − index /
    /// mix_until), 0 from `mix_until` on.
    pub fn mix_at(&self, index: u64) -> f64 {
        if self.mix_fraction <= 0.0 || index >= self.mix_until {
            return 0.0;
        }
        self.mix_fraction * (1.0 - index as f64 / self.mix_until as f64)
    }
}
