//! int4 rows: two weights per byte, one f16 scale per group of 32.
//!
//! A row is cut into groups of 32 consecutive weights. Each group has its
//! own scale d = max|w| / 7 (stored as f16) and its weights become
//! q = round(w / d) ∈ [-7, 7], so w ≈ d·q with an error of at most d/2.
//! A scale per 32 weights instead of per row keeps one large weight from
//! coarsening a whole row, at the cost of 2 bytes per 32 weights: 4.5 bits
//! per weight in all.
//!
//! Packing (as llama.cpp's Q4_0): a group is 16 bytes; byte b holds weight
//! b in its low nibble and weight b + 16 in its high nibble, each as q + 8
//! (0..15). One 16-byte load then yields the first half of the group with
//! a mask and the second half with a shift — no shuffling.
//!
//! The dot product decodes w = d·q exactly (a 4-bit integer times an 11-bit
//! mantissa fits in f32) and accumulates in the order of `cpu::dot_order`, where
//! a group is exactly one pass over the 32 lanes.

use super::half_float::f16_to_f32;
use super::Isa;
use super::INT4_GROUP;
use crate::cpu::dot_order;

/// Bytes per group of 32 weights.
pub const GROUP_BYTES: usize = INT4_GROUP / 2;

/// Packs 32 values in [-7, 7] into 16 bytes (see the module doc).
pub fn pack_group(q: &[i8]) -> [u8; GROUP_BYTES] {
    assert_eq!(q.len(), INT4_GROUP, "pack_group: a group holds {INT4_GROUP} values, got {}", q.len());
    let mut out = [0u8; GROUP_BYTES];
    for (b, byte) in out.iter_mut().enumerate() {
        let (lo, hi) = (q[b], q[b + GROUP_BYTES]);
        debug_assert!((-8..=7).contains(&lo) && (-8..=7).contains(&hi), "int4 values must be in [-8, 7]");
        *byte = ((lo + 8) as u8) | (((hi + 8) as u8) << 4);
    }
    out
}

/// The integer q of weight `j` (0..32) of a packed group.
pub fn unpack(group: &[u8], j: usize) -> i8 {
    let byte = group[j % GROUP_BYTES];
    let nibble = if j < GROUP_BYTES { byte & 0x0f } else { byte >> 4 };
    nibble as i8 - 8
}

/// Σ x[k]·w[k] for one row: `packed` holds cols/2 bytes, `scales` cols/32
/// f16 bit patterns.
pub fn dot(isa: Isa, packed: &[u8], scales: &[u16], x: &[f32]) -> f32 {
    assert!(
        x.len().is_multiple_of(INT4_GROUP) && packed.len() * 2 == x.len() && scales.len() * INT4_GROUP == x.len(),
        "int4 dot: {} bytes and {} scales against {} inputs",
        packed.len(),
        scales.len(),
        x.len()
    );
    match isa {
        Isa::Scalar => dot_scalar(packed, scales, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is offered only with FMA and F16C present; lengths
        // checked above.
        Isa::Avx2 => unsafe { x86::dot_avx2(packed, scales, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512F.
        Isa::Avx512 => unsafe { x86::dot_avx512(packed, scales, x) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_scalar(packed, scales, x),
    }
}

pub fn dot_scalar(packed: &[u8], scales: &[u16], x: &[f32]) -> f32 {
    dot_order::dot_scalar(x, |j| {
        let g = j / INT4_GROUP;
        unpack(&packed[g * GROUP_BYTES..(g + 1) * GROUP_BYTES], j % INT4_GROUP) as f32 * f16_to_f32(scales[g])
    })
}

/// w = d·q for one row.
pub fn decode(packed: &[u8], scales: &[u16], out: &mut [f32]) {
    for ((group, &scale), out) in packed.chunks_exact(GROUP_BYTES).zip(scales).zip(out.chunks_exact_mut(INT4_GROUP)) {
        let d = f16_to_f32(scale);
        for (b, &byte) in group.iter().enumerate() {
            out[b] = ((byte & 0x0f) as i8 - 8) as f32 * d;
            out[b + GROUP_BYTES] = ((byte >> 4) as i8 - 8) as f32 * d;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::half_float::f16_to_f32;
    use super::{GROUP_BYTES, INT4_GROUP};
    use crate::cpu::dot_order::x86::*;

    /// The group's 32 integers as two vectors of 16 signed bytes: weights
    /// 0..16 (low nibbles) and 16..32 (high nibbles).
    ///
    /// # Safety
    /// Needs SSE2; `p` points at 16 readable bytes.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> (__m128i, __m128i) {
        // SAFETY: the caller guarantees 16 readable bytes.
        let bytes = unsafe { _mm_loadu_si128(p as *const __m128i) };
        let (mask, eight) = (_mm_set1_epi8(0x0f), _mm_set1_epi8(8));
        let lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);
        (lo, hi)
    }

    /// Groups whose scales are widened to f32 at once, before their dot
    /// products: then each group's scale is broadcast straight from memory
    /// (a load) instead of being converted in the shuffle unit every group.
    const SCALE_CHUNK: usize = 64;

    /// `scales` (f16 bits) widened into `out` by F16C, 8 at a time.
    ///
    /// # Safety
    /// Needs F16C and AVX; `out` is at least as long as `scales`.
    #[inline]
    #[target_feature(enable = "avx,f16c")]
    unsafe fn widen_scales(scales: &[u16], out: &mut [f32; SCALE_CHUNK]) {
        let full = scales.len() / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 ≤ full ≤ scales.len() ≤ SCALE_CHUNK.
            unsafe {
                let v = _mm256_cvtph_ps(_mm_loadu_si128(scales.as_ptr().add(i) as *const __m128i));
                _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            }
        }
        for i in full..scales.len() {
            out[i] = f16_to_f32(scales[i]);
        }
    }

    /// # Safety
    /// Needs AVX2, FMA and F16C; lengths as [`super::dot`] checks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_avx2(packed: &[u8], scales: &[u16], x: &[f32]) -> f32 {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut d = [0.0f32; SCALE_CHUNK];
        for (c, chunk) in scales.chunks(SCALE_CHUNK).enumerate() {
            // SAFETY: the caller has F16C; the chunk fits `d`.
            unsafe { widen_scales(chunk, &mut d) };
            for (i, &scale) in d[..chunk.len()].iter().enumerate() {
                let g = c * SCALE_CHUNK + i;
                prefetch_ahead(packed.as_ptr().wrapping_add(g * GROUP_BYTES));
                let d = _mm256_set1_ps(scale);
                // SAFETY: group g's 16 bytes and 32 inputs lie inside the slices.
                unsafe {
                    let (lo, hi) = nibbles(packed.as_ptr().add(g * GROUP_BYTES));
                    let parts = [lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)];
                    let xp = x.as_ptr().add(g * INT4_GROUP);
                    for (h, a) in acc.iter_mut().enumerate() {
                        let w = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[h])), d);
                        *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(8 * h)), w, *a);
                    }
                }
            }
        }
        // SAFETY: AVX2 implies AVX.
        unsafe { fold_avx2(acc) }
    }

    /// # Safety
    /// Needs AVX-512F, AVX2, FMA; lengths as [`super::dot`] checks.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn dot_avx512(packed: &[u8], scales: &[u16], x: &[f32]) -> f32 {
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut d = [0.0f32; SCALE_CHUNK];
        for (c, chunk) in scales.chunks(SCALE_CHUNK).enumerate() {
            // SAFETY: the caller has F16C; the chunk fits `d`.
            unsafe { widen_scales(chunk, &mut d) };
            for (i, &scale) in d[..chunk.len()].iter().enumerate() {
                let g = c * SCALE_CHUNK + i;
                prefetch_ahead(packed.as_ptr().wrapping_add(g * GROUP_BYTES));
                let d = _mm512_set1_ps(scale);
                // SAFETY: group g's 16 bytes and 32 inputs lie inside the slices.
                unsafe {
                    let (lo, hi) = nibbles(packed.as_ptr().add(g * GROUP_BYTES));
                    let w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), d);
                    let w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi)), d);
                    let xp = x.as_ptr().add(g * INT4_GROUP);
                    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp), w0, acc0);
                    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(16)), w1, acc1);
                }
            }
        }
        // SAFETY: the caller has AVX-512F.
        unsafe { fold_avx512([acc0, acc1]) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_is_identity() {
        let q: Vec<i8> = (0..32).map(|i| (i % 15) as i8 - 7).collect();
        let packed = pack_group(&q);
        let back: Vec<i8> = (0..32).map(|j| unpack(&packed, j)).collect();
        assert_eq!(back, q);
        // Weight 0 in the low nibble of byte 0, weight 16 in its high nibble.
        assert_eq!(packed[0], ((q[0] + 8) as u8) | (((q[16] + 8) as u8) << 4));
    }
}
