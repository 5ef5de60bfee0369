//! Causal attention without the T×T matrix (`flash_attention.cu`).
//!
//! Same inputs and outputs as [`super::attention`], except that instead of
//! P the forward keeps the per-row logsumexp L `[heads, tq]` (f32), from
//! which the backward recomputes P tile by tile. Compiled for head sizes
//! in [`HEAD_DIMS`].

use cudarc::driver::CudaSlice;

use super::attention::attention_scale;
use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::{CudaError, Result};
use super::launch::{blocks_for, for_elements, grid_2d, MAX_GRID_YZ};
use super::sources::FLASH_ATTENTION;

/// Head sizes with a compiled kernel (GPT-2 uses 64).
pub const HEAD_DIMS: [usize; 3] = [32, 64, 128];
/// Query (or key) rows per block, one thread each (`BR` in the .cu file).
pub const ROWS_PER_BLOCK: usize = 64;

/// Grid for one thread per row: (row blocks, heads); errors beyond the
/// head count CUDA's y dimension allows or for an uncompiled head size.
pub fn grid(rows: usize, heads: usize, d: usize) -> Result<(usize, usize)> {
    if !HEAD_DIMS.contains(&d) {
        return Err(CudaError::Unsupported(format!("flash attention: head size {d} (compiled for {HEAD_DIMS:?})")));
    }
    if heads as u64 > MAX_GRID_YZ {
        return Err(CudaError::Unsupported(format!("flash attention: {heads} heads exceed the grid's y limit")));
    }
    Ok((blocks_for(rows, ROWS_PER_BLOCK).max(1), heads))
}

pub struct FlashForward<T> {
    pub out: CudaSlice<T>,
    pub lse: CudaSlice<f32>,
}

#[allow(clippy::too_many_arguments)]
pub fn forward<T: CudaFloat>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
) -> Result<FlashForward<T>> {
    assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
    let (gx, gy) = grid(tq, heads, d)?;
    let mut out = dev.alloc::<T>(heads * tq * d)?;
    let mut lse = dev.alloc::<f32>(heads * tq)?;
    if heads * tq == 0 {
        return Ok(FlashForward { out, lse });
    }
    assert!(
        q.len() >= heads * tq * d && k.len() >= heads * tk * d && v.len() >= heads * tk * d,
        "flash: short buffers"
    );
    let (tq64, tk64, scale) = (tq as i64, tk as i64, attention_scale(d));
    let cfg = grid_2d(gx, gy, (ROWS_PER_BLOCK as u32, 1, 1), 0);
    let name = format!("flash_forward_d{d}_{}", T::NAME);
    launch_kernel!(dev, FLASH_ATTENTION, name, cfg, [q, k, v, &mut out, &mut lse, &tq64, &tk64, &scale])?;
    Ok(FlashForward { out, lse })
}

/// dQ, dK, dV from dO, the forward's output and logsumexp.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: CudaFloat>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    out: &CudaSlice<T>,
    d_out: &CudaSlice<T>,
    lse: &CudaSlice<f32>,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
) -> Result<super::attention::AttentionBackward<T>> {
    let (qx, qy) = grid(tq, heads, d)?;
    let (kx, ky) = grid(tk, heads, d)?;
    let mut dq = dev.alloc::<T>(heads * tq * d)?;
    let mut dk = dev.alloc::<T>(heads * tk * d)?;
    let mut dv = dev.alloc::<T>(heads * tk * d)?;
    if heads * tq == 0 {
        return Ok(super::attention::AttentionBackward { dq, dk, dv });
    }
    assert!(
        out.len() >= heads * tq * d && d_out.len() >= heads * tq * d && lse.len() >= heads * tq,
        "flash: short buffers"
    );
    let rows = heads * tq;
    let mut delta = dev.alloc::<f32>(rows)?;
    let rows64 = rows as i64;
    let name = format!("flash_delta_d{d}_{}", T::NAME);
    launch_kernel!(dev, FLASH_ATTENTION, name, for_elements(rows), [out, d_out, &mut delta, &rows64])?;
    let (tq64, tk64, scale) = (tq as i64, tk as i64, attention_scale(d));
    let block = (ROWS_PER_BLOCK as u32, 1, 1);
    let name = format!("flash_backward_dq_d{d}_{}", T::NAME);
    launch_kernel!(
        dev,
        FLASH_ATTENTION,
        name,
        grid_2d(qx, qy, block, 0),
        [q, k, v, d_out, lse, &delta, &mut dq, &tq64, &tk64, &scale]
    )?;
    let name = format!("flash_backward_dkv_d{d}_{}", T::NAME);
    let (want_dk, want_dv) = (1i32, 0i32);
    launch_kernel!(
        dev,
        FLASH_ATTENTION,
        name,
        grid_2d(kx, ky, block, 0),
        [q, k, v, d_out, lse, &delta, &mut dk, &tq64, &tk64, &scale, &want_dk]
    )?;
    launch_kernel!(
        dev,
        FLASH_ATTENTION,
        name,
        grid_2d(kx, ky, block, 0),
        [q, k, v, d_out, lse, &delta, &mut dv, &tq64, &tk64, &scale, &want_dv]
    )?;
    Ok(super::attention::AttentionBackward { dq, dk, dv })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_every_row_and_refuse_unknown_head_sizes() {
        assert_eq!(grid(1024, 96, 64).unwrap(), (16, 96));
        assert_eq!(grid(1, 1, 32).unwrap(), (1, 1));
        assert_eq!(grid(65, 2, 128).unwrap(), (2, 2));
        assert!(grid(10, 2, 48).is_err());
        assert!(grid(10, 70_000, 64).is_err());
    }
}
