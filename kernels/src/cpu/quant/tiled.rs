//! Matrix-matrix product against packed weights, for more than one input
//! row: y `[M, N]` = x `[M, K]` · Wᵀ.
//!
//! With M rows sharing every weight, the work is 2·M·N·K flops against
//! N·K weights, so it is arithmetic-bound and the f32 GEMM's blocking and
//! SIMD kernel are what make it fast. The weights are therefore decoded a
//! tile of rows at a time into a small f32 scratch buffer (a few hundred
//! KiB, so it stays in cache) and multiplied by `matrixmultiply`'s sgemm:
//!
//!   for each tile of weight rows [n0, n1):
//!       scratch `[n1 - n0, K]` = decode(W[n0..n1])
//!       y[:, n0..n1] = x · scratchᵀ
//!
//! Decoding costs one pass over the weights, shared by all M rows; the
//! whole f32 matrix never exists. Tiles run in parallel, each writing its
//! own columns of y, and each column is computed by one sgemm call, so
//! results do not depend on the thread count.
//!
//! f16 and bf16 weights come here; int8 and int4 multiply in integers
//! instead ([`int_tiled`](super::int_tiled)).

use rayon::prelude::*;

use super::PackedMatrix;
use crate::cpu::SendPtr;

/// f32 elements in one tile's scratch buffer (256 KiB: fits in L2 with the
/// GEMM's packed panels).
const TILE_FLOATS: usize = 1 << 16;

/// Below this many multiply-adds the product runs on one thread.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// Weight rows decoded per tile for rows of `cols` weights.
pub fn tile_rows(cols: usize) -> usize {
    (TILE_FLOATS / cols.max(1)).clamp(8, 1024)
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
    let tile = tile_rows(k);
    let out = SendPtr(y.as_mut_ptr());
    let run = |scratch: &mut Vec<f32>, t: usize| {
        let (r0, r1) = (t * tile, ((t + 1) * tile).min(n));
        scratch.resize(tile * k, 0.0);
        for r in r0..r1 {
            w.dequantize_row(r, &mut scratch[(r - r0) * k..(r - r0 + 1) * k]);
        }
        // SAFETY: x is m×k row-major; scratch holds (r1 - r0) rows of k, read
        // as its transpose (k×(r1 - r0), column stride k); the output block
        // is columns r0..r1 of the m×n row-major y, inside y's m·n elements
        // and written by this task alone. β = 0, so y is not read.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                r1 - r0,
                1.0,
                x.as_ptr(),
                k as isize,
                1,
                scratch.as_ptr(),
                1,
                k as isize,
                0.0,
                out.get().add(r0),
                n as isize,
                1,
            );
        }
    };
    let tiles = n.div_ceil(tile);
    if tiles == 1 || m * n * k < PARALLEL_MIN_WORK {
        let mut scratch = Vec::new();
        (0..tiles).for_each(|t| run(&mut scratch, t));
    } else {
        (0..tiles).into_par_iter().for_each_init(Vec::new, run);
    }
}
