//! Rotary position embedding on host tensors, through `kernels::cpu::rope`
//! (f32 or f64; half precision through f32). A strided x is read through
//! `contiguous_data`, which copies only when it must.

use kernels::cpu::rope::RopeShape;

use crate::dtype::DType;
use crate::tensor::Tensor;

pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Tensor {
    if matches!(x.dtype(), DType::F16 | DType::BF16) {
        return rope(&x.to_dtype(DType::F32), cos, sin, inverse).to_dtype(x.dtype());
    }
    let (t, heads, d) = (x.dim(-3), x.dim(-2), x.dim(-1));
    let outer = x.numel().checked_div(t * heads * d).unwrap_or(0);
    let shape = RopeShape { outer, t, heads, d, rotary: 2 * cos.dim(-1) };
    let (cos, sin) = (cos.to_dtype(DType::F32), sin.to_dtype(DType::F32));
    let (cos, sin) = (cos.contiguous_data::<f32>(), sin.contiguous_data::<f32>());
    crate::with_float_type!(x.dtype(), "rope", T => {
        let mut y = crate::pool::for_overwrite::<T>(x.numel());
        kernels::cpu::rope::rope(&x.contiguous_data::<T>(), &cos, &sin, shape, inverse, &mut y);
        Tensor::from_contiguous(y, x.shape().clone())
    })
}
