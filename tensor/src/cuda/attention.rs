//! Causal attention on CUDA tensors, two ways.
//!
//! - [`Tensor::causal_attention`] (dispatched here for CUDA tensors): two
//!   batched cuBLAS products around a fused masked softmax, returning the
//!   attention weights P `[B, H, Tq, Tk]` that its backward reuses. The
//!   same contract, and the same arithmetic, as the CPU kernel.
//! - [`Tensor::flash_attention`]: the fused kernel that never forms P,
//!   returning the per-row logsumexp `[B, H, Tq]` instead, from which
//!   [`Tensor::flash_attention_backward`] recomputes P tile by tile.
//!   CUDA only; checked against the first.
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
use crate::ops::attention::{AttentionGrads, AttentionOutput};
use crate::tensor::Tensor;

fn check(q: &Tensor, k: &Tensor, v: &Tensor, op: &str) -> (usize, usize, usize, usize) {
    assert!(q.rank() == 4 && k.rank() == 4, "{op}: expects [B, H, T, D], got q {} k {}", q.shape(), k.shape());
    assert_eq!(k.shape(), v.shape(), "{op}: k {} and v {} differ", k.shape(), v.shape());
    let (b, h, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    assert!(
        k.dims()[0] == b && k.dims()[1] == h && k.dims()[3] == d && k.dims()[2] >= tq,
        "{op}: q {} and k {} disagree",
        q.shape(),
        k.shape()
    );
    (b * h, tq, k.dims()[2], d)
}

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

pub(crate) fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> AttentionOutput {
    if let Some(half) = autocast_for(q) {
        let f = causal_attention(&q.to_dtype(half), &k.to_dtype(half), &v.to_dtype(half));
        return AttentionOutput { out: f.out.to_dtype(DType::F32), probs: f.probs };
    }
    let (heads, tq, tk, d) = check(q, k, v, "causal_attention");
    let ops = operands(&[q, k, v], "causal_attention");
    let (q, k, v) = (&ops[0], &ops[1], &ops[2]);
    let dev = cuda_device(q);
    with_blas_float!(q.dtype(), "causal_attention", T => {
        let out = ok(att::forward::<T>(dev, slice(q), slice(k), slice(v), heads, tq, tk, d), "causal_attention");
        let mut pdims = q.dims().to_vec();
        pdims[3] = tk;
        AttentionOutput { out: dense(dev, out.out, q.shape().clone()), probs: dense(dev, out.probs, pdims) }
    })
}

pub(crate) fn causal_attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    probs: &Tensor,
    d_out: &Tensor,
) -> AttentionGrads {
    // Weights saved under autocast are half precision even if autocast
    // has been switched off since.
    let half = autocast_for(q).or_else(|| (probs.dtype() != q.dtype()).then(|| probs.dtype()));
    if let Some(half) = half.filter(|&h| h != q.dtype()) {
        let h = |t: &Tensor| t.to_dtype(half);
        let g = causal_attention_backward(&h(q), &h(k), &h(v), &h(probs), &h(d_out));
        let f = |t: Tensor| t.to_dtype(DType::F32);
        return AttentionGrads { dq: f(g.dq), dk: f(g.dk), dv: f(g.dv) };
    }
    let (heads, t, tk, d) = check(q, k, v, "causal_attention_backward");
    assert_eq!(t, tk, "causal_attention_backward: needs as many queries as keys");
    let ops = operands(&[q, k, v, probs, d_out], "causal_attention_backward");
    let dev = cuda_device(&ops[0]);
    with_blas_float!(ops[0].dtype(), "causal_attention_backward", T => {
        let g = ok(
            att::backward::<T>(dev, slice(&ops[0]), slice(&ops[1]), slice(&ops[2]), slice(&ops[3]), slice(&ops[4]), heads, t, d),
            "causal_attention_backward",
        );
        wrap_grads(dev, g, &ops[0], &ops[1])
    })
}

fn wrap_grads<T: BlasType + CudaElement>(
    dev: &std::sync::Arc<kernels::cuda::CudaDevice>,
    g: att::AttentionBackward<T>,
    q: &Tensor,
    k: &Tensor,
) -> AttentionGrads {
    AttentionGrads {
        dq: dense(dev, g.dq, q.shape().clone()),
        dk: dense(dev, g.dk, k.shape().clone()),
        dv: dense(dev, g.dv, k.shape().clone()),
    }
}

/// Output of [`Tensor::flash_attention`]: the result and the logsumexp of
/// each query row's scaled scores, `[B, H, Tq]` f32.
pub struct FlashAttentionOutput {
    pub out: Tensor,
    pub lse: Tensor,
}

impl Tensor {
    /// Causal attention by the fused kernel that never stores the `[Tq, Tk]`
    /// weights (CUDA tensors only; head sizes 32, 64 and 128).
    pub fn flash_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> FlashAttentionOutput {
        if let Some(half) = autocast_for(q) {
            let f = Tensor::flash_attention(&q.to_dtype(half), &k.to_dtype(half), &v.to_dtype(half));
            return FlashAttentionOutput { out: f.out.to_dtype(DType::F32), lse: f.lse };
        }
        let (heads, tq, tk, d) = check(q, k, v, "flash_attention");
        assert!(
            cuda_of(&[q, k, v]).is_some(),
            "flash_attention: runs on CUDA tensors (use causal_attention on the CPU)"
        );
        let ops = operands(&[q, k, v], "flash_attention");
        let (q, k, v) = (&ops[0], &ops[1], &ops[2]);
        let dev = cuda_device(q);
        with_blas_float!(q.dtype(), "flash_attention", T => {
            let f = ok(flash::forward::<T>(dev, slice(q), slice(k), slice(v), heads, tq, tk, d), "flash_attention");
            FlashAttentionOutput { out: dense(dev, f.out, q.shape().clone()), lse: dense(dev, f.lse, q.dims()[..3].to_vec()) }
        })
    }

    /// Backward of [`Tensor::flash_attention`] from its output and logsumexp.
    pub fn flash_attention_backward(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: &Tensor,
        lse: &Tensor,
        d_out: &Tensor,
    ) -> AttentionGrads {
        if let Some(half) = autocast_for(q) {
            let h = |t: &Tensor| t.to_dtype(half);
            let g = Tensor::flash_attention_backward(&h(q), &h(k), &h(v), &h(out), lse, &h(d_out));
            let f = |t: Tensor| t.to_dtype(DType::F32);
            return AttentionGrads { dq: f(g.dq), dk: f(g.dk), dv: f(g.dv) };
        }
        let (heads, tq, tk, d) = check(q, k, v, "flash_attention_backward");
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
                    heads,
                    tq,
                    tk,
                    d,
                ),
                "flash_attention_backward",
            );
            wrap_grads(dev, g, &ops[0], &ops[1])
        })
    }
}

static FLASH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes `autograd::causal_attention` use the flash kernel for CUDA
/// tensors (off by default: the cuBLAS path is the one checked against the
/// CPU; this one is checked against it).
pub fn set_flash_attention(on: bool) {
    FLASH.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the flash kernel is switched on and compiled for head size `d`.
pub fn flash_attention_applies(d: usize) -> bool {
    FLASH.load(std::sync::atomic::Ordering::Relaxed) && flash::HEAD_DIMS.contains(&d)
}
