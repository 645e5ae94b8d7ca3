//! The representation probes of `modicl probe` (attention, pca, embed, cosine): what the model
//! computes inside, on the probe batch (docs/probes.md).

use modicl_data::npy::{encode_f32, encode_f64};
use modicl_probes::figures;
use modicl_probes::linalg::primitive_root;
use modicl_probes::repr::{self, Features, ProbeBatch, TokenPair, TOKEN_NAMES};
use modicl_probes::ProbeError;
use modicl_trainer::rundir;
use serde_json::{json, Value};

use crate::args::{BatchOpts, CosineOpts, PairArg, PcaOpts, PerArg};
use crate::probe_cmd::{Loaded, Written, CHUNK};

/// The probe batch for `task` with the options' k (default: the run's) and slot (default 5,
/// or k − 2 if smaller).
pub(crate) fn batch(l: &Loaded, task: &[u32], o: &BatchOpts) -> Result<ProbeBatch, ProbeError> {
    let run_k = l.ds.seq.examples;
    let k = o.batch_examples.unwrap_or(run_k);
    if !(2..=run_k).contains(&k) {
        return Err(ProbeError::invalid(
            "--batch-examples",
            k,
            format!("2..={run_k} (the run's task.examples: the model was trained on sequences that long)"),
        ));
    }
    let slot = o.slot.unwrap_or(5.min(k.saturating_sub(2)));
    ProbeBatch::new(l.cfg.task.p, task, k, slot, o.batch_seed)
}

fn batch_name(b: &ProbeBatch) -> String {
    format!("task_{}_{}_slot_{}", b.task[0], b.task[1], b.slot)
}

fn batch_json(b: &ProbeBatch) -> Value {
    json!({
        "task": b.task,
        "slot": b.slot,
        "examples": b.examples,
        "fixed_inputs": b.fixed.iter().enumerate().filter(|(i, _)| *i != b.slot).map(|(i, f)| json!({"slot": i, "x": f})).collect::<Vec<_>>(),
        "rows": "p^2 sequences; row x*p + y has input (x, y) in the varying slot",
    })
}

/// Writes `bytes` to `path` and records it in `files`.
fn put(
    files: &mut Vec<std::path::PathBuf>,
    path: std::path::PathBuf,
    bytes: &[u8],
) -> anyhow::Result<()> {
    rundir::write_atomic(&path, bytes)?;
    files.push(path);
    Ok(())
}

fn json_bytes(v: &Value) -> anyhow::Result<Vec<u8>> {
    Ok((serde_json::to_string_pretty(v)? + "\n").into_bytes())
}

pub(crate) fn attention(l: &Loaded, b: &ProbeBatch, tokens: usize) -> anyhow::Result<Written> {
    let a = repr::attention(&l.model, b, CHUNK)?;
    let dir = l.out.join("attention").join(batch_name(b));
    let mut files = Vec::new();
    let shape = [a.layers, a.heads, a.t, a.t];
    put(
        &mut files,
        dir.join("pattern_first.npy"),
        &encode_f64(&shape, a.first.iter().copied()),
    )?;
    put(
        &mut files,
        dir.join("pattern_mean.npy"),
        &encode_f64(&shape, a.mean.iter().copied()),
    )?;
    for layer in 0..a.layers {
        let title = format!(
            "{} step {}: attention, layer {layer}, task ({}, {}), slot {} varying",
            l.cfg.train.name, l.step, b.task[0], b.task[1], b.slot
        );
        files.extend(figures::attention_layer(
            &dir.join(format!("layer{layer}")),
            &title,
            &a,
            layer,
            tokens,
        )?);
    }
    // Where each head looks from the varying slot's y token (which predicts its z), on average.
    let q = b.pos(1);
    let mut table = format!(
        "attention from slot {}'s y token (predicting its z), mean over the {} inputs: the three keys it weighs most",
        b.slot,
        b.rows()
    );
    let mut heads = Vec::new();
    for layer in 0..a.layers {
        for h in 0..a.heads {
            let row = &a.mean[((layer * a.heads + h) * a.t + q) * a.t..][..a.t];
            let mut idx: Vec<usize> = (0..=q).collect();
            idx.sort_by(|&i, &j| row[j].total_cmp(&row[i]));
            let top: Vec<String> = idx
                .iter()
                .take(3)
                .map(|&i| format!("{}{} {:.2}", TOKEN_NAMES[i % 3], i / 3, row[i]))
                .collect();
            table += &format!("\nlayer {layer} head {h}: {}", top.join(", "));
            heads.push(json!({"layer": layer, "head": h, "top_keys": idx.iter().take(3).map(|&i| json!({"token": i, "weight": row[i]})).collect::<Vec<_>>()}));
        }
    }
    let summary = json!({
        "batch": batch_json(b),
        "arrays": "pattern_first (sequence 0) and pattern_mean (over the p^2 sequences): [layers, heads, query, key]",
        "from_slot_y_token": heads,
    });
    put(
        &mut files,
        dir.join("attention.json"),
        &json_bytes(&summary)?,
    )?;
    Ok(Written {
        key: format!("attention/{}", batch_name(b)),
        files,
        summary,
        table,
    })
}

/// `given`, or the batch's features computed into `slot`.
fn with_features<'a>(
    l: &Loaded,
    b: &ProbeBatch,
    given: Option<&'a Features>,
    slot: &'a mut Option<Features>,
) -> Result<&'a Features, ProbeError> {
    match given {
        Some(f) => Ok(f),
        None => Ok(slot.insert(repr::features(&l.model, b, CHUNK)?)),
    }
}

fn pair(p: PairArg) -> TokenPair {
    match p {
        PairArg::Xy => TokenPair::Xy,
        PairArg::Xz => TokenPair::Xz,
        PairArg::Yz => TokenPair::Yz,
    }
}

fn check_index(field: &str, v: usize, n: usize, what: &str) -> Result<(), ProbeError> {
    if v >= n {
        return Err(ProbeError::invalid(
            field,
            v,
            format!("in 0..{n} ({what} = {n})"),
        ));
    }
    Ok(())
}

pub(crate) fn pca(
    l: &Loaded,
    b: &ProbeBatch,
    o: &PcaOpts,
    f: Option<&Features>,
) -> anyhow::Result<Written> {
    let (layers, heads) = (l.model.cfg.layers, l.model.cfg.heads);
    if let (Some(layer), Some(head)) = (o.layer, o.head) {
        check_index("--layer", layer, layers, "model.layers")?;
        check_index("--head", head, heads, "model.heads")?;
    }
    let mut owned = None;
    let f = with_features(l, b, f, &mut owned)?;
    let (p, tp) = (l.cfg.task.p, pair(o.pair));
    let dir = l
        .out
        .join("pca")
        .join(format!("{}_{}", batch_name(b), tp.name()));
    let mut files = Vec::new();
    let root = primitive_root(p);
    // Every head when asked, or when the head is to be chosen by its score.
    let mut ranked = Vec::new();
    if o.all_heads || o.layer.is_none() {
        for layer in 0..layers {
            for h in 0..heads {
                let (pc, s) = repr::head_pca(f, layer, h, tp, p, 6);
                ranked.push((layer, h, pc, s));
            }
        }
        ranked.sort_by(|a, b| b.3.score.total_cmp(&a.3.score));
    }
    let (layer, head) = match (o.layer, o.head) {
        (Some(layer), Some(head)) => (layer, head),
        _ => (ranked[0].0, ranked[0].1),
    };
    let (pc, s) = match ranked.iter().find(|r| (r.0, r.1) == (layer, head)) {
        Some(r) => (r.2.clone(), r.3.clone()),
        None => repr::head_pca(f, layer, head, tp, p, 6),
    };
    let name = format!("L{layer}H{head}");
    let title = format!(
        "{} step {}: layer {layer} head {head} writes at slot {}'s {} tokens, task ({}, {})",
        l.cfg.train.name,
        l.step,
        b.slot,
        tp.name(),
        b.task[0],
        b.task[1]
    );
    files.extend(figures::pca_head(
        &dir.join(&name),
        &title,
        &pc,
        &s,
        p,
        root,
    )?);
    put(
        &mut files,
        dir.join(format!("{name}_scores.npy")),
        &encode_f64(&[b.rows(), pc.components], pc.scores.iter().copied()),
    )?;
    if o.all_heads {
        let title = format!(
            "{} step {}: every head, {} of slot {}, colour = x",
            l.cfg.train.name,
            l.step,
            tp.name(),
            b.slot
        );
        files.extend(figures::all_heads(
            &dir.join("all_heads"),
            &title,
            &ranked,
            p,
        )?);
    }
    let mut table = format!(
        "PCA of head writes at slot {}'s {} tokens, task ({}, {}): layer {layer} head {head}, explained variance {}; circle score {:.3} (top-2 {:.3} x circularity {:.3})",
        b.slot,
        tp.name(),
        b.task[0],
        b.task[1],
        pc.explained.iter().take(4).map(|v| format!("{:.1}%", 100.0 * v)).collect::<Vec<_>>().join(", "),
        s.score,
        s.top2,
        s.circularity
    );
    if !ranked.is_empty() {
        table += "\nheads by circle score:";
        for (layer, h, _, s) in &ranked {
            table += &format!(
                "\n  layer {layer} head {h}: {:.3} (top-2 {:.3}, circularity {:.3})",
                s.score, s.top2, s.circularity
            );
        }
    }
    if root.is_none() {
        table += &format!("\np = {p} is not prime: no primitive root, so no discrete-log labels (the (x, y) labels are drawn)");
    }
    let summary = json!({
        "batch": batch_json(b),
        "tokens": tp.name(),
        "layer": layer,
        "head": head,
        "explained": pc.explained,
        "structure": s,
        "primitive_root": root,
        "heads": ranked.iter().map(|(layer, h, pc, s)| json!({"layer": layer, "head": h, "structure": s, "explained": pc.explained})).collect::<Vec<_>>(),
    });
    put(&mut files, dir.join("pca.json"), &json_bytes(&summary)?)?;
    Ok(Written {
        key: format!("pca/{}_{}", batch_name(b), tp.name()),
        files,
        summary,
        table,
    })
}

pub(crate) fn embed(l: &Loaded) -> anyhow::Result<Written> {
    let p = l.cfg.task.p;
    let e = repr::embedding(&l.model, p);
    let dir = l.out.join("embedding");
    let mut files = Vec::new();
    let title = format!(
        "{} step {}: number-token embeddings",
        l.cfg.train.name, l.step
    );
    files.extend(figures::embedding(&dir.join("embedding"), &title, &e, p)?);
    put(
        &mut files,
        dir.join("embedding_pca.npy"),
        &encode_f64(
            &[p as usize, e.pca.components],
            e.pca.scores.iter().copied(),
        ),
    )?;
    let top = |v: &[f64]| -> Vec<usize> {
        let mut idx: Vec<usize> = (1..v.len()).collect();
        idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
        idx.truncate(3);
        idx
    };
    let mut table = format!(
        "number embeddings: PCA explained {}; strongest frequencies over Z_p: {:?}",
        e.pca
            .explained
            .iter()
            .map(|v| format!("{:.1}%", 100.0 * v))
            .collect::<Vec<_>>()
            .join(", "),
        top(&e.additive)
            .iter()
            .map(|&f| format!("{f} ({:.0}%)", 100.0 * e.additive[f]))
            .collect::<Vec<_>>()
    );
    match (&e.multiplicative, e.root) {
        (Some(m), Some(g)) => {
            table += &format!(
                "; over the multiplicative group (log base {g}): {:?}",
                top(m)
                    .iter()
                    .map(|&f| format!("{f} ({:.0}%)", 100.0 * m[f]))
                    .collect::<Vec<_>>()
            )
        }
        _ => table += &format!("; p = {p} is not prime: no multiplicative spectrum, no log labels"),
    }
    let summary = json!({
        "explained": e.pca.explained,
        "primitive_root": e.root,
        "additive_spectrum": e.additive,
        "multiplicative_spectrum": e.multiplicative,
        "note": "spectra: power per frequency summed over embedding dimensions, as a share of the power at frequencies >= 1 (index 0 is the mean)",
    });
    put(
        &mut files,
        dir.join("embedding.json"),
        &json_bytes(&summary)?,
    )?;
    Ok(Written {
        key: "embedding".into(),
        files,
        summary,
        table,
    })
}

pub(crate) fn cosine(
    l: &Loaded,
    b: &ProbeBatch,
    o: &CosineOpts,
    f: Option<&Features>,
) -> anyhow::Result<Written> {
    let mut owned = None;
    let f = with_features(l, b, f, &mut owned)?;
    let p = l.cfg.task.p;
    let pu = p as usize;
    let dir = l.out.join("cosine").join(batch_name(b));
    let mut files = Vec::new();
    let mut items: Vec<(String, String, &[f32], bool)> = Vec::new();
    if o.per != PerArg::Block {
        for layer in 0..f.layers {
            for h in 0..f.heads {
                items.push((
                    format!("head_L{layer}H{h}"),
                    format!("layer {layer} head {h}'s write"),
                    &f.heads_out[layer * f.heads + h],
                    true,
                ));
            }
        }
    }
    if o.per != PerArg::Head {
        for layer in 0..f.layers {
            items.push((
                format!("block_L{layer}"),
                format!("residual stream after block {layer}"),
                &f.blocks_out[layer],
                false,
            ));
        }
    }
    let mut rows = Vec::new();
    let mut table = format!(
        "cosine similarity at slot {}'s tokens, task ({}, {}): mean |cosine| between different inputs",
        b.slot, b.task[0], b.task[1]
    );
    for (name, what, v, first_l2) in items {
        let c = repr::cosine(v, p, f.d, first_l2);
        let title = format!(
            "{} step {}: cosine similarity of the {what}, slot {}",
            l.cfg.train.name, l.step, b.slot
        );
        files.extend(figures::cosine(&dir.join(&name), &title, &c, p)?);
        put(
            &mut files,
            dir.join(format!("{name}_x.npy")),
            &encode_f32(&[pu, pu], c.x.iter().map(|&v| v as f32)),
        )?;
        put(
            &mut files,
            dir.join(format!("{name}_y.npy")),
            &encode_f32(&[pu * pu, pu * pu], c.y.iter().map(|&v| v as f32)),
        )?;
        put(
            &mut files,
            dir.join(format!("{name}_z.npy")),
            &encode_f32(&[pu * pu, pu * pu], c.z.iter().map(|&v| v as f32)),
        )?;
        let off = |m: &[f64], n: usize| {
            let s: f64 = (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| m[i * n + j].abs())
                .sum();
            s / (n * (n - 1)).max(1) as f64
        };
        let (mx, my, mz) = (off(&c.x, pu), off(&c.y, pu * pu), off(&c.z, pu * pu));
        table += &format!("\n  {name:<12} x {mx:.3}  y {my:.3}  z {mz:.3}");
        rows.push(json!({"name": name, "mean_abs_offdiag": {"x": mx, "y": my, "z": mz}}));
    }
    let summary = json!({
        "batch": batch_json(b),
        "normalisation": "per head: L2, subtract the feature mean and divide by (unbiased sd + 1e-8), L2; per block: the last two steps",
        "arrays": "float32: <name>_x [p, p] over x at y = 1; <name>_y and <name>_z [p^2, p^2] over inputs x*p + y",
        "matrices": rows,
    });
    put(&mut files, dir.join("cosine.json"), &json_bytes(&summary)?)?;
    Ok(Written {
        key: format!("cosine/{}", batch_name(b)),
        files,
        summary,
        table,
    })
}
