//! Indexing kernels (`index.cu`): row selection (embedding lookup), its
//! deterministic adjoint, gather and scatter-add.
//!
//! The adjoint of a row selection needs the positions grouped by id;
//! [`group_by_row`] does that on the host (a counting sort, O(ids + rows)),
//! which is cheap because the ids come from the host in the first place.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::DeviceElement;
use super::error::Result;
use super::launch::{for_elements, grid_2d};
use super::layout::DeviceLayout;
use super::sources::INDEX;

/// Positions grouped by the row they name, for `index_add_rows`.
#[derive(Debug, PartialEq, Eq)]
pub struct RowGroups {
    /// The distinct rows, increasing.
    pub rows: Vec<i64>,
    /// `positions[start[g]..start[g+1]]` are group g's positions.
    pub start: Vec<i64>,
    /// Positions k (indices into `ids`), increasing within each group.
    pub positions: Vec<i64>,
}

/// Groups `k = 0..ids.len()` by `ids[k]` (each in `0..num_rows`).
pub fn group_by_row(ids: &[i64], num_rows: usize) -> RowGroups {
    let mut counts = vec![0usize; num_rows];
    for &id in ids {
        counts[id as usize] += 1;
    }
    let mut rows = Vec::new();
    let mut start = vec![0i64];
    let mut first = vec![0usize; num_rows];
    for (row, &c) in counts.iter().enumerate() {
        if c > 0 {
            first[row] = *start.last().unwrap() as usize;
            rows.push(row as i64);
            start.push(start.last().unwrap() + c as i64);
        }
    }
    let mut positions = vec![0i64; ids.len()];
    let mut next = first;
    for (k, &id) in ids.iter().enumerate() {
        positions[next[id as usize]] = k as i64;
        next[id as usize] += 1;
    }
    RowGroups { rows, start, positions }
}

/// `out[i, :] = src[ids[i], :]` for a dense `[src_rows, width]` src; ids
/// must lie in `0..src_rows` (checked by the caller on the host).
pub fn select_rows<T: DeviceElement>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    ids: &CudaSlice<i64>,
    count: usize,
    width: usize,
) -> Result<CudaSlice<T>> {
    let n = count * width;
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    assert!(ids.len() >= count, "select_rows: {} ids for {count} rows", ids.len());
    let (w, n64) = (width as i64, n as i64);
    let name = format!("select_rows_{}", T::NAME);
    launch_kernel!(dev, INDEX, name, for_elements(n), [src, ids, &w, &mut out, &n64])?;
    Ok(out)
}

/// `out[v, :] += Σ src[k, :]` over the positions grouped under v, in place
/// on a dense `[rows, width]` buffer.
pub fn index_add_rows<T: DeviceElement>(
    dev: &CudaDevice,
    out: &mut CudaSlice<T>,
    src: &CudaSlice<T>,
    width: usize,
    groups: &RowGroups,
) -> Result<()> {
    if groups.rows.is_empty() || width == 0 {
        return Ok(());
    }
    let rows = dev.upload(&groups.rows)?;
    let start = dev.upload(&groups.start)?;
    let positions = dev.upload(&groups.positions)?;
    let w = width as i64;
    let threads = super::launch::row_threads(width).min(256);
    let cfg = grid_2d(groups.rows.len(), 1, (threads, 1, 1), 0);
    let name = format!("index_add_rows_{}", T::NAME);
    launch_kernel!(dev, INDEX, name, cfg, [out, src, &w, &rows, &start, &positions])
}

/// `out[p] = x[walk(p) + idx[p] · stride_d]` (torch.gather) for the `n`
/// positions of a dense index; indices checked by the caller.
pub fn gather<T: DeviceElement>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    walk: &DeviceLayout,
    idx: &CudaSlice<i64>,
    stride_d: usize,
    n: usize,
) -> Result<CudaSlice<T>> {
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    let (s, n64) = (stride_d as i64, n as i64);
    let name = format!("gather_{}", T::NAME);
    launch_kernel!(dev, INDEX, name, for_elements(n), [x, walk, idx, &s, &mut out, &n64])?;
    Ok(out)
}

/// torch.scatter_add in place on a dense output of shape `out_dims`, from
/// a dense index and source of shape `index_dims`, along `dim`.
pub fn scatter_add<T: DeviceElement>(
    dev: &CudaDevice,
    out: &mut CudaSlice<T>,
    out_dims: &[usize],
    idx: &CudaSlice<i64>,
    src: &CudaSlice<T>,
    index_dims: &[usize],
    dim: usize,
) -> Result<()> {
    let n: usize = out_dims.iter().product();
    if n == 0 || index_dims.iter().product::<usize>() == 0 {
        return Ok(());
    }
    let out_shape = DeviceLayout::exact(out_dims, &vec![0; out_dims.len()], 0)?;
    let index_shape = DeviceLayout::exact(index_dims, &vec![0; index_dims.len()], 0)?;
    let (d, n64) = (dim as i32, n as i64);
    let name = format!("scatter_add_{}", T::NAME);
    launch_kernel!(dev, INDEX, name, for_elements(n), [out, &out_shape, idx, src, &index_shape, &d, &n64])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_list_each_rows_positions_in_order() {
        let g = group_by_row(&[3, 0, 3, 1, 3], 5);
        assert_eq!(g.rows, vec![0, 1, 3]);
        assert_eq!(g.start, vec![0, 1, 2, 5]);
        assert_eq!(g.positions, vec![1, 3, 0, 2, 4]);
        let empty = group_by_row(&[], 4);
        assert_eq!((empty.rows.len(), empty.start, empty.positions.len()), (0, vec![0], 0));
    }
}
