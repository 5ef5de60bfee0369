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

    /// Only what the prompt tiles (`int_tiled`) read of a row: its values
    /// and block scales. The lane data of the matrix-vector kernels stays
    /// empty (they refuse such a row), which spares a prompt's every row
    /// five buffers.
    pub fn for_tiles(x: &[f32]) -> QuantizedRow {
        let mut row = QuantizedRow::default();
        row.quantize_values(x);
        row
    }

    /// Whether the lane data of the matrix-vector kernels is filled in
    /// ([`new`](Self::new) and [`quantize`](Self::quantize), not
    /// [`for_tiles`](Self::for_tiles)).
    pub fn has_lane_data(&self) -> bool {
        let lanes = self.values.len() / PER_LANE;
        self.lane_scales.len() == lanes
            && self.lane_offsets.len() == lanes
            && self.nibble_order.values.len() == self.values.len()
    }

    /// Quantizes `x` into this row's buffers (reused between calls).
    pub fn quantize(&mut self, x: &[f32]) {
        self.quantize_values(x);
        let padded = self.values.len();
        let (values, block_scales) = (&self.values, &self.block_scales);
        self.lane_scales.extend((0..padded / PER_LANE).map(|lane| block_scales[lane * PER_LANE / INT4_GROUP]));
        self.lane_offsets.extend(values.chunks_exact(PER_LANE).map(|v| 8 * v.iter().map(|&p| p as i32).sum::<i32>()));
        self.nibble_order.fill(values, &self.lane_offsets, &self.lane_scales);
    }

    /// The values and block scales alone; the lane data emptied.
    fn quantize_values(&mut self, x: &[f32]) {
        self.lane_scales.clear();
        self.lane_offsets.clear();
        self.nibble_order.values.clear();
        let padded = x.len().div_ceil(CHUNK) * CHUNK;
        self.cols = x.len();
        self.values.clear();
        self.values.resize(padded, 0);
        self.block_scales.clear();
        quantize_blocks_with(Isa::detect(), x, &mut self.values, &mut self.block_scales);
        self.block_scales.resize(padded / INT4_GROUP, 0.0);
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

/// [`quantize_blocks`] on `isa`, the same bits on each: with AVX-512 the
/// whole blocks are written with intrinsics (two registers a block, a
/// tenth of the time of the loop below, which the compiler vectorises
/// only in part) and a partial last block by the loop; with AVX2 the loop
/// compiled for it.
pub fn quantize_blocks_with(isa: Isa, x: &[f32], values: &mut [i8], scales: &mut Vec<f32>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            let whole = x.len() / INT4_GROUP * INT4_GROUP;
            // SAFETY: `Isa::detect` reported AVX-512F on this CPU; `values`
            // holds at least `x.len()` bytes (the caller's padded row).
            unsafe { x86::quantize_whole_blocks_avx512(&x[..whole], &mut values[..whole], scales) };
            quantize_blocks(&x[whole..], &mut values[whole..], scales);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 was detected (every instruction set but the portable one).
        Isa::Avx2 => unsafe { quantize_blocks_avx2(x, values, scales) },
        _ => quantize_blocks(x, values, scales),
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

/// Σ_b s_b · Σ q·p (without the row's scale) for each of the `out.len()`
/// rows in `q` (`[rows, x.cols]`), into `out`, one call for the block.
pub fn dot_int8_rows(path: IntPath, q: &[i8], x: &QuantizedRow, out: &mut [f32]) {
    assert!(x.has_lane_data(), "int8 integer dot: the input row was quantized for tiles only");
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

/// Σ_b (d_b·s_b) · Σ q·p for each of the `out.len()` rows in `packed`
/// (K/2 bytes a row) and `scales` (K/32 f16 bit patterns a row), into
/// `out`, one call for the block.
pub fn dot_int4_rows(path: IntPath, packed: &[u8], scales: &[u16], x: &QuantizedRow, out: &mut [f32]) {
    assert!(x.has_lane_data(), "int4 integer dot: the input row was quantized for tiles only");
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
    // int4's f16 scales are widened by F16C, a flag of its own (some
    // virtual machines hide it even with AVX2): without it, the scalar loop.
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
#[path = "int_dot_x86.rs"]
mod x86;
