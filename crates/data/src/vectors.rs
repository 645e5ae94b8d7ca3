//! Vectors over Z_p: task vectors W and inputs X, and the labels z = W·X mod p.

/// The space Z_p^dim, with vectors numbered `0..size` in lexicographic order (the first
/// component varies slowest, as `itertools.product` in the official code: index = x·p + y).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub p: u32,
    pub dim: u32,
    /// p^dim.
    pub size: u32,
}

/// Largest p^dim that modicl enumerates (tasks and inputs are both drawn from Z_p^dim).
pub const MAX_SPACE: u64 = 1 << 24;

impl Space {
    /// `None` when p^dim exceeds [`MAX_SPACE`].
    pub fn new(p: u32, dim: u32) -> Option<Space> {
        let size = (p as u64).checked_pow(dim)?;
        (size <= MAX_SPACE).then_some(Space {
            p,
            dim,
            size: size as u32,
        })
    }

    /// Writes the vector with number `idx` into `out` (length `dim`).
    pub fn decode(&self, mut idx: u32, out: &mut [u32]) {
        for c in out.iter_mut().rev() {
            *c = idx % self.p;
            idx /= self.p;
        }
    }

    /// The number of vector `v`.
    pub fn encode(&self, v: &[u32]) -> u32 {
        v.iter().fold(0, |acc, &c| acc * self.p + c)
    }

    /// The vectors with the given numbers.
    pub fn vectors(&self, idx: &[u32]) -> Vectors {
        let mut data = vec![0; idx.len() * self.dim as usize];
        for (i, chunk) in idx.iter().zip(data.chunks_exact_mut(self.dim as usize)) {
            self.decode(*i, chunk);
        }
        Vectors {
            dim: self.dim as usize,
            data,
        }
    }
}

/// A list of vectors of one dimension, stored flat, row after row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vectors {
    pub dim: usize,
    pub data: Vec<u32>,
}

impl Vectors {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    #[inline]
    pub fn get(&self, i: usize) -> &[u32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    pub fn iter(&self) -> std::slice::ChunksExact<'_, u32> {
        self.data.chunks_exact(self.dim)
    }
}

/// z = W·X mod p, exact for any p <= 2^16 and dimension <= 8.
#[inline]
pub fn label(w: &[u32], x: &[u32], p: u32) -> u32 {
    let mut acc = 0u64;
    for (a, b) in w.iter().zip(x) {
        acc += *a as u64 * *b as u64;
    }
    (acc % p as u64) as u32
}

pub use modicl_config::is_prime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_in_official_order() {
        let s = Space::new(29, 2).unwrap();
        assert_eq!(s.size, 841);
        let mut v = [0; 2];
        s.decode(533, &mut v);
        assert_eq!(v, [18, 11]); // the official input index i = x·p + y
        for i in 0..s.size {
            s.decode(i, &mut v);
            assert_eq!(s.encode(&v), i);
        }
        assert!(Space::new(29, 5).is_none());
        assert!(Space::new(65536, 2).is_none());
        assert_eq!(Space::new(2, 24).unwrap().size, 1 << 24);
    }

    #[test]
    fn primes() {
        let primes: Vec<u32> = (0..40).filter(|&p| is_prime(p)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(65521) && !is_prime(65535));
    }

    #[test]
    fn labels_do_not_overflow() {
        let w = [65535u32; 8];
        let x = [65535u32; 8];
        let expect = (8u128 * 65535 * 65535 % 65537) as u32;
        assert_eq!(label(&w, &x, 65537), expect);
        assert_eq!(label(&[6, 6], &[18, 11], 29), (6 * 18 + 6 * 11) % 29);
    }
}
