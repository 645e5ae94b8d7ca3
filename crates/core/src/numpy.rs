//! numpy's legacy global random state (`np.random.seed`, `np.random.shuffle`): the Mersenne
//! Twister MT19937 and the shuffle built on it, exactly as numpy computes them, so that the
//! official code's train/test split of the inputs can be drawn bit for bit without numpy.
//!
//! - `np.random.seed(s)` for an integer `0 <= s < 2^32` initialises MT19937 with Matsumoto and
//!   Nishimura's `init_genrand(s)`.
//! - `np.random.shuffle(x)` walks `i` from `n - 1` down to 1 and swaps `x[i]` with `x[j]`,
//!   `j` drawn uniformly from `0..=i` by masked rejection: take 32-bit outputs, keep the bits
//!   under the smallest all-ones mask covering `i`, retry while above `i`. (numpy switches to
//!   64-bit outputs for `i >= 2^32`; [`Mt19937::shuffle`] refuses such lengths.)

const N: usize = 624;
const M: usize = 397;

/// numpy's legacy `RandomState` generator.
#[derive(Clone)]
pub struct Mt19937 {
    mt: [u32; N],
    pos: usize,
}

impl Mt19937 {
    /// The state after `np.random.seed(seed)`.
    pub fn new(seed: u32) -> Mt19937 {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, pos: N }
    }

    fn refill(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`, tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.refill();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in `0..=max` by numpy's masked rejection (`random_interval`), for
    /// `max < 2^32`.
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// Shuffles `x` in place as `np.random.shuffle(x)` does (also along the first axis of a
    /// many-dimensional array: the same draws).
    ///
    /// # Panics
    /// If `x` has `2^32` or more elements (numpy draws 64-bit values there).
    pub fn shuffle<T>(&mut self, x: &mut [T]) {
        assert!(
            x.len() <= u32::MAX as usize,
            "numpy's 32-bit shuffle path covers fewer than 2^32 elements"
        );
        for i in (1..x.len()).rev() {
            let j = self.interval(i as u32) as usize;
            x.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_mt19937_outputs() {
        // The first outputs of init_genrand(5489), the generator's reference default seed,
        // as published with the original mt19937ar.c (and as std::mt19937 gives).
        let mut g = Mt19937::new(5489);
        let first: Vec<u32> = (0..3).map(|_| g.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
        // The 10000th output of a default-seeded std::mt19937 (C++11 standard, 26.5.5).
        let mut g = Mt19937::new(5489);
        let tenth_thousand = (0..10_000).map(|_| g.next_u32()).last().unwrap();
        assert_eq!(tenth_thousand, 4_123_659_995);
    }

    #[test]
    fn interval_stays_in_range_and_reaches_both_ends() {
        let mut g = Mt19937::new(7);
        for max in [1u32, 2, 3, 5, 8, 100, 840] {
            let draws: Vec<u32> = (0..4000).map(|_| g.interval(max)).collect();
            assert!(draws.iter().all(|&v| v <= max));
            assert!(draws.contains(&0) && draws.contains(&max), "max {max}");
        }
        assert_eq!(g.interval(0), 0);
    }
}
