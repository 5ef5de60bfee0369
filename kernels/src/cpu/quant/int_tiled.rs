//! Many input rows against int8 or int4 weights, in integers: y `[M, N]` =
//! x `[M, K]` · Wᵀ for a prompt of M tokens.
//!
//! A prompt multiplies every weight by M inputs, so the cost is arithmetic,
//! not memory. Every input row is quantized to 8 bits once, as decoding
//! quantizes it ([`QuantizedRow`]: blocks of 32, a scale s_b each), and
//! every product q·p is a product of two small integers. What costs is what
//! surrounds them: decoding (`int_dot`) converts each lane's sum of four
//! products to float and spends a fused multiply-add on it, three or four
//! instructions per VNNI `vpdpbusd` of 64 products. Here a lane keeps
//! adding products in integers until its block of 32 ends, so a float
//! multiply-add meets 32 products instead of 4.
//!
//! ## The order
//! A row of K weights is `B` = ⌈K / 32⌉ blocks, cut into *groups* of 16
//! blocks while they last, then of 8, 4 and 2 (a last single block gets a
//! zero block beside it: K = 768 is 16 + 8 blocks, K = 576 is 16 + 2). In a
//! group of g blocks each of the 16 lanes owns a run of 2g consecutive
//! weights of one block: lane l reads block ⌊l·g / 16⌋, run l mod (16 / g).
//! With g = 16 a lane owns a whole block; with g = 2 a run of 4, which is
//! `int_dot`'s order. Per output:
//!
//! ```text
//! acc[l] = 0 for the 16 lanes
//! for each group, for each lane l:
//!     sum   = Σ q·p over lane l's run          (exact, in integers)
//!     acc[l] = fma(sum, scale, acc[l])        (scale: s_b for int8,
//!                                               d_b·s_b rounded for int4)
//! y = fold(acc)                               (halves first, `dot_order`)
//!     × the row's scale for int8
//! ```
//!
//! [`prompt_dot_plain`] is exactly this, one output at a time; every path
//! below gives its bits, on every instruction set and with any number of
//! threads. It is not decoding's order (`int_dot`, one multiply-add per
//! four products) unless every group has 2 blocks, so a prompt's outputs
//! and the same rows decoded one by one agree to rounding, not bit for bit
//! (the integer products are the same; only the float additions differ).
//!
//! ## The fast path
//! ```text
//! for each tile of weight rows [n0, n1)           (in parallel, in L2)
//!     copy the tile in the kernel's order
//!     for each block of 4 input rows i..i+4
//!         for each block of 4 weight rows j..j+4 of the tile
//!             16 outputs y[i.., j..] at once: one pass over K
//! ```
//! The copies put each group's weights in *chunks* of 64 bytes, lane l's
//! four bytes of step c at bytes 4l..4l+4 of chunk c (a group of g blocks
//! is g/2 chunks), so one `vpdpbusd` per chunk adds four products into each
//! lane's run. The AVX-512 micro-kernel (`int_tiled_x86.rs`) keeps 4×4
//! integer accumulators across a group's chunks, loading each chunk of
//! weights once for 4 input rows and each chunk of inputs once for 4 weight
//! rows. What the copies precompute, per lane and group:
//! - int8: the weights as bytes, and −128·Σq of the run. VNNI multiplies
//!   unsigned by signed bytes, so the input enters as p + 128 (its top bit
//!   flipped) and the sum starts at −128·Σq: exactly Σ q·p. Without VNNI,
//!   `int_dot`'s sign trick.
//! - int4: the nibbles q + 8 as bytes, and the f16 block scale as f32; the
//!   input row brings 8·Σp of each run, taken off at the start.
//!
//! AVX2 and the portable path compute one output at a time on the same
//! copies, in the same order.

use rayon::prelude::*;

use super::half_float::f16_to_f32;
use super::int4::GROUP_BYTES;
use super::int_dot::{IntPath, QuantizedRow};
use super::{PackedMatrix, PackedWeights, INT4_GROUP};
use crate::cpu::dot_order;
use crate::cpu::SendPtr;

#[cfg(target_arch = "x86_64")]
#[path = "int_tiled_x86.rs"]
mod x86;

/// Float and integer lanes: one 512-bit register of 32-bit values.
pub(crate) const LANES: usize = 16;

/// Bytes per chunk: four per lane, one 512-bit register of bytes.
pub(crate) const CHUNK: usize = 64;

/// Most blocks in a group: a lane's run is then a whole block.
const MAX_GROUP: usize = 16;

/// Input rows and weight rows per micro-kernel call: 16 outputs.
pub(crate) const BLOCK: usize = 4;

/// Bytes of copied weights per tile: with the lane vectors it stays in L2
/// while every input row passes over it.
const TILE_BYTES: usize = 1 << 17;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// How a row of K weights is cut into groups (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Groups {
    /// Blocks per group, in row order.
    pub sizes: Vec<usize>,
    /// Bytes of a row in the kernel's order: 32 per block, zero blocks
    /// included.
    pub padded: usize,
}

impl Groups {
    /// The groups of a row of `cols` weights.
    pub fn new(cols: usize) -> Groups {
        let mut left = cols.div_ceil(INT4_GROUP);
        let mut sizes = Vec::new();
        let mut g = MAX_GROUP;
        while left > 0 {
            while g > 2 && g > left {
                g /= 2;
            }
            sizes.push(g);
            left = left.saturating_sub(g);
        }
        let padded = sizes.iter().sum::<usize>() * INT4_GROUP;
        Groups { sizes, padded }
    }

    /// For group `g` of `size` blocks starting at block `first`, lane `l`'s
    /// run: its block, and its first weight in the row.
    fn run(first: usize, size: usize, l: usize) -> (usize, usize) {
        let block = first + l * size / LANES;
        let run = l % (LANES / size);
        (block, block * INT4_GROUP + run * 2 * size)
    }

    /// Copies a row from natural order (`natural`, `padded` bytes) into the
    /// kernels' order (`out`): lane l's run of a group goes four bytes to a
    /// chunk, at bytes 4l..4l + 4 of each. Calls `lane(index, block, run)`
    /// once per lane of each group (index = group·16 + l) with the run.
    fn interleave<T: Copy>(&self, natural: &[T], out: &mut [T], mut lane: impl FnMut(usize, usize, &[T])) {
        let mut first = 0;
        for (group, &size) in self.sizes.iter().enumerate() {
            let chunks = &mut out[first * INT4_GROUP..(first + size) * INT4_GROUP];
            for l in 0..LANES {
                let (block, start) = Groups::run(first, size, l);
                let run = &natural[start..start + 2 * size];
                for (chunk, quad) in chunks.chunks_exact_mut(CHUNK).zip(run.chunks_exact(4)) {
                    chunk[4 * l..4 * l + 4].copy_from_slice(quad);
                }
                lane(group * LANES + l, block, run);
            }
            first += size;
        }
    }
}

/// Weight q_j of row `row` of an int8 or int4 matrix, 0 past the row.
fn weight(w: &PackedMatrix, row: usize, j: usize) -> i32 {
    let k = w.cols;
    if j >= k {
        return 0;
    }
    match w.weights {
        PackedWeights::Int8 { values, .. } => values[row * k + j] as i32,
        PackedWeights::Int4 { packed, .. } => {
            let group = &packed[(row * k + j) / INT4_GROUP * GROUP_BYTES..][..GROUP_BYTES];
            super::int4::unpack(group, j % INT4_GROUP) as i32
        }
        _ => unreachable!("checked by the callers"),
    }
}

/// int4's scale d of block `block` of row `row` as f32 (0 past the row);
/// 1 for int8, whose scale is per row.
fn block_scale(w: &PackedMatrix, row: usize, block: usize) -> f32 {
    match w.weights {
        PackedWeights::Int4 { scales, .. } => {
            let groups = w.cols / INT4_GROUP;
            if block < groups {
                f16_to_f32(scales[row * groups + block])
            } else {
                0.0
            }
        }
        _ => 1.0,
    }
}

/// The row's own scale, applied after the fold (int8), or 1 (int4).
fn row_scale(w: &PackedMatrix, row: usize) -> Option<f32> {
    match w.weights {
        PackedWeights::Int8 { scales, .. } => Some(scales[row]),
        _ => None,
    }
}

/// Output `row` of W · x in the order of the module doc, one lane at a
/// time: the definition every path of [`matmul`] gives bit for bit.
pub fn prompt_dot_plain(w: &PackedMatrix, row: usize, x: &QuantizedRow) -> f32 {
    assert!(w.multiplies_in_integers(), "prompt dot: {} weights", w.weights.format_name());
    assert_eq!(x.cols, w.cols, "prompt dot: {} weights against {} inputs", w.cols, x.cols);
    let groups = Groups::new(w.cols);
    let input = |j: usize| x.values.get(j).map_or(0, |&p| p as i32);
    let mut acc = [0.0f32; LANES];
    let mut first = 0;
    for &size in &groups.sizes {
        for (l, a) in acc.iter_mut().enumerate() {
            let (block, start) = Groups::run(first, size, l);
            let sum: i32 = (start..start + 2 * size).map(|j| weight(w, row, j) * input(j)).sum();
            let s = x.block_scales.get(block).copied().unwrap_or(0.0);
            let scale = match w.weights {
                PackedWeights::Int4 { .. } => block_scale(w, row, block) * s,
                _ => s,
            };
            *a = (sum as f32).mul_add(scale, *a);
        }
        first += size;
    }
    let dot = dot_order::fold(acc);
    row_scale(w, row).map_or(dot, |s| dot * s)
}

/// An input row in the kernels' order, with its per-lane values.
#[derive(Default)]
pub(crate) struct PromptRow {
    /// p in the kernels' order, `[padded]`.
    pub values: Vec<i8>,
    /// Each lane's block scale s_b, 16 per group.
    pub lane_scales: Vec<f32>,
    /// 8·Σp over each lane's run, 16 per group (int4's offset nibbles).
    pub lane_offsets: Vec<i32>,
}

impl PromptRow {
    fn new(x: &QuantizedRow, groups: &Groups) -> PromptRow {
        let lanes = groups.sizes.len() * LANES;
        let mut row =
            PromptRow { values: vec![0; groups.padded], lane_scales: vec![0.0; lanes], lane_offsets: vec![0; lanes] };
        let mut natural = vec![0i8; groups.padded];
        natural[..x.cols].copy_from_slice(&x.values[..x.cols]);
        groups.interleave(&natural, &mut row.values, |lane, block, run| {
            row.lane_offsets[lane] = 8 * run.iter().map(|&p| p as i32).sum::<i32>();
            row.lane_scales[lane] = x.block_scales.get(block).copied().unwrap_or(0.0);
        });
        row
    }
}

/// A tile of weight rows in the kernels' order.
#[derive(Default)]
pub(crate) struct Tile {
    /// `[rows, padded]`: int8 values as bytes, or int4 nibbles q + 8.
    pub bytes: Vec<u8>,
    /// int8: −128·Σq over each lane's run, `[rows, 16 per group]`.
    pub lane_starts: Vec<i32>,
    /// int4: each lane's block scale d, `[rows, 16 per group]`.
    pub lane_scales: Vec<f32>,
}

impl Tile {
    /// Copies rows `r0..r1` of `w`.
    fn fill(&mut self, w: &PackedMatrix, r0: usize, r1: usize, groups: &Groups) {
        let lanes = groups.sizes.len() * LANES;
        let int4 = matches!(w.weights, PackedWeights::Int4 { .. });
        self.bytes.clear();
        self.bytes.resize((r1 - r0) * groups.padded, 0);
        self.lane_starts.clear();
        self.lane_starts.resize((r1 - r0) * lanes, 0);
        self.lane_scales.clear();
        self.lane_scales.resize(if int4 { (r1 - r0) * lanes } else { 0 }, 0.0);
        // One row in natural order, padded: q as i8, or q + 8 for int4
        // (0 past the row either way: its inputs are 0 too).
        let mut natural = vec![0u8; groups.padded];
        // int4's block scales of one row, widened once.
        let mut scales = Vec::new();
        for r in r0..r1 {
            let (bytes, meta) = ((r - r0) * groups.padded, (r - r0) * lanes);
            let k = w.cols;
            match w.weights {
                PackedWeights::Int8 { values, .. } => {
                    for (o, &q) in natural.iter_mut().zip(&values[r * k..(r + 1) * k]) {
                        *o = q as u8;
                    }
                }
                PackedWeights::Int4 { packed, .. } => {
                    // Byte b of a group: weight b low, weight b + 16 high.
                    for (g, group) in packed[r * k / 2..(r + 1) * k / 2].chunks_exact(GROUP_BYTES).enumerate() {
                        for (b, &byte) in group.iter().enumerate() {
                            natural[g * INT4_GROUP + b] = byte & 0x0f;
                            natural[g * INT4_GROUP + GROUP_BYTES + b] = byte >> 4;
                        }
                    }
                }
                _ => unreachable!("checked by matmul"),
            }
            scales.clear();
            if int4 {
                scales.extend((0..k / INT4_GROUP).map(|b| block_scale(w, r, b)));
            }
            let lane_starts = &mut self.lane_starts[meta..meta + lanes];
            let lane_scales = &mut self.lane_scales;
            groups.interleave(&natural, &mut self.bytes[bytes..bytes + groups.padded], |lane, block, run| {
                if int4 {
                    // A padding block has scale 0.
                    lane_scales[meta + lane] = scales.get(block).copied().unwrap_or(0.0);
                } else {
                    lane_starts[lane] = -128 * run.iter().map(|&q| q as i8 as i32).sum::<i32>();
                }
            });
        }
    }
}

/// y `[rows.len(), w.rows]` = the quantized input rows · Wᵀ, each output
/// bit-identical to [`prompt_dot_plain`].
pub fn matmul(path: IntPath, w: &PackedMatrix, rows: &[QuantizedRow], y: &mut [f32]) {
    let (m, n, k) = (rows.len(), w.rows, w.cols);
    assert!(w.multiplies_in_integers(), "int tiled matmul: {} weights", w.weights.format_name());
    assert_eq!(y.len(), m * n, "int tiled matmul: y holds {} floats, expected {m}×{n}", y.len());
    assert!(rows.iter().all(|r| r.cols == k), "int tiled matmul: an input row is not {k} long");
    if m == 0 || n == 0 {
        return;
    }
    let groups = Groups::new(k);
    let kernel = Kernel::for_path(path);
    let prompt: Vec<PromptRow> = rows.iter().map(|x| PromptRow::new(x, &groups)).collect();
    let parallel = m * n * k >= PARALLEL_MIN_WORK;
    // As many rows as fit the cache budget, but at least four tiles per
    // thread so that the threads finish together; a multiple of BLOCK.
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let tile = (TILE_BYTES / groups.padded.max(1)).min(n.div_ceil(4 * threads)).max(1).next_multiple_of(BLOCK);
    let out = SendPtr(y.as_mut_ptr());
    let run = |scratch: &mut Tile, t: usize| {
        let (n0, n1) = (t * tile, ((t + 1) * tile).min(n));
        scratch.fill(w, n0, n1, &groups);
        // SAFETY: columns n0..n1 of the m×n y are this task's alone.
        unsafe { kernel.tile_product(w, &prompt, &groups, scratch, n0..n1, (out.get(), w.rows)) };
    };
    let tiles = n.div_ceil(tile);
    if !parallel || tiles == 1 {
        let mut scratch = Tile::default();
        (0..tiles).for_each(|t| run(&mut scratch, t));
    } else {
        (0..tiles).into_par_iter().for_each_init(Tile::default, run);
    }
}

/// Which code computes a tile's outputs.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// Portable Rust, one output at a time on the copied tile.
    Portable,
    /// AVX2: one output at a time on the copied tile.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512: 4×4 outputs at a time, with or without VNNI.
    #[cfg(target_arch = "x86_64")]
    Avx512 { vnni: bool },
}

impl Kernel {
    fn for_path(path: IntPath) -> Kernel {
        match path {
            IntPath::Scalar => Kernel::Portable,
            #[cfg(target_arch = "x86_64")]
            IntPath::Avx2 => Kernel::Avx2,
            #[cfg(target_arch = "x86_64")]
            IntPath::Avx512 => Kernel::Avx512 { vnni: false },
            #[cfg(target_arch = "x86_64")]
            IntPath::Avx512Vnni => Kernel::Avx512 { vnni: true },
            #[cfg(not(target_arch = "x86_64"))]
            _ => Kernel::Portable,
        }
    }

    /// Outputs of weight rows `cols` (copied into `tile`) for every input
    /// row, into y (`rows.len()` rows of `stride` floats).
    ///
    /// # Safety
    /// No one else writes columns `cols` of y meanwhile.
    unsafe fn tile_product(
        self,
        w: &PackedMatrix,
        rows: &[PromptRow],
        groups: &Groups,
        tile: &Tile,
        cols: std::ops::Range<usize>,
        (y, stride): (*mut f32, usize),
    ) {
        let store = |i: usize, n: usize, v: f32| {
            // SAFETY: i < rows.len() and n in `cols` (the caller's promise).
            unsafe { *y.add(i * stride + n) = v }
        };
        let lanes = groups.sizes.len() * LANES;
        let int4 = matches!(w.weights, PackedWeights::Int4 { .. });
        let weight_row = |j: usize| WeightRow {
            bytes: &tile.bytes[j * groups.padded..(j + 1) * groups.padded],
            lane_scales: if int4 { &tile.lane_scales[j * lanes..(j + 1) * lanes] } else { &[] },
        };
        let finish = |acc: &[f32; LANES], r: usize| {
            let dot = dot_order::fold(*acc);
            row_scale(w, r).map_or(dot, |s| dot * s)
        };
        let tile_rows = cols.len();
        match self {
            Kernel::Portable => {
                for (i, x) in rows.iter().enumerate() {
                    for j in 0..tile_rows {
                        let acc = one_output_portable(&weight_row(j), x, &groups.sizes, int4);
                        store(i, cols.start + j, finish(&acc, cols.start + j));
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                for (i, x) in rows.iter().enumerate() {
                    for j in 0..tile_rows {
                        // SAFETY: `Isa`/`IntPath` offer AVX2 only where the CPU
                        // has it (with FMA); the rows hold `groups`' bytes.
                        let acc = unsafe { x86::one_output_avx2(&weight_row(j), x, &groups.sizes, int4) };
                        store(i, cols.start + j, finish(&acc, cols.start + j));
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 { vnni } => {
                let row_scales = match w.weights {
                    PackedWeights::Int8 { scales, .. } => Some(&scales[cols.clone()]),
                    _ => None,
                };
                for i0 in (0..rows.len()).step_by(BLOCK) {
                    // A block past the last row repeats it; not written.
                    let xs: [&PromptRow; BLOCK] = std::array::from_fn(|a| &rows[(i0 + a).min(rows.len() - 1)]);
                    let out = x86::Out {
                        y: y.wrapping_add(i0 * stride + cols.start),
                        stride,
                        rows: (rows.len() - i0).min(BLOCK),
                    };
                    let shape = (tile_rows, groups.padded, lanes);
                    // SAFETY: `Isa`/`IntPath` offer these paths only where
                    // the CPU has AVX-512 BW (and VNNI when asked); the tile
                    // and rows are `groups`' (`Tile::fill`, `PromptRow::new`);
                    // `out` is rows i0.. of columns `cols`, this task's alone.
                    unsafe {
                        if vnni {
                            x86::block_vnni(tile, shape, &xs, &groups.sizes, int4, row_scales, out)
                        } else {
                            x86::block_bw(tile, shape, &xs, &groups.sizes, int4, row_scales, out)
                        }
                    }
                }
            }
        }
    }
}

/// One output's 16 lanes from the copied tile, in portable Rust: what the
/// AVX2 kernel does in two halves of 8 lanes.
fn one_output_portable(w: &WeightRow, x: &PromptRow, groups: &[usize], int4: bool) -> [f32; LANES] {
    let mut acc = [0.0f32; LANES];
    let (mut base, mut meta) = (0, 0);
    for &size in groups {
        for (l, a) in acc.iter_mut().enumerate() {
            // Nibbles q + 8: Σ (q + 8)·p − 8·Σp.
            let mut sum = if int4 { -x.lane_offsets[meta + l] } else { 0 };
            for c in 0..size / 2 {
                let at = base + c * CHUNK + 4 * l;
                for (&q, &p) in w.bytes[at..at + 4].iter().zip(&x.values[at..at + 4]) {
                    let q = if int4 { q as i32 } else { q as i8 as i32 };
                    sum += q * p as i32;
                }
            }
            let s = x.lane_scales[meta + l];
            let scale = if int4 { w.lane_scales[meta + l] * s } else { s };
            *a = (sum as f32).mul_add(scale, *a);
        }
        base += size / 2 * CHUNK;
        meta += LANES;
    }
    acc
}

/// One weight row of a tile, as the kernels read it.
pub(crate) struct WeightRow<'a> {
    pub bytes: &'a [u8],
    pub lane_scales: &'a [f32],
}
