//! k-shot prediction grids (the paper's Fig. 5): one task, a fixed prefix of k examples, and
//! the model's prediction for every query of Z_p^n_var after it, next to the queries each
//! algorithm can answer from the same prefix.

use modicl_core::rng::{Domain, Rng};
use modicl_data::{label, Space, Vectors};

use crate::oracle::{modular_regression, ratio_matching};
use crate::{ProbeError, Scorer};

/// What to probe: a task, the prefix examples' inputs, and the shot counts to score.
#[derive(Clone, Debug, PartialEq)]
pub struct KshotSpec {
    pub p: u32,
    pub task: Vec<u32>,
    /// The prefix's inputs, in order (at least max(shots) of them).
    pub prefix: Vectors,
    pub shots: Vec<usize>,
}

/// The prefix inputs drawn without replacement from all p^n_var inputs (no train/test split),
/// seeded: the same seed gives the same prefix for every task.
pub fn draw_prefix(p: u32, n_var: u32, count: usize, seed: u64) -> Vectors {
    let space = Space::new(p, n_var).expect("the run's space");
    let mut ids: Vec<u32> = (0..space.size).collect();
    let mut rng = Rng::stream(seed, Domain::Probe, u64::MAX);
    rng.partial_shuffle(&mut ids, count);
    space.vectors(&ids[..count.min(ids.len())])
}

/// Per shot count, how many of the p^n_var queries fall in each class.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KshotSummary {
    pub shots: usize,
    pub queries: usize,
    /// Fractions of all queries.
    pub model_correct: f64,
    pub rm_explained: f64,
    pub mr_explained: f64,
    /// Model right where RM cannot answer (red in the difference map).
    pub model_beyond_rm: f64,
    /// RM could answer, the model is wrong (blue).
    pub rm_not_model: f64,
    /// Model right where not even MR could answer (a lucky guess, or memory of the task).
    pub model_beyond_mr: f64,
    /// Mean cross-entropy of the true label over all queries.
    pub loss: f64,
}

/// The grids: per shot count and query (queries in canonical order, index x·p + y).
#[derive(Clone, Debug, PartialEq)]
pub struct KshotGrid {
    pub spec: KshotSpec,
    /// Every query, canonical order.
    pub queries: Vectors,
    /// [shots.len() × queries], shot-major.
    pub correct: Vec<bool>,
    pub pred: Vec<u32>,
    pub loss: Vec<f32>,
    pub rm: Vec<bool>,
    pub mr: Vec<bool>,
    pub summary: Vec<KshotSummary>,
}

impl KshotGrid {
    /// The rows of shot index `s` of a per-query vector.
    pub fn at<'a, T>(&self, v: &'a [T], s: usize) -> &'a [T] {
        let q = self.queries.len();
        &v[s * q..(s + 1) * q]
    }
}

/// Runs the probe: for each k in `spec.shots`, the sequences [prefix_1..prefix_k, query] for
/// every query, scored at the query's label.
pub fn run(scorer: &mut Scorer<'_>, spec: &KshotSpec) -> Result<KshotGrid, ProbeError> {
    let p = spec.p;
    let m = spec.task.len();
    let space = Space::new(p, m as u32)
        .ok_or_else(|| ProbeError::invalid("task", format!("{:?}", spec.task), "a small space"))?;
    let queries = space.vectors(&(0..space.size).collect::<Vec<_>>());
    let nq = queries.len();
    let ex = m + 1;
    let mut grid = KshotGrid {
        spec: spec.clone(),
        queries: queries.clone(),
        correct: Vec::with_capacity(nq * spec.shots.len()),
        pred: Vec::new(),
        loss: Vec::new(),
        rm: Vec::new(),
        mr: Vec::new(),
        summary: Vec::new(),
    };
    for &k in &spec.shots {
        let xs: Vec<&[u32]> = (0..k).map(|i| spec.prefix.get(i)).collect();
        let zs: Vec<u32> = xs.iter().map(|x| label(&spec.task, x, p)).collect();
        let seq_len = (k + 1) * ex;
        let mut tokens = Vec::with_capacity(nq * seq_len);
        for q in queries.iter() {
            for (x, &z) in xs.iter().zip(&zs) {
                tokens.extend_from_slice(x);
                tokens.push(z);
            }
            tokens.extend_from_slice(q);
            tokens.push(label(&spec.task, q, p));
        }
        let pos = [k * ex + m - 1];
        let s = scorer.score(&tokens, seq_len, &pos)?;
        let rm: Vec<bool> = queries
            .iter()
            .map(|q| ratio_matching(&xs, &zs, q, p).is_some())
            .collect();
        let mr: Vec<bool> = queries
            .iter()
            .map(|q| modular_regression(&xs, &zs, q, p).is_some())
            .collect();
        let frac = |f: &dyn Fn(usize) -> bool| (0..nq).filter(|&i| f(i)).count() as f64 / nq as f64;
        grid.summary.push(KshotSummary {
            shots: k,
            queries: nq,
            model_correct: frac(&|i| s.correct[i]),
            rm_explained: frac(&|i| rm[i]),
            mr_explained: frac(&|i| mr[i]),
            model_beyond_rm: frac(&|i| s.correct[i] && !rm[i]),
            rm_not_model: frac(&|i| rm[i] && !s.correct[i]),
            model_beyond_mr: frac(&|i| s.correct[i] && !mr[i]),
            loss: s.loss.iter().map(|&l| l as f64).sum::<f64>() / nq as f64,
        });
        grid.correct.extend_from_slice(&s.correct);
        grid.pred.extend_from_slice(&s.pred);
        grid.loss.extend_from_slice(&s.loss);
        grid.rm.extend(rm);
        grid.mr.extend(mr);
    }
    Ok(grid)
}
