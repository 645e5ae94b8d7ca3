//! The two algorithms the paper holds trained models against, as exact predictors, and their
//! per-shot accuracy curves.
//!
//! Both see a context of k examples (x_i, z_i) of one task and a query x:
//!
//! - **Ratio Matching (RM)** answers c·z_i when the query is a multiple of one example,
//!   x ≡ c·x_i (mod p): one example at a time.
//! - **Modular Regression (MR)** answers Σ c_i·z_i when the query is a combination of the
//!   examples, x ≡ Σ c_i·x_i: it solves for the task by elimination ([`Span`]). Its answer is
//!   the label every task consistent with the examples gives, so MR is never wrong when it
//!   decides, and it decides exactly when the examples determine the label.
//!
//! When an algorithm cannot decide it guesses uniformly (right with probability 1/p). The query
//! 0 is decided by both, at every k: every task maps it to 0 (RM with c = 0).

use crate::Vectors;
use modicl_core::rng::{Domain, Rng};

use crate::zn::{is_multiple, Span};

/// One of the two algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RatioMatching,
    ModularRegression,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::RatioMatching, Algorithm::ModularRegression];
    /// `rm` or `mr`.
    pub fn short(self) -> &'static str {
        match self {
            Algorithm::RatioMatching => "rm",
            Algorithm::ModularRegression => "mr",
        }
    }
    /// `Ratio Matching` or `Modular Regression`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RatioMatching => "Ratio Matching",
            Algorithm::ModularRegression => "Modular Regression",
        }
    }
}

/// The answer RM gives for `query` from the examples `(xs[i], zs[i])`, or `None` when no
/// example is a multiple-source of the query. Inputs have `m` coordinates each.
pub fn ratio_matching(xs: &[&[u32]], zs: &[u32], query: &[u32], p: u32) -> Option<u32> {
    if query.iter().all(|&v| v % p == 0) {
        return Some(0);
    }
    xs.iter().zip(zs).find_map(|(x, &z)| {
        is_multiple(query, x, p).map(|c| (c as u64 * z as u64 % p as u64) as u32)
    })
}

/// The answer MR gives for `query` from the examples, or `None` when they leave it open.
pub fn modular_regression(xs: &[&[u32]], zs: &[u32], query: &[u32], p: u32) -> Option<u32> {
    let mut span = Span::new(p, query.len());
    for (x, &z) in xs.iter().zip(zs) {
        span.insert(x, z);
    }
    span.solve(query)
}

/// How an oracle curve was computed.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Method {
    /// Exact: a closed form (RM) or a distribution over spans carried shot by shot (MR).
    Exact,
    /// A Monte-Carlo estimate over `trials` contexts; the curve's standard errors are given.
    MonteCarlo { trials: u64, seed: u64 },
}

/// The per-shot accuracy of an algorithm (with guessing) when the k examples and the query are
/// drawn uniformly, with replacement, from one input set, as modicl's evaluation sets draw them.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Curve {
    pub algorithm: &'static str,
    /// Shot k = 0..len: probability the algorithm decides the query after k examples.
    pub decided: Vec<f64>,
    /// Accuracy with a uniform guess when undecided: decided + (1 − decided)/p.
    pub acc: Vec<f64>,
    /// Standard error of `acc` (zero when exact).
    pub se: Vec<f64>,
    pub method: Method,
}

/// Budget of span transitions (states × inputs) for the exact MR curve; above it the curve is
/// estimated by Monte Carlo.
pub const EXACT_BUDGET: usize = 20_000_000;
/// Monte-Carlo contexts when the exact MR curve is too expensive.
pub const MC_TRIALS: u64 = 20_000;

fn with_guess(decided: f64, p: u32) -> f64 {
    decided + (1.0 - decided) / p as f64
}

/// RM's exact curve for shots 0..shots: for a nonzero query q, with m_q inputs of the set whose
/// multiples include q, P(covered after k examples) = 1 − (1 − m_q/|S|)^k; the query 0 is
/// always covered. Averaged over the queries of the set.
pub fn rm_curve(inputs: &Vectors, p: u32, shots: usize) -> Curve {
    let m = inputs.dim;
    let s = inputs.len();
    // Count, for each input q of the set, the inputs of the set that have q among their
    // multiples (each input's multiples marked once).
    let space = crate::Space::new(p, m as u32).expect("the set's space");
    let mut sources = vec![0u32; space.size as usize];
    let mut seen = vec![u32::MAX; space.size as usize];
    let mut buf = vec![0u32; m];
    for (i, x) in inputs.iter().enumerate() {
        for c in 0..p {
            for (b, &v) in buf.iter_mut().zip(x) {
                *b = (c as u64 * v as u64 % p as u64) as u32;
            }
            let id = space.encode(&buf) as usize;
            if seen[id] != i as u32 {
                seen[id] = i as u32;
                sources[id] += 1;
            }
        }
    }
    let decided: Vec<f64> = (0..=shots)
        .map(|k| {
            inputs
                .iter()
                .map(|q| {
                    if q.iter().all(|&v| v == 0) {
                        1.0
                    } else {
                        let mq = sources[space.encode(q) as usize] as f64;
                        1.0 - (1.0 - mq / s as f64).powi(k as i32)
                    }
                })
                .sum::<f64>()
                / s as f64
        })
        .collect();
    finish("rm", decided, p, Method::Exact)
}

fn finish(algorithm: &'static str, decided: Vec<f64>, p: u32, method: Method) -> Curve {
    Curve {
        algorithm,
        acc: decided.iter().map(|&d| with_guess(d, p)).collect(),
        se: vec![0.0; decided.len()],
        decided,
        method,
    }
}

/// MR's exact curve for shots 0..shots: the distribution over the span of the first k examples,
/// carried shot by shot (spans are few: p + 3 subspaces of Z_p^2 at prime p), and at each shot
/// the fraction of the set's queries each span decides. Falls back to [`mr_curve_mc`] when
/// states × inputs would exceed [`EXACT_BUDGET`].
pub fn mr_curve(inputs: &Vectors, p: u32, shots: usize) -> Curve {
    mr_curve_exact(inputs, p, shots, EXACT_BUDGET)
        .unwrap_or_else(|| mr_curve_mc(inputs, p, shots, MC_TRIALS, 0))
}

/// The exact MR curve, or `None` when it would take more than `budget` span transitions.
pub fn mr_curve_exact(inputs: &Vectors, p: u32, shots: usize, budget: usize) -> Option<Curve> {
    use std::collections::HashMap;
    let m = inputs.dim;
    let s = inputs.len();
    let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut next: Vec<Option<Vec<u32>>> = Vec::new(); // per state: state after each input
    let mut decides: Vec<f64> = Vec::new(); // per state: fraction of the set's queries decided
    let mut work = 0usize;
    let add = |span: Span,
               index: &mut HashMap<Vec<u32>, usize>,
               spans: &mut Vec<Span>,
               next: &mut Vec<Option<Vec<u32>>>,
               decides: &mut Vec<f64>|
     -> usize {
        let key = span.key();
        if let Some(&i) = index.get(&key) {
            return i;
        }
        let frac = inputs.iter().filter(|q| span.contains(q)).count() as f64 / s as f64;
        index.insert(key, spans.len());
        spans.push(span);
        next.push(None);
        decides.push(frac);
        spans.len() - 1
    };
    let start = add(
        Span::new(p, m),
        &mut index,
        &mut spans,
        &mut next,
        &mut decides,
    );
    let mut dist: Vec<f64> = vec![0.0; 1];
    dist[start] = 1.0;
    let mut decided = Vec::with_capacity(shots + 1);
    for k in 0..=shots {
        decided.push(dist.iter().zip(&decides).map(|(a, b)| a * b).sum());
        if k == shots {
            break;
        }
        let mut out = vec![0.0; spans.len()];
        for st in 0..dist.len() {
            if dist[st] == 0.0 {
                continue;
            }
            if next[st].is_none() {
                work += s;
                if work > budget {
                    return None;
                }
                let mut t = Vec::with_capacity(s);
                for x in inputs.iter() {
                    let mut sp = spans[st].clone();
                    sp.insert(x, 0);
                    t.push(add(sp, &mut index, &mut spans, &mut next, &mut decides) as u32);
                }
                next[st] = Some(t);
            }
            out.resize(spans.len(), 0.0);
            let w = dist[st] / s as f64;
            for &to in next[st].as_ref().expect("filled above") {
                out[to as usize] += w;
            }
        }
        dist = out;
    }
    Some(finish("mr", decided, p, Method::Exact))
}

/// MR's curve estimated over `trials` contexts (seeded): each draws `shots` examples and one
/// query per shot from the set. Shot k scores its query against the first k examples.
pub fn mr_curve_mc(inputs: &Vectors, p: u32, shots: usize, trials: u64, seed: u64) -> Curve {
    let m = inputs.dim;
    let s = inputs.len() as u32;
    let mut hits = vec![0u64; shots + 1];
    for t in 0..trials {
        let mut rng = Rng::stream(seed, Domain::Probe, t);
        let mut span = Span::new(p, m);
        for hit in hits.iter_mut() {
            let q = inputs.get(rng.below(s) as usize);
            if span.contains(q) {
                *hit += 1;
            }
            span.insert(inputs.get(rng.below(s) as usize), 0);
        }
    }
    let decided: Vec<f64> = hits.iter().map(|&h| h as f64 / trials as f64).collect();
    let mut c = finish("mr", decided, p, Method::MonteCarlo { trials, seed });
    // Each trial's value is 1 (decided) or 1/p (a guess, counted at its mean): its variance is
    // d(1 − d)(1 − 1/p)^2.
    c.se = c
        .decided
        .iter()
        .map(|&d| (d * (1.0 - d) / trials as f64).sqrt() * (1.0 - 1.0 / p as f64))
        .collect();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Space;

    fn all_inputs(p: u32) -> Vectors {
        let sp = Space::new(p, 2).unwrap();
        sp.vectors(&(0..sp.size).collect::<Vec<_>>())
    }

    #[test]
    fn rm_curve_matches_the_closed_form_at_prime_p() {
        for p in [5u32, 7, 29] {
            let c = rm_curve(&all_inputs(p), p, 8);
            let pf = p as f64;
            for k in 0..=8 {
                // P(query 0) = 1/p^2, always covered; a nonzero query with 1 − (1 − (p−1)/p^2)^k.
                let nz = 1.0 - (1.0 - (pf - 1.0) / (pf * pf)).powi(k as i32);
                let want = 1.0 / (pf * pf) + (1.0 - 1.0 / (pf * pf)) * nz;
                assert!((c.decided[k] - want).abs() < 1e-12, "p {p} k {k}");
            }
        }
        // The numbers: p = 29, k = 1, 2, 3 give about 6.8%, 9.9%, 12.9% with guessing.
        let c = rm_curve(&all_inputs(29), 29, 3);
        for (k, want) in [(1, 0.068), (2, 0.099), (3, 0.129)] {
            assert!((c.acc[k] - want).abs() < 0.0006, "k {k}: {}", c.acc[k]);
        }
    }

    #[test]
    fn mr_curve_matches_the_closed_form_at_prime_p() {
        for p in [5u32, 7, 29] {
            let c = mr_curve_exact(&all_inputs(p), p, 6, usize::MAX).unwrap();
            let pf = p as f64;
            for k in 0..=6i32 {
                // Full span unless every example lies on one line through 0.
                let all_zero = pf.powi(-2 * k);
                let one_line = (pf + 1.0) * (pf.powi(-k) - all_zero);
                let full = 1.0 - all_zero - one_line;
                // A nonzero query is decided by a full span, or by the line it lies on (which
                // the examples span with probability p^-k − p^-2k).
                let nz = full + (pf.powi(-k) - all_zero);
                let want = 1.0 / (pf * pf) + (1.0 - 1.0 / (pf * pf)) * nz;
                let k = k as usize;
                assert!(
                    (c.decided[k] - want).abs() < 1e-12,
                    "p {p} k {k}: {} vs {want}",
                    c.decided[k]
                );
            }
            // At k = 0 both give 1/p on nonzero queries.
            assert!((c.acc[0] - (1.0 / (pf * pf) + (1.0 - 1.0 / (pf * pf)) / pf)).abs() < 1e-12);
        }
    }

    #[test]
    fn monte_carlo_agrees_with_the_exact_curve() {
        let inputs = all_inputs(7);
        let exact = mr_curve_exact(&inputs, 7, 4, usize::MAX).unwrap();
        let mc = mr_curve_mc(&inputs, 7, 4, 20_000, 3);
        for k in 0..=4 {
            let tol = 4.0 * mc.se[k] + 1e-9;
            assert!(
                (mc.acc[k] - exact.acc[k]).abs() <= tol,
                "k {k}: {} vs {}",
                mc.acc[k],
                exact.acc[k]
            );
        }
        assert!(mr_curve_exact(&inputs, 7, 4, 10).is_none());
    }
}
