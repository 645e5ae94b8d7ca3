//! The small numerics of the representation probes: PCA, the official cosine normalisation,
//! discrete Fourier spectra, primitive roots and discrete logarithms.

use rayon::prelude::*;

/// a · b with eight independent partial sums (so it vectorises), in a fixed order.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f64>() + tail
}

/// The Gram matrix of the rows of `c` (rows × dim), `[rows × rows]`: cosines when the rows are
/// normalised. Row i is computed by one task, so the result does not depend on the thread count.
pub fn gram(c: &[f64], rows: usize, dim: usize) -> Vec<f64> {
    let mut g = vec![0f64; rows * rows];
    g.par_chunks_mut(rows).enumerate().for_each(|(i, out)| {
        let a = &c[i * dim..(i + 1) * dim];
        for (j, o) in out.iter_mut().enumerate() {
            *o = a
                .iter()
                .zip(&c[j * dim..(j + 1) * dim])
                .map(|(p, q)| p * q)
                .sum();
        }
    });
    g
}

/// A principal component analysis of N samples of F features.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Per component: the share of the total variance it explains.
    pub explained: Vec<f64>,
    /// Scores [N × components], sample-major: the centred samples projected on each component.
    pub scores: Vec<f64>,
    pub components: usize,
}

impl Pca {
    /// Score of sample `n` on component `c`.
    pub fn score(&self, n: usize, c: usize) -> f64 {
        self.scores[n * self.components + c]
    }
}

/// PCA of `x` (N samples × F features, row-major), keeping the top `k` components.
///
/// Centres each feature, forms the N × N Gram matrix of the centred samples and finds its top
/// eigenvectors by subspace iteration. The signs follow sklearn's `svd_flip` (u-based): in each
/// component the sample with the largest |score| scores positive, as the official plots do.
pub fn pca(x: &[f32], n: usize, f: usize, k: usize) -> Pca {
    let k = k.min(n).max(1);
    let mut mean = vec![0f64; f];
    for row in x.chunks_exact(f) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let c: Vec<f64> = x
        .chunks_exact(f)
        .flat_map(|row| row.iter().zip(&mean).map(|(&v, m)| v as f64 - m))
        .collect();
    let g = gram(&c, n, f);
    let total: f64 = (0..n).map(|i| g[i * n + i]).sum();
    let (vals, vecs) = top_eigen(&g, n, k);
    let mut scores = vec![0f64; n * k];
    for c in 0..k {
        let u = &vecs[c * n..(c + 1) * n];
        let big = u
            .iter()
            .copied()
            .fold(0f64, |a, v| if v.abs() > a.abs() { v } else { a });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        let s = vals[c].max(0.0).sqrt() * sign;
        for i in 0..n {
            scores[i * k + c] = s * u[i];
        }
    }
    Pca {
        explained: vals
            .iter()
            .map(|&v| if total > 0.0 { v.max(0.0) / total } else { 0.0 })
            .collect(),
        scores,
        components: k,
    }
}

/// The top `k` eigenpairs of the symmetric n × n matrix `g` by subspace iteration with
/// Rayleigh-Ritz, to convergence: eigenvalues descending, eigenvectors [k × n].
fn top_eigen(g: &[f64], n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    // Extra vectors speed up convergence of the wanted ones.
    let m = (k + 6).min(n);
    let mut q: Vec<f64> = (0..m * n)
        .map(|i| {
            // A fixed, generic start (no RNG: the result must not depend on one).
            let (a, b) = ((i / n) as f64 + 1.0, (i % n) as f64 + 1.0);
            ((a * 12.9898 + b * 78.233).sin() * 43758.5453).fract() - 0.5
        })
        .collect();
    orthonormalise(&mut q, m, n);
    let mut vals = vec![0f64; m];
    for _ in 0..300 {
        let mut z = vec![0f64; m * n];
        for c in 0..m {
            let v = &q[c * n..(c + 1) * n];
            for i in 0..n {
                z[c * n + i] = g[i * n..(i + 1) * n]
                    .iter()
                    .zip(v)
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
        // Rayleigh-Ritz on span(z): small m × m problem by Jacobi.
        orthonormalise(&mut z, m, n);
        let mut h = vec![0f64; m * m];
        let mut gz = vec![0f64; n];
        for a in 0..m {
            let za = &z[a * n..(a + 1) * n];
            for i in 0..n {
                gz[i] = g[i * n..(i + 1) * n]
                    .iter()
                    .zip(za)
                    .map(|(x, y)| x * y)
                    .sum();
            }
            for b in 0..m {
                h[b * m + a] = z[b * n..(b + 1) * n]
                    .iter()
                    .zip(&gz)
                    .map(|(x, y)| x * y)
                    .sum();
            }
        }
        let (ev, ew) = jacobi(&mut h, m);
        let mut next = vec![0f64; m * n];
        for (c, col) in ew.chunks_exact(m).enumerate() {
            for (a, &w) in col.iter().enumerate() {
                for i in 0..n {
                    next[c * n + i] += w * z[a * n + i];
                }
            }
        }
        let done = ev
            .iter()
            .zip(&vals)
            .take(k)
            .all(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(1e-300));
        vals = ev;
        q = next;
        if done {
            break;
        }
    }
    (vals[..k].to_vec(), q[..k * n].to_vec())
}

/// Gram-Schmidt (twice) on the m vectors of length n in `q`.
fn orthonormalise(q: &mut [f64], m: usize, n: usize) {
    for _ in 0..2 {
        for c in 0..m {
            for d in 0..c {
                let dot: f64 = (0..n).map(|i| q[c * n + i] * q[d * n + i]).sum();
                for i in 0..n {
                    q[c * n + i] -= dot * q[d * n + i];
                }
            }
            let norm = (0..n).map(|i| q[c * n + i].powi(2)).sum::<f64>().sqrt();
            for i in 0..n {
                q[c * n + i] = if norm > 0.0 { q[c * n + i] / norm } else { 0.0 };
            }
        }
    }
}

/// Eigen-decomposition of the symmetric m × m matrix `h` (destroyed) by cyclic Jacobi:
/// eigenvalues descending and the eigenvectors as rows [m × m] in the same order.
fn jacobi(h: &mut [f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; m * m];
    for i in 0..m {
        v[i * m + i] = 1.0;
    }
    for _ in 0..100 {
        let off: f64 = (0..m)
            .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| h[i * m + j].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..m {
            for q in p + 1..m {
                let apq = h[p * m + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (h[q * m + q] - h[p * m + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..m {
                    let (hp, hq) = (h[r * m + p], h[r * m + q]);
                    h[r * m + p] = c * hp - s * hq;
                    h[r * m + q] = s * hp + c * hq;
                }
                for r in 0..m {
                    let (hp, hq) = (h[p * m + r], h[q * m + r]);
                    h[p * m + r] = c * hp - s * hq;
                    h[q * m + r] = s * hp + c * hq;
                }
                for r in 0..m {
                    let (vp, vq) = (v[r * m + p], v[r * m + q]);
                    v[r * m + p] = c * vp - s * vq;
                    v[r * m + q] = s * vp + c * vq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| h[b * m + b].total_cmp(&h[a * m + a]));
    let vals = order.iter().map(|&i| h[i * m + i]).collect();
    let vecs = order
        .iter()
        .flat_map(|&c| (0..m).map(move |r| (r, c)))
        .map(|(r, c)| v[r * m + c])
        .collect();
    (vals, vecs)
}

/// The official cosine-similarity normalisation of one vector, in place: an L2 normalisation
/// (when `first_l2`: the per-head variant), then subtract the mean over the features and divide
/// by (unbiased standard deviation + 1e-8), then L2-normalise again. Dot products of vectors so
/// normalised are Pearson-correlation-like cosines.
pub fn normalise(v: &mut [f64], first_l2: bool) {
    let l2 = |v: &mut [f64]| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        }
    };
    if first_l2 {
        l2(v);
    }
    let len = v.len() as f64;
    let mean = v.iter().sum::<f64>() / len;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (len - 1.0).max(1.0);
    let sd = var.sqrt() + 1e-8;
    v.iter_mut().for_each(|x| *x = (*x - mean) / sd);
    l2(v);
}

/// Power spectrum of `series` (len × dim, row-major: one row per point of a cyclic group):
/// for each frequency f = 0..len, Σ over the dim columns of |Σ_n x_n·e^{−2πi·f·n/len}|².
pub fn power_spectrum(series: &[f64], len: usize, dim: usize) -> Vec<f64> {
    (0..len)
        .map(|f| {
            (0..dim)
                .map(|j| {
                    let (mut re, mut im) = (0f64, 0f64);
                    for n in 0..len {
                        let a = -2.0 * std::f64::consts::PI * (f * n % len) as f64 / len as f64;
                        re += series[n * dim + j] * a.cos();
                        im += series[n * dim + j] * a.sin();
                    }
                    re * re + im * im
                })
                .sum()
        })
        .collect()
}

/// The smallest primitive root of the prime p, or `None` when p is not prime.
pub fn primitive_root(p: u32) -> Option<u32> {
    if p < 2
        || (2..p)
            .take_while(|d| d * d <= p)
            .any(|d| p.is_multiple_of(d))
    {
        return None;
    }
    if p == 2 {
        return Some(1);
    }
    let n = p - 1;
    let mut factors = Vec::new();
    let mut m = n;
    let mut d = 2;
    while d * d <= m {
        if m.is_multiple_of(d) {
            factors.push(d);
            while m.is_multiple_of(d) {
                m /= d;
            }
        }
        d += 1;
    }
    if m > 1 {
        factors.push(m);
    }
    (2..p).find(|&g| factors.iter().all(|&q| pow_mod(g, n / q, p) != 1))
}

/// g^e mod p.
pub fn pow_mod(g: u32, mut e: u32, p: u32) -> u32 {
    let (mut r, mut b) = (1u64 % p as u64, g as u64 % p as u64);
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % p as u64;
        }
        b = b * b % p as u64;
        e >>= 1;
    }
    r as u32
}

/// Discrete logarithms to base `g` mod p: `log[n]` for n = 0..p, with `None` for 0.
pub fn discrete_logs(g: u32, p: u32) -> Vec<Option<u32>> {
    let mut log = vec![None; p as usize];
    let mut x = 1u32;
    for e in 0..p - 1 {
        log[x as usize] = Some(e);
        x = ((x as u64 * g as u64) % p as u64) as u32;
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_roots_and_logs_for_every_prime_below_100() {
        let primes: Vec<u32> = (2..100).filter(|&n| (2..n).all(|d| n % d != 0)).collect();
        assert_eq!(primes.len(), 25);
        for &p in &primes {
            let g = primitive_root(p).unwrap();
            // g generates the whole group: its powers hit every nonzero residue once.
            let logs = discrete_logs(g, p);
            assert_eq!(logs[0], None);
            let mut seen: Vec<u32> = logs.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..p - 1).collect::<Vec<_>>(), "p {p}");
            for n in 1..p {
                assert_eq!(pow_mod(g, logs[n as usize].unwrap(), p), n);
            }
        }
        assert_eq!(primitive_root(29), Some(2));
        assert_eq!(primitive_root(7), Some(3));
        for c in [1u32, 4, 9, 15, 21, 91] {
            assert_eq!(primitive_root(c), None);
        }
    }

    #[test]
    fn pca_recovers_points_on_a_circle() {
        // 40 points on a circle of radius 3 in a random plane of R^6, plus a small offset axis.
        let n = 40;
        let u = [0.5, 0.5, 0.5, 0.5, 0.0, 0.0];
        let v = [0.5, -0.5, 0.5, -0.5, 0.0, 0.0];
        let w = [0.0, 0.0, 0.0, 0.0, 0.6, 0.8];
        let mut x = Vec::new();
        for i in 0..n {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            for d in 0..6 {
                let e = if i % 2 == 0 { 0.1 } else { -0.1 };
                x.push((7.0 + 3.0 * t.cos() * u[d] + 3.0 * t.sin() * v[d] + e * w[d]) as f32);
            }
        }
        let p = pca(&x, n, 6, 3);
        // Two equal components hold almost all the variance (4.5 each against 0.01).
        assert!(
            (p.explained[0] - p.explained[1]).abs() < 1e-6,
            "{:?}",
            p.explained
        );
        assert!(p.explained[0] + p.explained[1] > 0.997);
        // Each point's distance from the centre in the top-2 plane is the radius.
        for i in 0..n {
            let r = (p.score(i, 0).powi(2) + p.score(i, 1).powi(2)).sqrt();
            assert!((r - 3.0).abs() < 1e-4, "point {i}: {r}");
        }
        // The third component separates the two offset classes.
        assert!(p.score(0, 2) * p.score(1, 2) < 0.0);
        // Signs: the largest |score| of each component is positive.
        for c in 0..3 {
            let big =
                (0..n)
                    .map(|i| p.score(i, c))
                    .fold(0f64, |a, v| if v.abs() > a.abs() { v } else { a });
            assert!(big > 0.0);
        }
    }

    #[test]
    fn normalisation_matches_a_hand_computation() {
        let mut v = vec![3.0, 4.0, 0.0];
        normalise(&mut v, true);
        // L2: (0.6, 0.8, 0); mean 0.4667; unbiased sd sqrt(((0.1333)^2 + (0.3333)^2 + (0.4667)^2)/2)
        let a = [0.6, 0.8, 0.0];
        let mean = (0.6 + 0.8) / 3.0;
        let sd = (a.iter().map(|x: &f64| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt() + 1e-8;
        let z: Vec<f64> = a.iter().map(|x| (x - mean) / sd).collect();
        let n = z.iter().map(|x| x * x).sum::<f64>().sqrt();
        for (got, want) in v.iter().zip(z.iter().map(|x| x / n)) {
            assert!((got - want).abs() < 1e-12);
        }
        // A normalised vector has unit norm and zero mean: its cosine with itself is 1.
        assert!((gram(&v, 1, 3)[0] - 1.0).abs() < 1e-12);
        assert!(v.iter().sum::<f64>().abs() < 1e-12);
    }

    #[test]
    fn spectrum_finds_the_frequency() {
        let p = 11;
        let series: Vec<f64> = (0..p)
            .map(|n| (2.0 * std::f64::consts::PI * 3.0 * n as f64 / p as f64).cos())
            .collect();
        let s = power_spectrum(&series, p, 1);
        for (f, &v) in s.iter().enumerate() {
            if f == 3 || f == p - 3 {
                assert!((v - (p as f64 / 2.0).powi(2)).abs() < 1e-9);
            } else {
                assert!(v < 1e-9, "f {f}: {v}");
            }
        }
    }
}
