//! modicl's behavioural probes: which algorithm does a trained model run?
//!
//! - [`oracle`]: Ratio Matching and Modular Regression as exact predictors, and their per-shot
//!   accuracy curves for any p and input set ([`zn`] has the elimination over Z_p they use).
//! - [`kshot`]: the model's prediction for every query after a fixed prefix of k examples
//!   (the paper's Fig. 5), beside the sets each algorithm explains.
//! - [`noise`]: label corruption, at random places and at one place, and which earlier examples
//!   a prediction depends on.
//! - [`figures`]: the plots of all three.
//!
//! The crate uses the engine and the data crate; loading runs and checkpoints is the caller's
//! (the CLI's) job, and the trainer does not depend on this crate.

pub mod figures;
pub mod kshot;
pub mod linalg;
pub mod noise;
pub mod repr;
/// The two algorithms (Ratio Matching, Modular Regression) and their exact accuracy curves, and
/// the linear algebra over Z_n under them: in `modicl-data`, since the trainer reads the curves
/// too.
pub use modicl_data::{oracle, zn};

use std::collections::HashMap;

use modicl_engine::{EngineError, Model, Workspace};

/// Errors of a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A request the run cannot answer (a task outside Z_p^2, too many shots...): exit 2.
    #[error("{field}: {value}: {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Plot(#[from] modicl_plots::PlotError),
}

impl ProbeError {
    pub fn invalid(
        field: &str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        ProbeError::Invalid {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
    /// Whether the error is the user's request (exit status 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ProbeError::Invalid { .. })
    }
}

/// Model outputs at the scored positions of a set of sequences, in (sequence, position) order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// Argmax over the whole vocabulary, lowest index on ties (as modicl's evaluation).
    pub pred: Vec<u32>,
    pub correct: Vec<bool>,
    /// Cross-entropy of the true next token.
    pub loss: Vec<f32>,
}

/// Runs a model on many sequences in chunks, keeping one workspace per shape.
pub struct Scorer<'m> {
    pub model: &'m Model,
    chunk: usize,
    spare: HashMap<(usize, usize), Workspace>,
}

impl<'m> Scorer<'m> {
    /// At most `chunk` sequences per forward pass.
    pub fn new(model: &'m Model, chunk: usize) -> Scorer<'m> {
        Scorer {
            model,
            chunk: chunk.max(1),
            spare: HashMap::new(),
        }
    }

    /// Scores `tokens` (sequences of `seq_len` tokens, row-major) at input positions
    /// `positions` (the model predicts the token after each).
    pub fn score(
        &mut self,
        tokens: &[u32],
        seq_len: usize,
        positions: &[usize],
    ) -> Result<Scores, ProbeError> {
        let rows = tokens.len() / seq_len.max(1);
        let v = self.model.cfg.vocab;
        let mut out = Scores::default();
        let mut r0 = 0;
        while r0 < rows {
            let n = self.chunk.min(rows - r0);
            let cfg = &self.model.cfg;
            let ws = self
                .spare
                .entry((n, seq_len))
                .or_insert_with(|| Workspace::new(cfg, n, seq_len - 1));
            self.model.forward(
                ws,
                &tokens[r0 * seq_len..(r0 + n) * seq_len],
                seq_len,
                positions,
                None,
            )?;
            out.correct.extend_from_slice(&ws.target_correct);
            out.loss.extend_from_slice(&ws.target_loss);
            let scored = ws.target_correct.len();
            out.pred
                .extend(ws.logits[..scored * v].chunks_exact(v).map(argmax));
            r0 += n;
        }
        Ok(out)
    }
}

/// Index of the largest value, lowest on ties.
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}
