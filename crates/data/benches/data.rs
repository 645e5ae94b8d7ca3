//! `cargo bench -p modicl-data`: building all tasks, the input split and one training batch of
//! 1024 sequences of 32 examples at p = 29; the target is under 5 ms.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use modicl_data::{Batch, Dataset, TaskConfig};

fn config() -> TaskConfig {
    // 128 parallelogram groups = 512 tasks, so a batch of 1024 holds 2 sequences per task.
    TaskConfig {
        n_base: 128,
        alpha: 0.6,
        batch: 1024,
        ..TaskConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    c.bench_function("build tasks + split + batch of 1024x32 (p=29)", |b| {
        b.iter(|| {
            let ds = Dataset::build(black_box(&cfg)).unwrap();
            black_box(ds.train_batch(0))
        })
    });
    let ds = Dataset::build(&cfg).unwrap();
    c.bench_function("build tasks + split (p=29, 512 tasks)", |b| {
        b.iter(|| Dataset::build(black_box(&cfg)).unwrap())
    });
    let mut batch = Batch::default();
    let mut step = 0u64;
    c.bench_function("refill training batch 1024x32 (shared layout)", |b| {
        b.iter(|| {
            step += 1;
            ds.fill_train_batch(step, &mut batch);
            black_box(&batch);
        })
    });
    let mut ind = cfg.clone();
    ind.layout = modicl_data::BatchLayout::Independent;
    let ds = Dataset::build(&ind).unwrap();
    c.bench_function("refill training batch 1024x32 (independent layout)", |b| {
        b.iter(|| {
            step += 1;
            ds.fill_train_batch(step, &mut batch);
            black_box(&batch);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
