//! Causal attention as cuBLAS batched products around a fused masked
//! softmax (`attention.cu`). Buffers are dense `[heads, rows, d]` (heads =
//! batch × n_heads) and P is `[heads, tq, tk]`; the formulas are in the
//! .cu file's header and match `kernels::cpu::attention` step for step.

use cudarc::driver::CudaSlice;

use super::blas::{gemm_strided_batched, BlasType, MatrixBatch};
use super::device::CudaDevice;
use super::error::Result;
use super::launch::for_rows;
use super::sources::ATTENTION;

/// K (or V) read transposed: element (c, j) of Kᵀ is K[j][c].
fn transposed(rows: usize, d: usize) -> MatrixBatch {
    MatrixBatch { offset: 0, row_stride: 1, col_stride: d, batch_stride: rows * d }
}

/// P read transposed, for Pᵀ·dO and dSᵀ·Q.
fn transposed_square(t_rows: usize, t_cols: usize) -> MatrixBatch {
    MatrixBatch { offset: 0, row_stride: 1, col_stride: t_cols, batch_stride: t_rows * t_cols }
}

/// Output and attention weights.
pub struct AttentionForward<T> {
    pub out: CudaSlice<T>,
    pub probs: CudaSlice<T>,
}

pub struct AttentionBackward<T> {
    pub dq: CudaSlice<T>,
    pub dk: CudaSlice<T>,
    pub dv: CudaSlice<T>,
}

/// 1/√d, computed in f64 and rounded, as the CPU does.
pub fn attention_scale(d: usize) -> f32 {
    (1.0 / (d as f64).sqrt()) as f32
}

#[allow(clippy::too_many_arguments)]
pub fn forward<T: BlasType>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
) -> Result<AttentionForward<T>> {
    assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
    let mut probs = dev.alloc::<T>(heads * tq * tk)?;
    let mut out = dev.alloc::<T>(heads * tq * d)?;
    if heads * tq == 0 {
        return Ok(AttentionForward { out, probs });
    }
    // S = Q·Kᵀ into the probability buffer.
    gemm_strided_batched(
        dev,
        heads,
        tq,
        d,
        tk,
        q,
        MatrixBatch::dense(tq, d, 0),
        k,
        transposed(tk, d),
        &mut probs,
        0,
        0.0,
    )?;
    let (tq64, tk64, scale) = (tq as i64, tk as i64, attention_scale(d));
    let name = format!("causal_softmax_{}", T::NAME);
    launch_kernel!(dev, ATTENTION, name, for_rows(heads * tq, tk), [&mut probs, &tq64, &tk64, &scale])?;
    // O = P·V.
    gemm_strided_batched(
        dev,
        heads,
        tq,
        tk,
        d,
        &probs,
        MatrixBatch::dense(tq, tk, 0),
        v,
        MatrixBatch::dense(tk, d, 0),
        &mut out,
        0,
        0.0,
    )?;
    Ok(AttentionForward { out, probs })
}

/// Gradients for tq = tk = t from dO and the forward's P.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: BlasType>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    probs: &CudaSlice<T>,
    d_out: &CudaSlice<T>,
    heads: usize,
    t: usize,
    d: usize,
) -> Result<AttentionBackward<T>> {
    let n = heads * t * d;
    let (mut dq, mut dk, mut dv) = (dev.alloc::<T>(n)?, dev.alloc::<T>(n)?, dev.alloc::<T>(n)?);
    if n == 0 {
        return Ok(AttentionBackward { dq, dk, dv });
    }
    let dense_td = MatrixBatch::dense(t, d, 0);
    let dense_tt = MatrixBatch::dense(t, t, 0);
    // dV = Pᵀ·dO
    gemm_strided_batched(dev, heads, t, t, d, probs, transposed_square(t, t), d_out, dense_td, &mut dv, 0, 0.0)?;
    // dP = dO·Vᵀ, then dS in place.
    let mut ds = dev.alloc::<T>(heads * t * t)?;
    gemm_strided_batched(dev, heads, t, d, t, d_out, dense_td, v, transposed(t, d), &mut ds, 0, 0.0)?;
    let (t64, scale) = (t as i64, attention_scale(d));
    let name = format!("causal_softmax_backward_{}", T::NAME);
    launch_kernel!(dev, ATTENTION, name, for_rows(heads * t, t), [probs, &mut ds, &t64, &scale])?;
    // dQ = dS·K, dK = dSᵀ·Q (the scale is already in dS).
    gemm_strided_batched(dev, heads, t, t, d, &ds, dense_tt, k, dense_td, &mut dq, 0, 0.0)?;
    gemm_strided_batched(dev, heads, t, t, d, &ds, transposed_square(t, t), q, dense_td, &mut dk, 0, 0.0)?;
    Ok(AttentionBackward { dq, dk, dv })
}
