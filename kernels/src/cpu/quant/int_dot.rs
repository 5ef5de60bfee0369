//! Integer dot products: the activation quantized to 8 bits as well, the
//! way llama.cpp multiplies its Q8_0 and Q4_0 weights.
//!
//! Decoding a token multiplies every weight matrix by one activation row x
//! `[K]`. The kernels of `int8.rs` and `int4.rs` widen each weight to f32
//! and spend a fused multiply-add on it. Here x is quantized too, in blocks
//! of 32 like int4's weights ([`QuantizedRow`]): a block's scale is
//! s_b = max|x_b| / 127 and its values p = round(x / s_b) ∈ [-127, 127].
//! Inside a block every product is then a product of two small integers,
//! summed exactly in 32-bit integers, and only one sum per block meets a
//! float:
//!
//! ```text
//! int8 row, one scale s_w:          y = s_w · Σ_b s_b · Σ_{j ∈ b} q_j·p_j
//! int4 row, a scale d_b per block:  y = Σ_b (d_b·s_b) · Σ_{j ∈ b} q_j·p_j
//! ```
//!
//! A CPU does many more byte products per instruction than float ones: one
//! AVX-512 VNNI `vpdpbusd` multiplies 64 pairs of bytes and adds them in
//! fours into 16 32-bit lanes. Without VNNI, `vpmaddubsw` then `vpmaddwd`
//! give the same 16 sums in two steps. Both multiply an unsigned byte by a
//! signed one, so an int8 weight q enters as |q| and its sign moves onto p;
//! an int4 nibble is stored as q + 8 ∈ [0, 15], already unsigned, and
//! 8·Σp is taken off again (precomputed once per x).
//!
//! What it costs: x is rounded to 8 bits, a relative error up to 1/254 of
//! its block's largest value per element (llama.cpp pays the same), so the
//! results are close to, not equal to, the f32-activation kernels'.
//!
//! ## The order, the same on every instruction set
//! A row is read in chunks of 64 weights, two blocks. Lane l (0..16) of a
//! chunk sums the four products of weights 4l..4l+4, all in block l / 8;
//! that integer (at most 4·127² = 64,516, exact in f32) is multiplied by its
//! block's scale and added into float lane l with one fused multiply-add:
//! `acc[l] = fma(sum_l, scale_l, acc[l])`. The 16 lanes are folded halves
//! first (`dot_order::fold`). A row whose length is not a multiple of 64
//! ends in a chunk padded with zeros, which adds exactly nothing. The
//! integer sums are exact whatever the instruction, so AVX-512 (with or
//! without VNNI), AVX2 and the scalar loop give the same bits.

use super::half_float::f16_to_f32;
use super::int4::GROUP_BYTES;
use super::{Isa, INT4_GROUP};
use crate::cpu::dot_order;
use crate::cpu::isa::has_f16c;

/// Weights per pass: two blocks of 32, one 512-bit register of bytes.
pub const CHUNK: usize = 64;

/// Integer (and float) lanes per chunk: four weights each.
const LANES: usize = 16;

/// Weights per lane.
const PER_LANE: usize = CHUNK / LANES;

/// An activation row quantized to 8 bits in blocks of 32 (the layout of
/// llama.cpp's Q8_0, with an f32 scale), padded with zeros to a whole
/// number of chunks, with what the kernels read per lane precomputed.
#[derive(Clone, Debug, Default)]
pub struct QuantizedRow {
    /// The row's length K before padding.
    pub cols: usize,
    /// p = round(x / s_b) ∈ [-127, 127], `[K rounded up to 64]`.
    pub values: Vec<i8>,
    /// s_b per block of 32 (0 for a block of zeros and for padding).
    pub block_scales: Vec<f32>,
    /// Each lane's block scale, 16 per chunk (the int8 kernel loads them
    /// as one vector).
    pub lane_scales: Vec<f32>,
    /// 8 · (the sum of each lane's four values): what int4's offset nibbles
    /// (q + 8) add on top of Σ q·p.
    pub lane_offsets: Vec<i32>,
    /// `values`, `lane_offsets` and `lane_scales` with each chunk's four
    /// quarters (16 values, 4 lanes) in the order 0, 2, 1, 3: the order in
    /// which the AVX-512 int4 kernel unpacks a chunk's nibbles.
    pub nibble_order: NibbleOrder,
}

/// A [`QuantizedRow`]'s per-chunk data in the AVX-512 int4 kernel's order.
///
/// An int4 chunk is 32 bytes: group 0's 16 bytes, then group 1's, each
/// byte holding weight j (low nibble) and weight j + 16 (high nibble) of
/// its group. Copied into both halves of a register and shifted right by 0
/// (lower half) and 4 bits (upper half), then masked, the 64 nibbles come
/// out in quarters [weights 0..16, 32..48, 16..32, 48..64]: the chunk's
/// natural quarters 0, 2, 1, 3. Rather than shuffle every weight chunk into
/// place, x is kept in that order too, once per row; the kernel's 16 lane
/// sums then come out in it and are put back before the fold.
#[derive(Clone, Debug, Default)]
pub struct NibbleOrder {
    pub values: Vec<i8>,
    pub lane_offsets: Vec<i32>,
    pub lane_scales: Vec<f32>,
}

impl NibbleOrder {
    /// The row's values and lane data, each chunk's quarters reordered.
    fn fill(&mut self, values: &[i8], lane_offsets: &[i32], lane_scales: &[f32]) {
        self.values.resize(values.len(), 0);
        self.lane_offsets.resize(lane_offsets.len(), 0);
        self.lane_scales.resize(lane_scales.len(), 0.0);
        let (per_quarter, lanes_per_quarter) = (CHUNK / 4, LANES / 4);
        for chunk in 0..values.len() / CHUNK {
            for (slot, quarter) in NIBBLE_QUARTERS.into_iter().enumerate() {
                let (to, from) = (chunk * CHUNK + slot * per_quarter, chunk * CHUNK + quarter * per_quarter);
                self.values[to..to + per_quarter].copy_from_slice(&values[from..from + per_quarter]);
                let (to, from) =
                    (chunk * LANES + slot * lanes_per_quarter, chunk * LANES + quarter * lanes_per_quarter);
                self.lane_offsets[to..to + lanes_per_quarter]
                    .copy_from_slice(&lane_offsets[from..from + lanes_per_quarter]);
                self.lane_scales[to..to + lanes_per_quarter]
                    .copy_from_slice(&lane_scales[from..from + lanes_per_quarter]);
            }
        }
    }
}

/// The chunk's quarters in the order the int4 kernel unpacks them.
const NIBBLE_QUARTERS: [usize; 4] = [0, 2, 1, 3];

impl QuantizedRow {
    /// Quantizes `x`.
    pub fn new(x: &[f32]) -> QuantizedRow {
        let mut row = QuantizedRow::default();
        row.quantize(x);
        row
    }

    /// Quantizes `x` into this row's buffers (reused between calls).
    pub fn quantize(&mut self, x: &[f32]) {
        let padded = x.len().div_ceil(CHUNK) * CHUNK;
        self.cols = x.len();
        self.values.clear();
        self.values.resize(padded, 0);
        self.block_scales.clear();
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() != Isa::Scalar {
            // SAFETY: every instruction set but the portable one has AVX2.
            unsafe { quantize_blocks_avx2(x, &mut self.values, &mut self.block_scales) };
        } else {
            quantize_blocks(x, &mut self.values, &mut self.block_scales);
        }
        #[cfg(not(target_arch = "x86_64"))]
        quantize_blocks(x, &mut self.values, &mut self.block_scales);
        self.block_scales.resize(padded / INT4_GROUP, 0.0);
        let (values, block_scales) = (&self.values, &self.block_scales);
        self.lane_scales.clear();
        self.lane_scales.extend((0..padded / PER_LANE).map(|lane| block_scales[lane * PER_LANE / INT4_GROUP]));
        self.lane_offsets.clear();
        self.lane_offsets.extend(values.chunks_exact(PER_LANE).map(|v| 8 * v.iter().map(|&p| p as i32).sum::<i32>()));
        self.nibble_order.fill(values, &self.lane_offsets, &self.lane_scales);
    }

    /// p·s for each element, as f32 (rounded once), into `out` (`cols`
    /// floats): the 8-bit input as the f32 GEMM would see it (the route
    /// many rows took before the integer tiles; the benchmark still times
    /// it against them).
    pub fn dequantize_into(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols, "dequantize_into: {} floats for a row of {}", out.len(), self.cols);
        for (j, (o, &p)) in out.iter_mut().zip(&self.values).enumerate() {
            *o = p as f32 * self.block_scales[j / INT4_GROUP];
        }
    }

    /// p·s for each element, in f64 (exact): the x the integer kernels
    /// actually multiply (tests compare against it).
    pub fn dequantized(&self) -> Vec<f64> {
        let values = &self.values[..self.cols];
        values.iter().enumerate().map(|(j, &p)| p as f64 * self.block_scales[j / INT4_GROUP] as f64).collect()
    }
}

/// Quantizes `x` block by block into `values` (as long as x or longer),
/// pushing each block's scale onto `scales`: the loop the compiler
/// vectorises (see [`round_to_i8`]).
#[inline(always)]
fn quantize_blocks(x: &[f32], values: &mut [i8], scales: &mut Vec<f32>) {
    for (block, out) in x.chunks(INT4_GROUP).zip(values.chunks_mut(INT4_GROUP)) {
        // The largest |v|, compared by bits: non-negative floats order as
        // their bits do, and a NaN's bits exceed infinity's, so a NaN
        // anywhere makes the scale NaN and reaches the output instead of
        // being rounded away (a float `max` would skip it).
        let largest = f32::from_bits(block.iter().map(|v| v.to_bits() & 0x7fff_ffff).max().unwrap_or(0));
        let scale = largest / 127.0;
        // A block of zeros keeps scale 0 and values 0 (no 0/0).
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        for (p, &v) in out.iter_mut().zip(block) {
            *p = round_to_i8(v * inverse);
        }
        scales.push(scale);
    }
}

/// [`quantize_blocks`] compiled for AVX2, eight floats per instruction.
///
/// # Safety
/// Needs AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_blocks_avx2(x: &[f32], values: &mut [i8], scales: &mut Vec<f32>) {
    quantize_blocks(x, values, scales)
}

/// `p.round()` (half away from zero) clamped to [-127, 127], as an i8; NaN
/// gives 0. Written with a truncating conversion and a comparison because
/// `round` is a library call on baseline x86-64, which no loop vectorises.
#[inline(always)]
pub fn round_to_i8(p: f32) -> i8 {
    let p = p.clamp(-127.0, 127.0);
    let toward_zero = p as i32; // NaN → 0
    let fraction = p - toward_zero as f32; // exact
    (toward_zero + (fraction >= 0.5) as i32 - (fraction <= -0.5) as i32) as i8
}

/// The integer kernels' instruction sets: AVX-512 needs its byte and word
/// instructions (BW) and is fastest with VNNI; without BW it uses AVX2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntPath {
    Scalar,
    Avx2,
    Avx512,
    Avx512Vnni,
}

impl IntPath {
    /// The widest integer path `isa` allows on this CPU.
    pub fn for_isa(isa: Isa) -> IntPath {
        match isa {
            Isa::Scalar => IntPath::Scalar,
            Isa::Avx2 => IntPath::Avx2,
            Isa::Avx512 => {
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx512bw") {
                    return if is_x86_feature_detected!("avx512vnni") { IntPath::Avx512Vnni } else { IntPath::Avx512 };
                }
                IntPath::Avx2
            }
        }
    }

    /// Every integer path this CPU can run (tests compare them).
    pub fn available() -> Vec<IntPath> {
        let mut out = vec![IntPath::Scalar];
        for isa in Isa::available() {
            let best = IntPath::for_isa(isa);
            if best == IntPath::Avx512Vnni {
                out.push(IntPath::Avx512);
            }
            if !out.contains(&best) {
                out.push(best);
            }
        }
        out
    }
}

/// Σ_b s_b · Σ q·p for one int8 row `q` (without the row's scale).
pub fn dot_int8(path: IntPath, q: &[i8], x: &QuantizedRow) -> f32 {
    assert_eq!(q.len(), x.cols, "int8 integer dot: {} weights against {} inputs", q.len(), x.cols);
    match path {
        IntPath::Scalar => dot_int8_scalar(q, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `IntPath::for_isa`/`available` offer each path only where
        // the CPU has its instructions; the lengths match (checked above).
        IntPath::Avx2 => unsafe { x86::dot_int8_avx2(q, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512 => unsafe { x86::dot_int8_avx512(q, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512Vnni => unsafe { x86::dot_int8_vnni(q, x) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_int8_scalar(q, x),
    }
}

/// Σ_b (d_b·s_b) · Σ q·p for one int4 row (`packed`: K/2 bytes, `scales`:
/// K/32 f16 bit patterns).
pub fn dot_int4(path: IntPath, packed: &[u8], scales: &[u16], x: &QuantizedRow) -> f32 {
    assert!(
        packed.len() * 2 == x.cols && scales.len() * INT4_GROUP == x.cols,
        "int4 integer dot: {} bytes and {} scales against {} inputs",
        packed.len(),
        scales.len(),
        x.cols
    );
    // int4's f16 scales are widened by F16C, a flag of its own (some
    // virtual machines hide it even with AVX2): without it, the scalar loop.
    let path = if has_f16c() { path } else { IntPath::Scalar };
    match path {
        IntPath::Scalar => dot_int4_scalar(packed, scales, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_int8`, and F16C is present (checked above).
        IntPath::Avx2 => unsafe { x86::dot_int4_avx2(packed, scales, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512 => unsafe { x86::dot_int4_avx512(packed, scales, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512Vnni => unsafe { x86::dot_int4_vnni(packed, scales, x) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => dot_int4_scalar(packed, scales, x),
    }
}

/// [`dot_int8`] for each of the `out.len()` rows in `q` (`[rows, x.cols]`),
/// into `out`: the same bits, one call for the block.
pub fn dot_int8_rows(path: IntPath, q: &[i8], x: &QuantizedRow, out: &mut [f32]) {
    assert_eq!(
        q.len(),
        out.len() * x.cols,
        "int8 integer dot: {} weights for {} rows of {}",
        q.len(),
        out.len(),
        x.cols
    );
    if x.cols == 0 {
        return out.fill(0.0);
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `IntPath::for_isa`/`available` offer each path only where
        // the CPU has its instructions; the lengths match (checked above).
        IntPath::Avx2 => unsafe { x86::dot_int8_rows_avx2(q, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512 => unsafe { x86::dot_int8_rows_avx512(q, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512Vnni => unsafe { x86::dot_int8_rows_vnni(q, x, out) },
        _ => {
            for (o, row) in out.iter_mut().zip(q.chunks_exact(x.cols)) {
                *o = dot_int8_scalar(row, x);
            }
        }
    }
}

/// [`dot_int4`] for each of the `out.len()` rows in `packed` and `scales`,
/// into `out`: the same bits, one call for the block.
pub fn dot_int4_rows(path: IntPath, packed: &[u8], scales: &[u16], x: &QuantizedRow, out: &mut [f32]) {
    assert!(
        x.cols.is_multiple_of(INT4_GROUP)
            && packed.len() * 2 == out.len() * x.cols
            && scales.len() * INT4_GROUP == out.len() * x.cols,
        "int4 integer dot: {} bytes and {} scales for {} rows of {}",
        packed.len(),
        scales.len(),
        out.len(),
        x.cols
    );
    if x.cols == 0 {
        return out.fill(0.0);
    }
    // As in `dot_int4`: without F16C, the scalar loop.
    let path = if has_f16c() { path } else { IntPath::Scalar };
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `dot_int8_rows`, and F16C is present (checked above).
        IntPath::Avx2 => unsafe { x86::dot_int4_rows_avx2(packed, scales, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512 => unsafe { x86::dot_int4_rows_avx512(packed, scales, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        IntPath::Avx512Vnni => unsafe { x86::dot_int4_rows_vnni(packed, scales, x, out) },
        _ => {
            let rows = packed.chunks_exact(x.cols / 2).zip(scales.chunks_exact(x.cols / INT4_GROUP));
            for (o, (packed, scales)) in out.iter_mut().zip(rows) {
                *o = dot_int4_scalar(packed, scales, x);
            }
        }
    }
}

/// The order of the module doc, one lane at a time: `lane_sum(j)` is the
/// exact integer Σ q·p of lane `j` (weights 4j..4j+4 of the row, zero past
/// its end) and `lane_scale(j)` the float it is multiplied by.
fn dot_in_lane_order(cols: usize, lane_sum: impl Fn(usize) -> i32, lane_scale: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    for chunk in 0..cols.div_ceil(CHUNK) {
        for (l, a) in acc.iter_mut().enumerate() {
            let lane = chunk * LANES + l;
            *a = (lane_sum(lane) as f32).mul_add(lane_scale(lane), *a);
        }
    }
    dot_order::fold(acc)
}

/// The scalar int8 kernel: the bits every SIMD version gives.
pub fn dot_int8_scalar(q: &[i8], x: &QuantizedRow) -> f32 {
    let lane_sum = |lane: usize| {
        let end = ((lane + 1) * PER_LANE).min(q.len());
        (lane * PER_LANE..end).map(|j| q[j] as i32 * x.values[j] as i32).sum()
    };
    dot_in_lane_order(q.len(), lane_sum, |lane| x.lane_scales[lane])
}

/// The scalar int4 kernel: the bits every SIMD version gives.
pub fn dot_int4_scalar(packed: &[u8], scales: &[u16], x: &QuantizedRow) -> f32 {
    let weight = |j: usize| {
        let g = j / INT4_GROUP;
        super::int4::unpack(&packed[g * GROUP_BYTES..(g + 1) * GROUP_BYTES], j % INT4_GROUP) as i32
    };
    let lane_sum = |lane: usize| {
        let end = ((lane + 1) * PER_LANE).min(x.cols);
        (lane * PER_LANE..end).map(|j| weight(j) * x.values[j] as i32).sum()
    };
    let lane_scale = |lane: usize| {
        let block = lane * PER_LANE / INT4_GROUP;
        // A padded block has no scale of its own; its sums are 0.
        let d = scales.get(block).map_or(0.0, |&d| f16_to_f32(d));
        d * x.block_scales[block]
    };
    dot_in_lane_order(x.cols, lane_sum, lane_scale)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! One chunk of 64 weights per step. A row's last, partial chunk is
    //! copied into a zeroed buffer first and goes through the same step,
    //! so nothing past a row is read.
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
            /// Needs the features named; lengths as `dot_int4` checks.
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
    /// Needs AVX2, FMA and F16C; lengths as `dot_int4` checks.
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
}
