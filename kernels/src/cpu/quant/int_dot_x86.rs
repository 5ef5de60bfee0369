//! The integer dot products of `int_dot` on x86 (AVX-512 with and without
//! VNNI, AVX2), in its order. One chunk of 64 weights per step. A row's
//! last, partial chunk is copied into a zeroed buffer first and goes
//! through the same step, so nothing past a row is read.

use std::arch::x86_64::*;

use super::{QuantizedRow, CHUNK, GROUP_BYTES, INT4_GROUP, LANES};
use crate::cpu::dot_order::x86::*;

/// The 16 lane sums Σ u·s of 64 unsigned bytes `u` and signed bytes
/// `s`, in one VNNI instruction.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
fn lane_sums_vnni(u: __m512i, s: __m512i) -> __m512i {
    _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s)
}

/// The same sums in two steps: pairs into i16 (no saturation here: one
/// side is at most 127 in magnitude, the other at most 127, or 15 for
/// int4 nibbles), then pairs of those into i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn lane_sums_bw(u: __m512i, s: __m512i) -> __m512i {
    _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1))
}

/// The eight lane sums of 32 unsigned and 32 signed bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_sums_256(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The int8 kernel on AVX-512, with the lane sums of `$lane_sums`.
macro_rules! dot_int8_512 {
    ($name:ident, $lane_sums:ident, $features:literal) => {
        /// # Safety
        /// Needs the features named; `q.len() == x.cols`.
        #[inline]
        #[target_feature(enable = $features)]
        pub unsafe fn $name(q: &[i8], x: &QuantizedRow) -> f32 {
            let mut acc = _mm512_setzero_ps();
            let full = q.len() / CHUNK;
            let step = |acc: __m512, w: *const i8, c: usize| {
                // SAFETY: `w` points at 64 readable bytes; chunk c lies
                // inside x's padded buffers.
                unsafe {
                    let w = _mm512_loadu_si512(w as *const __m512i);
                    let p = _mm512_loadu_si512(x.values.as_ptr().add(c * CHUNK) as *const __m512i);
                    let negative = _mm512_movepi8_mask(w);
                    let signed_p = _mm512_mask_sub_epi8(p, negative, _mm512_setzero_si512(), p);
                    let sums = $lane_sums(_mm512_abs_epi8(w), signed_p);
                    let scale = _mm512_loadu_ps(x.lane_scales.as_ptr().add(c * LANES));
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc)
                }
            };
            for c in 0..full {
                prefetch_ahead(q.as_ptr().wrapping_add(c * CHUNK));
                // SAFETY: chunk c lies inside q.
                acc = step(acc, unsafe { q.as_ptr().add(c * CHUNK) }, c);
            }
            if q.len() > full * CHUNK {
                let mut tail = [0i8; CHUNK];
                tail[..q.len() - full * CHUNK].copy_from_slice(&q[full * CHUNK..]);
                acc = step(acc, tail.as_ptr(), full);
            }
            fold_avx512_16(acc)
        }
    };
}
dot_int8_512!(dot_int8_vnni, lane_sums_vnni, "avx512f,avx512bw,avx512vnni,avx2,fma");
dot_int8_512!(dot_int8_avx512, lane_sums_bw, "avx512f,avx512bw,avx2,fma");

/// # Safety
/// Needs AVX2 and FMA; `q.len() == x.cols`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_int8_avx2(q: &[i8], x: &QuantizedRow) -> f32 {
    // Lanes 0..8 (the chunk's first block) and 8..16 (its second).
    let mut acc = [_mm256_setzero_ps(); 2];
    let full = q.len() / CHUNK;
    let step = |acc: &mut [__m256; 2], w: *const i8, c: usize| {
        for (h, a) in acc.iter_mut().enumerate() {
            // SAFETY: `w` points at 64 readable bytes; chunk c lies
            // inside x's padded buffers.
            unsafe {
                let w = _mm256_loadu_si256(w.add(32 * h) as *const __m256i);
                let p = _mm256_loadu_si256(x.values.as_ptr().add(c * CHUNK + 32 * h) as *const __m256i);
                let sums = lane_sums_256(_mm256_abs_epi8(w), _mm256_sign_epi8(p, w));
                let scale = _mm256_loadu_ps(x.lane_scales.as_ptr().add(c * LANES + 8 * h));
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, *a);
            }
        }
    };
    for c in 0..full {
        prefetch_ahead(q.as_ptr().wrapping_add(c * CHUNK));
        // SAFETY: chunk c lies inside q.
        step(&mut acc, unsafe { q.as_ptr().add(c * CHUNK) }, c);
    }
    if q.len() > full * CHUNK {
        let mut tail = [0i8; CHUNK];
        tail[..q.len() - full * CHUNK].copy_from_slice(&q[full * CHUNK..]);
        step(&mut acc, tail.as_ptr(), full);
    }
    // SAFETY: AVX2 implies AVX.
    unsafe { fold16(acc[0], acc[1]) }
}

/// The two f16 scales of a chunk's blocks, as floats, where the lanes
/// of the nibble order hold that block's sums: d0 in lanes 0..4 and
/// 8..12, d1 in lanes 4..8 and 12..16.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn block_scales_512(pair: [u16; 2]) -> __m512 {
    let halves = _mm_cvtsi32_si128((pair[0] as u32 | (pair[1] as u32) << 16) as i32);
    let d = _mm512_castps128_ps512(_mm_cvtph_ps(halves));
    _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0), d)
}

/// The int4 kernel on AVX-512, with the lane sums of `$lane_sums`:
/// each chunk's nibbles unpacked into the nibble order
/// ([`super::NibbleOrder`]) by one broadcast, shift and mask.
macro_rules! dot_int4_512 {
    ($name:ident, $lane_sums:ident, $features:literal) => {
        /// # Safety
        /// Needs the features named; lengths as `dot_int4_rows` checks.
        #[inline]
        #[target_feature(enable = $features)]
        pub unsafe fn $name(packed: &[u8], scales: &[u16], x: &QuantizedRow) -> f32 {
            let x = &x.nibble_order;
            let mut acc = _mm512_setzero_ps();
            let full = packed.len() / (2 * GROUP_BYTES);
            // The register's upper half (quarters 2 and 3) takes the
            // high nibbles.
            let shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
            let step = |acc: __m512, bytes: *const u8, pair: [u16; 2], c: usize| {
                // SAFETY: `bytes` points at 32 readable bytes (two
                // groups); chunk c lies inside x's padded buffers.
                unsafe {
                    let bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256(bytes as *const __m256i));
                    let nibbles = _mm512_and_si512(_mm512_srlv_epi64(bytes, shift), _mm512_set1_epi8(0x0f));
                    let p = _mm512_loadu_si512(x.values.as_ptr().add(c * CHUNK) as *const __m512i);
                    let offsets = _mm512_loadu_si512(x.lane_offsets.as_ptr().add(c * LANES) as *const __m512i);
                    let sums = _mm512_sub_epi32($lane_sums(nibbles, p), offsets);
                    let lane_scales = _mm512_loadu_ps(x.lane_scales.as_ptr().add(c * LANES));
                    let scale = _mm512_mul_ps(block_scales_512(pair), lane_scales);
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc)
                }
            };
            for c in 0..full {
                prefetch_ahead(packed.as_ptr().wrapping_add(c * 2 * GROUP_BYTES));
                // SAFETY: chunk c's 32 bytes lie inside `packed`.
                let bytes = unsafe { packed.as_ptr().add(c * 2 * GROUP_BYTES) };
                acc = step(acc, bytes, [scales[2 * c], scales[2 * c + 1]], c);
            }
            if scales.len() > 2 * full {
                // One group left: the second is zeros with a zero scale.
                let mut tail = [0u8; 2 * GROUP_BYTES];
                tail[..GROUP_BYTES].copy_from_slice(&packed[full * 2 * GROUP_BYTES..]);
                acc = step(acc, tail.as_ptr(), [scales[2 * full], 0], full);
            }
            // Quarters 0, 2, 1, 3 back to 0, 1, 2, 3 (the same swap).
            fold_avx512_16(_mm512_shuffle_f32x4(acc, acc, 0b11_01_10_00))
        }
    };
}
dot_int4_512!(dot_int4_vnni, lane_sums_vnni, "avx512f,avx512bw,avx512vnni,avx2,fma,f16c");
dot_int4_512!(dot_int4_avx512, lane_sums_bw, "avx512f,avx512bw,avx2,fma,f16c");

/// # Safety
/// Needs AVX2, FMA and F16C; lengths as `dot_int4_rows` checks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_int4_avx2(packed: &[u8], scales: &[u16], x: &QuantizedRow) -> f32 {
    // Lanes 0..8 (a chunk's first group) and 8..16 (its second).
    let mut acc = [_mm256_setzero_ps(); 2];
    for (g, &d) in scales.iter().enumerate() {
        prefetch_ahead(packed.as_ptr().wrapping_add(g * GROUP_BYTES));
        let (c, h) = (g / 2, g % 2);
        // SAFETY: group g's 16 bytes lie inside `packed`; its 32 values,
        // 8 lane offsets and scales inside x's buffers.
        unsafe {
            let bytes = _mm_loadu_si128(packed.as_ptr().add(g * GROUP_BYTES) as *const __m128i);
            let mask = _mm_set1_epi8(0x0f);
            let low = _mm_and_si128(bytes, mask);
            let high = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
            let nibbles = _mm256_set_m128i(high, low); // weights 0..32 in order
            let p = _mm256_loadu_si256(x.values.as_ptr().add(c * CHUNK + 32 * h) as *const __m256i);
            let offsets = _mm256_loadu_si256(x.lane_offsets.as_ptr().add(c * LANES + 8 * h) as *const __m256i);
            let sums = _mm256_sub_epi32(lane_sums_256(nibbles, p), offsets);
            let d = _mm256_cvtph_ps(_mm_set1_epi16(d as i16));
            let scale = _mm256_mul_ps(d, _mm256_loadu_ps(x.lane_scales.as_ptr().add(c * LANES + 8 * h)));
            acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scale, acc[h]);
        }
    }
    // A padded second group adds nothing: its lanes stay as they are.
    // SAFETY: AVX2 implies AVX.
    unsafe { fold16(acc[0], acc[1]) }
}

/// Row after row, each through the one-row kernel `$row` inlined: the
/// call, the dispatch and the checks once per block of rows, and one
/// row's fold overlapping the next row's loads.
macro_rules! int8_rows {
    ($name:ident, $row:ident, $features:literal) => {
        /// # Safety
        /// Needs the features named; `q` holds `out.len()` rows of `x.cols`.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(q: &[i8], x: &QuantizedRow, out: &mut [f32]) {
            for (o, row) in out.iter_mut().zip(q.chunks_exact(x.cols)) {
                // SAFETY: forwarded; each row holds `x.cols` weights.
                *o = unsafe { $row(row, x) };
            }
        }
    };
}
int8_rows!(dot_int8_rows_vnni, dot_int8_vnni, "avx512f,avx512bw,avx512vnni,avx2,fma");
int8_rows!(dot_int8_rows_avx512, dot_int8_avx512, "avx512f,avx512bw,avx2,fma");
int8_rows!(dot_int8_rows_avx2, dot_int8_avx2, "avx2,fma");

/// [`int8_rows`] for int4.
macro_rules! int4_rows {
    ($name:ident, $row:ident, $features:literal) => {
        /// # Safety
        /// Needs the features named; `packed` and `scales` hold
        /// `out.len()` rows of `x.cols` weights.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(packed: &[u8], scales: &[u16], x: &QuantizedRow, out: &mut [f32]) {
            let rows = packed.chunks_exact(x.cols / 2).zip(scales.chunks_exact(x.cols / INT4_GROUP));
            for (o, (packed, scales)) in out.iter_mut().zip(rows) {
                // SAFETY: forwarded; each row holds `x.cols` weights.
                *o = unsafe { $row(packed, scales, x) };
            }
        }
    };
}
int4_rows!(dot_int4_rows_vnni, dot_int4_vnni, "avx512f,avx512bw,avx512vnni,avx2,fma,f16c");
int4_rows!(dot_int4_rows_avx512, dot_int4_avx512, "avx512f,avx512bw,avx2,fma,f16c");
int4_rows!(dot_int4_rows_avx2, dot_int4_avx2, "avx2,fma,f16c");

/// Folds one AVX-512 register of 16 lanes, halves first.
///
#[inline]
#[target_feature(enable = "avx512f,avx")]
fn fold_avx512_16(acc: __m512) -> f32 {
    let halves = _mm512_castps_pd(acc);
    let lo = _mm256_castpd_ps(_mm512_castpd512_pd256(halves));
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(halves, 1));
    // SAFETY: AVX-512F implies AVX.
    unsafe { fold16(lo, hi) }
}

/// `int_dot::quantize_blocks` for whole blocks of 32 floats, 16 a
/// register: the largest |v| compared as bits (so a NaN wins), then each
/// v·(127/largest) clamped, truncated, and moved one away from zero when
/// the dropped fraction is at least a half (`round_to_i8`, with a NaN made
/// 0 first, as Rust's conversion makes it).
///
/// # Safety
/// Needs AVX-512F; `x.len()` is a multiple of 32 and `values` as long.
#[target_feature(enable = "avx512f")]
pub unsafe fn quantize_whole_blocks_avx512(x: &[f32], values: &mut [i8], scales: &mut Vec<f32>) {
    debug_assert!(x.len() % INT4_GROUP == 0 && values.len() == x.len());
    let magnitude = _mm512_set1_epi32(0x7fff_ffff);
    let (low, high, half) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0), _mm512_set1_ps(0.5));
    let one = _mm512_set1_epi32(1);
    for (block, out) in x.chunks_exact(INT4_GROUP).zip(values.chunks_exact_mut(INT4_GROUP)) {
        // SAFETY: a block is 32 floats, two registers.
        let v = unsafe { [_mm512_loadu_ps(block.as_ptr()), _mm512_loadu_ps(block.as_ptr().add(16))] };
        let bits = v.map(|r| _mm512_and_si512(_mm512_castps_si512(r), magnitude));
        let largest = f32::from_bits(_mm512_reduce_max_epu32(_mm512_max_epu32(bits[0], bits[1])));
        let scale = largest / 127.0;
        let inverse = _mm512_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        for (r, out) in v.iter().zip(out.chunks_exact_mut(16)) {
            let p = _mm512_mul_ps(*r, inverse);
            let p = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(p, p), p);
            let p = _mm512_min_ps(_mm512_max_ps(p, low), high);
            let toward_zero = _mm512_cvttps_epi32(p);
            let fraction = _mm512_sub_ps(p, _mm512_cvtepi32_ps(toward_zero));
            let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fraction, half);
            let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(fraction, _mm512_sub_ps(_mm512_setzero_ps(), half));
            let rounded =
                _mm512_mask_sub_epi32(_mm512_mask_add_epi32(toward_zero, up, toward_zero, one), down, toward_zero, one);
            // SAFETY: 16 bytes of `out`.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(rounded)) };
        }
        scales.push(scale);
    }
}
