//! Softmax and log-softmax over the rows of a dense `[rows, n]` buffer
//! (`softmax.cu`), one block per row.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::for_rows;
use super::sources::SOFTMAX;

/// softmax (or log-softmax with `log`) of each row.
pub fn softmax_forward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    rows: usize,
    n: usize,
    log: bool,
) -> Result<CudaSlice<T>> {
    let mut y = dev.alloc::<T>(rows * n)?;
    if rows * n == 0 {
        return Ok(y);
    }
    assert!(x.len() >= rows * n, "softmax: buffer of {} for {rows}×{n}", x.len());
    let (n64, log) = (n as i64, log as i32);
    let name = format!("softmax_forward_{}", T::NAME);
    launch_kernel!(dev, SOFTMAX, name, for_rows(rows, n), [x, &mut y, &n64, &log])?;
    Ok(y)
}

/// dx from the forward's output y and dy (see softmax.cu for the formulas).
pub fn softmax_backward<T: CudaFloat>(
    dev: &CudaDevice,
    y: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    rows: usize,
    n: usize,
    log: bool,
) -> Result<CudaSlice<T>> {
    let mut dx = dev.alloc::<T>(rows * n)?;
    if rows * n == 0 {
        return Ok(dx);
    }
    assert!(y.len() >= rows * n && dy.len() >= rows * n, "softmax backward: buffers shorter than {rows}×{n}");
    let (n64, log) = (n as i64, log as i32);
    let name = format!("softmax_backward_{}", T::NAME);
    launch_kernel!(dev, SOFTMAX, name, for_rows(rows, n), [y, dy, &mut dx, &n64, &log])?;
    Ok(dx)
}
