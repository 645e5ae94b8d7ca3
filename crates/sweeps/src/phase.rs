//! Phase labels: which of the paper's four phases a run ends in, from its last-shot accuracies
//! on the four evaluation sets and one pass threshold.
//!
//! The paper gives no thresholds. The default, pass = accuracy >= 0.8 at the last shot, is far
//! above chance (1/p: 0.034 at p = 29) so a pass is real learning, and below 0.9 because the
//! paper reports that i.d. accuracy drops somewhat as o.o.d. generalization sets in (the
//! memorization-generalization trade-off): a stricter cut would label such runs "other".

use serde::{Deserialize, Serialize};

/// The four phases of the paper, plus what fits none of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// i.d.-train passes; i.d.-test and both o.o.d. sets fail.
    IdMem,
    /// i.d.-train and i.d.-test pass; both o.o.d. sets fail.
    IdGen,
    /// i.d.-train and o.o.d.-train pass; o.o.d.-test fails.
    OodMem,
    /// i.d.-train and o.o.d.-test pass.
    OodGen,
    /// Nothing passes, not even i.d.-train.
    None,
    /// Any other combination (e.g. o.o.d. sets pass while i.d.-train fails).
    Other,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::IdMem => "id-mem",
            Phase::IdGen => "id-gen",
            Phase::OodMem => "ood-mem",
            Phase::OodGen => "ood-gen",
            Phase::None => "none",
            Phase::Other => "other",
        }
    }
    /// Every label, in the order of the paper's phases.
    pub const ALL: [Phase; 6] = [
        Phase::IdMem,
        Phase::IdGen,
        Phase::OodMem,
        Phase::OodGen,
        Phase::None,
        Phase::Other,
    ];
}

/// Accuracies of the four sets (all in [0, 1]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Four {
    pub id_train: f64,
    pub id_test: f64,
    pub ood_train: f64,
    pub ood_test: f64,
}

/// The phase of a run whose accuracies are `a`, passing at `pass`.
pub fn label(a: Four, pass: f64) -> Phase {
    let p = |x: f64| x >= pass;
    match (p(a.id_train), p(a.id_test), p(a.ood_train), p(a.ood_test)) {
        (false, false, false, false) => Phase::None,
        (true, _, _, true) => Phase::OodGen,
        (true, _, true, false) => Phase::OodMem,
        (true, true, false, false) => Phase::IdGen,
        (true, false, false, false) => Phase::IdMem,
        _ => Phase::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four(a: f64, b: f64, c: f64, d: f64) -> Four {
        Four {
            id_train: a,
            id_test: b,
            ood_train: c,
            ood_test: d,
        }
    }

    #[test]
    fn the_four_phases_and_the_rest() {
        assert_eq!(label(four(0.99, 0.1, 0.05, 0.04), 0.8), Phase::IdMem);
        assert_eq!(label(four(0.99, 0.9, 0.05, 0.04), 0.8), Phase::IdGen);
        assert_eq!(label(four(0.95, 0.4, 0.85, 0.3), 0.8), Phase::OodMem);
        assert_eq!(label(four(0.95, 0.9, 0.9, 0.85), 0.8), Phase::OodGen);
        assert_eq!(label(four(0.1, 0.1, 0.1, 0.1), 0.8), Phase::None);
        // o.o.d.-test passes while i.d.-train does not: not forced into a phase.
        assert_eq!(label(four(0.5, 0.5, 0.9, 0.9), 0.8), Phase::Other);
        // The threshold is inclusive and moves the boundary.
        assert_eq!(label(four(0.8, 0.8, 0.1, 0.1), 0.8), Phase::IdGen);
        assert_eq!(label(four(0.8, 0.8, 0.1, 0.1), 0.81), Phase::None);
    }
}
