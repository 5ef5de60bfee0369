//! Dtype-blind copies (`copy.cu`): strided views into dense buffers, dense
//! buffers into windows of larger ones, fills, and tril/triu.
//!
//! Copies only move bits, so the kernel is picked by element width; an f16
//! and a bf16 tensor share `copy_b16`. The Rust side reinterprets nothing:
//! the buffers keep their types and only the kernel name changes.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::{width_name, DeviceElement};
use super::error::Result;
use super::launch::for_elements;
use super::layout::DeviceLayout;
use super::sources::COPY;

/// `dst[dst_layout(i)] = src[src_layout(i)]` for every element of the
/// layouts (which must name the same number of elements).
pub fn copy_strided<T: DeviceElement>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    src_layout: &DeviceLayout,
    dst: &mut CudaSlice<T>,
    dst_layout: &DeviceLayout,
) -> Result<()> {
    let n = src_layout.numel();
    assert_eq!(n, dst_layout.numel(), "copy: {n} source elements for {} destination elements", dst_layout.numel());
    if n == 0 {
        return Ok(());
    }
    src_layout.check_within(src.len(), "copy source")?;
    dst_layout.check_within(dst.len(), "copy destination")?;
    let count = n as i64;
    let name = format!("copy_{}", width_name(T::WIDTH));
    launch_kernel!(dev, COPY, name, for_elements(n), [src, src_layout, dst, dst_layout, &count])
}

/// A dense copy of a strided view.
pub fn contiguous<T: DeviceElement>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    layout: &DeviceLayout,
) -> Result<CudaSlice<T>> {
    let n = layout.numel();
    let mut out = dev.alloc::<T>(n)?;
    copy_strided(dev, src, layout, &mut out, &DeviceLayout::dense(n, 0))?;
    Ok(out)
}

/// A new buffer of `n` copies of `value`.
pub fn filled<T: DeviceElement>(dev: &CudaDevice, n: usize, value: T) -> Result<CudaSlice<T>> {
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    let count = n as i64;
    let name = format!("fill_{}", width_name(T::WIDTH));
    launch_kernel!(dev, COPY, name, for_elements(n), [&mut out, &value, &count])?;
    Ok(out)
}

/// torch.tril (`lower`) or torch.triu of a dense `[.., rows, cols]` buffer
/// of `n` elements.
pub fn triangle<T: DeviceElement>(
    dev: &CudaDevice,
    src: &CudaSlice<T>,
    n: usize,
    rows: usize,
    cols: usize,
    diagonal: isize,
    lower: bool,
) -> Result<CudaSlice<T>> {
    let mut out = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(out);
    }
    assert!(src.len() >= n, "triangle: buffer of {} for {n} elements", src.len());
    let (rows, cols, diagonal, lower, count) = (rows as i64, cols as i64, diagonal as i64, lower as i32, n as i64);
    let name = format!("triangle_{}", width_name(T::WIDTH));
    launch_kernel!(dev, COPY, name, for_elements(n), [src, &mut out, &rows, &cols, &diagonal, &lower, &count])?;
    Ok(out)
}
