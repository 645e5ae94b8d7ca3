//! What values a key takes ([`Kind`]) and how a section field's type reads and writes one.

use toml::Value;

use crate::run::{self, Act, CheckpointSteps};
use crate::task::{BatchLayout, InputSplit, OodCap, TaskSource};
use crate::{ConfigError, Field};

/// The values a key takes. Reading a value, checking its range and the `allowed` text of
/// errors and of `modicl config keys` all follow from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// An integer in `lo..=hi`. A number without a fraction, or a string of digits, also reads.
    Int { lo: i64, hi: i64 },
    /// A finite number between `lo` and `hi`, each end excluded when its `*_open` flag is set.
    /// An integer, or a string holding a number, also reads.
    Float {
        lo: f64,
        hi: f64,
        lo_open: bool,
        hi_open: bool,
    },
    /// `true` or `false` (also as a string).
    Bool,
    /// Exactly one of these strings.
    Enum(&'static [&'static str]),
    /// A run name: one path component (see the allowed text).
    Name,
    /// A value that the field's own type reads and checks; the text says what it accepts.
    Custom(&'static str),
}

/// An integer in `lo..=hi`.
pub(crate) const fn int(lo: i64, hi: i64) -> Kind {
    Kind::Int { lo, hi }
}

/// A number in the closed interval `[lo, hi]`.
pub(crate) const fn closed(lo: f64, hi: f64) -> Kind {
    float(lo, hi, false, false)
}

/// A number in the open interval `(lo, hi)`.
pub(crate) const fn open(lo: f64, hi: f64) -> Kind {
    float(lo, hi, true, true)
}

/// A number in `(lo, hi]`.
pub(crate) const fn open_closed(lo: f64, hi: f64) -> Kind {
    float(lo, hi, true, false)
}

/// A number in `[lo, hi)`.
pub(crate) const fn closed_open(lo: f64, hi: f64) -> Kind {
    float(lo, hi, false, true)
}

const fn float(lo: f64, hi: f64, lo_open: bool, hi_open: bool) -> Kind {
    Kind::Float {
        lo,
        hi,
        lo_open,
        hi_open,
    }
}

impl Kind {
    /// What is allowed, as shown after `allowed` in errors, e.g. `an integer in 2..=65536`.
    pub fn allowed(&self) -> String {
        match *self {
            Kind::Int { lo, hi } => format!("an integer in {lo}..={hi}"),
            Kind::Float {
                lo,
                hi,
                lo_open: true,
                hi_open: true,
            } => format!("a number in the open interval ({}, {})", num(lo), num(hi)),
            Kind::Float {
                lo,
                hi,
                lo_open,
                hi_open,
            } => format!(
                "a number in {}{}, {}{}",
                if lo_open { '(' } else { '[' },
                num(lo),
                num(hi),
                if hi_open { ')' } else { ']' }
            ),
            Kind::Bool => "true or false".into(),
            Kind::Enum(names) => either(names.iter().map(|n| format!("'{n}'")).collect()),
            Kind::Name => run::NAME_ALLOWED.into(),
            Kind::Custom(text) => text.into(),
        }
    }

    /// `v` read as this kind and checked against its range: an `Integer`, a `Float`, a
    /// `Boolean` or a `String`. A [`Kind::Custom`] value comes back as it is, for the field's
    /// type to read. The error names `key`.
    pub fn read(&self, key: &str, v: &Value) -> Result<Value, ConfigError> {
        let bad = || ConfigError::invalid(key, v, self.allowed());
        match *self {
            Kind::Int { lo, hi } => {
                let n = match v {
                    Value::Integer(n) => Some(*n),
                    Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                n.filter(|n| (lo..=hi).contains(n))
                    .map(Value::Integer)
                    .ok_or_else(bad)
            }
            Kind::Float {
                lo,
                hi,
                lo_open,
                hi_open,
            } => {
                let x = match v {
                    Value::Float(f) => Some(*f),
                    Value::Integer(n) => Some(*n as f64),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                x.filter(|&x| {
                    x.is_finite()
                        && if lo_open { x > lo } else { x >= lo }
                        && if hi_open { x < hi } else { x <= hi }
                })
                .map(Value::Float)
                .ok_or_else(bad)
            }
            Kind::Bool => match v {
                Value::Boolean(b) => Ok(Value::Boolean(*b)),
                Value::String(s) if s == "true" || s == "false" => Ok(Value::Boolean(s == "true")),
                _ => Err(bad()),
            },
            Kind::Enum(_) => match v {
                Value::String(s) => self.pick(key, s).map(|_| v.clone()),
                _ => Err(bad()),
            },
            Kind::Name => match v {
                Value::String(s) => run::check_name(key, s).map(Value::String),
                _ => Err(bad()),
            },
            Kind::Custom(_) => Ok(v.clone()),
        }
    }

    /// The position of `s` among the names of a [`Kind::Enum`]; an error naming `key`
    /// otherwise (and for any other kind).
    pub fn pick(&self, key: &str, s: &str) -> Result<usize, ConfigError> {
        let names: &[&str] = match self {
            Kind::Enum(names) => names,
            _ => &[],
        };
        names
            .iter()
            .position(|n| *n == s)
            .ok_or_else(|| ConfigError::invalid(key, format!("'{s}'"), self.allowed()))
    }
}

/// `a`, `a or b`, `a, b or c`; `none` for no items.
pub(crate) fn either(items: Vec<String>) -> String {
    match items.split_last() {
        None => "none".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A bound as written in an allowed text: `1e9` rather than `1000000000`.
fn num(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// The type of a section field: read from a value (checked by the field's [`Kind`]) and
/// written back as the value that reads it again.
pub(crate) trait Setting: Sized {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError>;
    fn write(&self) -> Value;
}

/// Unsigned integer keys: read through their [`Kind`], then narrowed to the field's type.
macro_rules! unsigned_setting {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
                let n = f.kind.read(f.key, v)?.as_integer();
                n.and_then(|n| n.try_into().ok())
                    .ok_or_else(|| f.invalid(v))
            }
            fn write(&self) -> Value {
                // Every range is within 0..=i64::MAX.
                Value::Integer(*self as i64)
            }
        }
    )*};
}

unsigned_setting!(u32, u64);

impl Setting for f64 {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        f.kind
            .read(f.key, v)?
            .as_float()
            .ok_or_else(|| f.invalid(v))
    }
    fn write(&self) -> Value {
        Value::Float(*self)
    }
}

impl Setting for bool {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        f.kind.read(f.key, v)?.as_bool().ok_or_else(|| f.invalid(v))
    }
    fn write(&self) -> Value {
        Value::Boolean(*self)
    }
}

impl Setting for String {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        match f.kind.read(f.key, v)? {
            Value::String(s) => Ok(s),
            _ => Err(f.invalid(v)),
        }
    }
    fn write(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Setting for Act {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        Act::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.as_str().into())
    }
}

impl Setting for crate::run::Stages {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        crate::run::Stages::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl Setting for crate::run::EarlyStop {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        crate::run::EarlyStop::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.as_str().into())
    }
}

impl Setting for crate::run::Precision {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        crate::run::Precision::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.as_str().into())
    }
}

impl Setting for BatchLayout {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        BatchLayout::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.as_str().into())
    }
}

impl Setting for InputSplit {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        InputSplit::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.as_str().into())
    }
}

impl Setting for TaskSource {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        TaskSource::parse(f.key, &String::read(f, v)?)
    }
    fn write(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl Setting for OodCap {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        OodCap::parse(f.key, &f.kind.read(f.key, v)?)
    }
    fn write(&self) -> Value {
        self.to_value()
    }
}

impl Setting for CheckpointSteps {
    fn read(f: &Field, v: &Value) -> Result<Self, ConfigError> {
        CheckpointSteps::parse(f.key, &f.kind.read(f.key, v)?)
    }
    fn write(&self) -> Value {
        self.to_value()
    }
}
