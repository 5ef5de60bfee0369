//! Matrix-matrix product against packed weights, for more than one input
//! row: y `[M, N]` = x `[M, K]` · Wᵀ.
//!
//! With M rows sharing every weight, the work is 2·M·N·K flops against
//! N·K weights, so it is arithmetic-bound and the f32 GEMM's blocking and
//! SIMD kernel are what make it fast. The weights are therefore decoded a
//! tile of rows at a time into an f32 scratch buffer and multiplied by the
//! f32 GEMM's single-threaded kernel ([`gemm_serial`]: our AVX-512 kernel
//! where the CPU has it):
//!
//!   for each tile of weight rows [n0, n1):
//!       scratch `[n1 - n0, K]` = decode(W[n0..n1])
//!       y[:, n0..n1] = x · scratchᵀ
//!
//! Decoding costs one pass over the weights, shared by all M rows; the
//! whole f32 matrix never exists. Each GEMM call packs x again, M·K
//! copies against 2·M·K·(n1 − n0) flops, so tiles are wide (hundreds of
//! rows) but still several per thread, so that the threads finish
//! together. Tiles run in parallel, each writing its own columns of y, and
//! the GEMM's sums do not depend on which columns a call gets, so results
//! do not depend on the thread count.
//!
//! f16 and bf16 weights come here (and plain f32 ones, which need no
//! decoding); int8 and int4 multiply in integers instead
//! ([`int_tiled`](super::int_tiled)).

use rayon::prelude::*;

use super::{PackedMatrix, PackedWeights};
use crate::cpu::gemm::{gemm_serial, GemmShape, OutBlock, Strided};
use crate::cpu::SendPtr;

/// Most f32 elements in one tile's scratch buffer (1.5 MiB: the GEMM
/// streams it once per tile, in slices it packs into L2).
const TILE_FLOATS: usize = 3 << 17;

/// Fewest weight rows per tile: below this, packing x again for every
/// tile costs more than a few per cent of the multiply.
const MIN_TILE_ROWS: usize = 64;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Weight rows decoded per tile for `n` rows of `cols` weights shared by
/// `threads` threads: about four tiles per thread, within the scratch
/// budget, never under [`MIN_TILE_ROWS`] (unless the matrix is smaller),
/// a multiple of 32 (the GEMM's panel width).
fn tile_rows(n: usize, cols: usize, threads: usize) -> usize {
    let balanced = n.div_ceil(4 * threads.max(1));
    let budget = TILE_FLOATS / cols.max(1);
    balanced.min(budget).max(MIN_TILE_ROWS).next_multiple_of(32).min(n.max(1))
}

/// y `[m, w.rows]` = x `[m, w.cols]` · Wᵀ.
pub fn matmul(w: &PackedMatrix, x: &[f32], m: usize, y: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), m * k, "tiled matmul: x holds {} floats, expected {m}×{k}", x.len());
    assert_eq!(y.len(), m * n, "tiled matmul: y holds {} floats, expected {m}×{n}", y.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        y.fill(0.0);
        return;
    }
    let parallel = m * n * k >= PARALLEL_MIN_WORK;
    let threads = if parallel { rayon::current_num_threads() } else { 1 };
    let tile = tile_rows(n, k, threads);
    let out = SendPtr(y.as_mut_ptr());
    let run = |scratch: &mut Vec<f32>, t: usize| {
        let (r0, r1) = (t * tile, ((t + 1) * tile).min(n));
        // f32 weights are already what the GEMM reads; the others are decoded.
        let rows: &[f32] = match w.weights {
            PackedWeights::F32(all) => &all[r0 * k..r1 * k],
            _ => {
                scratch.resize((r1 - r0) * k, 0.0);
                for r in r0..r1 {
                    w.dequantize_row(r, &mut scratch[(r - r0) * k..(r - r0 + 1) * k]);
                }
                scratch
            }
        };
        let shape = GemmShape { m, k, n: r1 - r0 };
        // x is m×k row-major; the tile holds (r1 - r0) rows of k, read as
        // its transpose (k×(r1 - r0)).
        let (sx, sw) = (Strided::row_major(0, k), Strided::row_major(0, k).transposed());
        // SAFETY: the output block is columns r0..r1 of the m×n row-major y,
        // inside y's m·n elements and written by this task alone.
        unsafe { gemm_serial(shape, x, sx, rows, sw, OutBlock { ptr: out.get().add(r0), row_stride: n }) }
    };
    let tiles = n.div_ceil(tile);
    if tiles == 1 || !parallel {
        let mut scratch = Vec::new();
        (0..tiles).for_each(|t| run(&mut scratch, t));
    } else {
        (0..tiles).into_par_iter().for_each_init(Vec::new, run);
    }
}
