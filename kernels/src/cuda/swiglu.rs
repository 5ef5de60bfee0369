//! SiLU's backward and the fused SwiGLU (`swiglu.cu`) on dense buffers of
//! `n` elements. (SiLU's forward is `UnaryCode::Silu` of `elementwise`.)

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::for_elements;
use super::sources::SWIGLU;

/// dx = dy · silu'(x).
pub fn silu_backward<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    let mut dx = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(dx);
    }
    assert!(x.len() >= n && dy.len() >= n, "silu backward: buffers shorter than {n}");
    let count = n as i64;
    let name = format!("silu_backward_{}", T::NAME);
    launch_kernel!(dev, SWIGLU, name, for_elements(n), [x, dy, &mut dx, &count])?;
    Ok(dx)
}

/// y = silu(gate) · up.
pub fn swiglu_forward<T: CudaFloat>(
    dev: &CudaDevice,
    gate: &CudaSlice<T>,
    up: &CudaSlice<T>,
    n: usize,
) -> Result<CudaSlice<T>> {
    let mut y = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(y);
    }
    assert!(gate.len() >= n && up.len() >= n, "swiglu: buffers shorter than {n}");
    let count = n as i64;
    let name = format!("swiglu_forward_{}", T::NAME);
    launch_kernel!(dev, SWIGLU, name, for_elements(n), [gate, up, &mut y, &count])?;
    Ok(y)
}

/// (dgate, dup) = (dy · up · silu'(gate), dy · silu(gate)).
pub fn swiglu_backward<T: CudaFloat>(
    dev: &CudaDevice,
    gate: &CudaSlice<T>,
    up: &CudaSlice<T>,
    dy: &CudaSlice<T>,
    n: usize,
) -> Result<(CudaSlice<T>, CudaSlice<T>)> {
    let (mut dgate, mut dup) = (dev.alloc::<T>(n)?, dev.alloc::<T>(n)?);
    if n == 0 {
        return Ok((dgate, dup));
    }
    assert!(gate.len() >= n && up.len() >= n && dy.len() >= n, "swiglu backward: buffers shorter than {n}");
    let count = n as i64;
    let name = format!("swiglu_backward_{}", T::NAME);
    launch_kernel!(dev, SWIGLU, name, for_elements(n), [gate, up, dy, &mut dgate, &mut dup, &count])?;
    Ok((dgate, dup))
}
