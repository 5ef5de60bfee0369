//! Launch-configuration arithmetic, kept apart from the launches so it can
//! be unit-tested on a machine without a GPU.
//!
//! A kernel runs as a grid of blocks of threads. The numbers here decide
//! how many of each: enough threads to keep the GPU busy, never a grid
//! dimension beyond what the hardware accepts, never a zero-sized launch.
//! Elementwise kernels use grid-stride loops (each thread handles elements
//! i, i + gridSize, i + 2·gridSize, ...), so any grid covers any length and
//! the grid can be capped.

use cudarc::driver::LaunchConfig;

/// Threads per block for elementwise kernels.
pub const BLOCK: u32 = 256;
/// The most blocks an elementwise launch uses; the grid-stride loop covers
/// the rest. 2¹⁶ blocks of 256 threads is far more than any GPU runs at once.
pub const MAX_BLOCKS: u32 = 1 << 16;
/// The largest x grid dimension CUDA accepts (2³¹ − 1).
pub const MAX_GRID_X: u64 = (1 << 31) - 1;
/// The largest y and z grid dimensions.
pub const MAX_GRID_YZ: u64 = 65_535;

/// Blocks needed to cover `n` items with `per_block` each.
pub fn blocks_for(n: usize, per_block: usize) -> usize {
    n.div_ceil(per_block.max(1))
}

/// Grid for a grid-stride elementwise kernel over `n` elements (`n > 0`).
pub fn for_elements(n: usize) -> LaunchConfig {
    let blocks = blocks_for(n, BLOCK as usize).clamp(1, MAX_BLOCKS as usize) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
}

/// Threads for one block working on a row of `n` elements: the smallest
/// power of two ≥ n, at least one warp, at most 1024 (a hardware limit).
/// Block reductions in prelude.cuh need a multiple of 32.
pub fn row_threads(n: usize) -> u32 {
    (n.next_power_of_two()).clamp(32, 1024) as u32
}

/// One block per row: `rows` blocks (`rows > 0`) of [`row_threads`] threads.
pub fn for_rows(rows: usize, n: usize) -> LaunchConfig {
    assert!(rows as u64 <= MAX_GRID_X, "{rows} rows exceed CUDA's grid limit");
    LaunchConfig { grid_dim: (rows as u32, 1, 1), block_dim: (row_threads(n), 1, 1), shared_mem_bytes: 0 }
}

/// A 2-D grid with `x` and `y` blocks, checked against the limits.
pub fn grid_2d(x: usize, y: usize, block: (u32, u32, u32), shared_mem_bytes: u32) -> LaunchConfig {
    assert!(x as u64 <= MAX_GRID_X && y as u64 <= MAX_GRID_YZ, "grid {x}×{y} exceeds CUDA's limits");
    LaunchConfig { grid_dim: (x.max(1) as u32, y.max(1) as u32, 1), block_dim: block, shared_mem_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_grids_cover_and_are_capped() {
        assert_eq!(for_elements(1).grid_dim, (1, 1, 1));
        assert_eq!(for_elements(256).grid_dim.0, 1);
        assert_eq!(for_elements(257).grid_dim.0, 2);
        assert_eq!(for_elements(1 << 40).grid_dim.0, MAX_BLOCKS);
        for n in [1usize, 255, 256, 257, 10_000, 1 << 20] {
            let c = for_elements(n);
            let threads = c.grid_dim.0 as usize * c.block_dim.0 as usize;
            assert!(threads >= n.min(MAX_BLOCKS as usize * BLOCK as usize));
        }
    }

    #[test]
    fn row_blocks_are_whole_warps_within_the_hardware_limit() {
        assert_eq!(row_threads(1), 32);
        assert_eq!(row_threads(33), 64);
        assert_eq!(row_threads(768), 1024);
        assert_eq!(row_threads(50_257), 1024);
        for n in 1..3000 {
            let t = row_threads(n);
            assert!(t.is_multiple_of(32) && t <= 1024 && (t as usize >= n || t == 1024));
        }
    }

    #[test]
    fn two_dimensional_grids_never_have_a_zero_side() {
        let c = grid_2d(0, 3, (32, 8, 1), 0);
        assert_eq!(c.grid_dim, (1, 3, 1));
        assert_eq!(blocks_for(1000, 32), 32);
        assert_eq!(blocks_for(0, 32), 0);
    }
}
