//! Evaluation is a function of the weights and the sets alone: not of the chunk size the sets
//! are run in (training evaluates in chunks of `task.batch` rows, `modicl eval` in chunks of at
//! most 512), the shards a chunk is split into, or the thread count.

use modicl_data::Dataset;
use modicl_engine::{Model, Shards};
use modicl_testkit::tiny;
use modicl_trainer::{model_config, Evaluator, SetMetrics};

#[test]
fn evaluation_does_not_depend_on_chunks_or_threads() {
    let cfg = tiny();
    let ds = Dataset::build(&cfg.task).unwrap();
    let model = Model::new(model_config(&cfg), 3).unwrap();
    let mut ev = Evaluator::new(&ds, 5);
    let mut eval = |rows: usize, shards: usize, threads: usize| -> Vec<SetMetrics> {
        let mut ws = Shards::with_count(&model.cfg, rows, ds.seq.input_len(), shards);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| ev.run(&model, &mut ws)).unwrap()
    };
    let want = eval(16, 1, 1);
    assert_eq!(want.len(), 4);
    assert!(want.iter().all(|m| m.count > 0 && m.loss.is_finite()));
    for (rows, shards, threads) in [(1, 1, 1), (7, 3, 2), (64, 8, 2), (64, 1, 2), (512, 5, 1)] {
        let got = eval(rows, shards, threads);
        assert_eq!(got, want, "{rows} rows, {shards} shards, {threads} threads");
    }
}
