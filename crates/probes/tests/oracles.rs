//! The oracles against brute force: every context at small p, and every task consistent with
//! the examples at composite p.

use modicl_data::{label, Space, Vectors};
use modicl_probes::oracle::{modular_regression, mr_curve_exact, ratio_matching, rm_curve};
use proptest::prelude::*;

/// A fixed pseudo-random subset of Z_p^2 holding `frac` of it (a train split).
fn subset(p: u32, frac: f64, salt: u32) -> Vectors {
    let sp = Space::new(p, 2).unwrap();
    let mut ids: Vec<u32> = (0..sp.size).collect();
    ids.sort_by_key(|&i| (i.wrapping_mul(2_654_435_761) ^ salt).wrapping_mul(40_503));
    ids.truncate((sp.size as f64 * frac).round() as usize);
    sp.vectors(&ids)
}

/// Fraction of (context, query) pairs, context in S^k and query in S, that `decides` answers.
fn brute(
    s: &Vectors,
    p: u32,
    k: usize,
    decides: impl Fn(&[&[u32]], &[u32], &[u32]) -> bool,
) -> f64 {
    let n = s.len();
    let total = n.pow(k as u32);
    let mut hits = 0usize;
    let w = [1u32, 2]; // any task: deciding does not depend on it
    for c in 0..total {
        let mut idx = c;
        let xs: Vec<&[u32]> = (0..k)
            .map(|_| {
                let i = idx % n;
                idx /= n;
                s.get(i)
            })
            .collect();
        let zs: Vec<u32> = xs.iter().map(|x| label(&w, x, p)).collect();
        hits += s.iter().filter(|q| decides(&xs, &zs, q)).count();
    }
    hits as f64 / (total * n) as f64
}

#[test]
fn exact_curves_equal_brute_force_over_every_context() {
    for (p, kmax) in [(5u32, 3usize), (7, 2), (6, 2), (4, 3)] {
        for frac in [1.0, 0.6] {
            let s = subset(p, frac, p * 7);
            let rm = rm_curve(&s, p, kmax);
            let mr = mr_curve_exact(&s, p, kmax, usize::MAX).unwrap();
            for k in 0..=kmax {
                let b_rm = brute(&s, p, k, |xs, zs, q| ratio_matching(xs, zs, q, p).is_some());
                let b_mr = brute(&s, p, k, |xs, zs, q| {
                    modular_regression(xs, zs, q, p).is_some()
                });
                assert!(
                    (rm.decided[k] - b_rm).abs() < 1e-12,
                    "RM p {p} frac {frac} k {k}: {} vs {b_rm}",
                    rm.decided[k]
                );
                assert!(
                    (mr.decided[k] - b_mr).abs() < 1e-12,
                    "MR p {p} frac {frac} k {k}: {} vs {b_mr}",
                    mr.decided[k]
                );
            }
        }
    }
}

/// Every task of Z_n^m consistent with the examples.
fn consistent_tasks(n: u32, m: usize, xs: &[Vec<u32>], zs: &[u32]) -> Vec<Vec<u32>> {
    let sp = Space::new(n, m as u32).unwrap();
    let mut w = vec![0u32; m];
    (0..sp.size)
        .filter_map(|i| {
            sp.decode(i, &mut w);
            xs.iter()
                .zip(zs)
                .all(|(x, &z)| label(&w, x, n) == z)
                .then(|| w.clone())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// MR decides exactly when every consistent task gives the query one label, and then
    /// answers that label; RM, when it decides, is right. Prime and composite moduli.
    #[test]
    fn mr_decides_iff_the_examples_determine_the_label(
        n in prop::sample::select(vec![2u32, 3, 4, 5, 6, 8, 9, 10, 12]),
        m in 1usize..=3,
        seed in any::<u64>(),
        k in 0usize..5,
    ) {
        prop_assume!((n as u64).pow(m as u32) <= 1728);
        let mut r = seed;
        let mut next = |b: u32| { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((r >> 33) % b as u64) as u32 };
        let w: Vec<u32> = (0..m).map(|_| next(n)).collect();
        let xs: Vec<Vec<u32>> = (0..k).map(|_| (0..m).map(|_| next(n)).collect()).collect();
        let q: Vec<u32> = (0..m).map(|_| next(n)).collect();
        let zs: Vec<u32> = xs.iter().map(|x| label(&w, x, n)).collect();
        let refs: Vec<&[u32]> = xs.iter().map(|x| x.as_slice()).collect();
        let labels: std::collections::BTreeSet<u32> = consistent_tasks(n, m, &xs, &zs)
            .iter().map(|t| label(t, &q, n)).collect();
        let mr = modular_regression(&refs, &zs, &q, n);
        if labels.len() == 1 {
            prop_assert_eq!(mr, Some(label(&w, &q, n)));
        } else {
            prop_assert_eq!(mr, None, "labels {:?}", labels);
        }
        if let Some(z) = ratio_matching(&refs, &zs, &q, n) {
            prop_assert_eq!(z, label(&w, &q, n));
            // What RM decides, MR decides too.
            prop_assert!(mr.is_some());
        }
    }
}
