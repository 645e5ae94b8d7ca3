//! Opt-in recording of activations under TransformerLens-style names.
//!
//! Names: `blocks.{l}.hook_resid_pre`, `blocks.{l}.attn.hook_q` / `hook_k` / `hook_v`
//! ([B, heads, T, d_head], after RoPE), `blocks.{l}.attn.hook_pattern` ([B, heads, T, T]),
//! `blocks.{l}.attn.hook_z` ([B, T, heads, d_head]), `blocks.{l}.hook_attn_out`,
//! `blocks.{l}.mlp.hook_pre` / `hook_post` ([B, T, d_mlp]), `blocks.{l}.hook_resid_post`,
//! `ln_final.hook_normalized` ([B, T, d]) and `logits` ([B, T, vocab]).
//! Recording copies activations the forward pass keeps anyway, after it: with no recorder,
//! nothing is done.

use std::collections::BTreeMap;

/// A recorded tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

type Filter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Collects the activations whose names pass its filter.
pub struct Recorder {
    filter: Filter,
    pub tensors: BTreeMap<String, Tensor>,
}

impl Recorder {
    /// Records every hook.
    pub fn all() -> Recorder {
        Recorder::filtered(|_| true)
    }
    /// Records the hooks for which `keep(name)` is true.
    pub fn filtered(keep: impl Fn(&str) -> bool + Send + Sync + 'static) -> Recorder {
        Recorder {
            filter: Box::new(keep),
            tensors: BTreeMap::new(),
        }
    }
    /// Records the hooks whose names contain any of `parts` (e.g. `["hook_pattern"]`).
    pub fn matching(parts: &[&str]) -> Recorder {
        let parts: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        Recorder::filtered(move |n| parts.iter().any(|p| n.contains(p.as_str())))
    }
    pub(crate) fn put(&mut self, name: &str, shape: &[usize], data: impl FnOnce() -> Vec<f32>) {
        if (self.filter)(name) {
            let data = data();
            debug_assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
            self.tensors.insert(
                name.to_string(),
                Tensor {
                    shape: shape.to_vec(),
                    data,
                },
            );
        }
    }
}
