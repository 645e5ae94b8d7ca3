//! Known answer: the `cpu` preset's weights at step 0 (the initialised flat parameter vector a
//! fresh run starts from), pinned by its BLAKE3 hash. The resume tests compare runs with each
//! other; this one fails when initialisation changes at all.
//!
//! A failure here means the format of the data a run is a function of changed: every existing
//! run would start from other weights. If the change is intended, bump the version as
//! docs/data.md describes, then replace the hash below with the one the failure prints. (The
//! weights come from the f64 normal draws of `modicl_core::rng` rounded to f32, so the hash
//! also holds on any platform whose `ln` and `cos` round like glibc's.)

use modicl_config::Config;
use modicl_trainer::{RunDir, Trainer};

#[test]
fn the_cpu_preset_s_initial_weights() {
    let cfg = Config::resolve(Some("cpu"), None, &[]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = Trainer::create(cfg, RunDir::new(tmp.path().join("cpu")), false).unwrap();
    assert_eq!(t.step, 0);
    assert_eq!(t.model.params.len(), 100_800);
    let mut h = blake3::Hasher::new();
    for x in &t.model.params {
        h.update(&x.to_le_bytes());
    }
    assert_eq!(
        h.finalize().to_hex().to_string(),
        "b20b42c4d896e8a9f5c754a33c3b78f937243daf3676af396e05e4a8b1732eac",
        "the step-0 weights changed: see the top of this file"
    );
}
