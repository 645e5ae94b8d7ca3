//! What the trainer's integration tests share.

use modicl_config::Config;

/// A tiny run (p = 7, d 16, 40 steps): it trains in a fraction of a second.
pub fn tiny() -> Config {
    let mut c = Config::resolve(None, None, &[]).unwrap();
    for o in [
        "task.p=7",
        "task.n_base=2",
        "task.batch=16",
        "task.examples=6",
        "model.d_model=16",
        "model.heads=2",
        "model.layers=2",
        "optim.lr=3e-3",
        "train.steps=40",
        "train.warmup=4",
        "train.eval_every=5",
        "train.checkpoints=log:3",
        "train.save_every=6",
        "eval.seqs_per_task=2",
    ] {
        c.apply_override(o).unwrap();
    }
    c.check().unwrap();
    c
}
