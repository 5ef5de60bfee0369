//! Fused softmax cross-entropy (`cross_entropy.cu`).
//!
//! The forward returns the summed loss and the number of counted rows as
//! host numbers (they are one read-back of two doubles, summed on the GPU
//! in a fixed order), plus the per-row logsumexp the backward reuses.

use cudarc::driver::CudaSlice;

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::{for_elements, for_rows};
use super::layout::DeviceLayout;
use super::reduce::sum_all;
use super::sources::CROSS_ENTROPY;

pub struct CrossEntropyForward {
    /// Σ loss over counted rows.
    pub total: f64,
    /// Rows whose target was not `ignore`.
    pub counted: usize,
    /// logsumexp of each row, f32.
    pub lse: CudaSlice<f32>,
}

/// Targets must already be checked to lie in `[0, classes)` or equal `ignore`.
pub fn forward<T: CudaFloat>(
    dev: &CudaDevice,
    logits: &CudaSlice<T>,
    targets: &CudaSlice<i64>,
    rows: usize,
    classes: usize,
    ignore: i64,
) -> Result<CrossEntropyForward> {
    let lse = dev.alloc::<f32>(rows)?;
    if rows == 0 {
        return Ok(CrossEntropyForward { total: 0.0, counted: 0, lse });
    }
    assert!(
        logits.len() >= rows * classes && targets.len() >= rows,
        "cross_entropy: buffers shorter than {rows}×{classes}"
    );
    let mut lse = lse;
    let mut row_loss = dev.alloc::<f64>(rows)?;
    let mut row_counted = dev.alloc::<f64>(rows)?;
    let v = classes as i64;
    let name = format!("cross_entropy_forward_{}", T::NAME);
    launch_kernel!(
        dev,
        CROSS_ENTROPY,
        name,
        for_rows(rows, classes),
        [logits, targets, &v, &ignore, &mut lse, &mut row_loss, &mut row_counted]
    )?;
    let dense = DeviceLayout::dense(rows, 0);
    let total = sum_all::<f64, f64>(dev, &row_loss, &dense, false, 1.0)?;
    let counted = sum_all::<f64, f64>(dev, &row_counted, &dense, false, 1.0)?;
    let total = dev.download(&total, 1)?[0];
    let counted = dev.download(&counted, 1)?[0];
    Ok(CrossEntropyForward { total, counted: counted as usize, lse })
}

/// dlogits = (softmax − onehot) · scale, zero on ignored rows.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: CudaFloat>(
    dev: &CudaDevice,
    logits: &CudaSlice<T>,
    targets: &CudaSlice<i64>,
    lse: &CudaSlice<f32>,
    rows: usize,
    classes: usize,
    ignore: i64,
    scale: f32,
) -> Result<CudaSlice<T>> {
    let n = rows * classes;
    let mut grad = dev.alloc::<T>(n)?;
    if n == 0 {
        return Ok(grad);
    }
    assert!(logits.len() >= n && targets.len() >= rows && lse.len() >= rows, "cross_entropy backward: short buffers");
    let (rows64, v) = (rows as i64, classes as i64);
    let name = format!("cross_entropy_backward_{}", T::NAME);
    launch_kernel!(
        dev,
        CROSS_ENTROPY,
        name,
        for_elements(n),
        [logits, targets, lse, &rows64, &v, &ignore, &scale, &mut grad]
    )?;
    Ok(grad)
}
