//! Reductions (`reduce.cu`): along one dimension, and of a whole tensor.
//!
//! The tensor crate describes a reduction by `outer`, a layout over the
//! output's shape whose strides are the input's (so it yields each row's
//! starting position), plus the row length `n` and the stride between a
//! row's elements. A stride of 1 runs the block-per-row kernel; any other
//! stride runs the column kernel, in chunks sized by [`column_chunks`].

use cudarc::driver::{CudaSlice, DeviceRepr};

use super::device::CudaDevice;
use super::dtype::DeviceElement;
use super::error::{CudaError, Result};
use super::launch::{blocks_for, for_elements, for_rows, grid_2d, BLOCK};
use super::layout::DeviceLayout;
use super::sources::REDUCE;

/// The reductions; numbers match `reduce.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum = 0,
    Mean = 1,
    Max = 2,
    Min = 3,
    ArgMax = 4,
    ArgMin = 5,
    Var = 6,
    VarUnbiased = 7,
}

impl ReduceOp {
    pub fn gives_indices(self) -> bool {
        matches!(self, ReduceOp::ArgMax | ReduceOp::ArgMin)
    }
}

/// Mirrors `struct Acc` in reduce.cu (a partial result of the column pass).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Partial {
    pub value: f64,
    pub index: i64,
}
// SAFETY: two plain 8-byte fields, the C struct's layout.
unsafe impl DeviceRepr for Partial {}

/// Threads the column kernel aims for: enough to fill a large GPU.
pub const COLUMN_TARGET_THREADS: usize = 1 << 16;
/// The shortest chunk worth its own partial.
pub const MIN_CHUNK: usize = 32;

/// How many chunks to cut columns of length `n` into when there are
/// `outputs` columns: one when the columns alone give enough threads,
/// otherwise enough chunks to reach [`COLUMN_TARGET_THREADS`], never
/// chunks shorter than [`MIN_CHUNK`], never more than the y grid allows.
/// Returns (chunks, rows per chunk).
pub fn column_chunks(outputs: usize, n: usize) -> (usize, usize) {
    let wanted = COLUMN_TARGET_THREADS.div_ceil(outputs.max(1));
    let most = n.div_ceil(MIN_CHUNK).max(1);
    let chunks = wanted.clamp(1, most).min(super::launch::MAX_GRID_YZ as usize);
    let per = n.div_ceil(chunks).max(1);
    // Recount so no chunk is empty.
    (n.div_ceil(per).max(1), per)
}

/// Blocks for a whole-tensor sum (`SUM_ALL_BLOCKS` in reduce.cu caps it).
pub const SUM_ALL_BLOCKS: usize = 256;

pub fn sum_all_blocks(n: usize) -> usize {
    blocks_for(n, BLOCK as usize * 4).clamp(1, SUM_ALL_BLOCKS)
}

/// Reduces rows of `n` elements (`n > 0`), one output per position of
/// `outer`. Value ops write T; arg ops write int64 indices.
pub fn reduce<T: DeviceElement>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    outer: &DeviceLayout,
    n: usize,
    stride: usize,
    op: ReduceOp,
) -> Result<ReduceOutput<T>> {
    let outputs = outer.numel();
    if n == 0 {
        return Err(CudaError::Unsupported(format!("{op:?}: reducing an empty dimension")));
    }
    if op == ReduceOp::VarUnbiased && n < 2 {
        return Err(CudaError::Unsupported("unbiased variance of a single element".into()));
    }
    if outputs == 0 {
        return Ok(if op.gives_indices() {
            ReduceOutput::Indices(dev.alloc(0)?)
        } else {
            ReduceOutput::Values(dev.alloc(0)?)
        });
    }
    // The farthest element read: the last row's start plus (n-1) strides.
    let last = outer.max_position() + (n as i64 - 1) * stride as i64;
    if last as u64 >= x.len() as u64 {
        return Err(CudaError::Unsupported(format!("reduce: reads element {last} of a buffer of {}", x.len())));
    }
    let (n64, stride64, code) = (n as i64, stride as i64, op as i32);
    let use_rows = stride == 1 || matches!(op, ReduceOp::Var | ReduceOp::VarUnbiased);
    if use_rows {
        let cfg = for_rows(outputs, n);
        return if op.gives_indices() {
            let mut out = dev.alloc::<i64>(outputs)?;
            let name = format!("arg_reduce_rows_{}", T::NAME);
            launch_kernel!(dev, REDUCE, name, cfg, [x, outer, &n64, &stride64, &mut out, &code])?;
            Ok(ReduceOutput::Indices(out))
        } else {
            let mut out = dev.alloc::<T>(outputs)?;
            let name = format!("reduce_rows_{}", T::NAME);
            launch_kernel!(dev, REDUCE, name, cfg, [x, outer, &n64, &stride64, &mut out, &code])?;
            Ok(ReduceOutput::Values(out))
        };
    }
    let (chunks, per) = column_chunks(outputs, n);
    let mut partial = dev.alloc::<Partial>(chunks * outputs)?;
    let (outputs64, chunks64, per64) = (outputs as i64, chunks as i64, per as i64);
    let cfg = grid_2d(blocks_for(outputs, BLOCK as usize), chunks, (BLOCK, 1, 1), 0);
    let name = format!("reduce_cols_partial_{}", T::NAME);
    launch_kernel!(dev, REDUCE, name, cfg, [x, outer, &outputs64, &n64, &stride64, &per64, &code, &mut partial])?;
    let name = format!("reduce_cols_final_{}", T::NAME);
    let null: u64 = 0;
    if op.gives_indices() {
        let mut out = dev.alloc::<i64>(outputs)?;
        launch_kernel!(
            dev,
            REDUCE,
            name,
            for_elements(outputs),
            [&partial, &outputs64, &chunks64, &n64, &code, &null, &mut out]
        )?;
        Ok(ReduceOutput::Indices(out))
    } else {
        let mut out = dev.alloc::<T>(outputs)?;
        launch_kernel!(
            dev,
            REDUCE,
            name,
            for_elements(outputs),
            [&partial, &outputs64, &chunks64, &n64, &code, &mut out, &null]
        )?;
        Ok(ReduceOutput::Values(out))
    }
}

/// What a reduction produced.
pub enum ReduceOutput<T> {
    Values(CudaSlice<T>),
    Indices(CudaSlice<i64>),
}

/// Σ x (or Σ x² with `squares`) over a strided view, times `scale`, into a
/// one-element buffer of type `O` (T itself, or f64 for a precise host
/// read-back). Fixed partitioning: the same input gives the same bits.
pub fn sum_all<T: DeviceElement, O: DeviceElement>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    layout: &DeviceLayout,
    squares: bool,
    scale: f64,
) -> Result<CudaSlice<O>> {
    let n = layout.numel();
    let mut out = dev.alloc::<O>(1)?;
    layout.check_within(x.len(), "sum_all")?;
    let blocks = sum_all_blocks(n);
    let mut partial = dev.alloc_zeros::<f64>(blocks)?;
    if n > 0 {
        let (n64, sq) = (n as i64, squares as i32);
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: (blocks as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        let name = format!("sum_all_partial_{}", T::NAME);
        launch_kernel!(dev, REDUCE, name, cfg, [x, layout, &n64, &sq, &mut partial])?;
    }
    let count = blocks as i32;
    let cfg = cudarc::driver::LaunchConfig { grid_dim: (1, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 };
    let name = format!("sum_all_final_{}", O::NAME);
    launch_kernel!(dev, REDUCE, name, cfg, [&partial, &count, &scale, &mut out])?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_chunks_cover_every_row_once() {
        for &(outputs, n) in &[(768usize, 8192usize), (1, 1), (1, 1_000_000), (100_000, 10), (3, 33), (50_257, 4)] {
            let (chunks, per) = column_chunks(outputs, n);
            assert!(chunks >= 1 && per >= 1);
            assert!(chunks * per >= n, "{outputs}×{n}: {chunks}×{per} misses rows");
            assert!((chunks - 1) * per < n, "{outputs}×{n}: chunk {} would be empty", chunks - 1);
            assert!(chunks as u64 <= super::super::launch::MAX_GRID_YZ);
        }
        // Plenty of columns: no chunking at all.
        assert_eq!(column_chunks(100_000, 10).0, 1);
        // A bias gradient of GPT-2 small: 768 columns of 8192 rows.
        let (chunks, per) = column_chunks(768, 8192);
        assert!(chunks * 768 >= COLUMN_TARGET_THREADS / 2 && per >= MIN_CHUNK);
    }

    #[test]
    fn sum_all_uses_a_bounded_fixed_grid() {
        assert_eq!(sum_all_blocks(0), 1);
        assert_eq!(sum_all_blocks(1), 1);
        assert_eq!(sum_all_blocks(1024 * 300), SUM_ALL_BLOCKS);
        assert_eq!(sum_all_blocks(2049), 3);
    }

    #[test]
    fn the_partial_struct_matches_the_c_layout() {
        assert_eq!(std::mem::size_of::<Partial>(), 16);
    }
}
