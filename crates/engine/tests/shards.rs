//! A batch run in shards ([`Shards`]) is the same computation as the whole batch: the same
//! per-position losses bit for bit (rows do not interact outside attention, which stays within
//! a sequence), the same gradient up to the order of its sums over rows, and the same bits on
//! any number of threads.

use modicl_data::{Dataset, TaskConfig};
use modicl_engine::{AdamW, AdamWConfig, Model, ModelConfig, Shards, Workspace};

const BATCH: usize = 24;

fn dataset() -> Dataset {
    Dataset::build(&TaskConfig {
        p: 11,
        n_base: 3,
        batch: BATCH as u32,
        examples: 8,
        ..TaskConfig::default()
    })
    .unwrap()
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// The dataset, a model of `cfg` (seed 5) and the scored positions.
fn setup(cfg: &ModelConfig) -> (Dataset, Model, Vec<usize>) {
    let ds = dataset();
    let positions = ds.seq.target_positions().collect();
    (ds, Model::new(cfg.clone(), 5).unwrap(), positions)
}

/// (per-position losses, correct flags, mean loss, gradient) of one batch, in `count` shards.
fn step(cfg: &ModelConfig, count: usize) -> (Vec<f32>, Vec<bool>, f32, Vec<f32>) {
    let (ds, model, positions) = setup(cfg);
    let b = ds.train_batch(3);
    let mut shards = Shards::with_count(cfg, BATCH, ds.seq.input_len(), count);
    assert_eq!(shards.count(), count);
    let mut grads = vec![f32::NAN; model.layout.total];
    let loss = shards
        .forward_backward(&model, &b.tokens, b.seq_len, &positions, &mut grads)
        .unwrap();
    let (l, c) = (
        shards.target_loss().to_vec(),
        shards.target_correct().to_vec(),
    );
    assert_eq!(l.len(), BATCH * positions.len());
    (l, c, loss.mean, grads)
}

use modicl_testkit::rel;

#[test]
fn shards_match_the_whole_batch() {
    for cfg in [
        ModelConfig::official(11, 32, 2, 2),
        ModelConfig {
            tied: false,
            act: modicl_engine::Activation::GeluTanh,
            ..ModelConfig::official(11, 32, 4, 2)
        },
    ] {
        let layout = modicl_engine::ParamLayout::new(&cfg);
        let (l1, c1, m1, g1) = step(&cfg, 1);
        // 24 sequences in 5 shards: sizes 4 and 5, unequal.
        for count in [2, 5, 8] {
            let (l, c, m, g) = step(&cfg, count);
            assert_eq!(l, l1, "{count} shards: per-position losses");
            assert_eq!(c, c1, "{count} shards: correct flags");
            assert_eq!(m, m1, "{count} shards: mean loss");
            assert!(g.iter().all(|x| x.is_finite()), "every gradient written");
            for spec in &layout.specs {
                let r = spec.offset..spec.offset + spec.len;
                let e = rel(&g[r.clone()], &g1[r]);
                assert!(e <= 1e-6, "{count} shards, {}: rel {e:e}", spec.name);
            }
            // The sums over rows run in another order: the bits differ somewhere.
            assert_ne!(g, g1, "{count} shards: gradient bits");
        }
    }
}

#[test]
fn one_shard_is_the_whole_batch_on_a_workspace() {
    let cfg = ModelConfig::official(11, 32, 2, 2);
    let (ds, model, positions) = setup(&cfg);
    // The batch step() runs, through Model::forward and Model::backward directly.
    let b = ds.train_batch(3);
    let mut ws = Workspace::new(&cfg, BATCH, ds.seq.input_len());
    let mut grads = vec![0f32; model.layout.total];
    model
        .forward(&mut ws, &b.tokens, b.seq_len, &positions, None)
        .unwrap();
    model.backward(&mut ws, &mut grads);
    assert!(grads.iter().any(|&x| x != 0.0), "a gradient to compare");
    let (loss, correct, _, g1) = step(&cfg, 1);
    assert_eq!(g1, grads);
    assert_eq!(loss, ws.target_loss);
    assert_eq!(correct, ws.target_correct);
}

#[test]
fn sharded_training_gives_the_same_bits_on_any_number_of_threads() {
    let cfg = ModelConfig::official(11, 32, 2, 2);
    let train = |threads: usize, steps: u64| {
        in_pool(threads, || {
            let ds = dataset();
            let mut model = Model::new(cfg.clone(), 3).unwrap();
            let positions: Vec<usize> = ds.seq.target_positions().collect();
            let mut shards = Shards::new(&cfg, BATCH, ds.seq.input_len());
            assert!(shards.count() > 1, "a d-32 model is sharded");
            let mut grads = vec![0f32; model.layout.total];
            let mut opt = AdamW::new(AdamWConfig::default(), model.layout.total);
            let layout = model.layout.clone();
            for s in 0..steps {
                let b = ds.train_batch(s);
                shards
                    .forward_backward(&model, &b.tokens, b.seq_len, &positions, &mut grads)
                    .unwrap();
                opt.update(&mut model.params, &grads, &layout, 1e-3);
            }
            model.params
        })
    };
    let a = train(2, 4);
    assert_eq!(a, train(1, 4), "1 thread vs 2");
    assert_eq!(a, train(3, 4), "3 threads vs 2");
    assert_ne!(a, train(2, 3), "a different number of steps must differ");
}

#[test]
fn the_plan_shards_small_models_only() {
    let small = ModelConfig::official(29, 64, 4, 2);
    let paper = ModelConfig::official(29, 512, 4, 4);
    assert_eq!(Shards::plan(&small, 128), 8);
    assert_eq!(Shards::plan(&small, 12), 3, "at least 4 sequences a shard");
    assert_eq!(Shards::plan(&small, 2), 1);
    assert_eq!(Shards::plan(&paper, 1024), 1);
}

#[test]
fn a_wrong_batch_is_an_error() {
    let cfg = ModelConfig::official(11, 32, 2, 2);
    let (ds, model, positions) = setup(&cfg);
    let b = ds.train_batch(0);
    let mut shards = Shards::with_count(&cfg, BATCH - 1, ds.seq.input_len(), 4);
    let mut grads = vec![0f32; model.layout.total];
    let err = shards
        .forward_backward(&model, &b.tokens, b.seq_len, &positions, &mut grads)
        .unwrap_err();
    assert!(err.to_string().contains("23 sequences"), "{err}");
}
