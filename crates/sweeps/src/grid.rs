//! Grid axes: `key=spec`, where spec is a list `v1,v2,...` (or `v1;v2;...` when values contain
//! commas), a range `a:b:step` (inclusive), an
//! elided sequence `a,b,...,c` (for integers geometric when b/a is an integer ratio r >= 2 and
//! c = a·r^n; arithmetic otherwise, and always for decimals), or `log2:a:b` (2^a, 2^(a+1), ..., 2^b).

use modicl_config::{parse_value, Value};

use crate::SweepError;

/// One axis of a grid: a configuration key and its values, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<Value>,
}

impl Axis {
    /// Parses `key=spec`. The key must be a configuration key.
    pub fn parse(arg: &str) -> Result<Axis, SweepError> {
        let bad = |why: &str| SweepError::Grid {
            axis: arg.to_string(),
            reason: why.to_string(),
        };
        let (key, spec) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected key=values, e.g. task.alpha=0.2:0.8:0.1"))?;
        let (key, spec) = (key.trim(), spec.trim());
        modicl_config::field(key).map_err(SweepError::Config)?;
        if spec.is_empty() {
            return Err(bad("the axis has no values"));
        }
        let values = if let Some(r) = spec.strip_prefix("log2:") {
            let parts: Vec<&str> = r.split(':').collect();
            let ints: Option<Vec<u32>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
            match ints.as_deref() {
                Some(&[a, b]) if a <= b && b < 63 => {
                    (a..=b).map(|e| Value::Integer(1i64 << e)).collect()
                }
                _ => return Err(bad("log2:A:B needs integers 0 <= A <= B < 63")),
            }
        } else if is_range(spec) {
            range(spec).map_err(|w| bad(&w))?
        } else if spec.contains("...") && !spec.contains(';') {
            elided(spec).map_err(|w| bad(&w))?
        } else {
            // Values that contain commas themselves (official:seed=1,n_base=8) are separated
            // by ';' instead.
            let sep = if spec.contains(';') { ';' } else { ',' };
            let mut items: Vec<&str> = spec.split(sep).map(str::trim).collect();
            if sep == ';' && items.last() == Some(&"") {
                items.pop(); // `value;` is one value that contains commas
            }
            let vals: Vec<Value> = items.into_iter().map(parse_value).collect();
            if vals
                .iter()
                .any(|v| matches!(v, Value::String(s) if s.is_empty()))
            {
                return Err(bad("an empty value in the list"));
            }
            vals
        };
        if values.is_empty() {
            return Err(bad("the axis has no values"));
        }
        if values.len() > 100_000 {
            return Err(bad("more than 100000 values"));
        }
        Ok(Axis {
            key: key.to_string(),
            values,
        })
    }

    /// The short name used in run names: the key's last component.
    pub fn short(&self) -> &str {
        self.key.rsplit('.').next().unwrap_or(&self.key)
    }
}

/// Numbers separated by colons: `a:b:step`, or a malformed range such as `a:b` (a value
/// such as `file:/x` is not a range).
fn is_range(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split(':').collect();
    parts.len() >= 2 && parts.iter().all(|p| number(p).is_ok())
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| format!("'{}' is not a number", s.trim()))
}

fn is_int(s: &str) -> bool {
    s.trim().parse::<i64>().is_ok()
}

/// Decimal places of a number as written, so 0.2:0.8:0.1 gives 0.3, not 0.30000000000000004.
fn decimals(s: &str) -> usize {
    s.trim().split_once('.').map_or(0, |(_, f)| f.len())
}

/// A computed grid value: an integer, or a float rounded to the decimals written (fixed
/// notation) or to 12 significant digits (scientific notation), so that 0.2:0.8:0.1 gives 0.3
/// and 1e-4:5e-4:1e-4 gives 3e-4, not float noise.
fn value(x: f64, ints: bool, places: Option<usize>) -> Value {
    if ints {
        return Value::Integer(x.round() as i64);
    }
    let text = match places {
        Some(p) => format!("{x:.p$}"),
        None => format!("{x:.11e}"),
    };
    Value::Float(text.parse().expect("formatted number"))
}

/// Decimal places to round to: those written, or `None` (significant digits) when any
/// number is in scientific notation.
fn places(parts: &[&str]) -> Option<usize> {
    if parts.iter().any(|p| p.contains(['e', 'E'])) {
        None
    } else {
        parts.iter().map(|p| decimals(p)).max()
    }
}

/// `a:b:step`, inclusive of b when it falls on the grid.
fn range(spec: &str) -> Result<Vec<Value>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [a, b, step] = parts[..] else {
        return Err(format!(
            "a range is start:stop:step, e.g. 0.2:0.8:0.1 ('{spec}' has {} parts)",
            parts.len()
        ));
    };
    let (x0, x1, dx) = (number(a)?, number(b)?, number(step)?);
    if dx <= 0.0 || x1 < x0 {
        return Err("a range needs start <= stop and step > 0".into());
    }
    let n = ((x1 - x0) / dx + 1e-9).floor() as usize + 1;
    if n > 100_000 {
        return Err("more than 100000 values".into());
    }
    let ints = is_int(a) && is_int(b) && is_int(step);
    let places = places(&[a, b, step]);
    Ok((0..n)
        .map(|i| value(x0 + i as f64 * dx, ints, places))
        .collect())
}

/// `a,b,...,c`.
fn elided(spec: &str) -> Result<Vec<Value>, String> {
    let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
    let [a, b, "...", c] = parts[..] else {
        return Err("an elided sequence is a,b,...,c, e.g. 2,4,...,128".into());
    };
    let (x0, x1, xn) = (number(a)?, number(b)?, number(c)?);
    let ints = is_int(a) && is_int(b) && is_int(c);
    let places = places(&[a, b, c]);
    if x1 <= x0 || xn < x0 {
        return Err(format!("{a}, {b}, ..., {c} is not increasing"));
    }
    let close = |u: f64, v: f64| (u - v).abs() <= 1e-9 * u.abs().max(v.abs());
    // Geometric (integers only): an integer ratio r >= 2 and c = a·r^n.
    let r = x1 / x0;
    if ints && x0 > 0.0 && r >= 2.0 && close(r, r.round()) {
        let r = r.round();
        let mut out = vec![x0];
        while *out.last().expect("not empty") * r <= xn * (1.0 + 1e-9) && out.len() <= 100_000 {
            let next = out.last().expect("not empty") * r;
            out.push(next);
        }
        if close(*out.last().expect("not empty"), xn) {
            return Ok(out.into_iter().map(|x| value(x, ints, places)).collect());
        }
    }
    let dx = x1 - x0;
    let n = (xn - x0) / dx;
    if (n - n.round()).abs() > 1e-9 || n > 100_000.0 {
        return Err(format!(
            "{c} is not on the sequence {a}, {b}, ... (geometric or arithmetic)"
        ));
    }
    Ok((0..=n.round() as usize)
        .map(|i| value(x0 + i as f64 * dx, ints, places))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(v: &[Value]) -> Vec<i64> {
        v.iter().map(|x| x.as_integer().unwrap()).collect()
    }
    fn floats(v: &[Value]) -> Vec<f64> {
        v.iter().map(|x| x.as_float().unwrap()).collect()
    }

    #[test]
    fn forms_of_an_axis() {
        let a = Axis::parse("task.n_base=2,4,...,128").unwrap();
        assert_eq!(ints(&a.values), [2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(a.short(), "n_base");
        let a = Axis::parse("task.n_base=2,5,...,11").unwrap();
        assert_eq!(ints(&a.values), [2, 5, 8, 11]);
        let a = Axis::parse("task.alpha=0.2:0.8:0.1").unwrap();
        assert_eq!(floats(&a.values), [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
        let a = Axis::parse("task.alpha=0.2,0.4,...,0.8").unwrap();
        assert_eq!(floats(&a.values), [0.2, 0.4, 0.6, 0.8]);
        let a = Axis::parse("task.n_base=log2:1:7").unwrap();
        assert_eq!(ints(&a.values), [2, 4, 8, 16, 32, 64, 128]);
        let a = Axis::parse("model.layers=2,4,6").unwrap();
        assert_eq!(ints(&a.values), [2, 4, 6]);
        let a = Axis::parse("model.act=relu,gelu").unwrap();
        assert_eq!(a.values[1], Value::String("gelu".into()));
        let a = Axis::parse("task.seed=1:3:1").unwrap();
        assert_eq!(ints(&a.values), [1, 2, 3]);
        let a = Axis::parse("task.source=file:/a:b.txt").unwrap();
        assert_eq!(a.values, [Value::String("file:/a:b.txt".into())]);
        let a =
            Axis::parse("task.source=official:seed=1,n_base=8;official:seed=2,n_base=8").unwrap();
        assert_eq!(a.values.len(), 2);
        assert_eq!(
            a.values[1],
            Value::String("official:seed=2,n_base=8".into())
        );
        let a = Axis::parse("optim.lr=1e-3,3e-3").unwrap();
        assert_eq!(floats(&a.values), [1e-3, 3e-3]);
        let a = Axis::parse("optim.lr=1e-4:5e-4:1e-4").unwrap();
        assert_eq!(floats(&a.values), [1e-4, 2e-4, 3e-4, 4e-4, 5e-4]);
        let a = Axis::parse("optim.lr=1e-3,2e-3,...,5e-3").unwrap();
        assert_eq!(floats(&a.values), [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]);
        let a = Axis::parse("task.source=official:seed=1,n_base=8;").unwrap();
        assert_eq!(a.values, [Value::String("official:seed=1,n_base=8".into())]);
        let a = Axis::parse("task.alpha=0.1:0.9:0.2").unwrap();
        assert_eq!(floats(&a.values), [0.1, 0.3, 0.5, 0.7, 0.9]);
    }

    #[test]
    fn malformed_axes_name_themselves() {
        for bad in [
            "task.alpha",
            "task.alpha=",
            "task.alpha=0.8:0.2:0.1",
            "task.alpha=0.2:0.8:0",
            "task.alpha=0.4:0.8",
            "task.alpha=0.4:0.8:0.1:0.2",
            "task.n_base=2,4,...,101",
            "task.n_base=2,4,...",
            "task.n_base=2,4,...,1",
            "task.n_base=log2:7:1",
            "task.n_base=1,,2",
        ] {
            let e = Axis::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
            assert_eq!(e.lines().count(), 1);
        }
        let e = Axis::parse("task.nbase=1,2").unwrap_err().to_string();
        assert!(e.contains("did you mean task.n_base"), "{e}");
    }
}
