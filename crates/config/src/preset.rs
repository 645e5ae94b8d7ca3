//! Named configurations embedded in the binary: the paper's runs and a laptop-CPU default.

use crate::{Config, ConfigError};

/// A named configuration: a TOML overlay on the defaults.
pub struct Preset {
    pub name: &'static str,
    /// One line for listings.
    pub about: &'static str,
    pub toml: &'static str,
}

/// The preset used when none is named.
pub const DEFAULT_PRESET: &str = "cpu";

/// Every preset, the default first.
pub static PRESETS: &[Preset] = &[
    Preset {
        name: "cpu",
        about: "small model and task family that shows in-context learning on 2 CPU cores in minutes",
        toml: include_str!("../presets/cpu.toml"),
    },
    Preset {
        name: "paper-d2",
        about: "the paper's depth-2 run: 512 tasks (official list seed 2), alpha 0.6, d 512, batch 1024, 200k steps",
        toml: include_str!("../presets/paper-d2.toml"),
    },
    Preset {
        name: "paper-d4",
        about: "the paper's depth-4 run: 384 tasks (official list seed 1), alpha 0.8, d 512, batch 1536, 200k steps",
        toml: include_str!("../presets/paper-d4.toml"),
    },
    Preset {
        name: "paper-d6",
        about: "depth 6 on the depth-4 run's data: transient o.o.d. generalization, early stopping",
        toml: include_str!("../presets/paper-d6.toml"),
    },
];

impl Preset {
    /// The preset called `name`, or an error listing the known ones.
    pub fn named(name: &str) -> Result<&'static Preset, ConfigError> {
        PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            ConfigError::invalid("--preset", format!("'{name}'"), names.join(", "))
        })
    }

    /// The defaults with this preset applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.merge_toml(self.toml, &format!("preset {}", self.name))?;
        c.check()?;
        Ok(c)
    }
}
