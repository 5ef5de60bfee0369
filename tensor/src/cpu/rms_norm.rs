//! RMSNorm on host tensors, through `kernels::cpu::rms_norm` (f32 or f64;
//! half precision normalises in f32, as transformers does).

use crate::dtype::DType;
use crate::ops::rms_norm::{RmsNormGrads, RmsNormOutput};
use crate::tensor::Tensor;

pub(crate) fn rms_norm(x: &Tensor, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput {
    if matches!(x.dtype(), DType::F16 | DType::BF16) {
        // x̂ in f32, rounded to x's dtype, then times the weight (rounded
        // again): transformers' `weight * hidden_states.to(input_dtype)`.
        let wide = rms_norm(&x.to_dtype(DType::F32), None, eps);
        let x_hat = wide.y.to_dtype(x.dtype());
        let y = match weight {
            Some(w) => x_hat.mul(w),
            None => x_hat,
        };
        return RmsNormOutput { y, rstd: wide.rstd };
    }
    let n = x.dim(-1);
    let rows = x.numel() / n.max(1);
    let stat_shape = x.dims()[..x.rank() - 1].to_vec();
    crate::with_float_type!(x.dtype(), "rms_norm", T => {
        let w = weight.map(|w| w.contiguous_data::<T>());
        let mut y = crate::pool::for_overwrite::<T>(x.numel());
        let mut rstd = crate::pool::zeroed::<T>(rows);
        kernels::cpu::rms_norm::rms_norm(&x.contiguous_data::<T>(), w.as_deref(), eps, n, &mut y, &mut rstd);
        RmsNormOutput {
            y: Tensor::from_contiguous(y, x.shape().clone()),
            rstd: Tensor::from_contiguous(rstd, stat_shape),
        }
    })
}

pub(crate) fn rms_norm_backward(x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads {
    if matches!(x.dtype(), DType::F16 | DType::BF16) {
        let wide = |t: &Tensor| t.to_dtype(DType::F32);
        let g = rms_norm_backward(&wide(x), weight.map(wide).as_ref(), &wide(rstd), &wide(dy));
        return RmsNormGrads { dx: g.dx.to_dtype(x.dtype()), dweight: g.dweight.to_dtype(x.dtype()) };
    }
    let n = x.dim(-1);
    crate::with_float_type!(x.dtype(), "rms_norm_backward", T => {
        let w = weight.map(|w| w.contiguous_data::<T>());
        let mut dx = crate::pool::for_overwrite::<T>(x.numel());
        let dweight = kernels::cpu::rms_norm::rms_norm_backward(
            &x.contiguous_data::<T>(),
            w.as_deref(),
            &rstd.to_dtype(x.dtype()).contiguous_data::<T>(),
            &dy.contiguous_data::<T>(),
            n,
            &mut dx,
        );
        RmsNormGrads { dx: Tensor::from_contiguous(dx, x.shape().clone()), dweight: Tensor::from_contiguous(dweight, [n]) }
    })
}
