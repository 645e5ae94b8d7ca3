//! `task.split = "official"` draws the official code's train/test split of the inputs bit for
//! bit: the permutation numpy computes (`np.random.seed(data_seed)`, `np.random.shuffle`),
//! committed as a fixture by tools/reference/make_split_fixture.py.

use modicl_config::Config;
use modicl_data::{split_permutation, Dataset, SplitKind};

struct Case {
    p: u32,
    n_var: u32,
    data_seed: u64,
    alpha: f64,
    n_train: usize,
    perm: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("fixtures/numpy_split.json");
    let doc: serde_json::Value = serde_json::from_str(text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    cases
        .iter()
        .map(|c| Case {
            p: c["p"].as_u64().unwrap() as u32,
            n_var: c["n_var"].as_u64().unwrap() as u32,
            data_seed: c["data_seed"].as_u64().unwrap(),
            alpha: c["alpha"].as_f64().unwrap(),
            n_train: c["n_train"].as_u64().unwrap() as usize,
            perm: c["perm"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
        })
        .collect()
}

#[test]
fn the_permutation_is_numpy_s() {
    for c in cases() {
        let size = c.p.pow(c.n_var);
        let got = split_permutation(SplitKind::Official, c.data_seed, size).unwrap();
        assert_eq!(
            got, c.perm,
            "p {} n_var {} seed {}",
            c.p, c.n_var, c.data_seed
        );
        // And modicl's own split is another permutation.
        let own = split_permutation(SplitKind::Modicl, c.data_seed, size).unwrap();
        assert_ne!(own, c.perm);
    }
}

#[test]
fn the_dataset_s_train_and_test_inputs_are_the_official_ones() {
    for c in cases() {
        let sets = [
            format!("task.p={}", c.p),
            format!("task.n_var={}", c.n_var),
            format!("task.data_seed={}", c.data_seed),
            format!("task.alpha={}", c.alpha),
            "task.split=official".to_string(),
            "task.n_base=0".to_string(),
            "task.n_random=2".to_string(),
            "task.batch=2".to_string(),
        ];
        let cfg = Config::resolve(Some("cpu"), None, &sets).unwrap();
        let ds = Dataset::build(&cfg.task).unwrap();
        let want_train = ds.space.vectors(&c.perm[..c.n_train]);
        let want_test = ds.space.vectors(&c.perm[c.n_train..]);
        assert_eq!(ds.inputs.train, want_train, "p {} alpha {}", c.p, c.alpha);
        assert_eq!(ds.inputs.test, want_test, "p {} alpha {}", c.p, c.alpha);
    }
}

#[test]
fn the_paper_presets_use_the_official_split() {
    // paper-d4: 673 training inputs, the first of which is (18, 11) (index 533).
    let cfg = Config::resolve(Some("paper-d4"), None, &[]).unwrap();
    assert_eq!(cfg.task.split, SplitKind::Official);
    let ds = Dataset::build(&cfg.task).unwrap();
    assert_eq!((ds.inputs.train.len(), ds.inputs.test.len()), (673, 168));
    assert_eq!(&ds.inputs.train.data[..4], &[18, 11, 5, 0]);
    for preset in ["paper-d2", "paper-d6"] {
        let cfg = Config::resolve(Some(preset), None, &[]).unwrap();
        assert_eq!(cfg.task.split, SplitKind::Official, "{preset}");
    }
    let cpu = Config::resolve(Some("cpu"), None, &[]).unwrap();
    assert_eq!(cpu.task.split, SplitKind::Modicl);
}

#[test]
fn a_data_seed_beyond_numpy_s_range_is_refused() {
    let e = Config::resolve(
        Some("cpu"),
        None,
        &[
            "task.split=official".into(),
            "task.data_seed=4294967296".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("task.data_seed") && e.contains("4294967295"),
        "{e}"
    );
    Config::resolve(
        Some("cpu"),
        None,
        &[
            "task.split=official".into(),
            "task.data_seed=4294967295".into(),
        ],
    )
    .unwrap();
}
