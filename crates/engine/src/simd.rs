//! Kernels compiled for the CPU's vector units, chosen at run time.
//!
//! The crate is built for the baseline x86-64 instruction set (SSE2), which leaves most of a
//! modern core unused in the row kernels (LayerNorm, attention). A [`SeqKernel`] passed to
//! [`simd`] is compiled once per instruction set `pulp` knows and run with the best one the CPU
//! has (AVX2 and FMA on this project's machines); the results are then the same on every run
//! of one machine, whatever the number of threads.

use pulp::Simd;

/// A kernel over one piece of work (a sequence, a block of rows), run through [`simd`].
pub(crate) trait SeqKernel {
    fn run<S: Simd>(self, simd: S);
}

/// Runs `k` with the best vector instruction set the CPU offers (AVX2 and FMA where present):
/// `pulp` calls it from a function with those target features enabled, and every function
/// below it is `#[inline(always)]` so that it is compiled there.
#[inline(always)]
pub(crate) fn simd(k: impl SeqKernel) {
    struct Op<K>(K);
    impl<K: SeqKernel> pulp::WithSimd for Op<K> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            self.0.run(simd)
        }
    }
    pulp::Arch::new().dispatch(Op(k))
}

/// The sum of a slice: one partial sum per vector lane, then their sum (a fixed order on a
/// given CPU).
#[inline(always)]
pub(crate) fn sum<S: Simd>(simd: S, x: &[f32]) -> f32 {
    let (v, t) = S::as_simd_f32s(x);
    let mut acc = simd.splat_f32s(0.0);
    for &v in v {
        acc = simd.add_f32s(acc, v);
    }
    simd.reduce_sum_f32s(acc) + t.iter().sum::<f32>()
}

/// a·b over two slices of equal length, summed like [`sum`].
#[inline(always)]
pub(crate) fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let ((av, at), (bv, bt)) = (S::as_simd_f32s(a), S::as_simd_f32s(b));
    let mut acc = simd.splat_f32s(0.0);
    for (&a, &b) in av.iter().zip(bv) {
        acc = simd.mul_add_e_f32s(a, b, acc);
    }
    simd.reduce_sum_f32s(acc) + at.iter().zip(bt).map(|(a, b)| a * b).sum::<f32>()
}

/// The largest element of a non-empty slice.
#[inline(always)]
pub(crate) fn max<S: Simd>(simd: S, x: &[f32]) -> f32 {
    let (v, t) = S::as_simd_f32s(x);
    let mut acc = simd.splat_f32s(f32::NEG_INFINITY);
    for &v in v {
        acc = simd.max_f32s(acc, v);
    }
    t.iter().fold(simd.reduce_max_f32s(acc), |a, &b| a.max(b))
}

/// e^x for the x ≤ 0 of a softmax (scores minus their maximum), written so that a loop of it
/// compiles to vector instructions: e^x = 2^n·e^r with n = x·log2(e) rounded to the nearest
/// integer, r = x − n·ln 2 (ln 2 in two parts, so r is exact to a few ulp) and e^r its Taylor
/// polynomial of degree 6 (relative error below 1.2e-7 for |r| ≤ ln(2)/2). Inputs below −87
/// give e^−87 ≈ 1.6e-38 instead of a smaller number, which no softmax sum can tell apart.
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer (the float's ulp becomes 1), which its low bits hold.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 0.0);
    let t = x.mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p: f32 = 1.0 / 720.0;
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p.mul_add(r, c);
    }
    // 2^n from its exponent bits: n is in −126..=0, a normal number.
    let n = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    p * f32::from_bits(((n + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_neg_is_within_two_ulp_of_exp() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (a, b) = (super::exp_neg(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(super::exp_neg(0.0), 1.0);
        assert!(super::exp_neg(-1e30) > 0.0 && super::exp_neg(-1e30) < 1e-37);
    }
}
