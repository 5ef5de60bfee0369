//! Causal attention on CUDA tensors, the two GPU routes that
//! `ops/attention.rs` chooses between (it checks the shapes and passes the
//! sizes; the operands here are heads-first `[B, H, T, D]`).
//!
//! - [`attention`]: two batched cuBLAS products around a fused masked
//!   softmax, returning the attention weights P `[B, H, Tq, Tk]` that
//!   [`attention_backward`] reuses. The same contract, and the same
//!   arithmetic, as the CPU kernel, grouped key/value heads and sliding
//!   windows included.
//! - [`flash_attention`]: the fused kernel that never forms P, returning the
//!   per-row logsumexp `[B, H, Tq]` instead, from which
//!   [`flash_attention_backward`] recomputes P tile by tile. Compiled for
//!   the head sizes [`flash_compiled_for`] says, for plain causal attention
//!   (`ops/attention.rs` sends grouped heads and windows to the first);
//!   checked against the first.
//!
//! Under autocast (see `autocast.rs`) attention is a pair of matrix
//! products like any other: f32 inputs are rounded to the half type, the
//! products and the softmax run on those (the softmax in f32 arithmetic),
//! the saved weights P are half precision, and results come back as f32.

use kernels::cuda::attention as att;
use kernels::cuda::blas::BlasType;
use kernels::cuda::flash_attention as flash;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, CudaElement};
use crate::dtype::DType;
use crate::ops::attention::Sizes;
use crate::tensor::Tensor;

/// The operands on one CUDA device, dense from element 0.
fn operands(tensors: &[&Tensor], op: &str) -> Vec<Tensor> {
    let device = cuda_of(tensors).expect("attention: a CUDA operand");
    tensors.iter().map(|t| packed(&bring(t, device, op))).collect()
}

/// Runs `$body` with `$T` bound to a float type cuBLAS multiplies.
macro_rules! with_blas_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            other => panic!("{}: needs a float tensor on CUDA, got {}", $op, other),
        }
    };
}

/// The half type autocast asks for, when `t` is an f32 tensor.
fn autocast_for(t: &Tensor) -> Option<DType> {
    crate::autocast::autocast().filter(|_| t.dtype() == DType::F32)
}

/// Causal attention through cuBLAS: the output and P.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, s: Sizes) -> (Tensor, Tensor) {
    if let Some(half) = autocast_for(q) {
        let (out, probs) = attention(&q.to_dtype(half), &k.to_dtype(half), &v.to_dtype(half), s);
        return (out.to_dtype(DType::F32), probs);
    }
    let ops = operands(&[q, k, v], "attention");
    let (q, k, v) = (&ops[0], &ops[1], &ops[2]);
    let dev = cuda_device(q);
    with_blas_float!(q.dtype(), "attention", T => {
        let out = ok(att::forward::<T>(dev, slice(q), slice(k), slice(v), s.dims()), "attention");
        let probs_dims = [s.batch, s.n_heads, s.tq, s.tk];
        (dense(dev, out.out, q.shape().clone()), dense(dev, out.probs, probs_dims))
    })
}

/// Backward of [`attention`]: dQ, dK, dV (dK and dV with the key/value
/// heads' shape).
pub(crate) fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    probs: &Tensor,
    d_out: &Tensor,
    s: Sizes,
) -> [Tensor; 3] {
    // Weights saved under autocast are half precision even if autocast
    // has been switched off since.
    let half = autocast_for(q).or_else(|| (probs.dtype() != q.dtype()).then(|| probs.dtype()));
    if let Some(half) = half.filter(|&h| h != q.dtype()) {
        let h = |t: &Tensor| t.to_dtype(half);
        let grads = attention_backward(&h(q), &h(k), &h(v), &h(probs), &h(d_out), s);
        return grads.map(|g| g.to_dtype(DType::F32));
    }
    let ops = operands(&[q, k, v, probs, d_out], "attention_backward");
    let dev = cuda_device(&ops[0]);
    with_blas_float!(ops[0].dtype(), "attention_backward", T => {
        let g = ok(
            att::backward::<T>(
                dev, slice(&ops[0]), slice(&ops[1]), slice(&ops[2]), slice(&ops[3]), slice(&ops[4]), s.dims(),
            ),
            "attention_backward",
        );
        wrap_grads(dev, g, &ops[0], &ops[1])
    })
}

fn wrap_grads<T: BlasType + CudaElement>(
    dev: &std::sync::Arc<kernels::cuda::CudaDevice>,
    g: att::AttentionBackward<T>,
    q: &Tensor,
    k: &Tensor,
) -> [Tensor; 3] {
    [dense(dev, g.dq, q.shape().clone()), dense(dev, g.dk, k.shape().clone()), dense(dev, g.dv, k.shape().clone())]
}

/// Whether the flash kernel is compiled for head size `d`.
pub(crate) fn flash_compiled_for(d: usize) -> bool {
    flash::HEAD_DIMS.contains(&d)
}

/// Causal attention by the kernel that never stores the `[Tq, Tk]` weights:
/// the output and each query row's logsumexp `[B, H, Tq]` (f32).
pub(crate) fn flash_attention(q: &Tensor, k: &Tensor, v: &Tensor, s: Sizes) -> (Tensor, Tensor) {
    assert!(s.plain_causal(), "flash attention: compiled for plain causal attention only");
    if let Some(half) = autocast_for(q) {
        let (out, lse) = flash_attention(&q.to_dtype(half), &k.to_dtype(half), &v.to_dtype(half), s);
        return (out.to_dtype(DType::F32), lse);
    }
    let ops = operands(&[q, k, v], "flash_attention");
    let (q, k, v) = (&ops[0], &ops[1], &ops[2]);
    let dev = cuda_device(q);
    with_blas_float!(q.dtype(), "flash_attention", T => {
        let f = ok(flash::forward::<T>(dev, slice(q), slice(k), slice(v), s.heads(), s.tq, s.tk, s.d), "flash_attention");
        (dense(dev, f.out, q.shape().clone()), dense(dev, f.lse, [s.batch, s.n_heads, s.tq]))
    })
}

/// Backward of [`flash_attention`] from its output and logsumexp.
pub(crate) fn flash_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    d_out: &Tensor,
    s: Sizes,
) -> [Tensor; 3] {
    if let Some(half) = autocast_for(q) {
        let h = |t: &Tensor| t.to_dtype(half);
        let grads = flash_attention_backward(&h(q), &h(k), &h(v), &h(out), lse, &h(d_out), s);
        return grads.map(|g| g.to_dtype(DType::F32));
    }
    let ops = operands(&[q, k, v, out, d_out, lse], "flash_attention_backward");
    let dev = cuda_device(&ops[0]);
    with_blas_float!(ops[0].dtype(), "flash_attention_backward", T => {
        let g = ok(
            flash::backward::<T>(
                dev,
                slice(&ops[0]),
                slice(&ops[1]),
                slice(&ops[2]),
                slice(&ops[3]),
                slice(&ops[4]),
                slice::<f32>(&ops[5]),
                s.heads(),
                s.tq,
                s.tk,
                s.d,
            ),
            "flash_attention_backward",
        );
        wrap_grads(dev, g, &ops[0], &ops[1])
    })
}
