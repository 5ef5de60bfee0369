//! Causal attention as cuBLAS batched products around a fused masked
//! softmax (`attention.cu`). Buffers are dense `[heads, rows, d]` (heads =
//! batch × n_heads; K and V have heads / group of them) and P is `[heads,
//! tq, tk]`; the formulas are in the .cu file's header and match
//! `kernels::cpu::attention` step for step, grouped heads, sliding window
//! and soft-capped scores included (the backward of a cap recomputes
//! S = Q·Kᵀ with one more product, as the CPU kernel does).

use cudarc::driver::CudaSlice;

use crate::cpu::attention::AttentionDims;

use super::blas::{gemm_strided_batched, BlasType, MatrixBatch};
use super::device::CudaDevice;
use super::error::Result;
use super::launch::for_rows;
use super::sources::ATTENTION;

/// K (or V) read transposed: element (c, j) of Kᵀ is K[j][c].
fn transposed(rows: usize, d: usize) -> MatrixBatch {
    MatrixBatch { offset: 0, row_stride: 1, col_stride: d, batch_stride: rows * d }
}

/// P (`[t_rows, t_cols]` per batch) read transposed, for Pᵀ·dO and dSᵀ·Q.
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

/// Causal attention of dense q `[heads, tq, d]` and k, v `[kv heads, tk,
/// d]`: the output and P.
///
/// With grouped heads the products run per key/value head: the `group`
/// query heads that share it are consecutive, so their queries are one
/// `[group·tq, d]` matrix, and S, P and O of the whole group are one
/// product each (`[group·tq, tk]` is exactly those heads' P, in order).
pub fn forward<T: BlasType>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    dims: AttentionDims,
) -> Result<AttentionForward<T>> {
    let AttentionDims { heads, group, tq, tk, d, .. } = dims;
    assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
    let (kv_heads, rows) = (dims.kv_heads(), group * tq);
    let mut probs = dev.alloc::<T>(heads * tq * tk)?;
    let mut out = dev.alloc::<T>(heads * tq * d)?;
    if heads * tq == 0 {
        return Ok(AttentionForward { out, probs });
    }
    // S = Q·Kᵀ into the probability buffer.
    gemm_strided_batched(
        dev,
        kv_heads,
        rows,
        d,
        tk,
        q,
        MatrixBatch::dense(rows, d, 0),
        k,
        transposed(tk, d),
        &mut probs,
        0,
        0.0,
    )?;
    let (tq64, tk64, window64, scale, cap) =
        (tq as i64, tk as i64, window_arg(dims), attention_scale(d), cap_arg(dims));
    let name = format!("causal_softmax_{}", T::NAME);
    let cfg = for_rows(heads * tq, tk);
    launch_kernel!(dev, ATTENTION, name, cfg, [&mut probs, &tq64, &tk64, &window64, &scale, &cap])?;
    // O = P·V.
    gemm_strided_batched(
        dev,
        kv_heads,
        rows,
        tk,
        d,
        &probs,
        MatrixBatch::dense(rows, tk, 0),
        v,
        MatrixBatch::dense(tk, d, 0),
        &mut out,
        0,
        0.0,
    )?;
    Ok(AttentionForward { out, probs })
}

/// The window as the kernels take it: a key count, every key (tk) when
/// there is none. The bounds themselves are `kernels::cpu::attention::
/// CausalMask`'s, repeated in `attention.cu`.
fn window_arg(dims: AttentionDims) -> i64 {
    dims.window.unwrap_or(dims.tk).min(dims.tk) as i64
}

/// The soft-cap as the kernels take it: 0 for none (a cap is positive,
/// `AttentionDims::check`).
fn cap_arg(dims: AttentionDims) -> f32 {
    dims.softcap.unwrap_or(0.0) as f32
}

/// Gradients from dO and the forward's P, regrouped as the forward is, so
/// the products for dK and dV sum over the group's query heads.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: BlasType>(
    dev: &CudaDevice,
    q: &CudaSlice<T>,
    k: &CudaSlice<T>,
    v: &CudaSlice<T>,
    probs: &CudaSlice<T>,
    d_out: &CudaSlice<T>,
    dims: AttentionDims,
) -> Result<AttentionBackward<T>> {
    let AttentionDims { heads, group, tq, tk, d, .. } = dims;
    let (kv_heads, rows) = (dims.kv_heads(), group * tq);
    let (nq, nkv) = (heads * tq * d, kv_heads * tk * d);
    let (mut dq, mut dk, mut dv) = (dev.alloc::<T>(nq)?, dev.alloc::<T>(nkv)?, dev.alloc::<T>(nkv)?);
    if nq == 0 {
        return Ok(AttentionBackward { dq, dk, dv });
    }
    let dense_q = MatrixBatch::dense(rows, d, 0);
    let dense_p = MatrixBatch::dense(rows, tk, 0);
    // dV = Pᵀ·dO
    gemm_strided_batched(
        dev,
        kv_heads,
        tk,
        rows,
        d,
        probs,
        transposed_square(rows, tk),
        d_out,
        dense_q,
        &mut dv,
        0,
        0.0,
    )?;
    // dP = dO·Vᵀ, then dS in place.
    let mut ds = dev.alloc::<T>(heads * tq * tk)?;
    gemm_strided_batched(dev, kv_heads, rows, d, tk, d_out, dense_q, v, transposed(tk, d), &mut ds, 0, 0.0)?;
    // With a cap, its derivative needs the raw scores: S = Q·Kᵀ again. Without
    // one the kernel never reads them, and a one-element buffer stands in.
    let scores = if dims.softcap.is_some() {
        let mut s = dev.alloc::<T>(heads * tq * tk)?;
        gemm_strided_batched(dev, kv_heads, rows, d, tk, q, dense_q, k, transposed(tk, d), &mut s, 0, 0.0)?;
        s
    } else {
        dev.alloc::<T>(1)?
    };
    let (tq64, tk64, window64, scale, cap) =
        (tq as i64, tk as i64, window_arg(dims), attention_scale(d), cap_arg(dims));
    let name = format!("causal_softmax_backward_{}", T::NAME);
    let cfg = for_rows(heads * tq, tk);
    launch_kernel!(dev, ATTENTION, name, cfg, [probs, &mut ds, &scores, &tq64, &tk64, &window64, &scale, &cap])?;
    // dQ = dS·K, dK = dSᵀ·Q (the scale is already in dS).
    gemm_strided_batched(dev, kv_heads, rows, tk, d, &ds, dense_p, k, MatrixBatch::dense(tk, d, 0), &mut dq, 0, 0.0)?;
    gemm_strided_batched(dev, kv_heads, tk, rows, d, &ds, transposed_square(rows, tk), q, dense_q, &mut dk, 0, 0.0)?;
    Ok(AttentionBackward { dq, dk, dv })
}
