//! Many input rows against int8 or int4 weights, in integers: y `[M, N]` =
//! x `[M, K]` · Wᵀ, where every output is computed exactly as the
//! matrix-vector path computes it ([`int_dot`](super::int_dot)).
//!
//! A prompt of M tokens multiplies every weight by M inputs, so the cost is
//! arithmetic, and integer dot products do it with fewer instructions than
//! f32 ones (one VNNI `vpdpbusd` is 64 byte products). Each input row is
//! quantized once to a [`QuantizedRow`] (8 bits, blocks of 32); then
//!
//! ```text
//! for each tile of weight rows [n0, n1)           (in parallel, in L2)
//!     copy the tile, padded to whole chunks of 64 weights, into scratch
//!     for each block of 4 input rows i..i+4
//!         for each block of 4 weight rows j..j+4 of the tile
//!             16 outputs y[i.., j..] at once: one pass over K
//! ```
//!
//! The micro-kernel loads each chunk of 64 weights once for 4 input rows,
//! and each chunk of 64 inputs once for 4 weight rows, and keeps one
//! accumulator of 16 float lanes per output. Each output's lanes receive
//! the same fused multiply-adds, in the same order, as in `int_dot` (its
//! module doc: one per chunk per lane, the lane's exact integer sum times
//! its scale), and are folded the same way, so a prompt processed as one
//! block gives bit for bit what decoding its rows one by one gives, on
//! every instruction set and with any number of threads (each output is
//! computed whole by one task; the tiling only decides who computes it).
//!
//! What the tile copy precomputes, per weight row, for the micro-kernel:
//! - int8: the values, and per lane −128·Σq of its four weights. VNNI
//!   multiplies unsigned by signed bytes, so the input enters as p + 128
//!   (a flip of its top bit) and that sum starts at −128·Σq: the exact
//!   Σ q·p in one instruction. Without VNNI the sign trick of `int_dot`.
//! - int4: the nibbles q + 8 unpacked into the weights' order, one byte
//!   each, and the f16 block scales widened to f32 per lane.
//!
//! The AVX-512 paths have the micro-kernel; AVX2 and the portable path
//! compute one output at a time with `int_dot`'s own kernels.

use rayon::prelude::*;

use super::half_float::f16_to_f32;
use super::int4::GROUP_BYTES;
use super::int_dot::{IntPath, QuantizedRow, CHUNK};
use super::{PackedMatrix, PackedWeights, INT4_GROUP};
use crate::cpu::dot_order;
use crate::cpu::SendPtr;

/// Float (and integer) lanes per chunk, four weights each (as `int_dot`).
const LANES: usize = 16;

/// Input rows and weight rows per micro-kernel call: 16 outputs, 16 of
/// AVX-512's 32 registers as accumulators.
const BLOCK: usize = 4;

/// Bytes of padded weights per tile: with the lane vectors it stays in L2
/// while every input row passes over it.
const TILE_BYTES: usize = 1 << 17;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// y `[rows.len(), w.rows]` = the quantized input rows · Wᵀ, each output
/// bit-identical to `w.row_dot_quantized(path, n, &rows[i])`.
pub fn matmul(path: IntPath, w: &PackedMatrix, rows: &[QuantizedRow], y: &mut [f32]) {
    let (m, n, k) = (rows.len(), w.rows, w.cols);
    assert!(w.multiplies_in_integers(), "int tiled matmul: {} weights", w.weights.format_name());
    assert_eq!(y.len(), m * n, "int tiled matmul: y holds {} floats, expected {m}×{n}", y.len());
    assert!(rows.iter().all(|r| r.cols == k), "int tiled matmul: an input row is not {k} long");
    if m == 0 || n == 0 {
        return;
    }
    let parallel = m * n * k >= PARALLEL_MIN_WORK;
    let padded = k.div_ceil(CHUNK) * CHUNK;
    // As many rows as fit the cache budget, but at least four tiles per
    // thread so that the threads finish together; a multiple of BLOCK.
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let tile = (TILE_BYTES / padded).min(n.div_ceil(4 * threads)).max(1).next_multiple_of(BLOCK);
    let out = SendPtr(y.as_mut_ptr());
    let run = |scratch: &mut Tile, t: usize| {
        let (n0, n1) = (t * tile, ((t + 1) * tile).min(n));
        // SAFETY: this task alone writes columns n0..n1 of the m×n y.
        unsafe { tile_product(path, w, rows, n0..n1, scratch, out.get(), n) }
    };
    let tiles = n.div_ceil(tile);
    if !parallel || tiles == 1 {
        let mut scratch = Tile::default();
        (0..tiles).for_each(|t| run(&mut scratch, t));
    } else {
        (0..tiles).into_par_iter().for_each_init(Tile::default, run);
    }
}

/// One tile of weight rows, copied and padded for the micro-kernel.
#[derive(Default)]
struct Tile {
    /// `[rows, padded K]`: int8 values as bytes, or int4 nibbles q + 8.
    bytes: Vec<u8>,
    /// int8: −128·Σq per lane, `[rows, padded K / 4]`.
    lane_offsets: Vec<i32>,
    /// int4: the f16 block scale per lane, widened, `[rows, padded K / 4]`.
    lane_scales: Vec<f32>,
}

impl Tile {
    /// Copies rows `r0..r1` of `w` (rows of `padded` bytes, zeros past K).
    fn fill(&mut self, w: &PackedMatrix, r0: usize, r1: usize, padded: usize) {
        let (k, lanes) = (w.cols, padded / 4);
        self.bytes.clear();
        self.bytes.resize((r1 - r0) * padded, 0);
        self.lane_offsets.clear();
        self.lane_scales.clear();
        match w.weights {
            PackedWeights::Int8 { values, .. } => {
                for (r, out) in (r0..r1).zip(self.bytes.chunks_exact_mut(padded)) {
                    for (o, &q) in out.iter_mut().zip(&values[r * k..(r + 1) * k]) {
                        *o = q as u8;
                    }
                    let lane_sums = out.chunks_exact(4).map(|l| l.iter().map(|&q| q as i8 as i32).sum::<i32>());
                    self.lane_offsets.extend(lane_sums.map(|s| -128 * s));
                }
            }
            PackedWeights::Int4 { packed, scales } => {
                let groups = k / INT4_GROUP;
                for (r, out) in (r0..r1).zip(self.bytes.chunks_exact_mut(padded)) {
                    let row = &packed[r * k / 2..(r + 1) * k / 2];
                    for (g, group) in row.chunks_exact(GROUP_BYTES).enumerate() {
                        for (b, &byte) in group.iter().enumerate() {
                            out[g * INT4_GROUP + b] = byte & 0x0f;
                            out[g * INT4_GROUP + GROUP_BYTES + b] = byte >> 4;
                        }
                    }
                    // Each group's scale widened once, for its 8 lanes; a
                    // padded group has scale 0, as `int_dot` gives it.
                    for &d in &scales[r * groups..(r + 1) * groups] {
                        self.lane_scales.extend([f16_to_f32(d); INT4_GROUP / 4]);
                    }
                    self.lane_scales.resize((r - r0 + 1) * lanes, 0.0);
                }
            }
            _ => unreachable!("checked by matmul"),
        }
    }
}

/// Columns `cols` of y (row stride `stride`) for every input row.
///
/// # Safety
/// `y` holds `rows.len() × stride` floats and no one else writes these
/// columns meanwhile.
unsafe fn tile_product(
    path: IntPath,
    w: &PackedMatrix,
    rows: &[QuantizedRow],
    cols: std::ops::Range<usize>,
    scratch: &mut Tile,
    y: *mut f32,
    stride: usize,
) {
    let store = |i: usize, n: usize, v: f32| {
        // SAFETY: i < rows.len() and n < stride (the caller's promise).
        unsafe { *y.add(i * stride + n) = v }
    };
    let micro = micro_kernel(path);
    let Some(micro) = micro else {
        for (i, x) in rows.iter().enumerate() {
            for n in cols.clone() {
                store(i, n, w.row_dot_quantized(path, n, x));
            }
        }
        return;
    };
    let padded = w.cols.div_ceil(CHUNK) * CHUNK;
    scratch.fill(w, cols.start, cols.end, padded);
    let tile_rows = cols.len();
    let lanes = padded / 4;
    for i0 in (0..rows.len()).step_by(BLOCK) {
        // A block past the last row repeats it and throws the copies away.
        let xs: [&QuantizedRow; BLOCK] = std::array::from_fn(|a| &rows[(i0 + a).min(rows.len() - 1)]);
        for j0 in (0..tile_rows).step_by(BLOCK) {
            let js: [usize; BLOCK] = std::array::from_fn(|b| (j0 + b).min(tile_rows - 1));
            let weights = WeightBlock {
                bytes: js.map(|j| &scratch.bytes[j * padded..(j + 1) * padded]),
                lane_offsets: js.map(|j| scratch.lane_offsets.get(j * lanes..(j + 1) * lanes).unwrap_or(&[])),
                lane_scales: js.map(|j| scratch.lane_scales.get(j * lanes..(j + 1) * lanes).unwrap_or(&[])),
            };
            let acc = micro(&weights, &xs, padded / CHUNK);
            for (a, acc_row) in acc.iter().enumerate().take(rows.len() - i0) {
                for (b, lanes) in acc_row.iter().enumerate().take(tile_rows - j0) {
                    let n = cols.start + j0 + b;
                    let dot = dot_order::fold(*lanes);
                    let out = match w.weights {
                        PackedWeights::Int8 { scales, .. } => dot * scales[n],
                        _ => dot,
                    };
                    store(i0 + a, n, out);
                }
            }
        }
    }
}

/// Four weight rows of a tile, as the micro-kernel reads them.
struct WeightBlock<'a> {
    bytes: [&'a [u8]; BLOCK],
    lane_offsets: [&'a [i32]; BLOCK],
    lane_scales: [&'a [f32]; BLOCK],
}

/// The 16 lanes of each of the 4×4 outputs, before folding.
type Accumulators = [[[f32; LANES]; BLOCK]; BLOCK];

/// A micro-kernel: 4 input rows × 4 weight rows over `chunks` chunks.
type MicroKernel = fn(&WeightBlock, &[&QuantizedRow; BLOCK], usize) -> Accumulators;

/// The micro-kernel for `path` and the weights' format (chosen by the
/// caller's format at run time), or None where outputs go one at a time.
fn micro_kernel(path: IntPath) -> Option<MicroKernel> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (of each wrapper): `IntPath::for_isa`/`available` offer
        // these paths only on CPUs with their instructions; the slices hold
        // `chunks` chunks (`Tile::fill` and `QuantizedRow` pad to them).
        let kernel: MicroKernel = match path {
            IntPath::Avx512Vnni => |w, x, c| unsafe { x86::block_vnni(w, x, c) },
            IntPath::Avx512 => |w, x, c| unsafe { x86::block_bw(w, x, c) },
            _ => return None,
        };
        Some(kernel)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = path;
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The 4×4 micro-kernel on AVX-512, one per way of summing bytes. The
    //! format is told by which lane vectors the block carries: int8 brings
    //! `lane_offsets`, int4 `lane_scales`.
    use std::arch::x86_64::*;

    use super::{Accumulators, QuantizedRow, WeightBlock, BLOCK, LANES};
    use crate::cpu::quant::int_dot::CHUNK;

    macro_rules! block_kernel {
        ($name:ident, $features:literal, $vnni:expr) => {
            /// # Safety
            /// Needs the features named; every slice holds `chunks` chunks.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(w: &WeightBlock, x: &[&QuantizedRow; BLOCK], chunks: usize) -> Accumulators {
                let int8 = !w.lane_offsets[0].is_empty();
                let mut acc = [[_mm512_setzero_ps(); BLOCK]; BLOCK];
                // SAFETY (of every load): chunk c (64 bytes, 16 lanes) of a
                // slice that holds `chunks` of them.
                let weights = |c: usize| -> [__m512i; BLOCK] {
                    std::array::from_fn(|b| unsafe {
                        _mm512_loadu_si512(w.bytes[b].as_ptr().add(c * CHUNK) as *const _)
                    })
                };
                let inputs = |a: usize, c: usize| unsafe {
                    let p = _mm512_loadu_si512(x[a].values.as_ptr().add(c * CHUNK) as *const __m512i);
                    (p, _mm512_loadu_ps(x[a].lane_scales.as_ptr().add(c * LANES)))
                };
                if int8 {
                    for c in 0..chunks {
                        let q = weights(c);
                        let starts: [__m512i; BLOCK] = std::array::from_fn(|b| unsafe {
                            _mm512_loadu_si512(w.lane_offsets[b].as_ptr().add(c * LANES) as *const _)
                        });
                        for a in 0..BLOCK {
                            let (p, x_scales) = inputs(a, c);
                            // VNNI: (p + 128)·q summed from −128·Σq is Σ q·p.
                            let unsigned_p = _mm512_xor_si512(p, _mm512_set1_epi8(-128));
                            for b in 0..BLOCK {
                                let sums = if $vnni {
                                    _mm512_dpbusd_epi32(starts[b], unsigned_p, q[b])
                                } else {
                                    // |q|·(p with q's sign), as `int_dot`.
                                    let negative = _mm512_movepi8_mask(q[b]);
                                    let signed_p = _mm512_mask_sub_epi8(p, negative, _mm512_setzero_si512(), p);
                                    let pairs = _mm512_maddubs_epi16(_mm512_abs_epi8(q[b]), signed_p);
                                    _mm512_madd_epi16(pairs, _mm512_set1_epi16(1))
                                };
                                acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), x_scales, acc[a][b]);
                            }
                        }
                    }
                } else {
                    for c in 0..chunks {
                        let q = weights(c);
                        let d: [__m512; BLOCK] = std::array::from_fn(|b| unsafe {
                            _mm512_loadu_ps(w.lane_scales[b].as_ptr().add(c * LANES))
                        });
                        for a in 0..BLOCK {
                            let (p, x_scales) = inputs(a, c);
                            // Nibbles q + 8: Σ (q + 8)·p − 8·Σp.
                            let offsets =
                                unsafe { _mm512_loadu_si512(x[a].lane_offsets.as_ptr().add(c * LANES) as *const _) };
                            let start = _mm512_sub_epi32(_mm512_setzero_si512(), offsets);
                            for b in 0..BLOCK {
                                let sums = if $vnni {
                                    _mm512_dpbusd_epi32(start, q[b], p)
                                } else {
                                    let pairs = _mm512_maddubs_epi16(q[b], p);
                                    _mm512_sub_epi32(_mm512_madd_epi16(pairs, _mm512_set1_epi16(1)), offsets)
                                };
                                // d·s as `int_dot` rounds it, then one fma.
                                let scale = _mm512_mul_ps(d[b], x_scales);
                                acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale, acc[a][b]);
                            }
                        }
                    }
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
}
