//! The names that the run directory's files, the commands and the sweeps share: the sets a run
//! is measured on, the metrics of a set, and the checkpoint selectors. Each is spelled here,
//! and everything else handles the enums. (The four evaluation sets are also named by
//! [`EvalSet::name`], below this crate, for `data export`'s files; a test keeps the two equal.)

use std::fmt;
use std::str::FromStr;

use modicl_config::ConfigError;
use modicl_data::EvalSet;

/// A name that is none of its kind's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not {kind}: expected {expected}")]
pub struct UnknownName {
    /// What was expected, with its article: "a set", "a checkpoint".
    pub kind: &'static str,
    /// The name given.
    pub value: String,
    /// The names allowed, quoted: "'last', 'best_ood' or a step number".
    pub expected: String,
}

impl UnknownName {
    /// The same error as a bad value of the option or key `key` (exit status 2, one line).
    pub fn for_key(self, key: &str) -> ConfigError {
        ConfigError::invalid(key, format!("'{}'", self.value), self.expected)
    }
}

/// `'a', 'b' or 'c'`, then `extra` (already worded) as the last alternative if given.
fn alternatives(names: &[&str], extra: Option<&str>) -> String {
    let mut all: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    all.extend(extra.map(String::from));
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => all.concat(),
    }
}

/// A fieldless enum whose variants are spelled by fixed names: `as_str`, `ALL` (in
/// declaration order), `Display` and `FromStr`.
macro_rules! spelled {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the tables list them.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The name used in files, tables and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<$name, UnknownName> {
                $name::ALL
                    .into_iter()
                    .find(|x| x.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        kind: $kind,
                        value: s.to_string(),
                        expected: alternatives(&[$($text),+], None),
                    })
            }
        }
    };
}

spelled! {
    /// A set a run is measured on: the training batch of the step, or one of the four fixed
    /// evaluation sets ([`EvalSet`]).
    pub enum SetName ("a set") {
        /// The step's training batch (metrics of the forward pass before the update).
        TrainBatch = "train_batch",
        /// Pre-training tasks on training inputs.
        IdTrain = "id_train",
        /// Pre-training tasks on held-out inputs.
        IdTest = "id_test",
        /// O.o.d. tasks on training inputs.
        OodTrain = "ood_train",
        /// O.o.d. tasks on held-out inputs.
        OodTest = "ood_test",
    }
}

impl SetName {
    /// The four evaluation sets, in the order of [`EvalSet::ALL`].
    pub const EVAL: [SetName; 4] = [
        SetName::IdTrain,
        SetName::IdTest,
        SetName::OodTrain,
        SetName::OodTest,
    ];

    /// The evaluation set of this name (`None` for the training batch).
    pub fn eval_set(self) -> Option<EvalSet> {
        match self {
            SetName::TrainBatch => None,
            SetName::IdTrain => Some(EvalSet::IdTrain),
            SetName::IdTest => Some(EvalSet::IdTest),
            SetName::OodTrain => Some(EvalSet::OodTrain),
            SetName::OodTest => Some(EvalSet::OodTest),
        }
    }
}

impl From<EvalSet> for SetName {
    fn from(e: EvalSet) -> SetName {
        match e {
            EvalSet::IdTrain => SetName::IdTrain,
            EvalSet::IdTest => SetName::IdTest,
            EvalSet::OodTrain => SetName::OodTrain,
            EvalSet::OodTest => SetName::OodTest,
        }
    }
}

spelled! {
    /// A metric of one set at one step, as `metrics.csv`, `summary.json` and the tables name it.
    pub enum Metric ("a metric") {
        /// Mean cross-entropy over every scored position.
        Loss = "loss",
        /// Accuracy over all shots.
        Acc = "acc",
        /// Accuracy at the last shot.
        AccLast = "acc_last",
    }
}

/// Which checkpoint of a run: `last` (the newest complete `step_<N>`), `best_ood` (the
/// early-stopping point) or a step number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    Last,
    BestOod,
    Step(u64),
}

impl Checkpoint {
    /// The selectors that are names (the others are step numbers).
    pub const NAMED: [Checkpoint; 2] = [Checkpoint::Last, Checkpoint::BestOod];

    /// The name of a named selector; `None` for a step number.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Checkpoint::Last => Some("last"),
            Checkpoint::BestOod => Some("best_ood"),
            Checkpoint::Step(_) => None,
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.as_str()) {
            (Checkpoint::Step(s), _) => f.pad(&s.to_string()),
            (_, name) => f.pad(name.unwrap_or_default()),
        }
    }
}

impl FromStr for Checkpoint {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Checkpoint, UnknownName> {
        if let Some(c) = Checkpoint::NAMED
            .into_iter()
            .find(|c| c.as_str() == Some(s))
        {
            return Ok(c);
        }
        s.parse::<u64>()
            .map(Checkpoint::Step)
            .map_err(|_| UnknownName {
                kind: "a checkpoint",
                value: s.to_string(),
                expected: alternatives(
                    &Checkpoint::NAMED.map(|c| c.as_str().unwrap_or_default()),
                    Some("a step number"),
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_ones_say_what_is_allowed() {
        for s in SetName::ALL {
            assert_eq!(s.as_str().parse::<SetName>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(format!("{s:<12}|").len(), 13);
        }
        for e in EvalSet::ALL {
            let s = SetName::from(e);
            assert_eq!(s.eval_set(), Some(e));
            assert_eq!(s.as_str(), e.name());
        }
        assert_eq!(SetName::TrainBatch.eval_set(), None);
        for m in Metric::ALL {
            assert_eq!(m.as_str().parse::<Metric>(), Ok(m));
        }
        for c in [Checkpoint::Last, Checkpoint::BestOod, Checkpoint::Step(120)] {
            assert_eq!(c.to_string().parse::<Checkpoint>(), Ok(c));
        }
        let e = "later".parse::<Checkpoint>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'later' is not a checkpoint: expected 'last', 'best_ood' or a step number"
        );
        assert_eq!(
            e.for_key("--checkpoint").to_string(),
            "invalid --checkpoint = 'later': allowed 'last', 'best_ood' or a step number"
        );
        assert_eq!(
            "train".parse::<SetName>().unwrap_err().expected,
            "'train_batch', 'id_train', 'id_test', 'ood_train' or 'ood_test'"
        );
        assert_eq!(
            "accuracy".parse::<Metric>().unwrap_err().expected,
            "'loss', 'acc' or 'acc_last'"
        );
    }
}
