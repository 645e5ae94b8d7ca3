//! Representation probes: what the model computes inside, on the probe batch.
//!
//! **The probe batch** (as the official interpretability scripts build it): one task; example
//! slot e runs over all p^2 inputs in canonical order (row x·p + y), while every other slot
//! holds one fixed example, drawn once (seeded) and labelled for the task. The p^2 sequences
//! share everything but slot e, so any difference between their activations at slot e's tokens
//! is the model's representation of that input.

use modicl_core::rng::{Domain, Rng};
use modicl_data::label;
use modicl_engine::{Model, Recorder, Workspace};

use crate::linalg::{self, Pca};
use crate::ProbeError;

/// The tokens of a slot: x, y and the label z.
pub const TOKEN_NAMES: [&str; 3] = ["x", "y", "z"];

/// The probe batch: p^2 sequences of `examples` examples, slot `slot` varying.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeBatch {
    pub p: u32,
    pub task: Vec<u32>,
    pub examples: usize,
    pub slot: usize,
    /// The fixed input of every slot (slot `slot`'s entry is unused), seeded.
    pub fixed: Vec<[u32; 2]>,
    /// p^2 × 3·examples tokens, row x·p + y has input (x, y) at slot `slot`.
    pub tokens: Vec<u32>,
}

impl ProbeBatch {
    /// Builds the batch. Needs n_var = 2; the slot's three tokens must be inside the model's
    /// input (slot ≤ examples − 2).
    pub fn new(
        p: u32,
        task: &[u32],
        examples: usize,
        slot: usize,
        seed: u64,
    ) -> Result<ProbeBatch, ProbeError> {
        if task.len() != 2 {
            return Err(ProbeError::invalid(
                "task.n_var",
                task.len(),
                "2: the representation probes label inputs (x, y)",
            ));
        }
        if examples < 2 || slot > examples - 2 {
            return Err(ProbeError::invalid(
                "--slot",
                slot,
                format!(
                    "a slot in 0..={} (the run's {examples} examples; the slot's x, y and z tokens must all be read by the model)",
                    examples.saturating_sub(2)
                ),
            ));
        }
        let mut rng = Rng::stream(seed, Domain::Probe, 1 << 41);
        let fixed: Vec<[u32; 2]> = (0..examples)
            .map(|_| [rng.below(p), rng.below(p)])
            .collect();
        let seq = 3 * examples;
        let mut tokens = Vec::with_capacity((p * p) as usize * seq);
        for x in 0..p {
            for y in 0..p {
                for (i, f) in fixed.iter().enumerate() {
                    let v = if i == slot { [x, y] } else { *f };
                    tokens.extend_from_slice(&v);
                    tokens.push(label(task, &v, p));
                }
            }
        }
        Ok(ProbeBatch {
            p,
            task: task.to_vec(),
            examples,
            slot,
            fixed,
            tokens,
        })
    }
    /// Sequences: p^2.
    pub fn rows(&self) -> usize {
        (self.p * self.p) as usize
    }
    /// Tokens per sequence (the model reads one fewer).
    pub fn seq_len(&self) -> usize {
        3 * self.examples
    }
    /// Input position of slot token `tok` (0 = x, 1 = y, 2 = z).
    pub fn pos(&self, tok: usize) -> usize {
        3 * self.slot + tok
    }
}

/// Runs `model` on the batch in chunks of `chunk` sequences, recording the hooks named in
/// `names`, and hands each chunk's first row, row count and recorder to `f`.
pub fn for_each_chunk(
    model: &Model,
    b: &ProbeBatch,
    chunk: usize,
    names: &[String],
    mut f: impl FnMut(usize, usize, &Recorder),
) -> Result<(), ProbeError> {
    let seq = b.seq_len();
    let positions: Vec<usize> = (0..b.examples).map(|i| 3 * i + 1).collect();
    let mut ws: Option<Workspace> = None;
    let mut r0 = 0;
    while r0 < b.rows() {
        let n = chunk.max(1).min(b.rows() - r0);
        if ws.as_ref().is_none_or(|w| w.batch != n) {
            ws = Some(Workspace::new(&model.cfg, n, seq - 1));
        }
        let keep = names.to_vec();
        let mut rec = Recorder::filtered(move |s| keep.iter().any(|k| k == s));
        model.forward(
            ws.as_mut().expect("built above"),
            &b.tokens[r0 * seq..(r0 + n) * seq],
            seq,
            &positions,
            Some(&mut rec),
        )?;
        f(r0, n, &rec);
        r0 += n;
    }
    Ok(())
}

/// Attention patterns of every layer and head: of sequence 0, and averaged over the p^2
/// sequences. Both [layers × heads × T × T], [query, key], T = tokens read.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub layers: usize,
    pub heads: usize,
    pub t: usize,
    pub first: Vec<f64>,
    pub mean: Vec<f64>,
}

pub fn attention(model: &Model, b: &ProbeBatch, chunk: usize) -> Result<Attention, ProbeError> {
    let (l, h, t) = (model.cfg.layers, model.cfg.heads, b.seq_len() - 1);
    let names: Vec<String> = (0..l)
        .map(|i| format!("blocks.{i}.attn.hook_pattern"))
        .collect();
    let mut first = vec![0f64; l * h * t * t];
    let mut mean = vec![0f64; l * h * t * t];
    for_each_chunk(model, b, chunk, &names, |r0, n, rec| {
        for (li, name) in names.iter().enumerate() {
            let pat = &rec.tensors[name].data; // [n, h, t, t]
            let per = h * t * t;
            let out = &mut mean[li * per..(li + 1) * per];
            for r in 0..n {
                let src = &pat[r * per..(r + 1) * per];
                for (o, &v) in out.iter_mut().zip(src) {
                    *o += v as f64;
                }
                if r0 + r == 0 {
                    for (o, &v) in first[li * per..(li + 1) * per].iter_mut().zip(src) {
                        *o = v as f64;
                    }
                }
            }
        }
    })?;
    let rows = b.rows() as f64;
    mean.iter_mut().for_each(|v| *v /= rows);
    Ok(Attention {
        layers: l,
        heads: h,
        t,
        first,
        mean,
    })
}

/// What every head writes into the residual stream (its attention output through its slice of
/// `attn.o`) and the residual stream after every block, at the three tokens of slot e, for the
/// p^2 sequences in canonical order.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub layers: usize,
    pub heads: usize,
    pub d: usize,
    /// Per (layer, head), index layer·heads + head: [p^2 × 3 × d].
    pub heads_out: Vec<Vec<f32>>,
    /// Per layer: `blocks.{l}.hook_resid_post` [p^2 × 3 × d].
    pub blocks_out: Vec<Vec<f32>>,
    /// Per layer: `blocks.{l}.hook_attn_out` [p^2 × 3 × d] (the heads' writes summed, as the
    /// model computes it).
    pub attn_out: Vec<Vec<f32>>,
}

impl Features {
    /// Head (l, h)'s write at slot token `tok` of row `r`.
    pub fn head(&self, l: usize, h: usize, r: usize, tok: usize) -> &[f32] {
        let s = (r * 3 + tok) * self.d;
        &self.heads_out[l * self.heads + h][s..s + self.d]
    }
}

pub fn features(model: &Model, b: &ProbeBatch, chunk: usize) -> Result<Features, ProbeError> {
    let c = &model.cfg;
    let (layers, heads, d, dh) = (c.layers, c.heads, c.d_model, c.d_head());
    let t = b.seq_len() - 1;
    let rows = b.rows();
    let mut names = Vec::new();
    for l in 0..layers {
        for n in ["attn.hook_z", "hook_resid_post", "hook_attn_out"] {
            names.push(format!("blocks.{l}.{n}"));
        }
    }
    let mut heads_out = vec![vec![0f32; rows * 3 * d]; layers * heads];
    let mut blocks_out = vec![vec![0f32; rows * 3 * d]; layers];
    let mut attn_out = vec![vec![0f32; rows * 3 * d]; layers];
    let toks = [b.pos(0), b.pos(1), b.pos(2)];
    for_each_chunk(model, b, chunk, &names, |r0, n, rec| {
        for l in 0..layers {
            let z = &rec.tensors[&format!("blocks.{l}.attn.hook_z")].data; // [n, t, h, dh]
            let resid = &rec.tensors[&format!("blocks.{l}.hook_resid_post")].data; // [n, t, d]
            let ao = &rec.tensors[&format!("blocks.{l}.hook_attn_out")].data;
            let wo = &model.params[model.layout.blocks[l].o..][..d * d]; // [out d, in d]
            for r in 0..n {
                for (k, &pos) in toks.iter().enumerate() {
                    let dst = ((r0 + r) * 3 + k) * d;
                    let src = (r * t + pos) * d;
                    blocks_out[l][dst..dst + d].copy_from_slice(&resid[src..src + d]);
                    attn_out[l][dst..dst + d].copy_from_slice(&ao[src..src + d]);
                    for h in 0..heads {
                        let zh = &z[src + h * dh..src + (h + 1) * dh];
                        let out = &mut heads_out[l * heads + h][dst..dst + d];
                        for (o, w) in out.iter_mut().zip(wo.chunks_exact(d)) {
                            *o = zh
                                .iter()
                                .zip(&w[h * dh..(h + 1) * dh])
                                .map(|(a, b)| a * b)
                                .sum();
                        }
                    }
                }
            }
        }
    })?;
    Ok(Features {
        layers,
        heads,
        d,
        heads_out,
        blocks_out,
        attn_out,
    })
}

/// Which two slot tokens a head-feature PCA concatenates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPair {
    Xy,
    Xz,
    Yz,
}

impl TokenPair {
    pub fn tokens(self) -> (usize, usize) {
        match self {
            TokenPair::Xy => (0, 1),
            TokenPair::Xz => (0, 2),
            TokenPair::Yz => (1, 2),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            TokenPair::Xy => "xy",
            TokenPair::Xz => "xz",
            TokenPair::Yz => "yz",
        }
    }
}

/// How circle-like a head's top-2 PCA projection is.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Structure {
    /// Share of the variance in the top two components.
    pub top2: f64,
    /// Mean over the groups of fixed x ≠ 0 of 1 − sd(r)/mean(r), r the distances of the
    /// group's points with y ≠ 0 from their centroid in the top-2 plane (1: a perfect circle;
    /// (x, 0) sits at the centre in the paper's figure, so it is left out).
    pub circularity: f64,
    /// top2 × circularity: high only when most of the variance lies in circles.
    pub score: f64,
}

/// The PCA of head (l, h)'s writes at the token pair, over the p^2 inputs, with `k`
/// components, and its structure score.
pub fn head_pca(
    f: &Features,
    l: usize,
    h: usize,
    pair: TokenPair,
    p: u32,
    k: usize,
) -> (Pca, Structure) {
    let rows = (p * p) as usize;
    let (a, b) = pair.tokens();
    let d = f.d;
    let mut x = Vec::with_capacity(rows * 2 * d);
    for r in 0..rows {
        x.extend_from_slice(f.head(l, h, r, a));
        x.extend_from_slice(f.head(l, h, r, b));
    }
    let pca = linalg::pca(&x, rows, 2 * d, k.max(2));
    let s = structure(&pca, p);
    (pca, s)
}

/// The structure score of a PCA of the p^2 inputs (rows x·p + y).
pub fn structure(pca: &Pca, p: u32) -> Structure {
    let p = p as usize;
    let mut circ = Vec::new();
    for x in 1..p {
        let pts: Vec<(f64, f64)> = (1..p)
            .map(|y| (pca.score(x * p + y, 0), pca.score(x * p + y, 1)))
            .collect();
        let n = pts.len() as f64;
        let (cx, cy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), q| (a + q.0 / n, b + q.1 / n));
        let r: Vec<f64> = pts
            .iter()
            .map(|q| ((q.0 - cx).powi(2) + (q.1 - cy).powi(2)).sqrt())
            .collect();
        let mean = r.iter().sum::<f64>() / n;
        let sd = (r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        circ.push(if mean > 1e-12 {
            (1.0 - sd / mean).max(0.0)
        } else {
            0.0
        });
    }
    let circularity = if circ.is_empty() {
        0.0
    } else {
        circ.iter().sum::<f64>() / circ.len() as f64
    };
    let top2 = pca.explained.iter().take(2).sum::<f64>();
    Structure {
        top2,
        circularity,
        score: top2 * circularity,
    }
}

/// The number-token embeddings: their PCA and their spectra.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub pca: Pca,
    /// Power per frequency over Z_p, f = 0..=p/2 (f and p − f carry the same power for real
    /// embeddings and are added), as a share of the power at f ≥ 1.
    pub additive: Vec<f64>,
    /// Primitive root used for the multiplicative group (None when p is not prime).
    pub root: Option<u32>,
    /// Power per frequency over the multiplicative group indexed by discrete log,
    /// f = 0..=(p−1)/2 (folded the same way), as a share of the power at f ≥ 1.
    pub multiplicative: Option<Vec<f64>>,
}

pub fn embedding(model: &Model, p: u32) -> Embedding {
    let d = model.cfg.d_model;
    let p_us = p as usize;
    let e = &model.params[model.layout.wte..][..p_us * d];
    let pca = linalg::pca(e, p_us, d, 4.min(p_us));
    let e64: Vec<f64> = e.iter().map(|&v| v as f64).collect();
    let share = |s: Vec<f64>| {
        // Fold f and len − f together.
        let len = s.len();
        let s: Vec<f64> = (0..=len / 2)
            .map(|f| {
                if f == 0 || 2 * f == len {
                    s[f]
                } else {
                    s[f] + s[len - f]
                }
            })
            .collect();
        let t: f64 = s.iter().skip(1).sum();
        s.iter()
            .map(|v| if t > 0.0 { v / t } else { 0.0 })
            .collect::<Vec<_>>()
    };
    let additive = share(linalg::power_spectrum(&e64, p_us, d));
    let root = linalg::primitive_root(p);
    let multiplicative = root.map(|g| {
        let mut series = Vec::with_capacity((p_us - 1) * d);
        for m in 0..p - 1 {
            let n = linalg::pow_mod(g, m, p) as usize;
            series.extend_from_slice(&e64[n * d..(n + 1) * d]);
        }
        share(linalg::power_spectrum(&series, p_us - 1, d))
    });
    Embedding {
        pca,
        additive,
        root,
        multiplicative,
    }
}

/// Cosine-similarity matrices of one set of vectors at slot e's tokens: `x` [p × p] over x at
/// the x token with y = 1, `y` and `z` [p^2 × p^2] over all inputs at the y and z tokens.
#[derive(Clone, Debug, PartialEq)]
pub struct Cosine {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub z: Vec<f64>,
}

/// Cosines of `vectors` ([p^2 × 3 × d], canonical rows) with the official normalisation:
/// per head (`first_l2`) L2, standardise, L2; per block standardise, L2.
pub fn cosine(vectors: &[f32], p: u32, d: usize, first_l2: bool) -> Cosine {
    let p = p as usize;
    let take = |rows: &mut dyn Iterator<Item = usize>, tok: usize| -> (Vec<f64>, usize) {
        let mut v = Vec::new();
        let mut n = 0;
        for r in rows {
            let s = (r * 3 + tok) * d;
            let mut row: Vec<f64> = vectors[s..s + d].iter().map(|&x| x as f64).collect();
            linalg::normalise(&mut row, first_l2);
            v.extend(row);
            n += 1;
        }
        (v, n)
    };
    let y1 = 1.min(p - 1);
    let (vx, nx) = take(&mut (0..p).map(|x| x * p + y1), 0);
    let (vy, ny) = take(&mut (0..p * p), 1);
    let (vz, nz) = take(&mut (0..p * p), 2);
    Cosine {
        x: linalg::gram(&vx, nx, d),
        y: linalg::gram(&vy, ny, d),
        z: linalg::gram(&vz, nz, d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(p: usize, f: impl Fn(usize, usize) -> (f64, f64)) -> Pca {
        let mut s = Vec::new();
        for x in 0..p {
            for y in 0..p {
                let (a, b) = f(x, y);
                s.extend([a, b]);
            }
        }
        Pca {
            explained: vec![0.6, 0.3],
            scores: s,
            components: 2,
        }
    }

    #[test]
    fn circles_of_circles_score_high_and_clouds_low() {
        let p = 11;
        let tau = 2.0 * std::f64::consts::PI;
        let circles = scores(p, |x, y| {
            let (bx, by) = (
                (tau * x as f64 / p as f64).cos() * 5.0,
                (tau * x as f64 / p as f64).sin() * 5.0,
            );
            if y == 0 {
                (bx, by) // the centre of its small circle
            } else {
                let t = tau * y as f64 / (p - 1) as f64;
                (bx + t.cos(), by + t.sin())
            }
        });
        let s = structure(&circles, p as u32);
        assert!((s.circularity - 1.0).abs() < 1e-9, "{s:?}");
        assert!((s.score - 0.9).abs() < 1e-9);
        // A pseudo-random cloud: far from circles.
        let cloud = scores(p, |x, y| {
            let h = ((x * 31 + y * 17) as f64 * 12.9898).sin() * 43758.5453;
            (h.fract(), (h * 7.0).fract())
        });
        assert!(structure(&cloud, p as u32).circularity < 0.7);
    }

    #[test]
    fn the_probe_batch_varies_one_slot_only() {
        let b = ProbeBatch::new(5, &[2, 3], 4, 1, 9).unwrap();
        assert_eq!(b.rows(), 25);
        let seq = b.seq_len();
        for r in 0..25 {
            let row = &b.tokens[r * seq..(r + 1) * seq];
            let (x, y) = ((r / 5) as u32, (r % 5) as u32);
            assert_eq!(&row[3..6], &[x, y, (2 * x + 3 * y) % 5]);
            // Every other slot equals row 0's.
            for i in [0usize, 2, 3] {
                assert_eq!(&row[3 * i..3 * i + 3], &b.tokens[3 * i..3 * i + 3]);
            }
        }
        assert!(ProbeBatch::new(5, &[2, 3], 4, 3, 9).is_err());
        assert!(ProbeBatch::new(5, &[2, 3, 1], 4, 1, 9).is_err());
    }
}
