//! One input row against a weight matrix: y[j] = Σ_k x[k]·W[j, k].
//!
//! Decoding a token multiplies a single row `[1, K]` by every weight matrix
//! of the model, stored `[N, K]` (one row per output, PyTorch's layout), so
//! each output is the dot product of x with one contiguous weight row. A
//! packed GEMM would first copy W into its panel layout, reading and writing
//! every weight once more than the product needs; at one row there is no
//! reuse to pay for that copy. Here each weight is read exactly once, in
//! order, which makes the product as fast as memory can stream W.
//!
//! The dot products use the SIMD registers the CPU has (AVX-512, AVX2 + FMA,
//! detected at run time by `isa.rs`) and follow the one fixed summation
//! order of `dot_order.rs` on every instruction set, so results do not
//! depend on the machine's SIMD width or on the number of threads. The
//! packed-weight kernels in `quant/` follow the same order.

use super::dot_order::{self, DOT_LANES};
use super::isa::Isa;

/// y[j] (+)= x · W[j] for the `n` rows of W that start `row_stride` apart.
///
/// # Safety
/// `w` must point to `n` rows of `x.len()` readable floats, `row_stride`
/// apart, and `y` to `n` writable floats that alias neither x nor w.
pub unsafe fn gemv_rows(x: &[f32], w: *const f32, row_stride: usize, n: usize, y: *mut f32, accumulate: bool) {
    let isa = Isa::detect();
    let k = x.len();
    for j in 0..n {
        // SAFETY: row j lies inside the caller's W.
        let row = unsafe { std::slice::from_raw_parts(w.add(j * row_stride), k) };
        let d = dot(isa, x, row);
        // SAFETY: j < n, inside the caller's y.
        unsafe { *y.add(j) = if accumulate { *y.add(j) + d } else { d } };
    }
}

/// x · w on the given instruction set.
pub fn dot(isa: Isa, x: &[f32], w: &[f32]) -> f32 {
    assert_eq!(x.len(), w.len(), "dot: lengths {} and {} differ", x.len(), w.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` reported AVX-512F (and AVX2/FMA) on this CPU.
        Isa::Avx512 => unsafe { x86::dot_avx512(x, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` reported AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { x86::dot_avx2(x, w) },
        _ => dot_order::dot_scalar(x, |j| w[j]),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::dot_order::x86::{fold_avx2, fold_avx512, prefetch_ahead};
    use super::DOT_LANES;

    /// # Safety
    /// Needs AVX-512F, AVX2 and FMA; `x` and `w` have equal lengths.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn dot_avx512(x: &[f32], w: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let mut acc = [_mm512_setzero_ps(); 2];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            for (half, a) in acc.iter_mut().enumerate() {
                let o = base + 16 * half;
                prefetch_ahead(wp.wrapping_add(o));
                // SAFETY: o + 16 ≤ full ≤ len for both slices.
                *a = unsafe { _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(o)), _mm512_loadu_ps(wp.add(o)), *a) };
            }
        }
        // SAFETY: AVX-512F is enabled for this function.
        let mut sum = unsafe { fold_avx512(acc) };
        for j in full..x.len() {
            sum = x[j].mul_add(w[j], sum);
        }
        sum
    }

    /// # Safety
    /// Needs AVX2 and FMA; `x` and `w` have equal lengths.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(x: &[f32], w: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let mut acc = [_mm256_setzero_ps(); 4];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            prefetch_ahead(wp.wrapping_add(base));
            prefetch_ahead(wp.wrapping_add(base + 16));
            for (quarter, a) in acc.iter_mut().enumerate() {
                let o = base + 8 * quarter;
                // SAFETY: o + 8 ≤ full ≤ len for both slices.
                *a = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(o)), _mm256_loadu_ps(wp.add(o)), *a) };
            }
        }
        // SAFETY: AVX is implied by AVX2, enabled here.
        let mut sum = unsafe { fold_avx2(acc) };
        for j in full..x.len() {
            sum = x[j].mul_add(w[j], sum);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * f).sin()).collect()
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        for n in [0, 1, 31, 32, 33, 100, 768, 3072 + 5] {
            let (x, w) = (wave(n, 0.37), wave(n, 0.11));
            let reference = dot_order::dot_scalar(&x, |j| w[j]);
            for isa in Isa::available() {
                assert_eq!(dot(isa, &x, &w).to_bits(), reference.to_bits(), "{isa:?} at length {n}");
            }
            let exact: f64 = x.iter().zip(&w).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((reference as f64 - exact).abs() < 1e-4, "{reference} vs {exact}");
        }
    }

    #[test]
    fn an_f32_matrix_among_the_packed_ones_gives_these_bits() {
        // A plain Linear's weight joins a product of shared input
        // (`quant::PackedWeights::F32`) only if each output is what this
        // one-row path gives: threaded (over 2^18 weights) or not.
        use crate::cpu::quant::{matmul, PackedMatrix, PackedWeights};
        for (rows, cols) in [(515, 576), (5, 64), (3, 45)] {
            let (w, x) = (wave(rows * cols, 0.013), wave(cols, 0.29));
            let mut shared = vec![f32::NAN; rows];
            matmul(&x, 1, &PackedMatrix::new(rows, cols, PackedWeights::F32(&w)), &mut shared);
            let mut here = vec![f32::NAN; rows];
            // SAFETY: `rows` rows of `cols` floats, `cols` apart; `here` holds `rows`.
            unsafe { gemv_rows(&x, w.as_ptr(), cols, rows, here.as_mut_ptr(), false) };
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&shared), bits(&here), "[{rows}, {cols}]");
        }
    }

    #[test]
    fn rows_follow_their_stride_and_accumulate() {
        let (k, n, stride) = (40, 3, 45);
        let w = wave(n * stride, 0.05);
        let x = wave(k, 0.3);
        let mut y = vec![1.0f32; n];
        // SAFETY: 3 rows of 40 floats, 45 apart, fit in w; y holds 3.
        unsafe { gemv_rows(&x, w.as_ptr(), stride, n, y.as_mut_ptr(), true) };
        for j in 0..n {
            let expected = 1.0 + dot(Isa::Scalar, &x, &w[j * stride..j * stride + k]);
            assert_eq!(y[j], expected);
        }
    }
}
