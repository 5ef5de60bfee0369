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

use super::{PromptRow, Tile, WeightRow, BLOCK, CHUNK, LANES};

/// Folds the 16 lanes of each of 16 accumulators in `dot_order::fold`'s
/// order (lane l += lane l + 8, then + 4, + 2, + 1) for all of them at
/// once: each level adds the halves of two vectors into one, so 15
/// shuffled pairs replace 16 scalar folds of 15 additions. Every sum adds
/// the same two numbers as the scalar fold, so the bits are its. Lane
/// 4a + b of the result is output [a][b].
#[inline]
#[target_feature(enable = "avx512f")]
fn fold_all(acc: &[[__m512; BLOCK]; BLOCK]) -> __m512 {
    let v: [__m512; 16] = std::array::from_fn(|i| acc[i % BLOCK][i / BLOCK]);
    // Width 8: two accumulators' 256-bit halves per vector.
    let w: [__m512; 8] = std::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b))
    });
    // Width 4: x[i] holds v[4i..4i + 4], one per 128-bit block.
    let x: [__m512; 4] = std::array::from_fn(|i| {
        let (a, b) = (w[2 * i], w[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b))
    });
    // Width 2, within 128-bit blocks: block k of y[i] holds v[8i + k] and
    // v[8i + 4 + k], two lanes each.
    let y: [__m512; 2] = std::array::from_fn(|i| {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b))
    });
    // Width 1: lane 4k + t holds v[4t + k], which is acc[k][t].
    _mm512_add_ps(_mm512_shuffle_ps::<0x88>(y[0], y[1]), _mm512_shuffle_ps::<0xDD>(y[0], y[1]))
}

/// Where one call writes: y's row of the block's first input row, at the
/// tile's first column, rows `stride` floats apart.
pub struct Out {
    pub y: *mut f32,
    pub stride: usize,
    /// Input rows of the block that exist (1..=4; the others repeat the
    /// last and are not written).
    pub rows: usize,
}

macro_rules! block_kernel {
    ($name:ident, $features:literal, $vnni:expr) => {
        /// 4 input rows against every weight row of a tile (`tile_rows`,
        /// each `padded` bytes and `lanes` lane values), 4×4 outputs at a
        /// time, written to `out` (times int8's `row_scales`, one per
        /// weight row of the tile).
        ///
        /// # Safety
        /// Needs the features named; the rows and the tile hold the bytes
        /// and lane values of `groups` (as `PromptRow::new` and
        /// `Tile::fill` make); `out` has room for `out.rows` rows of the
        /// tile's columns, written by no one else.
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name(
            tile: &Tile,
            (tile_rows, padded, lanes): (usize, usize, usize),
            x: &[&PromptRow; BLOCK],
            groups: &[usize],
            int4: bool,
            row_scales: Option<&[f32]>,
            out: Out,
        ) {
            let xv: [*const i8; BLOCK] = std::array::from_fn(|a| x[a].values.as_ptr());
            let xs: [*const f32; BLOCK] = std::array::from_fn(|a| x[a].lane_scales.as_ptr());
            let xo: [*const i32; BLOCK] = std::array::from_fn(|a| x[a].lane_offsets.as_ptr());
            for j0 in (0..tile_rows).step_by(BLOCK) {
                // A block past the tile's last row repeats it; not written.
                let j: [usize; BLOCK] = std::array::from_fn(|b| (j0 + b).min(tile_rows - 1));
                let wv: [*const u8; BLOCK] = j.map(|j| tile.bytes.as_ptr().wrapping_add(j * padded));
                let ws: [*const i32; BLOCK] = j.map(|j| tile.lane_starts.as_ptr().wrapping_add(j * lanes));
                let wd: [*const f32; BLOCK] = j.map(|j| tile.lane_scales.as_ptr().wrapping_add(j * lanes));
                let mut acc = [[_mm512_setzero_ps(); BLOCK]; BLOCK];
                let (mut base, mut meta) = (0, 0);
                // SAFETY (of every load): 64 bytes at `base` + c·64 with c
                // below the group's chunks, or 16 lane values at `meta`,
                // inside rows that hold every group.
                unsafe {
                    for &size in groups {
                        let mut sums = [[_mm512_setzero_si512(); BLOCK]; BLOCK];
                        for a in 0..BLOCK {
                            for b in 0..BLOCK {
                                sums[a][b] = if int4 {
                                    // Nibbles q + 8: Σ (q + 8)·p − 8·Σp.
                                    _mm512_sub_epi32(
                                        _mm512_setzero_si512(),
                                        _mm512_loadu_si512(xo[a].add(meta) as *const _),
                                    )
                                } else if $vnni {
                                    // (p + 128)·q summed from −128·Σq is Σ q·p.
                                    _mm512_loadu_si512(ws[b].add(meta) as *const _)
                                } else {
                                    _mm512_setzero_si512()
                                };
                            }
                        }
                        for c in 0..size / 2 {
                            let at = base + c * CHUNK;
                            let q: [__m512i; BLOCK] =
                                std::array::from_fn(|b| _mm512_loadu_si512(wv[b].add(at) as *const _));
                            for a in 0..BLOCK {
                                let p = _mm512_loadu_si512(xv[a].add(at) as *const _);
                                let unsigned_p = _mm512_xor_si512(p, _mm512_set1_epi8(-128));
                                for b in 0..BLOCK {
                                    sums[a][b] = if int4 && $vnni {
                                        _mm512_dpbusd_epi32(sums[a][b], q[b], p)
                                    } else if $vnni {
                                        _mm512_dpbusd_epi32(sums[a][b], unsigned_p, q[b])
                                    } else if int4 {
                                        let pairs = _mm512_maddubs_epi16(q[b], p);
                                        _mm512_add_epi32(sums[a][b], _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)))
                                    } else {
                                        // |q|·(p with q's sign), as `int_dot`.
                                        let negative = _mm512_movepi8_mask(q[b]);
                                        let signed_p = _mm512_mask_sub_epi8(p, negative, _mm512_setzero_si512(), p);
                                        let pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(q[b]), signed_p);
                                        _mm512_add_epi32(sums[a][b], _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)))
                                    };
                                }
                            }
                        }
                        for a in 0..BLOCK {
                            let s = _mm512_loadu_ps(xs[a].add(meta));
                            for b in 0..BLOCK {
                                // d·s as `prompt_dot_plain` rounds it, then one fma.
                                let scale = if int4 { _mm512_mul_ps(_mm512_loadu_ps(wd[b].add(meta)), s) } else { s };
                                acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[a][b]), scale, acc[a][b]);
                            }
                        }
                        base += size / 2 * CHUNK;
                        meta += LANES;
                    }
                }
                let mut dots = fold_all(&acc);
                if let Some(scales) = row_scales {
                    // int8's row scale, after the fold as in the plain order.
                    let s: [f32; BLOCK] = j.map(|j| scales[j]);
                    let s4 = _mm_loadu_ps(s.as_ptr());
                    dots = _mm512_mul_ps(dots, _mm512_broadcast_f32x4(s4));
                }
                let mut lanes_out = [0.0f32; LANES];
                // SAFETY: 16 floats fit in lanes_out.
                unsafe { _mm512_storeu_ps(lanes_out.as_mut_ptr(), dots) };
                let cols = (tile_rows - j0).min(BLOCK);
                for a in 0..out.rows {
                    // SAFETY: row a of the block, columns j0..j0 + cols of
                    // the tile: inside `out` (the caller's promise).
                    unsafe {
                        let to = out.y.add(a * out.stride + j0);
                        std::ptr::copy_nonoverlapping(lanes_out.as_ptr().add(BLOCK * a), to, cols);
                    }
                }
            }
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
