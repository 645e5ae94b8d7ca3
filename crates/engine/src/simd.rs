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
