//! int8 rows: one signed byte per weight and one f32 scale per row.
//!
//! A row w is stored as q = round(w / s) with s = max|w| / 127, so
//! w ≈ s·q and the error per weight is at most s/2. Because the scale is
//! shared by the whole row it factors out of the dot product:
//!
//!   y = Σ_k x[k]·s·q[k] = s · Σ_k x[k]·q[k]
//!
//! so the inner loop only widens bytes to f32 (exactly) and multiplies;
//! the scale is applied once per output.

use super::Isa;
use crate::cpu::dot_order;

/// Σ x[k]·q[k] (without the row's scale), in the order of `cpu::dot_order`.
pub fn dot(isa: Isa, q: &[i8], x: &[f32]) -> f32 {
    assert_eq!(q.len(), x.len(), "int8 dot: {} weights against {} inputs", q.len(), x.len());
    match isa {
        Isa::Scalar => dot_scalar(q, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect`/`available` only offer AVX2 (with FMA)
        // where the CPU has it; the lengths are equal (checked above).
        Isa::Avx2 => unsafe { x86::dot_avx2(q, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512F.
        Isa::Avx512 => unsafe { x86::dot_avx512(q, x) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_scalar(q, x),
    }
}

pub fn dot_scalar(q: &[i8], x: &[f32]) -> f32 {
    dot_order::dot_scalar(x, |j| q[j] as f32)
}

/// w = s·q for one row.
pub fn decode(q: &[i8], scale: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = v as f32 * scale;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::cpu::dot_order::x86::*;
    use crate::cpu::dot_order::DOT_LANES;

    /// # Safety
    /// Needs AVX2 and FMA; `q` and `x` have equal lengths.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(q: &[i8], x: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let mut acc = [_mm256_setzero_ps(); 4];
        let (qp, xp) = (q.as_ptr(), x.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            prefetch_ahead(qp.wrapping_add(base));
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: base + 8h + 8 ≤ full ≤ len for both slices.
                unsafe {
                    let bytes = _mm_loadl_epi64(qp.add(base + 8 * h) as *const __m128i);
                    let w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(base + 8 * h)), w, *a);
                }
            }
        }
        // SAFETY: AVX2 implies AVX.
        let mut sum = unsafe { fold_avx2(acc) };
        for j in full..x.len() {
            sum = x[j].mul_add(q[j] as f32, sum);
        }
        sum
    }

    /// # Safety
    /// Needs AVX-512F (and AVX2/FMA); `q` and `x` have equal lengths.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn dot_avx512(q: &[i8], x: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (qp, xp) = (q.as_ptr(), x.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            prefetch_ahead(qp.wrapping_add(base));
            // SAFETY: base + 32 ≤ full ≤ len for both slices.
            unsafe {
                let w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(qp.add(base) as *const __m128i)));
                let w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(qp.add(base + 16) as *const __m128i)));
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(base)), w0, acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(base + 16)), w1, acc1);
            }
        }
        // SAFETY: the caller has AVX-512F.
        let mut sum = unsafe { fold_avx512([acc0, acc1]) };
        for j in full..x.len() {
            sum = x[j].mul_add(q[j] as f32, sum);
        }
        sum
    }
}
