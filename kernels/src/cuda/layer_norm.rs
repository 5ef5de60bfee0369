//! Layer norm over the last dimension (`layer_norm.cu`): forward, and a
//! backward whose parameter gradients are reduced in fixed chunks.

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::{blocks_for, for_elements, for_rows, grid_2d, BLOCK};
use super::sources::LAYER_NORM;

/// What the forward returns: y and the per-row statistics (f32).
pub struct LayerNormForward<T> {
    pub y: CudaSlice<T>,
    pub mean: CudaSlice<f32>,
    pub rstd: CudaSlice<f32>,
}

/// What the backward returns.
pub struct LayerNormBackward<T> {
    pub dx: CudaSlice<T>,
    pub dgamma: CudaSlice<T>,
    pub dbeta: CudaSlice<T>,
}

/// How many row chunks the parameter-gradient pass uses for `rows` rows of
/// `n` columns: aim for ~64K threads (columns × chunks), chunks of at least
/// 16 rows. Returns (chunks, rows per chunk); no chunk is empty.
pub fn param_chunks(rows: usize, n: usize) -> (usize, usize) {
    let wanted = (1usize << 16).div_ceil(n.max(1));
    let most = rows.div_ceil(16).max(1);
    let chunks = wanted.clamp(1, most).min(super::launch::MAX_GRID_YZ as usize);
    let per = rows.div_ceil(chunks).max(1);
    (rows.div_ceil(per).max(1), per)
}

/// The pointer argument for an absent gamma or beta.
const NULL: u64 = 0;

pub fn forward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    gamma: Option<&CudaSlice<T>>,
    beta: Option<&CudaSlice<T>>,
    eps: f64,
    rows: usize,
    n: usize,
) -> Result<LayerNormForward<T>> {
    let mut y = dev.alloc::<T>(rows * n)?;
    let mut mean = dev.alloc::<f32>(rows)?;
    let mut rstd = dev.alloc::<f32>(rows)?;
    if rows * n > 0 {
        assert!(x.len() >= rows * n, "layer_norm: buffer of {} for {rows}×{n}", x.len());
        assert!(
            gamma.is_none_or(|g| g.len() >= n) && beta.is_none_or(|b| b.len() >= n),
            "layer_norm: short gamma/beta"
        );
        let (eps, n64) = (eps as f32, n as i64);
        let name = format!("layer_norm_forward_{}", T::NAME);
        let function = dev.function(&LAYER_NORM, &name)?;
        let mut b = dev.stream().launch_builder(&function);
        b.arg(x);
        match gamma {
            Some(g) => b.arg(g),
            None => b.arg(&NULL),
        };
        match beta {
            Some(g) => b.arg(g),
            None => b.arg(&NULL),
        };
        b.arg(&eps).arg(&n64).arg(&mut y).arg(&mut mean).arg(&mut rstd);
        // SAFETY: arguments match `layer_norm_forward_<T>` in order and type;
        // x holds rows×n elements, gamma/beta n (or are null), the outputs
        // rows×n and rows.
        unsafe { b.launch(for_rows(rows, n)) }?;
    }
    Ok(LayerNormForward { y, mean, rstd })
}

#[allow(clippy::too_many_arguments)]
pub fn backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    gamma: Option<&CudaSlice<T>>,
    mean: &CudaSlice<f32>,
    rstd: &CudaSlice<f32>,
    dy: &CudaSlice<T>,
    rows: usize,
    n: usize,
) -> Result<LayerNormBackward<T>> {
    let mut dx = dev.alloc::<T>(rows * n)?;
    let mut dgamma = dev.alloc_zeros::<T>(n)?;
    let mut dbeta = dev.alloc_zeros::<T>(n)?;
    if rows * n == 0 {
        return Ok(LayerNormBackward { dx, dgamma, dbeta });
    }
    assert!(x.len() >= rows * n && dy.len() >= rows * n, "layer_norm backward: buffers shorter than {rows}×{n}");
    assert!(mean.len() >= rows && rstd.len() >= rows, "layer_norm backward: statistics shorter than {rows}");
    assert!(gamma.is_none_or(|g| g.len() >= n), "layer_norm backward: gamma shorter than {n}");
    let n64 = n as i64;
    {
        let name = format!("layer_norm_backward_dx_{}", T::NAME);
        let function = dev.function(&LAYER_NORM, &name)?;
        let mut b = dev.stream().launch_builder(&function);
        b.arg(x);
        match gamma {
            Some(g) => b.arg(g),
            None => b.arg(&NULL),
        };
        b.arg(mean).arg(rstd).arg(dy).arg(&n64).arg(&mut dx);
        // SAFETY: arguments match `layer_norm_backward_dx_<T>`; sizes checked above.
        unsafe { b.launch(for_rows(rows, n)) }?;
    }
    let (chunks, per) = param_chunks(rows, n);
    let mut partial_gamma = dev.alloc::<f32>(chunks * n)?;
    let mut partial_beta = dev.alloc::<f32>(chunks * n)?;
    let (rows64, per64, chunks64) = (rows as i64, per as i64, chunks as i64);
    let name = format!("layer_norm_backward_params_partial_{}", T::NAME);
    let cfg = grid_2d(blocks_for(n, BLOCK as usize), chunks, (BLOCK, 1, 1), 0);
    launch_kernel!(
        dev,
        LAYER_NORM,
        name,
        cfg,
        [x, mean, rstd, dy, &rows64, &n64, &per64, &mut partial_gamma, &mut partial_beta]
    )?;
    let name = format!("layer_norm_backward_params_final_{}", T::NAME);
    launch_kernel!(
        dev,
        LAYER_NORM,
        name,
        for_elements(n),
        [&partial_gamma, &partial_beta, &chunks64, &n64, &mut dgamma, &mut dbeta]
    )?;
    Ok(LayerNormBackward { dx, dgamma, dbeta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_chunks_cover_every_row_once() {
        for &(rows, n) in &[(8192usize, 768usize), (1, 4), (17, 1), (100_000, 3), (4096, 1600)] {
            let (chunks, per) = param_chunks(rows, n);
            assert!(chunks * per >= rows && (chunks - 1) * per < rows, "{rows}×{n}: {chunks}×{per}");
        }
        let (chunks, per) = param_chunks(8192, 768);
        assert!(chunks > 1 && per >= 16);
    }
}
