//! Model configuration, the parameter layout (official PyTorch state_dict names, one flat
//! buffer), initialisation, and safetensors import/export.

use std::collections::HashMap;

use modicl_core::rng::{Domain, Rng};
use safetensors::tensor::{Dtype, TensorView};

use crate::EngineError;

/// MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// GELU, tanh approximation.
    GeluTanh,
}

/// The model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Vocabulary size (the official rule is p + 18: 47 for p = 29).
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    /// MLP hidden width = mlp_ratio · d_model.
    pub mlp_ratio: usize,
    pub act: Activation,
    /// Output head tied to the token embedding (the official model).
    pub tied: bool,
    pub rope_theta: f64,
    pub ln_eps: f32,
}

impl ModelConfig {
    /// The official architecture with the given width, heads and depth, vocabulary for p.
    pub fn official(p: usize, d_model: usize, heads: usize, layers: usize) -> Self {
        ModelConfig {
            vocab: p + 18,
            d_model,
            heads,
            layers,
            mlp_ratio: 4,
            act: Activation::Relu,
            tied: true,
            rope_theta: 10_000.0,
            ln_eps: 1e-5,
        }
    }
    pub fn d_head(&self) -> usize {
        self.d_model / self.heads
    }
    pub fn d_mlp(&self) -> usize {
        self.mlp_ratio * self.d_model
    }
    /// Checks the shape; errors name the field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |field: &str, value: usize, allowed: &str| {
            Err(EngineError::Config(format!(
                "invalid model.{field} = {value}: allowed {allowed}"
            )))
        };
        if self.vocab < 2 {
            return bad("vocab", self.vocab, "at least 2");
        }
        if self.heads == 0 || self.d_model == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(
                "d_model",
                self.d_model,
                &format!("a positive multiple of heads = {}", self.heads),
            );
        }
        if !self.d_head().is_multiple_of(2) {
            return bad(
                "heads",
                self.heads,
                "a count that leaves an even head width (rotary pairs)",
            );
        }
        if self.layers == 0 {
            return bad("layers", 0, "at least 1");
        }
        if self.mlp_ratio == 0 {
            return bad("mlp_ratio", 0, "at least 1");
        }
        Ok(())
    }
}

/// One named parameter tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// The official PyTorch state_dict name.
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
    /// Weight decay applies (every matrix, the embedding included; not LayerNorm).
    pub decay: bool,
}

/// Offsets of one block's tensors.
#[derive(Clone, Copy, Debug)]
pub struct BlockOffsets {
    pub ln1_w: usize,
    pub ln1_b: usize,
    pub qkv: usize,
    pub o: usize,
    pub ln2_w: usize,
    pub ln2_b: usize,
    pub fc: usize,
    pub proj: usize,
}

/// Where every tensor lives in the flat parameter buffer.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub specs: Vec<ParamSpec>,
    pub total: usize,
    pub wte: usize,
    pub blocks: Vec<BlockOffsets>,
    pub lnf_w: usize,
    pub lnf_b: usize,
    /// The output head: `wte` when tied.
    pub head: usize,
}

impl ParamLayout {
    pub fn new(c: &ModelConfig) -> ParamLayout {
        let (d, v, f) = (c.d_model, c.vocab, c.d_mlp());
        let mut specs = Vec::new();
        let mut total = 0;
        let mut add = |name: String, shape: Vec<usize>, decay: bool| {
            let len = shape.iter().product();
            specs.push(ParamSpec {
                name,
                shape,
                offset: total,
                len,
                decay,
            });
            total += len;
            total - len
        };
        let wte = add("transformer.wte.weight".into(), vec![v, d], true);
        let mut blocks = Vec::new();
        for i in 0..c.layers {
            let h = format!("transformer.h.{i}");
            blocks.push(BlockOffsets {
                ln1_w: add(format!("{h}.ln_1.weight"), vec![d], false),
                ln1_b: add(format!("{h}.ln_1.bias"), vec![d], false),
                qkv: add(format!("{h}.attn.to_qkv.weight"), vec![3 * d, d], true),
                o: add(format!("{h}.attn.o.weight"), vec![d, d], true),
                ln2_w: add(format!("{h}.ln_2.weight"), vec![d], false),
                ln2_b: add(format!("{h}.ln_2.bias"), vec![d], false),
                fc: add(format!("{h}.mlp.c_fc.weight"), vec![f, d], true),
                proj: add(format!("{h}.mlp.c_proj.weight"), vec![d, f], true),
            });
        }
        let lnf_w = add("transformer.ln_f.weight".into(), vec![d], false);
        let lnf_b = add("transformer.ln_f.bias".into(), vec![d], false);
        let head = if c.tied {
            wte
        } else {
            add("lm_head.weight".into(), vec![v, d], true)
        };
        ParamLayout {
            specs,
            total,
            wte,
            blocks,
            lnf_w,
            lnf_b,
            head,
        }
    }

    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

/// The rotary inverse frequencies f_i = theta^(-2i/d_head), i < d_head/2, computed in f32 as the
/// official package does (stored in its state_dict as `attn.rotary_emb.freqs`).
pub fn rope_freqs(c: &ModelConfig) -> Vec<f32> {
    let dh = c.d_head();
    (0..dh / 2)
        .map(|i| 1.0 / (c.rope_theta as f32).powf((2 * i) as f32 / dh as f32))
        .collect()
}

/// Official initialisation: every matrix N(0, 0.02²), `mlp.c_proj` further divided by
/// sqrt(2·layers), an untied `lm_head` by sqrt(d_model); LayerNorm weight 1, bias 0.
/// The attention output `attn.o` is not down-scaled (its name lacks "proj").
pub fn init(c: &ModelConfig, layout: &ParamLayout, seed: u64) -> Vec<f32> {
    let mut p = vec![0f32; layout.total];
    let mut rng = Rng::stream(seed, Domain::ModelInit, 0);
    for s in &layout.specs {
        let dst = &mut p[s.offset..s.offset + s.len];
        if s.shape.len() == 1 {
            dst.fill(if s.name.ends_with(".weight") {
                1.0
            } else {
                0.0
            });
            continue;
        }
        let mut std = 0.02;
        if s.name.contains("proj") {
            std /= (2.0 * c.layers as f64).sqrt();
        }
        if s.name.contains("head") {
            std /= (c.d_model as f64).sqrt();
        }
        for x in dst.iter_mut() {
            *x = (rng.normal() * std) as f32;
        }
    }
    p
}

/// The official state_dict: every parameter, plus `lm_head.weight` (equal to the embedding when
/// tied) and the rotary `freqs` of each block.
pub fn state_dict(
    c: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = layout
        .specs
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.shape.clone(),
                params[s.offset..s.offset + s.len].to_vec(),
            )
        })
        .collect();
    if c.tied {
        let s = &layout.specs[0];
        out.push((
            "lm_head.weight".into(),
            s.shape.clone(),
            params[s.offset..s.offset + s.len].to_vec(),
        ));
    }
    let freqs = rope_freqs(c);
    for i in 0..c.layers {
        out.push((
            format!("transformer.h.{i}.attn.rotary_emb.freqs"),
            vec![freqs.len()],
            freqs.clone(),
        ));
    }
    out
}

/// Serialises a list of named f32 tensors as safetensors (names sorted, so bytes are stable).
pub fn to_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, EngineError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()
        .map_err(|e| EngineError::Format(e.to_string()))?;
    let bytes =
        safetensors::serialize(views, metadata).map_err(|e| EngineError::Format(e.to_string()))?;
    sort_header(bytes)
}

/// Rewrites a safetensors header with its keys in sorted order: `serialize` writes the
/// metadata map in hash order, which differs from run to run, and modicl's files must be a
/// pure function of their contents. Tensor data offsets are relative to the data section and
/// do not move.
fn sort_header(bytes: Vec<u8>) -> Result<Vec<u8>, EngineError> {
    let bad = || EngineError::Format("safetensors header".into());
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(bad)?;
    // serde_json's default map is a BTreeMap: serialising a Value sorts every object's keys.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let mut text = serde_json::to_string(&value)
        .map_err(|_| bad())?
        .into_bytes();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Reads f32 tensor `name` with the expected shape from a safetensors buffer.
pub fn read_tensor(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>, EngineError> {
    let t = st
        .tensor(name)
        .map_err(|_| EngineError::Format(format!("tensor {name} is missing")))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        return Err(EngineError::Format(format!(
            "tensor {name}: expected F32 {shape:?}, found {:?} {:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Loads every parameter of `layout` from an official-style state_dict in safetensors form.
/// `lm_head.weight` must equal the embedding when the model is tied.
pub fn load_state_dict(
    c: &ModelConfig,
    layout: &ParamLayout,
    bytes: &[u8],
) -> Result<Vec<f32>, EngineError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| EngineError::Format(e.to_string()))?;
    let mut p = vec![0f32; layout.total];
    for s in &layout.specs {
        p[s.offset..s.offset + s.len].copy_from_slice(&read_tensor(&st, &s.name, &s.shape)?);
    }
    if c.tied && st.names().contains(&"lm_head.weight") {
        let head = read_tensor(&st, "lm_head.weight", &[c.vocab, c.d_model])?;
        if head[..] != p[layout.wte..layout.wte + head.len()] {
            return Err(EngineError::Format(
                "lm_head.weight differs from transformer.wte.weight in a tied model".into(),
            ));
        }
    }
    Ok(p)
}
