//! Known answers: the `cpu` preset's training batch of step 0 and its four evaluation sets,
//! pinned by their BLAKE3 hashes. Every other test compares the generator with itself; these
//! fail when it changes at all.
//!
//! A failure here means the data format changed: every existing run would train on other
//! data. If the change is intended, bump the data-format version as docs/data.md describes,
//! then replace the hashes below with the new ones the failure prints.

use modicl_config::Config;
use modicl_data::{Batch, Dataset, EvalSet};

/// BLAKE3 of a batch: rows and sequence length (u64), then every token, then every row's
/// task index (u32), all little-endian.
fn digest(b: &Batch) -> String {
    let mut h = blake3::Hasher::new();
    h.update(&(b.rows as u64).to_le_bytes());
    h.update(&(b.seq_len as u64).to_le_bytes());
    for t in &b.tokens {
        h.update(&t.to_le_bytes());
    }
    for t in &b.task {
        h.update(&t.to_le_bytes());
    }
    h.finalize().to_hex().to_string()
}

fn cpu() -> (Config, Dataset) {
    let cfg = Config::resolve(Some("cpu"), None, &[]).unwrap();
    let ds = Dataset::build(&cfg.task).unwrap();
    (cfg, ds)
}

#[test]
fn the_cpu_preset_s_first_training_batch() {
    let (_, ds) = cpu();
    let b = ds.train_batch(0);
    assert_eq!((b.rows, b.seq_len), (128, 48));
    assert_eq!(
        digest(&b),
        "85972c8f966780c65f594efce201742d3d4f63a3337a9c355743b785d03fa0c5",
        "training batch 0 changed: see the top of this file"
    );
}

#[test]
fn the_cpu_preset_s_evaluation_sets() {
    let (cfg, ds) = cpu();
    let per_task = cfg.eval.seqs_per_task as usize;
    let got: Vec<(&str, String)> = EvalSet::ALL
        .iter()
        .map(|&set| (set.name(), digest(&ds.eval_set(set, per_task))))
        .collect();
    let want = [
        (
            "id_train",
            "b5c74df0bd3ced588b2d4cc44175aed8b4d34a65ed13cf92e1cfca46a8a8f57d",
        ),
        (
            "id_test",
            "4e32f429bad70c38e81f8d55a4eeec1eb1530f4a99f3091f06ce97d122190196",
        ),
        (
            "ood_train",
            "2d0bcd5187b879f916930faa8f8a9d991a487eefc9379c8e4608dd0908752639",
        ),
        (
            "ood_test",
            "0aa959ccc88cfcdab4211e90e0c082f24474cbb83daa66a8a5f6fbc0a541818b",
        ),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|&(s, h)| (s, h.to_string())).collect();
    assert_eq!(
        got, want,
        "an evaluation set changed: see the top of this file"
    );
}
