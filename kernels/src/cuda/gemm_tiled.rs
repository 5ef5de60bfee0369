//! The hand-written tiled GEMM (`gemm_tiled.cu`): the readable version of
//! what cuBLAS does, tested against it.

use cudarc::driver::CudaSlice;

use super::blas::MatrixBatch;
use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::{blocks_for, grid_2d};
use super::sources::GEMM_TILED;

/// The tile side (`TILE` in the .cu file): a block is TILE × TILE threads.
pub const TILE: usize = 32;
/// Shared memory per block: one A and one B tile of f32, each padded by a
/// column to avoid bank conflicts.
pub const SHARED_BYTES: usize = 2 * TILE * (TILE + 1) * 4;

/// Blocks along (n, m): one per TILE × TILE tile of C.
pub fn tiles(m: usize, n: usize) -> (usize, usize) {
    (blocks_for(n, TILE).max(1), blocks_for(m, TILE).max(1))
}

/// `C = A·B` into a new dense `[m, n]` buffer; A `[m, k]` and B `[k, n]`
/// through their strides (the batch stride is ignored).
#[allow(clippy::too_many_arguments)]
pub fn gemm_tiled<T: CudaFloat>(
    dev: &CudaDevice,
    m: usize,
    k: usize,
    n: usize,
    a: &CudaSlice<T>,
    la: MatrixBatch,
    b: &CudaSlice<T>,
    lb: MatrixBatch,
) -> Result<CudaSlice<T>> {
    let mut c = dev.alloc::<T>(m * n)?;
    if m * n == 0 {
        return Ok(c);
    }
    if k > 0 {
        assert!(la.offset + (m - 1) * la.row_stride + (k - 1) * la.col_stride < a.len(), "gemm_tiled: A out of bounds");
        assert!(lb.offset + (k - 1) * lb.row_stride + (n - 1) * lb.col_stride < b.len(), "gemm_tiled: B out of bounds");
    }
    let (gx, gy) = tiles(m, n);
    let cfg = grid_2d(gx, gy, (TILE as u32, TILE as u32, 1), 0);
    let (m64, n64, k64) = (m as i64, n as i64, k as i64);
    let (ao, ar, ac) = (la.offset as i64, la.row_stride as i64, la.col_stride as i64);
    let (bo, br, bc) = (lb.offset as i64, lb.row_stride as i64, lb.col_stride as i64);
    let name = format!("gemm_tiled_{}", T::NAME);
    launch_kernel!(dev, GEMM_TILED, name, cfg, [&m64, &n64, &k64, a, &ao, &ar, &ac, b, &bo, &br, &bc, &mut c])?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_output() {
        assert_eq!(tiles(1, 1), (1, 1));
        assert_eq!(tiles(64, 33), (2, 2));
        assert_eq!(tiles(1000, 50_257), (1571, 32));
        // Static shared memory is limited to 48 KiB per block.
        const { assert!(SHARED_BYTES == 8448 && SHARED_BYTES <= 48 * 1024) };
    }
}
