//! Dtype conversions (`cast.cu`): any strided view of one dtype into a
//! dense buffer of another, with the CPU's rounding and saturation rules.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::DeviceElement;
use super::error::Result;
use super::launch::for_elements;
use super::layout::DeviceLayout;
use super::sources::CAST;

/// `y[i] = D(x[layout(i)])`, dense.
pub fn cast<S: DeviceElement, D: DeviceElement>(
    dev: &CudaDevice,
    x: &CudaSlice<S>,
    layout: &DeviceLayout,
) -> Result<CudaSlice<D>> {
    let n = layout.numel();
    let mut y = dev.alloc::<D>(n)?;
    if n == 0 {
        return Ok(y);
    }
    layout.check_within(x.len(), "cast")?;
    let count = n as i64;
    let name = format!("cast_{}_to_{}", S::NAME, D::NAME);
    launch_kernel!(dev, CAST, name, for_elements(n), [x, layout, &mut y, &count])?;
    Ok(y)
}
