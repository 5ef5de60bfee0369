//! Rotary position embedding (`rope.cu`): x dense `[outer, t, heads, d]`
//! rotated pair by pair with f32 tables `[t, d/2]`; `inverse` rotates by
//! the negated angles (the backward).

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::for_elements;
use super::sources::ROPE;

/// The sizes of a call: x `[outer, t, heads, d]`, d even.
#[derive(Clone, Copy, Debug)]
pub struct RopeDims {
    pub outer: usize,
    pub t: usize,
    pub heads: usize,
    pub d: usize,
}

pub fn rope<T: CudaFloat>(
    dev: &CudaDevice,
    x: &CudaSlice<T>,
    cos: &CudaSlice<f32>,
    sin: &CudaSlice<f32>,
    s: RopeDims,
    inverse: bool,
) -> Result<CudaSlice<T>> {
    let n = s.outer * s.t * s.heads * s.d;
    let mut y = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(y);
    }
    let half = s.d / 2;
    assert!(s.d % 2 == 0, "rope: odd head size {}", s.d);
    assert!(x.len() >= n, "rope: buffer of {} for {s:?}", x.len());
    assert!(cos.len() >= s.t * half && sin.len() >= s.t * half, "rope: tables shorter than {}×{half}", s.t);
    let (t, heads, half64, pairs) = (s.t as i64, s.heads as i64, half as i64, (n / 2) as i64);
    let sign: f32 = if inverse { -1.0 } else { 1.0 };
    let name = format!("rope_{}", T::NAME);
    launch_kernel!(dev, ROPE, name, for_elements(n / 2), [x, cos, sin, &t, &heads, &half64, &sign, &pairs, &mut y])?;
    Ok(y)
}
