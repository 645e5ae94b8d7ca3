//! Accuracy read against what the two candidate algorithms can reach.
//!
//! A model's last-shot accuracy means little on its own at CPU scale: with k = 16 examples of
//! Z_29^2, an exact Ratio Matching (RM) answers the last query right about 42% of the time,
//! so a run can do all that RM does and still be far below the 0.8 of the paper-style labels.
//! For every set this module gives RM's and Modular Regression's (MR) exact last-shot accuracy
//! on the set's inputs ([`modicl_data::oracle`]; the model's inputs are drawn the same way) and
//! the model's fraction of each, and decides the second label, "o.o.d. generalization at the
//! Ratio Matching level" ([`ood_gen_rm`]).

use modicl_data::oracle::{mr_curve, rm_curve};
use modicl_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::eval::within_chance_noise;
use crate::names::SetName;

/// The fraction of RM's o.o.d.-test last-shot accuracy a run must reach for the label
/// "o.o.d. generalization at the Ratio Matching level" (the paper-style labels use 0.8 of
/// accuracy itself).
pub const RM_LEVEL: f64 = 0.8;

/// The label's name in tables, `results.csv` and phase plots.
pub const OOD_GEN_RM: &str = "ood-gen-rm";

/// Last-shot accuracy of the two algorithms on one set's inputs (a uniform guess when
/// undecided, so chance is their floor).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Oracles {
    pub rm: f64,
    pub mr: f64,
}

/// The oracles of a dataset's two input sets at the last shot (k − 1 examples in context).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SetOracles {
    pub train: Oracles,
    pub test: Oracles,
}

impl SetOracles {
    /// Computes both curves for the training and test inputs (exact; MR falls back to a
    /// seeded Monte-Carlo estimate on spaces too big for the exact recursion).
    pub fn of(ds: &Dataset) -> SetOracles {
        let p = ds.space.p;
        let last = ds.seq.examples - 1;
        let at = |inputs| Oracles {
            rm: rm_curve(inputs, p, last).acc[last],
            mr: mr_curve(inputs, p, last).acc[last],
        };
        SetOracles {
            train: at(&ds.inputs.train),
            test: at(&ds.inputs.test),
        }
    }

    /// The oracles of set `name`: the training batch and the `*_train` sets draw from the
    /// training inputs, the `*_test` sets from the held-out ones.
    pub fn get(&self, name: SetName) -> Oracles {
        match name {
            SetName::TrainBatch | SetName::IdTrain | SetName::OodTrain => self.train,
            SetName::IdTest | SetName::OodTest => self.test,
        }
    }
}

/// Whether an o.o.d.-test last-shot accuracy `acc` (on `n` samples) counts as o.o.d.
/// generalization at the Ratio Matching level: at least [`RM_LEVEL`] of RM's accuracy `rm`,
/// and above chance by more than the sampling-noise bound that early stopping uses for the
/// best of `evals` evaluations ([`within_chance_noise`]). The same bound is used for the final
/// step as for the early-stopped one, which makes the final label slightly conservative.
pub fn ood_gen_rm(acc: f64, n: u64, rm: f64, chance: f64, evals: usize) -> bool {
    let (noise, _) = within_chance_noise(acc, n, chance, evals);
    acc.is_finite() && acc >= RM_LEVEL * rm && !noise
}

#[cfg(test)]
mod tests {
    use super::*;
    use modicl_config::Config;

    fn dataset(p: u32, examples: u32) -> Dataset {
        let set = [format!("task.p={p}"), format!("task.examples={examples}")];
        let c = Config::resolve(Some("cpu"), None, &set).unwrap();
        Dataset::build(&c.task).unwrap()
    }

    #[test]
    fn ratio_matching_at_the_last_shot_matches_the_closed_form() {
        // The figure: at p = 29, 16 examples, about 42% (the closed form for the full
        // space: a nonzero query is covered by a nonzero multiple-source with probability
        // (p − 1)/p^2 per example). The training inputs are 80% of the space, so the exact
        // value on them differs a little; check it lies near the full-space value.
        let ds = dataset(29, 16);
        let o = SetOracles::of(&ds);
        let p = 29f64;
        let covered = 1.0 - (1.0 - (p - 1.0) / (p * p)).powi(15);
        let full = covered + (1.0 - covered) / p;
        assert!((o.train.rm - full).abs() < 0.03, "{} vs {full}", o.train.rm);
        assert!(o.train.mr > o.train.rm, "MR decides whenever RM does");
        // More examples, more coverage.
        let o32 = SetOracles::of(&dataset(29, 32));
        assert!(o32.train.rm > o.train.rm + 0.15, "{}", o32.train.rm);
        // Sets read the oracles of their inputs.
        assert_eq!(o.get(SetName::OodTest), o.test);
        assert_eq!(o.get(SetName::IdTrain), o.train);
        assert_eq!(o.get(SetName::TrainBatch), o.train);
    }

    #[test]
    fn the_label_needs_both_the_fraction_and_the_noise_bound() {
        let chance = 1.0 / 29.0;
        // 0.8 of RM, far above chance on many samples: labelled.
        assert!(ood_gen_rm(0.34, 5000, 0.42, chance, 20));
        // Just below 0.8 of RM: not.
        assert!(!ood_gen_rm(0.33, 5000, 0.42, chance, 20));
        // At 0.8 of an oracle that is barely above chance, on few samples: noise, not.
        assert!(!ood_gen_rm(0.05, 50, 0.06, chance, 20));
        // The same accuracy on many samples clears the bound.
        assert!(ood_gen_rm(0.05, 1_000_000, 0.06, chance, 20));
        assert!(!ood_gen_rm(f64::NAN, 100, 0.4, chance, 1));
    }
}
