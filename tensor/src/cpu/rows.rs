//! Softmax, log-softmax and layer norm on host tensors, through the fused
//! row kernels of `kernels::cpu::rows` (f32 or f64).
//!
//! Every tensor here is dense with its rows along the last dimension
//! (`ops/rows.rs` moved the dimension there), so each kernel sees
//! `[rows, n]`.

use crate::dtype::FloatElement;
use crate::ops::rows::{LayerNormGrads, LayerNormOutput};
use crate::tensor::Tensor;

/// Length of a row: the last dimension (1 for a scalar).
fn row_len(x: &Tensor) -> usize {
    x.dims().last().copied().unwrap_or(1)
}

pub(crate) fn softmax(x: &Tensor, log: bool) -> Tensor {
    if log {
        crate::with_float_type!(x.dtype(), "log_softmax", T => row_kernel::<T>(x, kernels::cpu::rows::log_softmax))
    } else {
        crate::with_float_type!(x.dtype(), "softmax", T => row_kernel::<T>(x, kernels::cpu::rows::softmax))
    }
}

fn row_kernel<T: FloatElement>(x: &Tensor, kernel: fn(&[T], &mut [T], usize)) -> Tensor {
    let mut out = crate::pool::for_overwrite::<T>(x.numel());
    kernel(&x.contiguous_data::<T>(), &mut out, row_len(x));
    Tensor::from_contiguous(out, x.shape().clone())
}

pub(crate) fn softmax_backward(y: &Tensor, dy: &Tensor, log: bool) -> Tensor {
    let op = if log { "log_softmax_backward" } else { "softmax_backward" };
    let n = row_len(y);
    crate::with_float_type!(y.dtype(), op, T => {
        let mut dx = crate::pool::for_overwrite::<T>(y.numel());
        let (yv, dyv) = (y.contiguous_data::<T>(), dy.contiguous_data::<T>());
        if log {
            kernels::cpu::rows::log_softmax_backward(&yv, &dyv, &mut dx, n);
        } else {
            kernels::cpu::rows::softmax_backward(&yv, &dyv, &mut dx, n);
        }
        Tensor::from_contiguous(dx, y.shape().clone())
    })
}

pub(crate) fn layer_norm(x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
    let n = x.dim(-1);
    let rows = x.numel() / n.max(1);
    let stat_shape = x.dims()[..x.rank() - 1].to_vec();
    crate::with_float_type!(x.dtype(), "layer_norm", T => {
        let (g, b) = (gamma.map(|g| g.contiguous_data::<T>()), beta.map(|b| b.contiguous_data::<T>()));
        let mut y = crate::pool::for_overwrite::<T>(x.numel());
        let (mut mean, mut rstd) = (crate::pool::zeroed::<T>(rows), crate::pool::zeroed::<T>(rows));
        kernels::cpu::rows::layer_norm(&x.contiguous_data::<T>(), g.as_deref(), b.as_deref(), eps, n, &mut y, &mut mean, &mut rstd);
        LayerNormOutput {
            y: Tensor::from_contiguous(y, x.shape().clone()),
            mean: Tensor::from_contiguous(mean, stat_shape.clone()),
            rstd: Tensor::from_contiguous(rstd, stat_shape),
        }
    })
}

pub(crate) fn layer_norm_backward(
    x: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
) -> LayerNormGrads {
    let n = x.dim(-1);
    crate::with_float_type!(x.dtype(), "layer_norm_backward", T => {
        let g = gamma.map(|g| g.contiguous_data::<T>());
        let mut dx = crate::pool::for_overwrite::<T>(x.numel());
        let (dgamma, dbeta) = kernels::cpu::rows::layer_norm_backward(
            &x.contiguous_data::<T>(),
            g.as_deref(),
            &mean.contiguous_data::<T>(),
            &rstd.contiguous_data::<T>(),
            &dy.contiguous_data::<T>(),
            n,
            &mut dx,
        );
        LayerNormGrads {
            dx: Tensor::from_contiguous(dx, x.shape().clone()),
            dgamma: Tensor::from_contiguous(dgamma, [n]),
            dbeta: Tensor::from_contiguous(dbeta, [n]),
        }
    })
}
