//! The integer prompt kernels of `int_tiled` on x86: a 4×4 micro-kernel
//! on AVX-512 (one per way of summing bytes, with or without VNNI) and one
//! output at a time on AVX2, all in `int_tiled`'s order.
//!
//! A group of g blocks is g/2 chunks of 64 bytes. Its 16 integer lanes
//! start from the group's offsets, add four products per lane per chunk,
//! and only then meet a float: converted (exact: a run's sum is at most
//! 32·127² in magnitude), times the lane's scale, added with one fused
//! multiply-add.

use std::arch::x86_64::*;

use super::{PromptRow, WeightRow, BLOCK, CHUNK, LANES};

/// The 16 lanes of each of the 4×4 outputs, before folding.
pub type Accumulators = [[[f32; LANES]; BLOCK]; BLOCK];

macro_rules! block_kernel {
    ($name:ident, $features:literal, $vnni:expr) => {
        /// 4 input rows × 4 weight rows over every group.
        ///
        /// # Safety
        /// Needs the features named; every row holds the bytes and lane
        /// values of `groups` (as `PromptRow::new` and `Tile::fill` make).
        #[target_feature(enable = $features)]
        pub unsafe fn $name(
            w: &[WeightRow; BLOCK],
            x: &[&PromptRow; BLOCK],
            groups: &[usize],
            int4: bool,
        ) -> Accumulators {
            let mut acc = [[_mm512_setzero_ps(); BLOCK]; BLOCK];
            let (mut base, mut meta) = (0, 0);
            // SAFETY (of every load): 64 bytes from `base` + c·64 with c
            // below the group's chunks, or 16 lane values from `meta`, both
            // inside rows that hold every group.
            let lane_i32 = |v: &[i32], at: usize| unsafe { _mm512_loadu_si512(v.as_ptr().add(at) as *const _) };
            let lane_f32 = |v: &[f32], at: usize| unsafe { _mm512_loadu_ps(v.as_ptr().add(at)) };
            for &size in groups {
                let mut sums = [[_mm512_setzero_si512(); BLOCK]; BLOCK];
                for a in 0..BLOCK {
                    for b in 0..BLOCK {
                        sums[a][b] = if int4 {
                            // Nibbles q + 8: Σ (q + 8)·p − 8·Σp.
                            _mm512_sub_epi32(_mm512_setzero_si512(), lane_i32(&x[a].lane_offsets, meta))
                        } else if $vnni {
                            // (p + 128)·q summed from −128·Σq is Σ q·p.
                            lane_i32(w[b].lane_starts, meta)
                        } else {
                            _mm512_setzero_si512()
                        };
                    }
                }
                for c in 0..size / 2 {
                    let at = base + c * CHUNK;
                    let q: [__m512i; BLOCK] =
                        std::array::from_fn(|b| unsafe { _mm512_loadu_si512(w[b].bytes.as_ptr().add(at) as *const _) });
                    for a in 0..BLOCK {
                        let p = unsafe { _mm512_loadu_si512(x[a].values.as_ptr().add(at) as *const _) };
                        let unsigned_p = _mm512_xor_si512(p, _mm512_set1_epi8(-128));
                        for b in 0..BLOCK {
                            let products = if int4 {
                                if $vnni {
                                    sums[a][b] = _mm512_dpbusd_epi32(sums[a][b], q[b], p);
                                    continue;
                                }
                                _mm512_madd_epi16(_mm512_maddubs_epi16(q[b], p), _mm512_set1_epi16(1))
                            } else if $vnni {
                                sums[a][b] = _mm512_dpbusd_epi32(sums[a][b], unsigned_p, q[b]);
                                continue;
                            } else {
                                // |q|·(p with q's sign), as `int_dot`.
                                let negative = _mm512_movepi8_mask(q[b]);
                                let signed_p = _mm512_mask_sub_epi8(p, negative, _mm512_setzero_si512(), p);
                                let pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(q[b]), signed_p);
                                _mm512_madd_epi16(pairs, _mm512_set1_epi16(1))
                            };
                            sums[a][b] = _mm512_add_epi32(sums[a][b], products);
                        }
                    }
                }
                for a in 0..BLOCK {
                    let s = lane_f32(&x[a].lane_scales, meta);
                    for b in 0..BLOCK {
                        // d·s as `prompt_dot_plain` rounds it, then one fma.
                        let scale = if int4 { _mm512_mul_ps(lane_f32(w[b].lane_scales, meta), s) } else { s };
                        acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[a][b]), scale, acc[a][b]);
                    }
                }
                base += size / 2 * CHUNK;
                meta += LANES;
            }
            let mut out = [[[0.0f32; LANES]; BLOCK]; BLOCK];
            for a in 0..BLOCK {
                for b in 0..BLOCK {
                    // SAFETY: 16 floats fit in out[a][b].
                    unsafe { _mm512_storeu_ps(out[a][b].as_mut_ptr(), acc[a][b]) };
                }
            }
            out
        }
    };
}
block_kernel!(block_vnni, "avx512f,avx512bw,avx512vnni", true);
block_kernel!(block_bw, "avx512f,avx512bw", false);

/// One output's 16 lanes on AVX2: each chunk as two halves of 32 bytes,
/// lanes 0..8 and 8..16.
///
/// # Safety
/// Needs AVX2 and FMA; the rows hold the bytes and lane values of `groups`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn one_output_avx2(w: &WeightRow, x: &PromptRow, groups: &[usize], int4: bool) -> [f32; LANES] {
    let mut acc = [_mm256_setzero_ps(); 2];
    let (mut base, mut meta) = (0, 0);
    let ones = _mm256_set1_epi16(1);
    // SAFETY (of every load): inside rows that hold every group (as above).
    let bytes = |v: *const u8, at: usize| unsafe { _mm256_loadu_si256(v.add(at) as *const _) };
    let lane_i32 = |v: &[i32], at: usize| unsafe { _mm256_loadu_si256(v.as_ptr().add(at) as *const _) };
    let lane_f32 = |v: &[f32], at: usize| unsafe { _mm256_loadu_ps(v.as_ptr().add(at)) };
    for &size in groups {
        let mut sums: [__m256i; 2] = std::array::from_fn(|h| {
            if int4 {
                _mm256_sub_epi32(_mm256_setzero_si256(), lane_i32(&x.lane_offsets, meta + 8 * h))
            } else {
                _mm256_setzero_si256()
            }
        });
        for c in 0..size / 2 {
            for (h, sum) in sums.iter_mut().enumerate() {
                let at = base + c * CHUNK + 32 * h;
                let (q, p) = (bytes(w.bytes.as_ptr(), at), bytes(x.values.as_ptr() as *const u8, at));
                let pairs = if int4 {
                    _mm256_maddubs_epi16(q, p)
                } else {
                    _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(p, q))
                };
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(pairs, ones));
            }
        }
        for (h, a) in acc.iter_mut().enumerate() {
            let s = lane_f32(&x.lane_scales, meta + 8 * h);
            let scale = if int4 { _mm256_mul_ps(lane_f32(w.lane_scales, meta + 8 * h), s) } else { s };
            *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[h]), scale, *a);
        }
        base += size / 2 * CHUNK;
        meta += LANES;
    }
    let mut out = [0.0f32; LANES];
    // SAFETY: 8 + 8 floats fit in out.
    unsafe {
        _mm256_storeu_ps(out.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[1]);
    }
    out
}
