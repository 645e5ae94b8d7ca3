//! Sequences and batches.
//!
//! A sequence holds `k` examples of one task, one token per number (token id = value):
//! `x1 y1 z1 x2 y2 z2 ...` for n_var = 2. The model reads the first `k·(n_var+1) - 1` tokens and
//! is scored on predicting each z from the token before it (see [`SequenceLayout`]).

use modicl_config::BatchLayout;
use modicl_core::rng::Rng;

use crate::vectors::{label, Vectors};

/// Where the tokens of a sequence are, and which positions carry the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceLayout {
    pub n_var: usize,
    /// Examples per sequence, k.
    pub examples: usize,
}

impl SequenceLayout {
    /// Tokens per example: n_var inputs and the label.
    pub fn example_len(&self) -> usize {
        self.n_var + 1
    }
    /// Tokens in a full sequence, k·(n_var + 1).
    pub fn seq_len(&self) -> usize {
        self.examples * self.example_len()
    }
    /// Tokens the model reads: the sequence without its last token.
    pub fn input_len(&self) -> usize {
        self.seq_len() - 1
    }
    /// Whether the model's output at input position `j` is scored: the target `tokens[j + 1]`
    /// is a z token (for n_var = 2: j = 1, 4, 7, ...).
    #[inline]
    pub fn is_target(&self, j: usize) -> bool {
        (j + 2).is_multiple_of(self.example_len())
    }
    /// The input positions that are scored, in order; position `shot` predicts z of example
    /// `shot` after `shot` complete examples of context (0-shot first).
    pub fn target_positions(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.examples).map(|shot| shot * self.example_len() + self.n_var - 1)
    }
}

/// `rows` sequences of `seq_len` tokens, and the task of each row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub rows: usize,
    pub seq_len: usize,
    /// `rows × seq_len` token ids, row-major.
    pub tokens: Vec<u32>,
    /// Row -> index into the task list the batch was drawn from.
    pub task: Vec<u32>,
}

impl Batch {
    /// The full sequence of row `r`.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.tokens[r * self.seq_len..(r + 1) * self.seq_len]
    }

    /// Resizes the buffers in place (no allocation when the shape is unchanged).
    fn reshape(&mut self, rows: usize, seq_len: usize) {
        self.rows = rows;
        self.seq_len = seq_len;
        self.tokens.resize(rows * seq_len, 0);
        self.task.resize(rows, 0);
    }
}

/// What a batch is drawn from: `per_task` sequences of each of `tasks`, inputs from `inputs`.
pub(crate) struct Draw<'a> {
    pub tasks: &'a Vectors,
    pub inputs: &'a Vectors,
    pub per_task: usize,
}

/// Fills `out` with `per_task` sequences of every task of `draw`, task-major (row r belongs to
/// task r / per_task), inputs drawn uniformly with replacement from `draw.inputs`.
///
/// With [`BatchLayout::Shared`] the input stream is drawn once and reused by every task, so
/// sequence j of every task has the same inputs and differs only in the labels. Allocates
/// nothing once `out` has the right shape.
pub(crate) fn fill(
    out: &mut Batch,
    draw: Draw<'_>,
    p: u32,
    seq: SequenceLayout,
    layout: BatchLayout,
    rng: &mut Rng,
) {
    let Draw {
        tasks,
        inputs,
        per_task,
    } = draw;
    let (ex, k, n_var) = (seq.example_len(), seq.examples, seq.n_var);
    let seq_len = seq.seq_len();
    out.reshape(tasks.len() * per_task, seq_len);
    let n_inputs = inputs.len() as u32;
    let block = per_task * seq_len; // tokens of one task
    for t in 0..tasks.len() {
        let w = tasks.get(t);
        out.task[t * per_task..(t + 1) * per_task].fill(t as u32);
        let reuse = layout == BatchLayout::Shared && t > 0;
        let (head, body) = out.tokens.split_at_mut(t * block);
        let mine = &mut body[..block];
        for (e, slot) in mine.chunks_exact_mut(ex).enumerate() {
            debug_assert!(e < per_task * k);
            if reuse {
                slot[..n_var].copy_from_slice(&head[e * ex..e * ex + n_var]);
            } else {
                slot[..n_var].copy_from_slice(inputs.get(rng.below(n_inputs) as usize));
            }
            slot[n_var] = label(w, &slot[..n_var], p);
        }
    }
}

/// Gives row `r` of `out` to task `task` (index `t` in the task list): its inputs stay, its
/// labels are recomputed.
pub(crate) fn relabel(
    out: &mut Batch,
    r: usize,
    t: usize,
    task: &[u32],
    p: u32,
    seq: SequenceLayout,
) {
    let (ex, n_var) = (seq.example_len(), seq.n_var);
    out.task[r] = t as u32;
    let row = &mut out.tokens[r * out.seq_len..(r + 1) * out.seq_len];
    for slot in row.chunks_exact_mut(ex) {
        slot[n_var] = label(task, &slot[..n_var], p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_positions_match_is_target() {
        for n_var in 1..4 {
            for examples in 1..6 {
                let s = SequenceLayout { n_var, examples };
                let a: Vec<usize> = s.target_positions().collect();
                let b: Vec<usize> = (0..s.input_len()).filter(|&j| s.is_target(j)).collect();
                assert_eq!(a, b, "n_var {n_var} k {examples}");
                assert_eq!(a.len(), examples);
            }
        }
        let s = SequenceLayout {
            n_var: 2,
            examples: 32,
        };
        assert_eq!(s.input_len(), 95);
        assert_eq!(s.target_positions().take(3).collect::<Vec<_>>(), [1, 4, 7]);
        assert_eq!(s.target_positions().last(), Some(94));
    }
}
