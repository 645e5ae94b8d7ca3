//! modicl's run configuration.
//!
//! This crate is the one place where raw input (a TOML file, `--set section.key=value`
//! overrides) becomes a typed [`Config`]. Every key is declared once in [`FIELDS`] with its
//! help text, its allowed range, a getter and a validating setter, so that parsing, error
//! messages, `modicl config keys` and the resolved `config.toml` all come from one table.
//!
//! Range checks that need only one value happen here. Checks that need the generated data
//! (a batch that must divide by the number of tasks, say) happen where the data is built.

mod error;
mod preset;
mod run;
mod task;

use std::fmt::Write as _;
use std::path::Path;

pub use error::ConfigError;
pub use preset::{Preset, DEFAULT_PRESET, PRESETS};
pub use run::{Act, CheckpointSteps, ModelSection, OptimSection, TrainSection};
pub use task::{BatchLayout, EvalConfig, OodCap, TaskConfig, TaskSource};
pub use toml::Value;

/// A whole run's configuration, one field per section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub task: TaskConfig,
    pub model: ModelSection,
    pub optim: OptimSection,
    pub train: TrainSection,
    pub eval: EvalConfig,
}

/// One configuration key.
pub struct Field {
    /// `section.key`.
    pub key: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// What values are allowed, as shown in errors.
    pub allowed: &'static str,
    get: fn(&Config) -> Value,
    set: fn(&mut Config, &'static str, &Value) -> Result<(), ConfigError>,
}

impl Field {
    /// The current value of this key in `cfg`.
    pub fn get(&self, cfg: &Config) -> Value {
        (self.get)(cfg)
    }
    /// Sets this key, checking type and range.
    pub fn set(&self, cfg: &mut Config, v: &Value) -> Result<(), ConfigError> {
        (self.set)(cfg, self.key, v)
    }
}

/// Every configuration key, in the order they are printed.
pub static FIELDS: &[Field] = &[
    Field {
        key: "task.p",
        help: "modulus p of z = W·X mod p (a warning is printed when p is not prime)",
        allowed: "an integer in 2..=65536",
        get: |c| Value::Integer(c.task.p.into()),
        set: |c, k, v| {
            c.task.p = int(k, v, 2, 65536, "an integer in 2..=65536")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.n_var",
        help: "number of input variables (length of the task vector W)",
        allowed: "an integer in 1..=8",
        get: |c| Value::Integer(c.task.n_var.into()),
        set: |c, k, v| {
            c.task.n_var = int(k, v, 1, 8, "an integer in 1..=8")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.n_base",
        help: "parallelogram base tasks; each brings three partners, giving 4·n_base tasks (needs n_var = 2)",
        allowed: "an integer in 0..=4194304",
        get: |c| Value::Integer(c.task.n_base.into()),
        set: |c, k, v| {
            c.task.n_base = int(k, v, 0, 1 << 22, "an integer in 0..=4194304")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.n_random",
        help: "further pre-training tasks drawn uniformly from the rest of Z_p^n_var",
        allowed: "an integer in 0..=16777216",
        get: |c| Value::Integer(c.task.n_random.into()),
        set: |c, k, v| {
            c.task.n_random = int(k, v, 0, 1 << 24, "an integer in 0..=16777216")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.alpha",
        help: "fraction of the p^n_var inputs used for training; round(alpha·p^n_var) train inputs",
        allowed: "a number in the open interval (0, 1)",
        get: |c| Value::Float(c.task.alpha),
        set: |c, k, v| {
            let a = float(k, v, "a number in the open interval (0, 1)")?;
            if !(a > 0.0 && a < 1.0) {
                return Err(ConfigError::invalid(k, v, "a number in the open interval (0, 1)"));
            }
            c.task.alpha = a;
            Ok(())
        },
    },
    Field {
        key: "task.examples",
        help: "examples (x, y, z) per sequence, k",
        allowed: "an integer in 1..=4096",
        get: |c| Value::Integer(c.task.examples.into()),
        set: |c, k, v| {
            c.task.examples = int(k, v, 1, 4096, "an integer in 1..=4096")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.ood_cap",
        help: "keep at most this many o.o.d. tasks, or \"all\"",
        allowed: "an integer >= 1 or \"all\"",
        get: |c| match c.task.ood_cap {
            OodCap::Count(n) => Value::Integer(n.into()),
            OodCap::All => Value::String("all".into()),
        },
        set: |c, k, v| {
            c.task.ood_cap = match v {
                Value::String(s) if s == "all" => OodCap::All,
                _ => OodCap::Count(int(k, v, 1, 1 << 24, "an integer >= 1 or \"all\"")? as u32),
            };
            Ok(())
        },
    },
    Field {
        key: "task.official_compat",
        help: "official compatibility: floor the o.o.d. task count to a multiple of 8",
        allowed: "true or false",
        get: |c| Value::Boolean(c.task.official_compat),
        set: |c, k, v| {
            c.task.official_compat = boolean(k, v)?;
            Ok(())
        },
    },
    Field {
        key: "task.seed",
        help: "seed of the task draw (and of model initialisation)",
        allowed: "an integer in 0..=9223372036854775807",
        get: |c| Value::Integer(c.task.seed as i64),
        set: |c, k, v| {
            c.task.seed = int(k, v, 0, i64::MAX, "an integer in 0..=9223372036854775807")? as u64;
            Ok(())
        },
    },
    Field {
        key: "task.data_seed",
        help: "seed of the input split, the training batches and the evaluation sets",
        allowed: "an integer in 0..=9223372036854775807",
        get: |c| Value::Integer(c.task.data_seed as i64),
        set: |c, k, v| {
            c.task.data_seed = int(k, v, 0, i64::MAX, "an integer in 0..=9223372036854775807")? as u64;
            Ok(())
        },
    },
    Field {
        key: "task.batch",
        help: "sequences per training batch; a multiple of the number of pre-training tasks",
        allowed: "an integer in 1..=16777216",
        get: |c| Value::Integer(c.task.batch.into()),
        set: |c, k, v| {
            c.task.batch = int(k, v, 1, 1 << 24, "an integer in 1..=16777216")? as u32;
            Ok(())
        },
    },
    Field {
        key: "task.source",
        help: "pre-training tasks: 'generate' (n_base, n_random, seed), 'file:PATH' or 'official:seed=S,n_base=N'",
        allowed: "'generate', 'file:PATH' or 'official:seed=S,n_base=N'",
        get: |c| Value::String(c.task.source.to_string()),
        set: |c, k, v| {
            c.task.source = TaskSource::parse(k, &string(k, v, "a string")?)?;
            Ok(())
        },
    },
    Field {
        key: "task.layout",
        help: "batch layout: 'shared' (official: all tasks see the same inputs) or 'independent'",
        allowed: "'shared' or 'independent'",
        get: |c| Value::String(c.task.layout.as_str().into()),
        set: |c, k, v| {
            c.task.layout = BatchLayout::parse(k, &string(k, v, "'shared' or 'independent'")?)?;
            Ok(())
        },
    },
    Field {
        key: "model.d_model",
        help: "residual stream width d; a multiple of model.heads with an even head width",
        allowed: "an integer in 2..=16384",
        get: |c| Value::Integer(c.model.d_model.into()),
        set: |c, k, v| {
            c.model.d_model = int(k, v, 2, 16384, "an integer in 2..=16384")? as u32;
            Ok(())
        },
    },
    Field {
        key: "model.heads",
        help: "attention heads per block",
        allowed: "an integer in 1..=256",
        get: |c| Value::Integer(c.model.heads.into()),
        set: |c, k, v| {
            c.model.heads = int(k, v, 1, 256, "an integer in 1..=256")? as u32;
            Ok(())
        },
    },
    Field {
        key: "model.layers",
        help: "transformer blocks (depth): 2 is the minimum for o.o.d. generalization",
        allowed: "an integer in 1..=64",
        get: |c| Value::Integer(c.model.layers.into()),
        set: |c, k, v| {
            c.model.layers = int(k, v, 1, 64, "an integer in 1..=64")? as u32;
            Ok(())
        },
    },
    Field {
        key: "model.mlp_ratio",
        help: "MLP hidden width as a multiple of d_model",
        allowed: "an integer in 1..=16",
        get: |c| Value::Integer(c.model.mlp_ratio.into()),
        set: |c, k, v| {
            c.model.mlp_ratio = int(k, v, 1, 16, "an integer in 1..=16")? as u32;
            Ok(())
        },
    },
    Field {
        key: "model.act",
        help: "MLP activation: 'relu' (the paper's) or 'gelu' (tanh approximation)",
        allowed: "'relu' or 'gelu'",
        get: |c| Value::String(c.model.act.as_str().into()),
        set: |c, k, v| {
            c.model.act = Act::parse(k, &string(k, v, "'relu' or 'gelu'")?)?;
            Ok(())
        },
    },
    Field {
        key: "model.tied",
        help: "tie the output head to the token embedding (the paper's models are tied)",
        allowed: "true or false",
        get: |c| Value::Boolean(c.model.tied),
        set: |c, k, v| {
            c.model.tied = boolean(k, v)?;
            Ok(())
        },
    },
    Field {
        key: "model.rope_theta",
        help: "RoPE base (rotary_embedding_torch's default 10000)",
        allowed: "a number in [1, 1e9]",
        get: |c| Value::Float(c.model.rope_theta),
        set: |c, k, v| {
            c.model.rope_theta = float_in(k, v, 1.0, 1e9, "a number in [1, 1e9]")?;
            Ok(())
        },
    },
    Field {
        key: "model.ln_eps",
        help: "LayerNorm epsilon",
        allowed: "a number in (0, 0.1]",
        get: |c| Value::Float(c.model.ln_eps),
        set: |c, k, v| {
            c.model.ln_eps = positive(k, v, 0.1, "a number in (0, 0.1]")?;
            Ok(())
        },
    },
    Field {
        key: "optim.lr",
        help: "peak learning rate of AdamW (warm-up from 0.01·lr, cosine decay to 0.1·lr)",
        allowed: "a number in (0, 10]",
        get: |c| Value::Float(c.optim.lr),
        set: |c, k, v| {
            c.optim.lr = positive(k, v, 10.0, "a number in (0, 10]")?;
            Ok(())
        },
    },
    Field {
        key: "optim.weight_decay",
        help: "decoupled weight decay on every matrix, the embedding included (not LayerNorm)",
        allowed: "a number in [0, 100]",
        get: |c| Value::Float(c.optim.weight_decay),
        set: |c, k, v| {
            c.optim.weight_decay = float_in(k, v, 0.0, 100.0, "a number in [0, 100]")?;
            Ok(())
        },
    },
    Field {
        key: "optim.beta1",
        help: "AdamW first-moment decay",
        allowed: "a number in [0, 1)",
        get: |c| Value::Float(c.optim.beta1),
        set: |c, k, v| {
            c.optim.beta1 = beta(k, v)?;
            Ok(())
        },
    },
    Field {
        key: "optim.beta2",
        help: "AdamW second-moment decay",
        allowed: "a number in [0, 1)",
        get: |c| Value::Float(c.optim.beta2),
        set: |c, k, v| {
            c.optim.beta2 = beta(k, v)?;
            Ok(())
        },
    },
    Field {
        key: "optim.eps",
        help: "AdamW epsilon",
        allowed: "a number in (0, 1]",
        get: |c| Value::Float(c.optim.eps),
        set: |c, k, v| {
            c.optim.eps = positive(k, v, 1.0, "a number in (0, 1]")?;
            Ok(())
        },
    },
    Field {
        key: "train.name",
        help: "run name; the run directory defaults to runs/<name>",
        allowed: "1 to 128 characters from A-Z a-z 0-9 . _ - (not starting with '.')",
        get: |c| Value::String(c.train.name.clone()),
        set: |c, k, v| {
            let allowed = "a string";
            c.train.name = run::check_name(k, &string(k, v, allowed)?)?;
            Ok(())
        },
    },
    Field {
        key: "train.steps",
        help: "optimizer steps",
        allowed: "an integer in 1..=1000000000",
        get: |c| Value::Integer(c.train.steps as i64),
        set: |c, k, v| {
            c.train.steps = int(k, v, 1, 1_000_000_000, "an integer in 1..=1000000000")? as u64;
            Ok(())
        },
    },
    Field {
        key: "train.warmup",
        help: "linear warm-up steps (0.01·lr to lr), then cosine decay to 0.1·lr at the last step",
        allowed: "an integer below train.steps",
        get: |c| Value::Integer(c.train.warmup as i64),
        set: |c, k, v| {
            c.train.warmup = int(k, v, 0, 1_000_000_000, "an integer below train.steps")? as u64;
            Ok(())
        },
    },
    Field {
        key: "train.eval_every",
        help: "evaluate the four sets every N steps (and at step 1 and the last step)",
        allowed: "an integer in 1..=1000000000",
        get: |c| Value::Integer(c.train.eval_every as i64),
        set: |c, k, v| {
            let allowed = "an integer in 1..=1000000000";
            c.train.eval_every = int(k, v, 1, 1_000_000_000, allowed)? as u64;
            Ok(())
        },
    },
    Field {
        key: "train.checkpoints",
        help: "kept checkpoints: 'log:N' (N log-spaced steps from warm-up to the end, official) or a list of steps; the last step is always kept",
        allowed: "'log:N' (N in 1..=1000) or a list of steps such as [0, 1000, 5000] or '0,1000,5000'",
        get: |c| c.train.checkpoints.to_value(),
        set: |c, k, v| {
            c.train.checkpoints = CheckpointSteps::parse(k, v)?;
            Ok(())
        },
    },
    Field {
        key: "train.save_every",
        help: "write a resume checkpoint every N steps, replacing the previous one (0 = never)",
        allowed: "an integer in 0..=1000000000",
        get: |c| Value::Integer(c.train.save_every as i64),
        set: |c, k, v| {
            let allowed = "an integer in 0..=1000000000";
            c.train.save_every = int(k, v, 0, 1_000_000_000, allowed)? as u64;
            Ok(())
        },
    },
    Field {
        key: "eval.seqs_per_task",
        help: "sequences per task in each of the four evaluation sets",
        allowed: "an integer in 1..=65536",
        get: |c| Value::Integer(c.eval.seqs_per_task.into()),
        set: |c, k, v| {
            c.eval.seqs_per_task = int(k, v, 1, 65536, "an integer in 1..=65536")? as u32;
            Ok(())
        },
    },
];

/// The field for `key`, or an error suggesting the closest known key.
pub fn field(key: &str) -> Result<&'static Field, ConfigError> {
    FIELDS
        .iter()
        .find(|f| f.key == key)
        .ok_or_else(|| ConfigError::UnknownKey {
            key: error::one_line(key),
            suggestion: FIELDS
                .iter()
                .map(|f| (edit_distance(f.key, key), f.key))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.to_string()),
        })
}

impl Config {
    /// The preset (the default one when `None`), then the TOML file (if any), then each
    /// `section.key=value` override in order; then the checks that involve several keys.
    pub fn resolve(
        preset: Option<&str>,
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let mut cfg = Preset::named(preset.unwrap_or(DEFAULT_PRESET))?.config()?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            cfg.merge_toml(&text, &path.display().to_string())?;
        }
        for o in overrides {
            cfg.apply_override(o)?;
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Reads a resolved `config.toml` (as a run directory holds): defaults, then every key of
    /// the file, then the cross-key checks. No preset is involved.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        cfg.merge_toml(text, origin)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks that involve more than one key (each key's own range is checked when set).
    pub fn check(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        if !m.d_model.is_multiple_of(m.heads) || !(m.d_model / m.heads).is_multiple_of(2) {
            return Err(ConfigError::invalid(
                "model.d_model",
                m.d_model,
                format!(
                    "a multiple of 2·model.heads = {} (the head width must be even for RoPE)",
                    2 * m.heads
                ),
            ));
        }
        if self.train.warmup >= self.train.steps {
            return Err(ConfigError::invalid(
                "train.warmup",
                self.train.warmup,
                format!("an integer below train.steps = {}", self.train.steps),
            ));
        }
        Ok(())
    }

    /// Applies every key of a TOML document (sections of keys) on top of `self`.
    pub fn merge_toml(&mut self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigError::Toml {
                path: origin.to_string(),
                reason: match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            }
        })?;
        for (section, body) in &table {
            let Value::Table(body) = body else {
                return Err(ConfigError::UnknownKey {
                    key: section.clone(),
                    suggestion: Some(format!("a section such as [task] holding {section}")),
                });
            };
            for (key, v) in body {
                field(&format!("{section}.{key}"))?.set(self, v)?;
            }
        }
        Ok(())
    }

    /// Applies one `section.key=value` override. The value is read as a TOML value when it
    /// parses as one (`31`, `0.5`, `true`, `"all"`), and as a bare string otherwise.
    pub fn apply_override(&mut self, o: &str) -> Result<(), ConfigError> {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| ConfigError::MalformedOverride(error::one_line(o)))?;
        let key = key.trim();
        if !key.contains('.') {
            return Err(ConfigError::MalformedOverride(error::one_line(o)));
        }
        field(key)?.set(self, &parse_value(raw.trim()))
    }

    /// The resolved configuration as a TOML document that [`Config::resolve`] reads back.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for f in FIELDS {
            let (s, k) = f.key.split_once('.').expect("keys are section.key");
            if s != section {
                if !section.is_empty() {
                    out.push('\n');
                }
                let _ = writeln!(out, "[{s}]");
                section = s;
            }
            let _ = writeln!(out, "{k} = {}", f.get(self));
        }
        out
    }

    /// `(key, value, help)` for every key, for printing a table.
    pub fn rows(&self) -> Vec<(&'static str, String, &'static str)> {
        FIELDS
            .iter()
            .map(|f| (f.key, f.get(self).to_string(), f.help))
            .collect()
    }
}

/// Reads an override's value: a TOML literal if it is one, else the raw text as a string.
pub fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn int(key: &str, v: &Value, lo: i64, hi: i64, allowed: &str) -> Result<i64, ConfigError> {
    let n = match v {
        Value::Integer(n) => Some(*n),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(ConfigError::invalid(key, v, allowed)),
    }
}

fn float(key: &str, v: &Value, allowed: &str) -> Result<f64, ConfigError> {
    let x = match v {
        Value::Float(f) => Some(*f),
        Value::Integer(n) => Some(*n as f64),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    x.filter(|x| x.is_finite())
        .ok_or_else(|| ConfigError::invalid(key, v, allowed))
}

fn float_in(key: &str, v: &Value, lo: f64, hi: f64, allowed: &str) -> Result<f64, ConfigError> {
    let x = float(key, v, allowed)?;
    if (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(ConfigError::invalid(key, v, allowed))
    }
}

/// A number in (0, hi].
fn positive(key: &str, v: &Value, hi: f64, allowed: &str) -> Result<f64, ConfigError> {
    let x = float_in(key, v, 0.0, hi, allowed)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(ConfigError::invalid(key, v, allowed))
    }
}

fn beta(key: &str, v: &Value) -> Result<f64, ConfigError> {
    let x = float_in(key, v, 0.0, 1.0, "a number in [0, 1)")?;
    if x < 1.0 {
        Ok(x)
    } else {
        Err(ConfigError::invalid(key, v, "a number in [0, 1)"))
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool, ConfigError> {
    match v {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(ConfigError::invalid(key, v, "true or false")),
    }
}

fn string(key: &str, v: &Value, allowed: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(ConfigError::invalid(key, v, allowed)),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let mut c = Config::default();
        c.apply_override("task.p=31").unwrap();
        c.apply_override("task.ood_cap=all").unwrap();
        c.apply_override("task.source=official:seed=2,n_base=128")
            .unwrap();
        let mut back = Config::default();
        back.merge_toml(&c.to_toml(), "resolved").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn overrides_parse_types_and_ranges() {
        let mut c = Config::default();
        c.apply_override("task.alpha=0.6").unwrap();
        assert_eq!(c.task.alpha, 0.6);
        c.apply_override("task.layout=independent").unwrap();
        assert_eq!(c.task.layout, BatchLayout::Independent);
        c.apply_override("task.source=file:/tmp/x y.txt").unwrap();
        assert_eq!(c.task.source, TaskSource::File("/tmp/x y.txt".into()));
        let e = c.apply_override("task.p=1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid task.p = 1: allowed an integer in 2..=65536"
        );
        let e = c.apply_override("task.alpha=1").unwrap_err();
        assert!(e.to_string().contains("task.alpha = 1"), "{e}");
        let e = c.apply_override("task.alpha=0").unwrap_err();
        assert!(e.to_string().contains("open interval"), "{e}");
        let e = c.apply_override("task.pp=3").unwrap_err();
        assert_eq!(e.to_string(), "unknown key task.pp (did you mean task.p?)");
        assert!(matches!(
            c.apply_override("task.p"),
            Err(ConfigError::MalformedOverride(_))
        ));
        assert!(matches!(
            c.apply_override("p=3"),
            Err(ConfigError::MalformedOverride(_))
        ));
        let e = c.apply_override("task.source=official:seed=1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid task.source = 'official:seed=1'"),
            "{e}"
        );
        let e = c.apply_override("task.official_compat=yes").unwrap_err();
        assert!(e.to_string().contains("true or false"), "{e}");
    }

    #[test]
    fn echoed_values_stay_on_one_line_and_overrides_hold_one_value() {
        let mut c = Config::default();
        for o in [
            "task.p=1\n2",
            "task.layout=a\nb",
            "task.p=31\nx=1",
            "task.q\nx=1",
        ] {
            let e = c.apply_override(o).unwrap_err().to_string();
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains("\\n"), "{e}");
        }
        assert_eq!(c.task.p, 29, "a rejected override changes nothing");
        let e = c
            .apply_override("task.source=official:seed=1,n_base=2,seed=2")
            .unwrap_err();
        assert!(e.to_string().contains("each key once"), "{e}");
    }

    #[test]
    fn toml_errors_name_the_key() {
        let mut c = Config::default();
        let e = c
            .merge_toml("[task]\nexamples = 0\n", "f.toml")
            .unwrap_err();
        assert!(e.to_string().contains("task.examples = 0"), "{e}");
        let e = c.merge_toml("[tsk]\np = 3\n", "f.toml").unwrap_err();
        assert!(e.to_string().contains("tsk.p"), "{e}");
        let e = c.merge_toml("[task\n", "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("f.toml: not valid TOML"), "{e}");
        let e = c.merge_toml("p = 3\n", "f.toml").unwrap_err();
        assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e}");
    }

    #[test]
    fn presets_resolve_and_round_trip() {
        for p in PRESETS {
            let c = p.config().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(c.train.name, p.name);
            let back = Config::from_toml(&c.to_toml(), "resolved").unwrap();
            assert_eq!(back, c, "{}", p.name);
        }
        assert_eq!(PRESETS[0].name, DEFAULT_PRESET);
        let d2 = Preset::named("paper-d2").unwrap().config().unwrap();
        assert_eq!(
            (d2.task.n_base, d2.task.alpha, d2.task.batch, d2.task.seed),
            (128, 0.6, 1024, 2)
        );
        assert_eq!(d2.task.source.to_string(), "official:seed=2,n_base=128");
        let d4 = Preset::named("paper-d4").unwrap().config().unwrap();
        assert_eq!(
            (d4.task.n_base, d4.task.alpha, d4.task.batch, d4.task.seed),
            (96, 0.8, 1536, 1)
        );
        for (name, layers) in [("paper-d2", 2), ("paper-d4", 4), ("paper-d6", 6)] {
            let c = Preset::named(name).unwrap().config().unwrap();
            assert_eq!(
                (c.model.layers, c.model.d_model, c.model.heads),
                (layers, 512, 4)
            );
            assert_eq!((c.optim.lr, c.optim.weight_decay), (1.5e-4, 2.0));
            assert_eq!((c.optim.beta1, c.optim.beta2), (0.9, 0.98));
            assert_eq!((c.train.steps, c.train.warmup), (200_000, 10_000));
            assert_eq!((c.task.examples, c.task.p), (32, 29));
        }
        let e = Preset::named("paper").err().unwrap().to_string();
        assert!(e.contains("--preset") && e.contains("paper-d4"), "{e}");
    }

    #[test]
    fn cross_key_checks_name_the_key() {
        let e = Config::resolve(None, None, &["model.d_model=30".into()]).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid model.d_model = 30"),
            "{e}"
        );
        // 36 / 4 = 9: a multiple of heads, but RoPE needs an even head width.
        let e = Config::resolve(None, None, &["model.d_model=36".into()]).unwrap_err();
        assert!(
            e.to_string().contains("multiple of 2·model.heads = 8"),
            "{e}"
        );
        let e = Config::resolve(None, None, &["train.warmup=999999".into()]).unwrap_err();
        assert!(e.to_string().contains("train.warmup = 999999"), "{e}");
        Config::resolve(
            None,
            None,
            &["model.d_model=40".into(), "model.heads=8".into()],
        )
        .unwrap_err();
        Config::resolve(
            None,
            None,
            &["model.d_model=40".into(), "model.heads=2".into()],
        )
        .unwrap();
    }

    #[test]
    fn every_field_reads_back_what_it_writes() {
        let c = Config::default();
        for f in FIELDS {
            let mut d = Config::default();
            f.set(&mut d, &f.get(&c))
                .unwrap_or_else(|e| panic!("{}: {e}", f.key));
            assert_eq!(d, c, "{}", f.key);
        }
    }
}
