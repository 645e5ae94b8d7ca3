//! Linear algebra over Z_n (n prime or composite): the span of a set of examples in Hermite
//! normal form, which is how Modular Regression eliminates.
//!
//! Over a field (n prime) elimination divides by pivots. Over Z_n with n composite a pivot may
//! have no inverse (2 mod 6), so [`Span`] eliminates with extended gcds instead, as the Hermite
//! normal form does over the integers: the span of examples x_1..x_k in Z_n^m is the integer
//! lattice spanned by the x_i and n·e_1..n·e_m, read mod n. Its triangular basis has diagonal
//! entries dividing n, and a query lies in the span exactly when the triangular solve divides
//! evenly at every pivot. Labels ride along as one more coordinate that is never eliminated, so
//! the solve also yields the label the examples imply.

/// Greatest common divisor and Bezout coefficients: `(g, s, t)` with `g = s·a + t·b`, g ≥ 0.
pub fn ext_gcd(a: i64, b: i64) -> (i64, i64, i64) {
    let (mut r0, mut r1) = (a, b);
    let (mut s0, mut s1) = (1i64, 0i64);
    let (mut t0, mut t1) = (0i64, 1i64);
    while r1 != 0 {
        let q = r0.div_euclid(r1);
        (r0, r1) = (r1, r0 - q * r1);
        (s0, s1) = (s1, s0 - q * s1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    if r0 < 0 {
        (-r0, -s0, -t0)
    } else {
        (r0, s0, t0)
    }
}

/// The Z_n-span of labelled examples (x, z), x in Z_n^m, in Hermite normal form.
///
/// Row j of the basis has zeros before column j, a diagonal entry d_j that divides n (d_j = n:
/// no example reaches this coordinate beyond what the rows above give), and the example label
/// the combination implies in column m. Entries above a diagonal are reduced below it, so two
/// sets of examples with the same span have the same [`Span::key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    n: i64,
    m: usize,
    /// m rows of m + 1 entries (coordinates, then the label), each in 0..n (the diagonal in
    /// 1..=n).
    rows: Vec<i64>,
    /// False once the examples contradict each other (a combination with x = 0 and z ≠ 0).
    consistent: bool,
}

impl Span {
    /// The span of no examples: {0}.
    pub fn new(n: u32, m: usize) -> Span {
        let w = m + 1;
        let mut rows = vec![0i64; m * w];
        for j in 0..m {
            rows[j * w + j] = n as i64;
        }
        Span {
            n: n as i64,
            m,
            rows,
            consistent: true,
        }
    }

    fn w(&self) -> usize {
        self.m + 1
    }

    /// Adds the example with inputs `x` (m values) and label `z`.
    pub fn insert(&mut self, x: &[u32], z: u32) {
        debug_assert_eq!(x.len(), self.m);
        let (n, m, w) = (self.n, self.m, self.w());
        let mut v: Vec<i64> = x.iter().map(|&a| a as i64 % n).collect();
        v.push(z as i64 % n);
        for j in 0..m {
            let b = v[j].rem_euclid(n);
            if b == 0 {
                continue;
            }
            let a = self.rows[j * w + j];
            let (g, s, t) = ext_gcd(a, b);
            let (ag, bg) = (a / g, b / g);
            let row = &mut self.rows[j * w..(j + 1) * w];
            for (r, e) in row[j..].iter_mut().zip(&mut v[j..]) {
                let (new_row, new_v) = (
                    (s * *r + t * *e).rem_euclid(n),
                    (bg * *r - ag * *e).rem_euclid(n),
                );
                *r = new_row;
                *e = new_v;
            }
            // The diagonal is g itself (a divisor of n), not g mod n.
            self.rows[j * w + j] = g;
        }
        if v[m].rem_euclid(n) != 0 {
            self.consistent = false;
        }
        self.reduce();
    }

    /// Reduces the entries above each diagonal into 0..d_j (the canonical form).
    fn reduce(&mut self) {
        let (n, m, w) = (self.n, self.m, self.w());
        for j in 0..m {
            let d = self.rows[j * w + j];
            for i in 0..j {
                let q = self.rows[i * w + j].div_euclid(d);
                if q != 0 {
                    for c in j..w {
                        let r = self.rows[j * w + c];
                        let cell = &mut self.rows[i * w + c];
                        *cell = (*cell - q * r).rem_euclid(n);
                    }
                }
            }
        }
    }

    /// The label the examples imply for the query `x`, or `None` when `x` is not in their span
    /// (then the examples leave its label open: two tasks that agree on every example differ
    /// on `x`).
    pub fn solve(&self, x: &[u32]) -> Option<u32> {
        let (n, m, w) = (self.n, self.m, self.w());
        let mut v: Vec<i64> = x.iter().map(|&a| a as i64 % n).collect();
        v.push(0);
        for j in 0..m {
            let b = v[j].rem_euclid(n);
            let d = self.rows[j * w + j];
            if b % d != 0 {
                return None;
            }
            let q = b / d;
            if q != 0 {
                let row = &self.rows[j * w..(j + 1) * w];
                for (e, &r) in v[j..].iter_mut().zip(&row[j..]) {
                    *e = (*e - q * r).rem_euclid(n);
                }
            }
        }
        Some(((-v[m]).rem_euclid(n)) as u32)
    }

    /// Whether `x` lies in the span.
    pub fn contains(&self, x: &[u32]) -> bool {
        self.solve(x).is_some()
    }

    /// Whether the examples are consistent with some task (always, for examples of one task).
    pub fn consistent(&self) -> bool {
        self.consistent
    }

    /// Whether the span is all of Z_n^m (every diagonal entry is 1).
    pub fn is_full(&self) -> bool {
        (0..self.m).all(|j| self.rows[j * self.w() + j] == 1)
    }

    /// The span's inputs part, canonical: equal keys, equal spans.
    pub fn key(&self) -> Vec<u32> {
        let w = self.w();
        (0..self.m)
            .flat_map(|i| (0..self.m).map(move |c| (i, c)))
            .map(|(i, c)| self.rows[i * w + c] as u32)
            .collect()
    }
}

/// Whether `q ≡ c·s (mod n)` for some c in Z_n: the query is a multiple of the example.
pub fn is_multiple(q: &[u32], s: &[u32], n: u32) -> Option<u32> {
    (0..n).find(|&c| {
        q.iter()
            .zip(s)
            .all(|(&a, &b)| (c as u64 * b as u64 % n as u64) as u32 == a % n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext_gcd_is_bezout() {
        for a in 0..40i64 {
            for b in 0..40i64 {
                let (g, s, t) = ext_gcd(a, b);
                assert_eq!(g, s * a + t * b);
                if a != 0 || b != 0 {
                    assert_eq!(a % g, 0);
                    assert_eq!(b % g, 0);
                }
            }
        }
    }

    #[test]
    fn span_over_z4_uses_a_non_invertible_pivot() {
        // (2, 1) spans {(0,0), (2,1), (0,2), (2,3)} over Z_4: (0, 2) = 2·(2, 1) is in it although
        // no example has a 0 first coordinate.
        let mut s = Span::new(4, 2);
        s.insert(&[2, 1], 3);
        assert_eq!(s.solve(&[0, 2]), Some(2));
        assert_eq!(s.solve(&[2, 3]), Some(1));
        assert!(!s.contains(&[1, 0]));
        assert!(!s.contains(&[0, 1]));
        assert!(s.consistent());
        s.insert(&[0, 2], 1); // 2·(2,1) has label 2, not 1
        assert!(!s.consistent());
    }
}
