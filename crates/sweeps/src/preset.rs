//! Named sweeps: a configuration preset, overrides, and grid axes.

/// A named sweep.
pub struct SweepPreset {
    pub name: &'static str,
    pub about: &'static str,
    /// The configuration preset the runs start from.
    pub base: &'static str,
    /// Overrides applied to the base before the axes.
    pub sets: &'static [&'static str],
    pub axes: &'static [&'static str],
}

/// Every named sweep.
pub static SWEEP_PRESETS: &[SweepPreset] = &[
    SweepPreset {
        name: "phase-paper",
        about: "the official phase-diagram grid: n_base 2..128 (n_id 8..512) x alpha 0.2..0.8, depth 4, batch 1024, 49 runs of 200k steps (GPU work)",
        base: "paper-d4",
        sets: &["task.source=generate", "task.batch=1024", "train.name=phase-paper"],
        axes: &["task.n_base=2,4,...,128", "task.alpha=0.2:0.8:0.1"],
    },
    SweepPreset {
        name: "phase-cpu",
        about: "the cpu preset's model over n_base 1..16 (n_id 4..64 of the 120 tasks of Z_11^2) x alpha 0.4, 0.6, 0.8: 15 runs, about 2 hours on 2 cores; shows the i.d.-memorization corner",
        base: "cpu",
        sets: &["train.name=phase-cpu"],
        axes: &["task.n_base=1,2,...,16", "task.alpha=0.4:0.8:0.2"],
    },
];

impl SweepPreset {
    pub fn named(name: &str) -> Option<&'static SweepPreset> {
        SWEEP_PRESETS.iter().find(|p| p.name == name)
    }
}
