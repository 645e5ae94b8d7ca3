//! Weights move between modicl and PyTorch by name: the official state_dict round-trips, and
//! malformed files are errors, not panics.

use modicl_engine::params::{state_dict, to_safetensors};
use modicl_engine::{Activation, Model, ModelConfig};

fn save(model: &Model, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> Vec<u8> {
    let mut sd = state_dict(&model.cfg, &model.layout, &model.params);
    edit(&mut sd);
    to_safetensors(&sd, None).unwrap()
}

#[test]
fn official_keys_round_trip() {
    for tied in [true, false] {
        let cfg = ModelConfig {
            tied,
            act: Activation::GeluTanh,
            ..ModelConfig::official(29, 32, 2, 3)
        };
        let model = Model::new(cfg.clone(), 9).unwrap();
        let sd = state_dict(&cfg, &model.layout, &model.params);
        let names: Vec<&str> = sd.iter().map(|t| t.0.as_str()).collect();
        for must in [
            "transformer.wte.weight",
            "lm_head.weight",
            "transformer.h.2.attn.rotary_emb.freqs",
            "transformer.h.0.mlp.c_proj.weight",
            "transformer.ln_f.bias",
        ] {
            assert!(names.contains(&must), "{must} missing (tied {tied})");
        }
        // 8 tensors per block + wte, ln_f (2), lm_head, and one freqs per block.
        assert_eq!(sd.len(), 3 * 8 + 4 + 3);
        let back = Model::from_safetensors(cfg, &save(&model, |_| ())).unwrap();
        assert_eq!(back.params, model.params);
    }
}

#[test]
fn malformed_weights_are_errors() {
    let cfg = ModelConfig::official(29, 32, 2, 2);
    let model = Model::new(cfg.clone(), 1).unwrap();
    let err = |bytes: &[u8]| {
        Model::from_safetensors(cfg.clone(), bytes)
            .unwrap_err()
            .to_string()
    };
    let e = err(&save(&model, |sd| {
        sd.retain(|t| t.0 != "transformer.h.1.attn.o.weight")
    }));
    assert!(
        e.contains("transformer.h.1.attn.o.weight is missing"),
        "{e}"
    );
    let e = err(&save(&model, |sd| {
        let t = sd
            .iter_mut()
            .find(|t| t.0 == "transformer.ln_f.weight")
            .unwrap();
        t.1 = vec![16, 2];
    }));
    assert!(e.contains("expected F32 [32]"), "{e}");
    let e = err(&save(&model, |sd| {
        sd.iter_mut().find(|t| t.0 == "lm_head.weight").unwrap().2[0] += 1.0
    }));
    assert!(e.contains("lm_head.weight differs"), "{e}");
    let good = save(&model, |_| ());
    assert!(err(&good[..good.len() / 2]).starts_with("weights:"));
    assert!(err(b"not a safetensors file").starts_with("weights:"));
    let wrong = ModelConfig::official(29, 64, 2, 2);
    assert!(Model::from_safetensors(wrong, &good).is_err());
}

#[test]
fn invalid_shapes_name_the_field() {
    let bad = ModelConfig {
        heads: 3,
        ..ModelConfig::official(29, 32, 2, 2)
    };
    assert!(Model::new(bad, 0)
        .unwrap_err()
        .to_string()
        .contains("model.d_model = 32"));
    let odd = ModelConfig {
        heads: 32,
        ..ModelConfig::official(29, 32, 2, 2)
    };
    assert!(Model::new(odd, 0)
        .unwrap_err()
        .to_string()
        .contains("model.heads = 32"));
}

/// Inputs the forward pass must refuse rather than compute wrongly (found in review).
#[test]
fn forward_rejects_mismatched_inputs() {
    let cfg = ModelConfig::official(11, 32, 4, 2);
    let model = Model::new(cfg.clone(), 1).unwrap();
    let tokens: Vec<u32> = (0..2 * 6).map(|i| i % 11).collect();
    let mut ws = modicl_engine::Workspace::new(&cfg, 2, 5);
    let e = model
        .forward(&mut ws, &tokens, 6, &[1, 1, 4], None)
        .unwrap_err();
    assert!(e.to_string().contains("strictly increasing"), "{e}");
    assert!(model.forward(&mut ws, &tokens, 6, &[1, 4], None).is_ok());
    // A workspace sized for another head count (same width) must not be used.
    let other = ModelConfig {
        heads: 2,
        ..cfg.clone()
    };
    let mut ws2 = modicl_engine::Workspace::new(&other, 2, 5);
    let e = model
        .forward(&mut ws2, &tokens, 6, &[1, 4], None)
        .unwrap_err();
    assert!(e.to_string().contains("workspace was built for"), "{e}");
    let mut ws1 = modicl_engine::Workspace::new(&cfg, 2, 0);
    assert!(model.forward(&mut ws1, &[0, 0], 1, &[], None).is_err());
    let e = model
        .forward(&mut ws, &tokens[..11], 6, &[1], None)
        .unwrap_err();
    assert!(e.to_string().contains("shape mismatch"), "{e}");
    let mut bad = tokens.clone();
    bad[3] = 99;
    assert!(model
        .forward(&mut ws, &bad, 6, &[1], None)
        .unwrap_err()
        .to_string()
        .contains("token 99"));
}

#[test]
fn files_are_a_pure_function_of_their_contents() {
    // Metadata is a hash map; its order in the header must not leak into the bytes.
    let model = Model::new(ModelConfig::official(7, 8, 2, 1), 3).unwrap();
    let sd = state_dict(&model.cfg, &model.layout, &model.params);
    let meta = || {
        let mut m = std::collections::HashMap::new();
        for k in [
            "format",
            "format_version",
            "step",
            "config_hash",
            "a",
            "b",
            "c",
            "d",
        ] {
            m.insert(k.to_string(), format!("value of {k}"));
        }
        Some(m)
    };
    let first = to_safetensors(&sd, meta()).unwrap();
    for _ in 0..16 {
        assert!(to_safetensors(&sd, meta()).unwrap() == first);
    }
    let st = safetensors::SafeTensors::deserialize(&first).unwrap();
    assert_eq!(st.len(), sd.len());
    let (n, header) = safetensors::SafeTensors::read_metadata(&first).unwrap();
    assert_eq!(n % 8, 0, "header padded to 8 bytes");
    let m = header.metadata().as_ref().unwrap();
    assert_eq!(m.get("step").map(String::as_str), Some("value of step"));
    let back = Model::from_safetensors(model.cfg.clone(), &first).unwrap();
    assert_eq!(back.params, model.params);
}
