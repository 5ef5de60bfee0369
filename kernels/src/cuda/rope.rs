//! Rotary position embedding (`rope.cu`): x dense `[outer, t, heads, d]`,
//! the first `rotary` elements of each head rotated pair by pair with f32
//! tables `[t, rotary/2]`, the rest passed through; `inverse` rotates by
//! the negated angles (the backward).

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::for_elements;
use super::sources::ROPE;

/// The sizes of a call: x `[outer, t, heads, d]`, of which the first
/// `rotary` (even, ≤ d) elements of each head turn.
#[derive(Clone, Copy, Debug)]
pub struct RopeDims {
    pub outer: usize,
    pub t: usize,
    pub heads: usize,
    pub d: usize,
    pub rotary: usize,
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
    let half = s.rotary / 2;
    assert!(s.rotary % 2 == 0 && s.rotary <= s.d, "rope: rotary size {} of head size {}", s.rotary, s.d);
    assert!(x.len() >= n, "rope: buffer of {} for {s:?}", x.len());
    assert!(cos.len() >= s.t * half && sin.len() >= s.t * half, "rope: tables shorter than {}×{half}", s.t);
    // One thread per turning pair and per passed element: d − half per head.
    let items = n / s.d * (s.d - half);
    let (t, heads, d, half64, items64) = (s.t as i64, s.heads as i64, s.d as i64, half as i64, items as i64);
    let sign: f32 = if inverse { -1.0 } else { 1.0 };
    let name = format!("rope_{}", T::NAME);
    launch_kernel!(
        dev,
        ROPE,
        name,
        for_elements(items),
        [x, cos, sin, &t, &heads, &d, &half64, &sign, &items64, &mut y]
    )?;
    Ok(y)
}
