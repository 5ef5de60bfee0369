//! RMSNorm on CUDA tensors (`kernels::cuda::rms_norm`): the per-row rstd is
//! f32 whatever the input dtype, so half-precision inputs keep a precise
//! backward.

use kernels::cuda::rms_norm as rn;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_float};
use crate::dtype::DType;
use crate::ops::rms_norm::{RmsNormGrads, RmsNormOutput};
use crate::tensor::Tensor;

fn rows_of(x: &Tensor) -> (usize, usize) {
    let n = x.dims().last().copied().unwrap_or(1);
    (x.numel().checked_div(n).unwrap_or(0), n)
}

pub(crate) fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput {
    let device = cuda_of(&[x]).or_else(|| weight.and_then(|w| cuda_of(&[w]))).expect("rms_norm: a CUDA operand");
    let x = packed(&bring(x, device, "rms_norm"));
    let weight = weight.map(|w| packed(&bring(w, device, "rms_norm")));
    let (rows, n) = rows_of(&x);
    let stat_shape = x.dims()[..x.rank() - 1].to_vec();
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "rms_norm", T => {
        let out = ok(rn::forward::<T>(dev, slice::<T>(&x), weight.as_ref().map(slice::<T>), eps, rows, n), "rms_norm");
        RmsNormOutput { y: dense(dev, out.y, x.shape().clone()), rstd: dense(dev, out.rstd, stat_shape) }
    })
}

pub(crate) fn rms_norm_backward(x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads {
    let device = cuda_of(&[x, rstd, dy]).expect("rms_norm_backward: a CUDA operand");
    let get = |t: &Tensor| packed(&bring(t, device, "rms_norm_backward"));
    let (x, dy, weight) = (get(x), get(dy), weight.map(get));
    let rstd = get(&rstd.to_dtype(DType::F32));
    let (rows, n) = rows_of(&x);
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "rms_norm_backward", T => {
        let (dx, dweight) = ok(
            rn::backward::<T>(dev, slice::<T>(&x), weight.as_ref().map(slice::<T>), slice::<f32>(&rstd), slice::<T>(&dy), rows, n),
            "rms_norm_backward",
        );
        RmsNormGrads { dx: dense(dev, dx, x.shape().clone()), dweight: dense(dev, dweight, [n]) }
    })
}
