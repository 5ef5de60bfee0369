//! Softmax, log-softmax and layer norm on CUDA tensors.
//!
//! `ops/rows.rs` has brought the dimension last and made the tensors
//! dense, so the kernels see `[rows, n]`; layer norm always normalises the
//! last dimension. Layer norm's per-row statistics are f32
//! whatever the input dtype, so half-precision inputs keep a precise
//! backward.

use kernels::cuda::layer_norm as ln;
use kernels::cuda::softmax as sm;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_float};
use crate::dtype::DType;
use crate::ops::rows::{LayerNormGrads, LayerNormOutput};
use crate::tensor::Tensor;

fn rows_of(x: &Tensor) -> (usize, usize) {
    let n = x.dims().last().copied().unwrap_or(1);
    (x.numel().checked_div(n).unwrap_or(0), n)
}

pub(crate) fn softmax(x: &Tensor, log: bool) -> Tensor {
    let op = if log { "log_softmax" } else { "softmax" };
    let x = packed(x);
    let (rows, n) = rows_of(&x);
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), op, T => {
        let y = ok(sm::softmax_forward::<T>(dev, slice::<T>(&x), rows, n, log), op);
        dense(dev, y, x.shape().clone())
    })
}

pub(crate) fn softmax_backward(y: &Tensor, dy: &Tensor, log: bool) -> Tensor {
    let op = if log { "log_softmax_backward" } else { "softmax_backward" };
    let device = cuda_of(&[y, dy]).expect("softmax_backward: a CUDA operand");
    let (y, dy) = (packed(&bring(y, device, op)), packed(&bring(dy, device, op)));
    let (rows, n) = rows_of(&y);
    let dev = cuda_device(&y);
    with_cuda_float!(y.dtype(), op, T => {
        let dx = ok(sm::softmax_backward::<T>(dev, slice::<T>(&y), slice::<T>(&dy), rows, n, log), op);
        dense(dev, dx, y.shape().clone())
    })
}

pub(crate) fn layer_norm(x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
    let device = x.device();
    let x = packed(x);
    let (gamma, beta) =
        (gamma.map(|g| packed(&bring(g, device, "layer_norm"))), beta.map(|b| packed(&bring(b, device, "layer_norm"))));
    let (rows, n) = rows_of(&x);
    let stat_shape = x.dims()[..x.rank().saturating_sub(1)].to_vec();
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "layer_norm", T => {
        let out = ok(
            ln::forward::<T>(dev, slice::<T>(&x), gamma.as_ref().map(slice::<T>), beta.as_ref().map(slice::<T>), eps, rows, n),
            "layer_norm",
        );
        LayerNormOutput {
            y: dense(dev, out.y, x.shape().clone()),
            mean: dense(dev, out.mean, stat_shape.clone()),
            rstd: dense(dev, out.rstd, stat_shape),
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
    let device = cuda_of(&[x, mean, rstd, dy]).expect("layer_norm_backward: a CUDA operand");
    let get = |t: &Tensor| packed(&bring(t, device, "layer_norm_backward"));
    let (x, dy, gamma) = (get(x), get(dy), gamma.map(get));
    let (mean, rstd) = (get(&mean.to_dtype(DType::F32)), get(&rstd.to_dtype(DType::F32)));
    let (rows, n) = rows_of(&x);
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "layer_norm_backward", T => {
        let g = ok(
            ln::backward::<T>(
                dev,
                slice::<T>(&x),
                gamma.as_ref().map(slice::<T>),
                slice::<f32>(&mean),
                slice::<f32>(&rstd),
                slice::<T>(&dy),
                rows,
                n,
            ),
            "layer_norm_backward",
        );
        LayerNormGrads {
            dx: dense(dev, g.dx, x.shape().clone()),
            dgamma: dense(dev, g.dgamma, [n]),
            dbeta: dense(dev, g.dbeta, [n]),
        }
    })
}
