//! Property tests of the data pipeline: labels, the parallelogram rule, disjointness, coverage,
//! determinism and balance, over randomly drawn configurations.

use std::collections::HashSet;

use modicl_data::{label, Batch, BatchLayout, Dataset, EvalSet, TaskConfig, Vectors};
use proptest::prelude::*;

fn set_of(v: &Vectors) -> HashSet<Vec<u32>> {
    v.iter().map(|x| x.to_vec()).collect()
}

/// A configuration that is valid by construction.
fn configs() -> impl Strategy<Value = TaskConfig> {
    (
        prop::sample::select(vec![7u32, 8, 11, 13, 29, 31]),
        0u32..12,
        0u32..6,
        0.05f64..0.95,
        1u32..7,
        1u32..4,
        any::<u64>(),
        any::<u64>(),
        prop::bool::ANY,
    )
        .prop_filter_map(
            "room for tasks",
            |(p, n_base, n_random, alpha, k, m, seed, data_seed, shared)| {
                // Dense parallelograms can legitimately run out of partners for small p (an error tested
                // below); keep to at most a fifth of the space here.
                let n_base = n_base.min(p * p / 20);
                let n_id = 4 * n_base + n_random;
                let n = (p * p) as f64;
                let n_train = (alpha * n).round_ties_even();
                (n_id >= 1 && n_id < p * p && n_train >= 1.0 && n_train < n).then(|| TaskConfig {
                    p,
                    n_base,
                    n_random,
                    alpha,
                    examples: k,
                    batch: n_id * m,
                    seed,
                    data_seed,
                    layout: if shared {
                        BatchLayout::Shared
                    } else {
                        BatchLayout::Independent
                    },
                    ..TaskConfig::default()
                })
            },
        )
}

fn check_labels(ds: &Dataset, b: &Batch, tasks: &Vectors, inputs: &Vectors) {
    let ex = ds.seq.example_len();
    let allowed = set_of(inputs);
    for r in 0..b.rows {
        let w = tasks.get(b.task[r] as usize);
        for e in b.row(r).chunks_exact(ex) {
            let (x, z) = e.split_at(ds.seq.n_var);
            assert_eq!(z[0], label(w, x, ds.space.p), "z = W·X mod p");
            assert!(allowed.contains(x), "input {x:?} outside its subset");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_z_is_w_dot_x_and_inputs_come_from_their_subset(cfg in configs(), step in 0u64..1000) {
        let ds = Dataset::build(&cfg).unwrap();
        check_labels(&ds, &ds.train_batch(step), &ds.tasks.id, &ds.inputs.train);
        for set in EvalSet::ALL {
            let (t, i) = ds.eval_parts(set);
            check_labels(&ds, &ds.eval_set(set, 2), t, i);
        }
    }

    #[test]
    fn parallelogram_groups_are_rectangles(cfg in configs()) {
        let ds = Dataset::build(&cfg).unwrap();
        prop_assert_eq!(ds.n_id(), 4 * cfg.n_base as usize + cfg.n_random as usize);
        prop_assert_eq!(ds.tasks.n_base, cfg.n_base as usize);
        let p = cfg.p;
        for g in 0..ds.tasks.n_base {
            let [ab, ay, xb, xy] = ds.tasks.group(g);
            // (a, b) + (x', y') = (a, y') + (x', b), componentwise mod p (and exactly).
            for c in 0..2 {
                prop_assert_eq!((ab[c] + xy[c]) % p, (ay[c] + xb[c]) % p);
            }
            prop_assert_eq!(ay[0], ab[0]);
            prop_assert_eq!(xb[1], ab[1]);
            prop_assert_eq!((xy[0], xy[1]), (xb[0], ay[1]));
            let (a, b, x, y) = (ab[0], ab[1], xy[0], xy[1]);
            prop_assert!(x != a && x != b && y != a && y != b && y != x);
        }
    }

    #[test]
    fn task_sets_are_disjoint_distinct_and_in_range(cfg in configs()) {
        let ds = Dataset::build(&cfg).unwrap();
        let id = set_of(&ds.tasks.id);
        let ood = set_of(&ds.tasks.ood);
        prop_assert_eq!(id.len(), ds.n_id());
        prop_assert_eq!(ood.len(), ds.n_ood());
        prop_assert!(id.is_disjoint(&ood));
        prop_assert!(ds.tasks.id.data.iter().chain(&ds.tasks.ood.data).all(|&c| c < cfg.p));
        let expect = 256.min((cfg.p * cfg.p) as usize - ds.n_id());
        prop_assert_eq!(ds.n_ood(), expect);
    }

    #[test]
    fn train_and_test_inputs_partition_the_input_space(cfg in configs()) {
        let ds = Dataset::build(&cfg).unwrap();
        let train = set_of(&ds.inputs.train);
        let test = set_of(&ds.inputs.test);
        let n = (cfg.p * cfg.p) as usize;
        prop_assert_eq!(train.len() + test.len(), n);
        prop_assert!(train.is_disjoint(&test));
        prop_assert_eq!(train.len(), (cfg.alpha * n as f64).round_ties_even() as usize);
    }

    #[test]
    fn batches_are_balanced_and_task_major(cfg in configs(), step in 0u64..1000) {
        let ds = Dataset::build(&cfg).unwrap();
        let b = ds.train_batch(step);
        let s = cfg.batch as usize / ds.n_id();
        prop_assert_eq!(b.rows, cfg.batch as usize);
        prop_assert_eq!(b.seq_len, 3 * cfg.examples as usize);
        let mut counts = vec![0usize; ds.n_id()];
        for (r, &t) in b.task.iter().enumerate() {
            prop_assert_eq!(t as usize, r / s);
            counts[t as usize] += 1;
        }
        prop_assert!(counts.iter().all(|&c| c == s));
    }

    #[test]
    fn shared_layout_gives_every_task_the_same_inputs(cfg in configs(), step in 0u64..1000) {
        let ds = Dataset::build(&cfg).unwrap();
        let b = ds.train_batch(step);
        let s = cfg.batch as usize / ds.n_id();
        let inputs = |r: usize| -> Vec<u32> {
            b.row(r).chunks_exact(3).flat_map(|e| e[..2].to_vec()).collect()
        };
        let same = (1..ds.n_id()).all(|t| (0..s).all(|j| inputs(t * s + j) == inputs(j)));
        match cfg.layout {
            BatchLayout::Shared => prop_assert!(same),
            // Independent streams coincide only by chance: 2k random inputs must all agree.
            BatchLayout::Independent => {
                if ds.n_id() > 1 && cfg.examples >= 3 {
                    prop_assert!(!same)
                }
            }
        }
    }

    #[test]
    fn same_seeds_same_bytes_different_seeds_differ(cfg in configs(), step in 0u64..1000) {
        let a = Dataset::build(&cfg).unwrap();
        let b = Dataset::build(&cfg).unwrap();
        prop_assert_eq!(&a.tasks, &b.tasks);
        prop_assert_eq!(&a.inputs, &b.inputs);
        prop_assert_eq!(a.train_batch(step), b.train_batch(step));
        prop_assert_eq!(a.eval_set(EvalSet::OodTest, 3), b.eval_set(EvalSet::OodTest, 3));
        // Two batches can coincide by chance only when they hold few random draws.
        let draws = cfg.examples as usize * cfg.batch as usize / a.n_id();
        let enough = draws >= 16 && a.inputs.train.len() >= 16;
        if enough {
            prop_assert_ne!(a.train_batch(step), a.train_batch(step + 1));
        }

        let mut other = cfg.clone();
        other.data_seed = cfg.data_seed.wrapping_add(1) & (i64::MAX as u64);
        let c = Dataset::build(&other).unwrap();
        prop_assert_eq!(&a.tasks, &c.tasks, "data_seed must not move the tasks");
        if enough {
            prop_assert_ne!(a.train_batch(step), c.train_batch(step));
        }
        if cfg.p * cfg.p > 30 {
            prop_assert_ne!(&a.inputs, &c.inputs);
        }
        let mut other = cfg.clone();
        other.seed = cfg.seed.wrapping_add(1) & (i64::MAX as u64);
        let d = Dataset::build(&other).unwrap();
        prop_assert_eq!(&a.inputs, &d.inputs, "seed must not move the split");
        if ds_has_room(&cfg) {
            prop_assert_ne!(&a.tasks, &d.tasks);
        }
    }
}

/// Enough freedom that two seeds giving identical task sets would be a bug, not chance.
fn ds_has_room(cfg: &TaskConfig) -> bool {
    4 * cfg.n_base + cfg.n_random >= 4 && cfg.p >= 7
}

fn cfg(n_base: u32, alpha: f64, batch: u32) -> TaskConfig {
    TaskConfig {
        n_base,
        alpha,
        batch,
        ..TaskConfig::default()
    }
}

#[test]
fn paper_counts() {
    let ds = Dataset::build(&cfg(96, 0.8, 1536)).unwrap();
    assert_eq!(
        (ds.n_id(), ds.n_ood(), ds.inputs.train.len()),
        (384, 256, 673)
    );
    let ds = Dataset::build(&cfg(128, 0.6, 1024)).unwrap();
    assert_eq!(
        (ds.n_id(), ds.n_ood(), ds.inputs.train.len()),
        (512, 256, 505)
    );
    // The alpha table of the official code, round-half-even included (841·0.5 = 420.5 -> 420).
    for (alpha, n) in [
        (0.2, 168),
        (0.3, 252),
        (0.4, 336),
        (0.5, 420),
        (0.6, 505),
        (0.7, 589),
        (0.8, 673),
    ] {
        let ds = Dataset::build(&cfg(2, alpha, 8)).unwrap();
        assert_eq!(ds.inputs.train.len(), n, "alpha {alpha}");
        assert_eq!(ds.inputs.test.len(), 841 - n);
    }
}

fn official(seed: u64, n_base: u32, batch: u32) -> Dataset {
    let mut c = cfg(0, 0.8, batch);
    c.source = modicl_data::TaskSource::Official { seed, n_base };
    Dataset::build(&c).unwrap()
}

#[test]
fn official_lists_load_with_the_paper_counts() {
    let ds = official(1, 96, 1536);
    assert_eq!((ds.n_id(), ds.n_ood()), (384, 256));
    assert!(
        set_of(&ds.tasks.ood).contains(&vec![6, 6]),
        "(6, 6) is o.o.d. for the d4 checkpoint"
    );
    assert_eq!(ds.tasks.id.get(0), [4, 21]);
    assert_eq!(ds.tasks.ood.get(0), [4, 11]);
    let ds = official(2, 128, 1024);
    assert_eq!((ds.n_id(), ds.n_ood()), (512, 256));
    assert!(
        set_of(&ds.tasks.id).contains(&vec![6, 6]),
        "(6, 6) is i.d. for the d2 checkpoint"
    );
}

/// The official lists follow the same rule: n bases, then their partners three by three.
#[test]
fn official_lists_obey_the_parallelogram_rule() {
    for seed in [1, 2] {
        for n in [2u32, 4, 8, 16, 32, 64, 96, 128] {
            let ds = official(seed, n, 4 * n);
            let n = n as usize;
            for g in 0..n {
                let (ab, ay, xb, xy) = (
                    ds.tasks.id.get(g),
                    ds.tasks.id.get(n + 3 * g),
                    ds.tasks.id.get(n + 3 * g + 1),
                    ds.tasks.id.get(n + 3 * g + 2),
                );
                assert_eq!(
                    (ay[0], xb[1]),
                    (ab[0], ab[1]),
                    "seed {seed} n {n} group {g}"
                );
                assert_eq!(
                    (xy[0], xy[1]),
                    (xb[0], ay[1]),
                    "seed {seed} n {n} group {g}"
                );
            }
        }
    }
}

#[test]
fn ood_cap_all_extends_the_capped_list() {
    let capped = Dataset::build(&cfg(96, 0.8, 1536)).unwrap();
    let mut c = cfg(96, 0.8, 1536);
    c.ood_cap = modicl_data::OodCap::All;
    let all = Dataset::build(&c).unwrap();
    assert_eq!(all.n_ood(), 841 - 384);
    assert_eq!(all.tasks.ood.data[..512], capped.tasks.ood.data[..]);
    c.ood_cap = modicl_data::OodCap::Count(250);
    c.official_compat = true;
    assert_eq!(
        Dataset::build(&c).unwrap().n_ood(),
        248,
        "floored to a multiple of 8"
    );
}

#[test]
fn refilling_a_batch_does_not_reallocate() {
    let ds = Dataset::build(&cfg(128, 0.6, 1024)).unwrap();
    let mut b = ds.train_batch(0);
    let (tp, kp) = (b.tokens.as_ptr(), b.task.as_ptr());
    for step in 1..20 {
        ds.fill_train_batch(step, &mut b);
        assert_eq!((b.tokens.as_ptr(), b.task.as_ptr()), (tp, kp));
        assert_eq!(b, ds.train_batch(step));
    }
}

#[test]
fn other_arities_use_random_tasks() {
    for n_var in [1u32, 3] {
        let c = TaskConfig {
            p: 11,
            n_var,
            n_base: 0,
            n_random: 6,
            batch: 12,
            examples: 5,
            ..TaskConfig::default()
        };
        let ds = Dataset::build(&c).unwrap();
        assert_eq!(ds.seq.seq_len(), 5 * (n_var as usize + 1));
        check_labels(&ds, &ds.train_batch(3), &ds.tasks.id, &ds.inputs.train);
        assert_eq!(ds.n_ood(), 256.min(11usize.pow(n_var) - 6));
    }
}

#[test]
fn impossible_configurations_are_errors_naming_the_field() {
    let err = |c: TaskConfig| Dataset::build(&c).unwrap_err().to_string();
    let base = TaskConfig::default();
    let e = err(TaskConfig {
        n_var: 3,
        n_base: 2,
        batch: 8,
        ..base.clone()
    });
    assert!(
        e.starts_with("invalid task.n_base = 2 (with task.n_var = 3)"),
        "{e}"
    );
    let e = err(TaskConfig {
        p: 3,
        n_base: 1,
        batch: 4,
        ..base.clone()
    });
    assert!(e.contains("task.n_base") && e.contains("p >= 4"), "{e}");
    let e = err(TaskConfig {
        p: 5,
        alpha: 0.01,
        n_base: 1,
        batch: 4,
        ..base.clone()
    });
    assert!(
        e.starts_with("invalid task.alpha = 0.01 (0 of 25 inputs"),
        "{e}"
    );
    let e = err(TaskConfig {
        n_base: 0,
        n_random: 0,
        ..base.clone()
    });
    assert!(e.contains("at least one pre-training task"), "{e}");
    let e = err(TaskConfig {
        p: 29,
        n_var: 6,
        ..base.clone()
    });
    assert!(
        e.contains("task.n_var = 6") && e.contains("n_var <= 4"),
        "{e}"
    );
    let e = err(TaskConfig {
        batch: 100,
        ..base.clone()
    });
    assert!(
        e.contains("task.batch = 100") && e.contains("nearest: 384"),
        "{e}"
    );
    // 5^2 = 25 vectors: 6 groups need 24 distinct tasks; the rule runs out of partners.
    let e = err(TaskConfig {
        p: 5,
        n_base: 6,
        batch: 24,
        ..base.clone()
    });
    assert!(e.contains("task.n_base = 6"), "{e}");
    let e = err(TaskConfig {
        ood_cap: modicl_data::OodCap::Count(3),
        official_compat: true,
        ..base
    });
    assert!(e.contains("task.ood_cap"), "{e}");
}

#[test]
fn task_files_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let with = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        TaskConfig {
            source: modicl_data::TaskSource::File(path),
            batch: 6,
            ..TaskConfig::default()
        }
    };
    let ds = Dataset::build(&with("t.txt", "# tasks\n1 2\n3,4  # comment\n\n(5, 6)\n")).unwrap();
    assert_eq!(ds.tasks.id.data, [1, 2, 3, 4, 5, 6]);
    assert_eq!(ds.n_ood(), 256);
    assert!(!set_of(&ds.tasks.ood).contains(&vec![3, 4]));
    let bom = Dataset::build(&with("bom.txt", "\u{feff}1 2\n3 4\n5 6\n")).unwrap();
    assert_eq!(
        bom.tasks.id.data,
        [1, 2, 3, 4, 5, 6],
        "a UTF-8 byte-order mark is skipped"
    );
    let ds = Dataset::build(&with("t.json", "[[1, 2], [3, 4], [5, 6]]")).unwrap();
    assert_eq!(ds.tasks.id.data, [1, 2, 3, 4, 5, 6]);
    let ds = Dataset::build(&with(
        "o.json",
        r#"{"pretrain_tasks": [[1,2],[3,4],[5,6]], "ood_tasks": [[0,0],[9,9]]}"#,
    ))
    .unwrap();
    assert_eq!(ds.tasks.ood.data, [0, 0, 9, 9]);

    let err = |name: &str, body: &str| Dataset::build(&with(name, body)).unwrap_err().to_string();
    assert!(err("a.txt", "1 2\n3 x\n").contains("line 2: expected integers"));
    assert!(err("b.txt", "1 2\n3 29\n5 6\n").contains("line 2: component 29 outside 0..=28"));
    assert!(err("c.txt", "1 2\n1 2\n5 6\n").contains("duplicate task"));
    assert!(err("d.txt", "1 2 3\n").contains("3 components, expected n_var = 2"));
    assert!(err("e.json", "[[1, 2], [3]").contains("not valid JSON"));
    assert!(err(
        "f.json",
        r#"{"pretrain_tasks": [[1,2],[3,4],[5,6]], "ood_tasks": [[1,2]]}"#
    )
    .contains("also a pre-training task"));
    assert!(err("g.txt", "").contains("no pre-training tasks"));
    let e = err(
        "h.json",
        r#"{"pretrain_tasks": [[1,2],[3,4],[5,6]], "ood_tasks": []}"#,
    );
    assert!(e.contains("ood_tasks is empty"), "{e}");
    let missing = TaskConfig {
        source: modicl_data::TaskSource::File(dir.path().join("nope.txt")),
        ..TaskConfig::default()
    };
    let e = Dataset::build(&missing).unwrap_err();
    assert!(
        e.to_string().contains("cannot read") && e.is_bad_input(),
        "{e}"
    );
    let e = Dataset::build(&TaskConfig {
        source: modicl_data::TaskSource::Official {
            seed: 3,
            n_base: 96,
        },
        ..TaskConfig::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("official:seed=1,n_base=2"), "{e}");
}
