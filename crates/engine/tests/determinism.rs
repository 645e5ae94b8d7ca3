//! A run is a pure function of its inputs: the same steps give bit-identical weights, on repeat
//! and whatever the number of threads.

use modicl_data::{Dataset, TaskConfig};
use modicl_engine::{AdamW, AdamWConfig, Model, ModelConfig, Workspace};

fn train(threads: usize, steps: u64) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let ds = Dataset::build(&TaskConfig {
            p: 11,
            n_base: 2,
            batch: 16,
            examples: 8,
            ..TaskConfig::default()
        })
        .unwrap();
        let cfg = ModelConfig::official(11, 32, 2, 2);
        let mut model = Model::new(cfg.clone(), 3).unwrap();
        let positions: Vec<usize> = ds.seq.target_positions().collect();
        let mut ws = Workspace::new(&cfg, 16, ds.seq.input_len());
        let mut grads = vec![0f32; model.layout.total];
        let mut opt = AdamW::new(AdamWConfig::default(), model.layout.total);
        let layout = model.layout.clone();
        for step in 0..steps {
            let b = ds.train_batch(step);
            model
                .forward(&mut ws, &b.tokens, b.seq_len, &positions, None)
                .unwrap();
            model.backward(&mut ws, &mut grads);
            opt.update(&mut model.params, &grads, &layout, 1e-3);
        }
        model.params
    })
}

#[test]
fn same_steps_same_bits_for_any_thread_count() {
    let a = train(2, 4);
    assert_eq!(a, train(2, 4), "repeat");
    assert_eq!(a, train(1, 4), "1 thread vs 2");
    assert_eq!(a, train(3, 4), "3 threads vs 2");
    assert_ne!(a, train(2, 3), "a different number of steps must differ");
}
