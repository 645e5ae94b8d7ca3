//! Label corruption: how a prediction changes when earlier labels in its context are wrong.
//!
//! A corrupted label z is replaced by z + u mod p with u uniform in 1..p−1, so it is always
//! wrong. The query's own label (the target) is never corrupted.
//!
//! - [`random_location`]: for a context of k examples with m of them corrupted at random
//!   places, the accuracy and loss at the query (k = 1..K−1, m = 0..k).
//! - [`single_location`]: for full-length sequences with exactly one corrupted label, at slot
//!   j, whether the prediction at each later shot i stays correct, and whether the examples
//!   that matter are the ones Ratio Matching would use.

use modicl_core::rng::{Domain, Rng};
use modicl_data::{label, Vectors};

use crate::zn::is_multiple;
use crate::{ProbeError, Scorer};

/// The tasks and inputs of one evaluation set, and how many sequences to draw.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub p: u32,
    pub tasks: &'a Vectors,
    pub inputs: &'a Vectors,
    /// Examples per full sequence (the run's k).
    pub examples: usize,
}

/// Accuracy and loss at the query for k examples with m wrong labels: cell `[k][m]` (k = 0..K−1,
/// m = 0..=k; m > k is empty), averaged over tasks and trials.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RandomLocation {
    /// Sequences averaged per cell (tasks × trials).
    pub samples: usize,
    pub acc: Vec<Vec<f64>>,
    pub loss: Vec<Vec<f64>>,
}

/// Writes `count` examples of `task` drawn with replacement from `inputs` into `out`.
fn draw_examples(src: &Source<'_>, task: &[u32], count: usize, rng: &mut Rng, out: &mut Vec<u32>) {
    let n = src.inputs.len() as u32;
    for _ in 0..count {
        let x = src.inputs.get(rng.below(n) as usize);
        out.extend_from_slice(x);
        out.push(label(task, x, src.p));
    }
}

/// A wrong label in place of `z`.
fn corrupt(z: u32, p: u32, rng: &mut Rng) -> u32 {
    (z + 1 + rng.below(p - 1)) % p
}

/// Random-location corruption over the first `tasks` tasks of `src` (all when fewer), `trials`
/// contexts each, seeded. For each (task, trial, k) one context is drawn and corrupted at m
/// random slots for every m = 0..=k, so the cells of one k differ only by the corruption.
pub fn random_location(
    scorer: &mut Scorer<'_>,
    src: &Source<'_>,
    tasks: usize,
    trials: usize,
    seed: u64,
) -> Result<RandomLocation, ProbeError> {
    let p = src.p;
    let m_var = src.inputs.dim;
    let ex = m_var + 1;
    let n_tasks = tasks.min(src.tasks.len());
    let kmax = src.examples - 1;
    let samples = n_tasks * trials;
    let mut acc = vec![Vec::new(); kmax + 1];
    let mut loss = vec![Vec::new(); kmax + 1];
    for k in 0..=kmax {
        let seq_len = (k + 1) * ex;
        let mut tokens = Vec::with_capacity(samples * (k + 1) * seq_len);
        for t in 0..n_tasks {
            let w = src.tasks.get(t);
            for trial in 0..trials {
                let mut rng =
                    Rng::stream(seed, Domain::Probe, ((k * 4096 + t) * 4096 + trial) as u64);
                let mut base = Vec::with_capacity(seq_len);
                draw_examples(src, w, k + 1, &mut rng, &mut base);
                for m in 0..=k {
                    let mut slots: Vec<usize> = (0..k).collect();
                    rng.partial_shuffle(&mut slots, m);
                    let start = tokens.len();
                    tokens.extend_from_slice(&base);
                    for &s in &slots[..m] {
                        let z = &mut tokens[start + s * ex + m_var];
                        *z = corrupt(*z, p, &mut rng);
                    }
                }
            }
        }
        let s = scorer.score(&tokens, seq_len, &[k * ex + m_var - 1])?;
        // Rows are (task, trial, m): average over the first two.
        let mut a = vec![0.0; k + 1];
        let mut l = vec![0.0; k + 1];
        for (r, (&c, &x)) in s.correct.iter().zip(&s.loss).enumerate() {
            a[r % (k + 1)] += c as u8 as f64;
            l[r % (k + 1)] += x as f64;
        }
        acc[k] = a.iter().map(|v| v / samples as f64).collect();
        loss[k] = l.iter().map(|v| v / samples as f64).collect();
    }
    Ok(RandomLocation { samples, acc, loss })
}

/// Single-location corruption of one evaluation set: cell `[i][j]` is the accuracy at shot i when
/// only the label of example j < i is wrong (`baseline[i]`: no label wrong).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SingleLocation {
    pub sequences: usize,
    pub baseline: Vec<f64>,
    /// `[i][j]` for j < i; NaN for j ≥ i.
    pub acc: Vec<Vec<f64>>,
    /// Which examples matter, pooled over shots i ≥ 1 and corrupted slots j < i with a nonzero
    /// query: accuracy when the corrupted example is the query's only Ratio-Matching source
    /// (split into the query's own input seen before, c = 1, and a proper multiple, c ≠ 1),
    /// when it is one of several sources, and when it is not one; and how often each occurred.
    pub dependence: Dependence,
}

/// See [`SingleLocation::dependence`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Dependence {
    /// The corrupted example has the query's input (x_j = x_i) and is its only RM source.
    pub only_source_same_input: Case,
    /// The corrupted example is the query's only RM source, a proper multiple (c ≠ 1).
    pub only_source_scaled: Case,
    /// The corrupted example is one of several RM sources of the query.
    pub one_of_several_sources: Case,
    /// The corrupted example is not an RM source of the query.
    pub not_a_source: Case,
}

/// One case of [`Dependence`]: how many (sequence, shot, corrupted example) triples fell in it,
/// and the accuracy at the shot without and with the corruption, over those triples.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Case {
    pub count: u64,
    pub clean_acc: f64,
    pub corrupted_acc: f64,
    #[serde(skip)]
    clean: u64,
    #[serde(skip)]
    corrupted: u64,
}

impl Case {
    fn add(&mut self, clean: bool, corrupted: bool) {
        self.count += 1;
        self.clean += clean as u64;
        self.corrupted += corrupted as u64;
    }
    fn finish(&mut self) {
        let ratio = |a: u64| {
            if self.count == 0 {
                f64::NAN
            } else {
                a as f64 / self.count as f64
            }
        };
        self.clean_acc = ratio(self.clean);
        self.corrupted_acc = ratio(self.corrupted);
    }
}

/// Single-location corruption: `sequences` full-length sequences (task t = row mod the number
/// of tasks, inputs drawn from the set's inputs), each scored at every shot once clean and once
/// per corrupted slot.
pub fn single_location(
    scorer: &mut Scorer<'_>,
    src: &Source<'_>,
    sequences: usize,
    seed: u64,
) -> Result<SingleLocation, ProbeError> {
    let p = src.p;
    let m_var = src.inputs.dim;
    let ex = m_var + 1;
    let k = src.examples;
    let seq_len = k * ex;
    let positions: Vec<usize> = (0..k).map(|i| i * ex + m_var - 1).collect();
    // Per sequence: the clean copy, then one copy per corrupted slot j = 0..k−1.
    let mut tokens = Vec::with_capacity(sequences * (k + 1) * seq_len);
    let mut clean = Vec::with_capacity(sequences * seq_len);
    for r in 0..sequences {
        let w = src.tasks.get(r % src.tasks.len());
        let mut rng = Rng::stream(seed, Domain::Probe, (1 << 40) + r as u64);
        let start = clean.len();
        draw_examples(src, w, k, &mut rng, &mut clean);
        let base = clean[start..].to_vec();
        tokens.extend_from_slice(&base);
        for j in 0..k {
            let s = tokens.len();
            tokens.extend_from_slice(&base);
            let z = &mut tokens[s + j * ex + m_var];
            *z = corrupt(*z, p, &mut rng);
        }
    }
    let s = scorer.score(&tokens, seq_len, &positions)?;
    // s.correct is (copy, shot)-major: copy c of sequence r is row r·(k+1) + c.
    let at = |r: usize, copy: usize, i: usize| s.correct[(r * (k + 1) + copy) * k + i];
    let mut baseline = vec![0.0; k];
    let mut acc = vec![vec![f64::NAN; k]; k];
    let frac = |copy: usize, i: usize| {
        (0..sequences).filter(|&r| at(r, copy, i)).count() as f64 / sequences as f64
    };
    for (i, (b, row)) in baseline.iter_mut().zip(acc.iter_mut()).enumerate() {
        *b = frac(0, i);
        for (j, cell) in row.iter_mut().enumerate().take(i) {
            *cell = frac(j + 1, i);
        }
    }
    let mut d = Dependence::default();
    for r in 0..sequences {
        let seq = &clean[r * seq_len..(r + 1) * seq_len];
        let x = |i: usize| &seq[i * ex..i * ex + m_var];
        for i in 1..k {
            let q = x(i);
            if q.iter().all(|&v| v == 0) {
                continue;
            }
            let sources: Vec<bool> = (0..i).map(|j| is_multiple(q, x(j), p).is_some()).collect();
            let n_sources = sources.iter().filter(|&&b| b).count();
            for (j, &is) in sources.iter().enumerate() {
                let case = match (is, n_sources) {
                    (true, 1) if x(j) == q => &mut d.only_source_same_input,
                    (true, 1) => &mut d.only_source_scaled,
                    (true, _) => &mut d.one_of_several_sources,
                    (false, _) => &mut d.not_a_source,
                };
                case.add(at(r, 0, i), at(r, j + 1, i));
            }
        }
    }
    for c in [
        &mut d.only_source_same_input,
        &mut d.only_source_scaled,
        &mut d.one_of_several_sources,
        &mut d.not_a_source,
    ] {
        c.finish();
    }
    Ok(SingleLocation {
        sequences,
        baseline,
        acc,
        dependence: d,
    })
}
