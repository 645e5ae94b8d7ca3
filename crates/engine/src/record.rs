//! Opt-in recording of activations under TransformerLens's hook names, with its shapes and
//! meanings (B sequences, T positions, d = d_model, h heads, d_head, F = d_mlp, V = vocab):
//!
//! | hook | shape | what |
//! |---|---|---|
//! | `hook_embed` | [B, T, d] | token embedding (no positional embedding: RoPE) |
//! | `blocks.{l}.hook_resid_pre` | [B, T, d] | residual stream entering block l |
//! | `blocks.{l}.ln1.hook_scale` | [B, T, 1] | √(var + eps) of ln_1's input |
//! | `blocks.{l}.ln1.hook_normalized` | [B, T, d] | ln_1's output (after weight and bias) |
//! | `blocks.{l}.attn.hook_q`, `hook_k` | [B, T, h, d_head] | q and k *before* RoPE |
//! | `blocks.{l}.attn.hook_v` | [B, T, h, d_head] | v |
//! | `blocks.{l}.attn.hook_rot_q`, `hook_rot_k` | [B, T, h, d_head] | q and k after RoPE |
//! | `blocks.{l}.attn.hook_attn_scores` | [B, h, T, T] | rot_q·rot_kᵀ/√d_head, −∞ above the diagonal |
//! | `blocks.{l}.attn.hook_pattern` | [B, h, T, T] | softmax of the scores, [query, key] |
//! | `blocks.{l}.attn.hook_z` | [B, T, h, d_head] | pattern·v, before `attn.o` |
//! | `blocks.{l}.hook_attn_out` | [B, T, d] | `attn.o` output |
//! | `blocks.{l}.hook_resid_mid` | [B, T, d] | resid_pre + attn_out |
//! | `blocks.{l}.ln2.hook_scale` | [B, T, 1] | √(var + eps) of ln_2's input |
//! | `blocks.{l}.ln2.hook_normalized` | [B, T, d] | ln_2's output |
//! | `blocks.{l}.mlp.hook_pre` | [B, T, F] | `c_fc` output, before the activation |
//! | `blocks.{l}.mlp.hook_post` | [B, T, F] | after the activation |
//! | `blocks.{l}.hook_mlp_out` | [B, T, d] | `c_proj` output |
//! | `blocks.{l}.hook_resid_post` | [B, T, d] | resid_mid + mlp_out |
//! | `ln_final.hook_scale` | [B, T, 1] | √(var + eps) of ln_f's input |
//! | `ln_final.hook_normalized` | [B, T, d] | ln_f's output |
//! | `logits` | [B, T, V] | the output head |
//!
//! Recording happens after the forward pass, from the activations it keeps; the pre-RoPE q and
//! k, the scores and mlp_out, which it does not keep, are recomputed with its own kernels, only
//! when asked for. With no recorder, nothing is done.

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
    /// Whether the hook `name` is recorded.
    pub fn wants(&self, name: &str) -> bool {
        (self.filter)(name)
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
