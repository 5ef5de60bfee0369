//! One row of A times B, c `[n]` = start + a `[k]` · B `[k, n]`, without
//! packing, in exactly the sums of `sgemm.rs`.
//!
//! Decoding one token multiplies its attention probabilities p `[seen]` by
//! the values V `[seen, d]` of every head: a row times a matrix whose rows
//! are contiguous. Packed, that is a copy of V per head per token for a
//! handful of multiply-adds per element; here V is read where it lies:
//! c = Σ_p a[p] · B[p, :], a broadcast of a[p] times row p, added into 16
//! columns per register.
//!
//! The order is the packed kernel's, so the two give the same bits for the
//! same product: for each column, the products are summed with fused
//! multiply-adds from zero, p ascending, within slices of `KC` rows of B;
//! the first slice's sum is added to the start (C itself, a bias, or
//! nothing) and each later slice's sum to C. (AVX-512 only, like the
//! packed kernel; elsewhere `gemm.rs` uses `matrixmultiply`.)

use std::arch::x86_64::*;

use super::gemm::{OutBlock, Start, Strided};
use super::sgemm::KC;

/// Columns per pass: four 16-float registers of sums.
const COLUMNS: usize = 64;

/// c (+)= a · B for one row `a` (k elements at `sa`, row 0) against B
/// `[k, n]` at `sb`, whose rows are contiguous (`sb.col_stride == 1`).
///
/// # Safety
/// The CPU must have AVX-512F; k > 0; `sa` and `sb` must describe 1×k and k×n
/// matrices inside `a` and `b`; `c` points at n writable floats that alias
/// neither (uninitialised unless `start` is `Accumulate`); a bias holds n
/// floats.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn row_times_matrix(
    k: usize,
    n: usize,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    c: OutBlock<f32>,
    start: Start<f32>,
) {
    debug_assert_eq!(sb.col_stride, 1);
    let bias = match start {
        Start::Bias(bias) => Some(bias),
        Start::Zero | Start::Accumulate => None,
    };
    for j0 in (0..n).step_by(COLUMNS) {
        let width = COLUMNS.min(n - j0);
        // Lane masks of the four registers: all 16, or the columns left.
        let masks: [__mmask16; 4] = std::array::from_fn(|v| {
            let left = width.saturating_sub(16 * v).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        for p0 in (0..k).step_by(KC) {
            let mut acc = [_mm512_setzero_ps(); 4];
            for p in p0..(p0 + KC).min(k) {
                // SAFETY: element (0, p) of A and row p's columns j0..j0+width
                // of B lie inside their buffers (the caller's contract); the
                // masked loads read no column past them.
                unsafe {
                    let ap = _mm512_set1_ps(*a.as_ptr().add(sa.index(0, p)));
                    let row = b.as_ptr().add(sb.index(p, j0));
                    for (v, sum) in acc.iter_mut().enumerate() {
                        if masks[v] != 0 {
                            *sum = _mm512_fmadd_ps(ap, _mm512_maskz_loadu_ps(masks[v], row.add(16 * v)), *sum);
                        }
                    }
                }
            }
            let add = matches!(start, Start::Accumulate) || p0 > 0;
            for (v, sum) in acc.iter().enumerate() {
                if masks[v] == 0 {
                    continue;
                }
                // SAFETY: columns j0 + 16v.. under the mask lie inside C and
                // the bias.
                unsafe {
                    let out = c.ptr.add(j0 + 16 * v);
                    let total = if add {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], out), *sum)
                    } else if let Some(bias) = bias {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], bias.as_ptr().add(j0 + 16 * v)), *sum)
                    } else {
                        *sum
                    };
                    _mm512_mask_storeu_ps(out, masks[v], total);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gemm::GemmShape;
    use super::super::sgemm;
    use super::*;

    /// A fixed pseudo-random float in [-1, 1) for index i.
    fn value(i: usize, seed: usize) -> f32 {
        let h = (i as u64 ^ (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn one_row_gives_the_packed_kernels_bits() {
        if !sgemm::available() {
            return;
        }
        // k straddles KC; n straddles 16 and the 64 columns of a pass.
        for k in [1, 5, 383, 384, 385, 800] {
            for n in [1, 15, 16, 17, 64, 65, 130] {
                // A read with a stride of 2; B's rows 3 floats wider than n.
                let (sa, sb) = (Strided { offset: 1, row_stride: 2 * k, col_stride: 2 }, Strided::row_major(2, n + 3));
                let a: Vec<f32> = (0..2 * k + 1).map(|i| value(i, k)).collect();
                let b: Vec<f32> = (0..k * (n + 3) + 2).map(|i| value(i, n)).collect();
                let bias: Vec<f32> = (0..n).map(|i| value(i, 7)).collect();
                let before: Vec<f32> = (0..n).map(|i| value(i, 9)).collect();
                for start in [Start::Zero, Start::Bias(&bias), Start::Accumulate] {
                    let (mut packed, mut in_place) = (before.clone(), before.clone());
                    // SAFETY: the operands fit their buffers; C holds n floats.
                    unsafe {
                        let shape = GemmShape { m: 1, k, n };
                        sgemm::sgemm(
                            shape,
                            &a,
                            sa,
                            &b,
                            sb,
                            OutBlock { ptr: packed.as_mut_ptr(), row_stride: n },
                            start,
                        );
                        let c = OutBlock { ptr: in_place.as_mut_ptr(), row_stride: n };
                        row_times_matrix(k, n, &a, sa, &b, sb, c, start);
                    }
                    for j in 0..n {
                        assert_eq!(in_place[j].to_bits(), packed[j].to_bits(), "k {k} n {n} column {j}");
                    }
                }
            }
        }
    }
}
