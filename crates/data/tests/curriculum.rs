//! The training interventions: the batch at a given step follows the task-count schedule and
//! the mixture's annealing, every label is its row's task's, and a schedule that has ended (or
//! is off) gives the batch of a run without it.

use std::collections::BTreeMap;

use modicl_config::Config;
use modicl_data::{label, Batch, Dataset};

/// p = 7, 8 pre-training tasks (two parallelogram groups), batch 16, 4 examples.
fn config(extra: &[&str]) -> Config {
    let mut set: Vec<String> = [
        "task.p=7",
        "task.n_base=2",
        "task.batch=16",
        "task.examples=4",
    ]
    .map(String::from)
    .to_vec();
    set.extend(extra.iter().map(|s| s.to_string()));
    Config::resolve(None, None, &set).unwrap()
}

/// Rows per task index in `b`, and a check that every label is its row's task's.
fn rows_per_task(ds: &Dataset, b: &Batch) -> BTreeMap<u32, usize> {
    let (ex, n_var, p) = (ds.seq.example_len(), ds.seq.n_var, ds.space.p);
    let mut count = BTreeMap::new();
    for r in 0..b.rows {
        let t = b.task[r];
        let w = ds.tasks.id.get(t as usize);
        for slot in b.row(r).chunks_exact(ex) {
            assert_eq!(slot[n_var], label(w, &slot[..n_var], p), "row {r} task {t}");
        }
        *count.entry(t).or_insert(0) += 1;
    }
    count
}

#[test]
fn the_task_count_schedule_sets_the_tasks_of_each_step() {
    let plain = Dataset::for_run(&config(&[])).unwrap();
    let ds = Dataset::for_run(&config(&["curriculum.tasks=2@0,4@10,8@20"])).unwrap();
    assert_eq!(plain.n_id(), 8);
    for (index, tasks) in [(0, 2), (9, 2), (10, 4), (19, 4), (20, 8), (57, 8)] {
        assert_eq!(ds.curriculum.tasks_at(index), Some(tasks));
        let b = ds.train_batch(index);
        assert_eq!(b.rows, 16, "the batch keeps its size");
        let per = rows_per_task(&ds, &b);
        let want: BTreeMap<u32, usize> = (0..tasks as u32).map(|t| (t, 16 / tasks)).collect();
        assert_eq!(per, want, "step index {index}");
        // The last stage trains every task: the batch of a run without the curriculum.
        assert_eq!(
            b == plain.train_batch(index),
            tasks == 8,
            "step index {index}"
        );
    }
    assert_eq!(plain.curriculum.tasks_at(0), None);
}

#[test]
fn the_context_length_schedule_sets_the_examples_of_each_step() {
    let plain = Dataset::for_run(&config(&[])).unwrap();
    let ds = Dataset::for_run(&config(&["curriculum.examples=1@0,2@5,4@12"])).unwrap();
    for (index, k) in [(0, 1), (4, 1), (5, 2), (11, 2), (12, 4), (40, 4)] {
        assert_eq!(ds.curriculum.examples_at(index), Some(k));
        assert_eq!(ds.train_layout(index).examples, k);
        let b = ds.train_batch(index);
        assert_eq!((b.rows, b.seq_len), (16, 3 * k), "step index {index}");
        rows_per_task(&ds, &b);
        // The last stage is the full length: the batch of a run without the curriculum.
        assert_eq!(b == plain.train_batch(index), k == 4, "step index {index}");
    }
    // Evaluation sets keep the full length.
    let e = ds.eval_set(modicl_data::EvalSet::OodTest, 2);
    assert_eq!(e.seq_len, 12);
    // The last stage must be task.examples.
    let e = Config::resolve(
        None,
        None,
        &[
            "task.examples=4".into(),
            "curriculum.examples=1@0,2@5".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("curriculum.examples") && e.contains("task.examples = 4"),
        "{e}"
    );
}

#[test]
fn the_mixture_relabels_an_annealed_fraction_to_its_tasks() {
    let plain = Dataset::for_run(&config(&[])).unwrap();
    let ds = Dataset::for_run(&config(&[
        "curriculum.mix_fraction=0.5",
        "curriculum.mix_tasks=2",
        "curriculum.mix_until=10",
    ]))
    .unwrap();
    // Fraction 0.5 at index 0, 0.25 at 5, 0.05 at 9 (0.8 of a row rounds to 1), 0 from 10 on.
    for (index, mixed) in [(0, 8), (5, 4), (9, 1), (10, 0), (30, 0)] {
        assert_eq!(ds.curriculum.mixed_rows(index, 16), mixed, "index {index}");
        let b = ds.train_batch(index);
        let base = plain.train_batch(index);
        let changed: Vec<usize> = (0..16).filter(|&r| b.task[r] != base.task[r]).collect();
        // The relabelled rows keep their inputs; only rows given to a task other than their
        // own change, and each goes to one of the mixture's tasks.
        for r in 0..16 {
            let ex = ds.seq.example_len();
            for (a, c) in b.row(r).chunks_exact(ex).zip(base.row(r).chunks_exact(ex)) {
                assert_eq!(a[..2], c[..2], "inputs of row {r}");
            }
        }
        assert!(changed.iter().all(|&r| b.task[r] < 2));
        assert!(changed.len() <= mixed);
        // Rows 4, 6, ... of the first half-batch go to tasks 0 and 1 from tasks 2 and up.
        if mixed == 8 {
            assert_eq!(changed, [4, 6, 8, 10, 12, 14]);
        }
        let to_mix = (0..16).filter(|&r| b.task[r] < 2).count();
        // The base batch has 2 rows of each task: tasks 0 and 1 hold 4 rows, plus the mixed
        // ones that came from other tasks.
        assert_eq!(to_mix, 4 + changed.len(), "index {index}");
        rows_per_task(&ds, &b);
        assert_eq!(b == base, changed.is_empty(), "index {index}");
        if mixed == 0 {
            assert!(b == base, "index {index}: the mixture has ended");
        }
    }
}

#[test]
fn schedules_that_do_not_fit_the_tasks_are_one_line_errors() {
    let err = |extra: &[&str]| Dataset::for_run(&config(extra)).unwrap_err().to_string();
    let e = err(&["curriculum.tasks=2@0,4@10"]);
    assert!(
        e.contains("curriculum.tasks") && e.contains("the 8 pre-training tasks"),
        "{e}"
    );
    let e = err(&["curriculum.tasks=3@0,8@10"]);
    assert!(
        e.contains("curriculum.tasks") && e.contains("3 does not"),
        "{e}"
    );
    let e = err(&[
        "curriculum.mix_fraction=0.2",
        "curriculum.mix_tasks=9",
        "curriculum.mix_until=5",
    ]);
    assert!(e.contains("curriculum.mix_tasks") && e.contains("9"), "{e}");
    let e = err(&[
        "curriculum.tasks=2@0,8@10",
        "curriculum.mix_fraction=0.2",
        "curriculum.mix_tasks=4",
        "curriculum.mix_until=5",
    ]);
    assert!(
        e.contains("curriculum.mix_tasks") && e.contains("first stage"),
        "{e}"
    );
    // A stage that starts at or after the last step would never be reached.
    let e = Config::resolve(
        None,
        None,
        &[
            "train.steps=100".into(),
            "train.warmup=10".into(),
            "curriculum.tasks=2@0,8@100".into(),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("curriculum.tasks") && e.contains("train.steps = 100"),
        "{e}"
    );
    for bad in ["8@5", "4@0,2@10", "4@0,8@0", "x", "4@0,8"] {
        let e = Config::resolve(None, None, &[format!("curriculum.tasks={bad}")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("curriculum.tasks") && !e.contains('\n'),
            "{bad}: {e}"
        );
    }
    let e = Config::resolve(None, None, &["curriculum.mix_fraction=0.3".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("curriculum.mix_until"), "{e}");
}

/// The sets of the tasks each stage adds: exactly the tasks the stage's prefix gains, every
/// example on the training inputs, labels of the row's task, reproducible; none without the
/// curriculum.
#[test]
fn each_stage_adds_its_own_tasks_as_a_set_on_the_training_inputs() {
    let ds = Dataset::for_run(&config(&["curriculum.tasks=2@0,4@10,8@20"])).unwrap();
    let added = ds.curriculum.added();
    assert_eq!(added.len(), 2, "the first stage adds nothing");
    let (d, n_var, p) = (ds.tasks.id.dim, ds.seq.n_var, ds.space.p);
    let train: std::collections::BTreeSet<&[u32]> = (0..ds.inputs.train.len())
        .map(|i| ds.inputs.train.get(i))
        .collect();
    for (a, (stage, from, lo, hi)) in added.iter().zip([(1, 10, 2, 4), (2, 20, 4, 8)]) {
        assert_eq!((a.stage, a.from), (stage, from));
        assert_eq!(
            a.tasks.data,
            ds.tasks.id.data[lo * d..hi * d],
            "stage {stage}"
        );
        let b = ds.added_set(a, 3);
        assert_eq!(b.rows, 3 * (hi - lo));
        assert_eq!(b, ds.added_set(a, 3), "a pure function of its arguments");
        for r in 0..b.rows {
            let w = a.tasks.get(b.task[r] as usize);
            for slot in b.row(r).chunks_exact(ds.seq.example_len()) {
                assert!(train.contains(&slot[..n_var]), "a training input");
                assert_eq!(slot[n_var], label(w, &slot[..n_var], p));
            }
        }
    }
    assert_ne!(
        ds.added_set(&added[0], 3).tokens[..12],
        ds.added_set(&added[1], 3).tokens[..12]
    );
    assert!(Dataset::for_run(&config(&[]))
        .unwrap()
        .curriculum
        .added()
        .is_empty());
}
