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
mod task;

use std::fmt::Write as _;
use std::path::Path;

pub use error::ConfigError;
pub use task::{BatchLayout, EvalConfig, OodCap, TaskConfig, TaskSource};
pub use toml::Value;

/// A whole run's configuration, one field per section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub task: TaskConfig,
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
    /// Defaults, then the TOML file (if any), then each `section.key=value` override in order.
    pub fn resolve(file: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
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
        Ok(cfg)
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
