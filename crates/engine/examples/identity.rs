//! Bit identity of the CPU engine, for refactors that must not change a single bit: 20 AdamW
//! steps of a ReLU-tied and a GELU-untied model (p = 11, d 64, 4 heads, 2 blocks), hashing
//! every loss, every recorded activation (all TransformerLens hooks, names included), every
//! gradient and the final weights and moments. Run it before and after a change:
//!
//!     cargo run --release -p modicl-engine --example identity
//!
//! and compare the two printed hashes (FNV-1a 64 over the bytes, in order). Any difference,
//! down to one rounding, changes them.

use modicl_engine::{Activation, AdamW, AdamWConfig, Model, ModelConfig, Recorder, Workspace};

/// FNV-1a 64.
struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    fn floats(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
}

/// The hash of 20 steps of `cfg`.
fn run(cfg: ModelConfig) -> u64 {
    let (batch, examples) = (8, 6);
    let seq_len = 3 * examples;
    let positions: Vec<usize> = (0..examples).map(|i| 3 * i + 1).collect();
    let mut model = Model::new(cfg.clone(), 1).expect("a valid model");
    let mut opt = AdamW::new(
        AdamWConfig {
            weight_decay: 1.0,
            ..AdamWConfig::default()
        },
        model.layout.total,
    );
    let mut ws = Workspace::sequential(&cfg, batch, seq_len - 1);
    let mut grads = vec![0f32; model.layout.total];
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    // Tokens from a fixed LCG: the hash depends on the engine only.
    let mut state = 12345u64;
    for step in 0..20 {
        let tokens: Vec<u32> = (0..batch * seq_len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 33) % 11) as u32
            })
            .collect();
        let mut rec = Recorder::all();
        let loss = model
            .forward(&mut ws, &tokens, seq_len, &positions, Some(&mut rec))
            .expect("a valid batch");
        h.bytes(&loss.mean.to_bits().to_le_bytes());
        for (name, t) in &rec.tensors {
            h.bytes(name.as_bytes());
            h.floats(&t.data);
        }
        grads.fill(0.0);
        model.backward(&mut ws, &mut grads);
        h.floats(&grads);
        let lr = 1e-3 * (step + 1) as f32 / 20.0;
        opt.update(&mut model.params, &grads, &model.layout, lr);
    }
    h.floats(&model.params);
    h.floats(&opt.m);
    h.floats(&opt.v);
    h.0
}

fn main() {
    let relu_tied = ModelConfig::official(11, 64, 4, 2);
    let gelu_untied = ModelConfig {
        act: Activation::GeluTanh,
        tied: false,
        ..relu_tied.clone()
    };
    println!("relu-tied   {:016x}", run(relu_tied));
    println!("gelu-untied {:016x}", run(gelu_untied));
}
