//! The one summation order every matrix-vector dot product follows, and the
//! SIMD helpers that keep it.
//!
//! Floating-point addition is not associative, so a dot product's result
//! depends on the order of its additions. SIMD code naturally keeps several
//! partial sums ("lanes") and adds them up at the end; to make the AVX-512,
//! AVX2 and scalar kernels agree bit for bit, and a quantized model add in
//! the same order as an f32 one with the same decoded weights, the f32
//! matrix-vector kernel (`gemv.rs`) and every packed format (`quant/`) use
//! this order:
//!
//! 1. [`DOT_LANES`] = 32 lanes: element j of each full chunk of 32 goes to
//!    lane j mod 32, accumulated with a fused multiply-add (one rounding per
//!    step): `acc[l] = fma(x[j], w[j], acc[l])`.
//! 2. The lanes are folded in halves: `acc[l] += acc[l + 16]`, then `+ 8`,
//!    `+ 4`, `+ 2`, `+ 1` (the natural order of narrowing SIMD registers).
//! 3. Leftover elements (when the length is not a multiple of 32) are added
//!    one by one with fused multiply-adds.
//!
//! AVX-512 holds the 32 lanes in two registers, AVX2 in four, the scalar
//! fallback in an array; `f32::mul_add` is the same single-rounding
//! operation as the hardware FMA. (The row reductions of `lanes.rs` are a
//! different, narrower order: 16 partial sums, no FMA.)

/// Partial sums a matrix-vector dot product keeps side by side: two
/// AVX-512 registers, or four AVX2 ones.
pub const DOT_LANES: usize = 32;

/// Folds the lanes into one sum in the fixed order (halves first). `N` is
/// a power of two: [`DOT_LANES`] here, 16 for the integer dot products of
/// `quant/int_dot.rs`.
pub fn fold<const N: usize>(mut acc: [f32; N]) -> f32 {
    debug_assert!(N.is_power_of_two());
    let mut width = N / 2;
    while width >= 1 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

/// The reference dot product, Σ_j x_j·w_j in the fixed order, where
/// `weight(j)` gives weight j as an exact f32 (an f32 row, or a packed one
/// decoded on the fly). Every SIMD version gives these bits.
pub fn dot_scalar(x: &[f32], weight: impl Fn(usize) -> f32) -> f32 {
    let full = x.len() / DOT_LANES * DOT_LANES;
    let mut acc = [0.0f32; DOT_LANES];
    for base in (0..full).step_by(DOT_LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a = x[base + l].mul_add(weight(base + l), *a);
        }
    }
    let mut sum = fold(acc);
    for (j, &xj) in x.iter().enumerate().skip(full) {
        sum = xj.mul_add(weight(j), sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! Folding SIMD accumulators in the order of [`super::fold`], and the
    //! prefetch that every matrix-vector dot product, f32 or packed, issues
    //! ahead of its weights.
    use std::arch::x86_64::*;

    /// How far ahead of a dot product's loop its weights are requested.
    const PREFETCH_BYTES: usize = 2048;

    /// Asks for the cache line `PREFETCH_BYTES` past `weights`, so that a
    /// matrix-vector product streaming its weights from memory keeps many
    /// reads in flight. Its loop waits on a chain of dependent adds, which
    /// holds back how far ahead the CPU issues loads by itself: measured on
    /// gpt2-small decoding, +3% tokens/s in f32 and f16, +20–25% in int8 and
    /// +55–60% in int4 (more instructions per byte of weights, so fewer
    /// bytes in flight without it). A prefetch never faults, so asking past
    /// the end of a row or of the matrix is harmless.
    #[inline(always)]
    pub fn prefetch_ahead<T>(weights: *const T) {
        // SAFETY: a prefetch is a hint; it reads nothing the program sees
        // and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((weights as *const i8).wrapping_add(PREFETCH_BYTES)) }
    }

    /// Lanes 0..8 of `lo` and 8..16 of `hi`, already summed from 32: fold 16 → 1.
    ///
    /// # Safety
    /// Needs AVX.
    #[target_feature(enable = "avx")]
    pub unsafe fn fold16(lo: __m256, hi: __m256) -> f32 {
        let v8 = _mm256_add_ps(lo, hi); // acc[l] + acc[l + 8]
        let v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1)); // + 4
        let v2 = _mm_add_ps(v4, _mm_movehl_ps(v4, v4)); // + 2
        let v1 = _mm_add_ss(v2, _mm_shuffle_ps(v2, v2, 1)); // + 1
        _mm_cvtss_f32(v1)
    }

    /// Four AVX2 accumulators holding lanes 0..8, 8..16, 16..24, 24..32.
    ///
    /// # Safety
    /// Needs AVX.
    #[target_feature(enable = "avx")]
    pub unsafe fn fold_avx2(acc: [__m256; 4]) -> f32 {
        // SAFETY: the caller has AVX.
        unsafe { fold16(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3])) }
    }

    /// Two AVX-512 accumulators holding lanes 0..16 and 16..32.
    ///
    /// # Safety
    /// Needs AVX-512F.
    #[target_feature(enable = "avx512f,avx")]
    pub unsafe fn fold_avx512(acc: [__m512; 2]) -> f32 {
        let v16 = _mm512_add_ps(acc[0], acc[1]);
        let halves = _mm512_castps_pd(v16);
        let lo = _mm256_castpd_ps(_mm512_castpd512_pd256(halves));
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(halves, 1));
        // SAFETY: the caller has AVX-512F, which implies AVX.
        unsafe { fold16(lo, hi) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_adds_halves_first() {
        let mut acc = [0.0f32; DOT_LANES];
        acc[0] = 1e8;
        acc[16] = -1e8;
        acc[1] = 1.0;
        // (1e8 + -1e8) + 1 = 1; a left-to-right sum would lose the 1.
        assert_eq!(fold(acc), 1.0);
    }

    #[test]
    fn scalar_dot_matches_f64_closely() {
        let x: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..77).map(|i| (i as f32 * 0.11).cos()).collect();
        let exact: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum();
        let got = dot_scalar(&x, |j| w[j]);
        assert!((got as f64 - exact).abs() < 1e-5, "{got} vs {exact}");
    }
}
