//! Phase labels: which of the paper's four phases a run ends in, from its last-shot accuracies
//! on the four evaluation sets and one pass threshold.
//!
//! The paper gives no thresholds. The default, pass = accuracy >= 0.8 at the last shot, is far
//! above chance (1/p: 0.034 at p = 29) so a pass is real learning, and below 0.9 because the
//! paper reports that i.d. accuracy drops somewhat as o.o.d. generalization sets in (the
//! memorization-generalization trade-off): a stricter cut would label such runs "other".
//!
//! A second labelling ([`Labelling::Rm`]) reads the o.o.d.-test accuracy against what Ratio
//! Matching can reach ([`modicl_trainer::oracles`]): at CPU scale, with 16 examples of Z_29^2, a
//! perfect Ratio Matching answers the last query right only about 42% of the time, so the 0.8
//! bar can call "none" a run that generalizes o.o.d. in the paper's sense. It keeps every
//! paper-style label and adds one, [`Phase::OodGenRm`].

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
    /// Second labelling only: o.o.d.-test last-shot accuracy at least 0.8 of Ratio Matching's
    /// and above chance by more than the sampling noise, in a run not labelled `ood-gen`.
    OodGenRm,
}

/// Which labelling a table or a phase diagram shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Labelling {
    /// The paper-style labels: every set passes or fails at one accuracy threshold.
    #[default]
    Paper,
    /// The paper-style labels, with `ood-gen-rm` where the o.o.d.-test accuracy reaches the
    /// Ratio Matching level.
    Rm,
}

impl Labelling {
    /// `paper` or `rm`.
    pub fn as_str(self) -> &'static str {
        match self {
            Labelling::Paper => "paper",
            Labelling::Rm => "rm",
        }
    }
    /// The labels this labelling can give, in legend order.
    pub fn phases(self) -> &'static [Phase] {
        match self {
            Labelling::Paper => &Phase::ALL,
            Labelling::Rm => &Phase::ALL_RM,
        }
    }
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
            Phase::OodGenRm => "ood-gen-rm",
        }
    }
    /// Every label of the second labelling: the paper-style ones and `ood-gen-rm`.
    pub const ALL_RM: [Phase; 7] = [
        Phase::IdMem,
        Phase::IdGen,
        Phase::OodMem,
        Phase::OodGen,
        Phase::OodGenRm,
        Phase::None,
        Phase::Other,
    ];
    /// Every paper-style label, in the order of the paper's phases.
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

/// The second labelling of a run whose paper-style label is `paper`: `ood-gen-rm` when its
/// o.o.d.-test accuracy reaches the Ratio Matching level (`ood_gen_rm`, decided by
/// [`modicl_trainer::oracles::ood_gen_rm`]) and it is not already `ood-gen`; else `paper`.
pub fn label_rm(paper: Phase, ood_gen_rm: bool) -> Phase {
    if ood_gen_rm && paper != Phase::OodGen {
        Phase::OodGenRm
    } else {
        paper
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

    #[test]
    fn the_second_labelling_adds_one_label_and_keeps_the_rest() {
        for p in Phase::ALL {
            assert_eq!(label_rm(p, false), p);
        }
        assert_eq!(label_rm(Phase::None, true), Phase::OodGenRm);
        assert_eq!(label_rm(Phase::IdMem, true), Phase::OodGenRm);
        assert_eq!(label_rm(Phase::OodGen, true), Phase::OodGen);
        assert!(!Phase::ALL.contains(&Phase::OodGenRm));
        assert_eq!(
            Labelling::Rm.phases().len(),
            Labelling::Paper.phases().len() + 1
        );
    }
}
