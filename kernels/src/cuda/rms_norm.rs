//! RMSNorm over the last dimension (`rms_norm.cu`): forward, and a backward
//! whose weight gradient is reduced in fixed chunks (as layer norm's).

use cudarc::driver::{CudaSlice, PushKernelArg};

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::{blocks_for, for_elements, for_rows, grid_2d, BLOCK};
use super::layer_norm::param_chunks;
use super::sources::RMS_NORM;

/// What the forward returns: y and the per-row rstd (f32).
pub struct RmsNormForward<T> {
    pub y: CudaSlice<T>,
    pub rstd: CudaSlice<f32>,
}

/// The pointer argument for an absent weight.
const NULL: u64 = 0;

pub fn forward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    weight: Option<&CudaSlice<T>>,
    eps: f64,
    rows: usize,
    n: usize,
) -> Result<RmsNormForward<T>> {
    let mut y = dev.alloc::<T>(rows * n)?;
    let mut rstd = dev.alloc::<f32>(rows)?;
    if rows * n > 0 {
        assert!(x.len() >= rows * n, "rms_norm: buffer of {} for {rows}×{n}", x.len());
        assert!(weight.is_none_or(|w| w.len() >= n), "rms_norm: weight shorter than {n}");
        let (eps, n64) = (eps as f32, n as i64);
        let name = format!("rms_norm_forward_{}", T::NAME);
        let function = dev.function(&RMS_NORM, &name)?;
        let mut b = dev.stream().launch_builder(&function);
        b.arg(x);
        match weight {
            Some(w) => b.arg(w),
            None => b.arg(&NULL),
        };
        b.arg(&eps).arg(&n64).arg(&mut y).arg(&mut rstd);
        // SAFETY: arguments match `rms_norm_forward_<T>` in order and type;
        // x holds rows×n elements, the weight n (or is null), the outputs
        // rows×n and rows.
        unsafe { b.launch(for_rows(rows, n)) }?;
    }
    Ok(RmsNormForward { y, rstd })
}

/// dx `[rows, n]` and dw `[n]` (zeros when there is no weight).
#[allow(clippy::too_many_arguments)]
pub fn backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    weight: Option<&CudaSlice<T>>,
    rstd: &CudaSlice<f32>,
    dy: &CudaSlice<T>,
    rows: usize,
    n: usize,
) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
    let mut dx = dev.alloc::<T>(rows * n)?;
    let mut dw = dev.alloc_zeros::<T>(n)?;
    if rows * n == 0 {
        return Ok((dx, dw));
    }
    assert!(x.len() >= rows * n && dy.len() >= rows * n, "rms_norm backward: buffers shorter than {rows}×{n}");
    assert!(rstd.len() >= rows, "rms_norm backward: rstd shorter than {rows}");
    assert!(weight.is_none_or(|w| w.len() >= n), "rms_norm backward: weight shorter than {n}");
    let n64 = n as i64;
    {
        let name = format!("rms_norm_backward_dx_{}", T::NAME);
        let function = dev.function(&RMS_NORM, &name)?;
        let mut b = dev.stream().launch_builder(&function);
        b.arg(x);
        match weight {
            Some(w) => b.arg(w),
            None => b.arg(&NULL),
        };
        b.arg(rstd).arg(dy).arg(&n64).arg(&mut dx);
        // SAFETY: arguments match `rms_norm_backward_dx_<T>`; sizes checked above.
        unsafe { b.launch(for_rows(rows, n)) }?;
    }
    let (chunks, per) = param_chunks(rows, n);
    let mut partial = dev.alloc::<f32>(chunks * n)?;
    let (rows64, per64, chunks64) = (rows as i64, per as i64, chunks as i64);
    let name = format!("rms_norm_backward_weight_partial_{}", T::NAME);
    let cfg = grid_2d(blocks_for(n, BLOCK as usize), chunks, (BLOCK, 1, 1), 0);
    launch_kernel!(dev, RMS_NORM, name, cfg, [x, rstd, dy, &rows64, &n64, &per64, &mut partial])?;
    let name = format!("rms_norm_backward_weight_final_{}", T::NAME);
    launch_kernel!(dev, RMS_NORM, name, for_elements(n), [&partial, &chunks64, &n64, &mut dw])?;
    Ok((dx, dw))
}
