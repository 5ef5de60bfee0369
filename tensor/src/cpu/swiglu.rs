//! SiLU's backward and SwiGLU on host tensors, through the fused kernels of
//! `kernels::cpu::swiglu` (f32 or f64; half precision through f32).

use crate::dtype::DType;
use crate::tensor::Tensor;

fn is_half(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::F16 | DType::BF16)
}

fn wide(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F32)
}

pub(crate) fn silu_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    if is_half(x) {
        return silu_backward(&wide(x), &wide(dy)).to_dtype(x.dtype());
    }
    crate::with_float_type!(x.dtype(), "silu_backward", T => {
        let mut dx = crate::pool::for_overwrite::<T>(x.numel());
        kernels::cpu::swiglu::silu_backward(&x.contiguous_data::<T>(), &dy.contiguous_data::<T>(), &mut dx);
        Tensor::from_contiguous(dx, x.shape().clone())
    })
}

pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Tensor {
    if is_half(gate) {
        return swiglu(&wide(gate), &wide(up)).to_dtype(gate.dtype());
    }
    crate::with_float_type!(gate.dtype(), "swiglu", T => {
        let mut y = crate::pool::for_overwrite::<T>(gate.numel());
        kernels::cpu::swiglu::swiglu_forward(&gate.contiguous_data::<T>(), &up.contiguous_data::<T>(), &mut y);
        Tensor::from_contiguous(y, gate.shape().clone())
    })
}

pub(crate) fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
    if is_half(gate) {
        let (dg, du) = swiglu_backward(&wide(gate), &wide(up), &wide(dy));
        return (dg.to_dtype(gate.dtype()), du.to_dtype(gate.dtype()));
    }
    crate::with_float_type!(gate.dtype(), "swiglu_backward", T => {
        let n = gate.numel();
        let (mut dgate, mut dup) = (crate::pool::for_overwrite::<T>(n), crate::pool::for_overwrite::<T>(n));
        kernels::cpu::swiglu::swiglu_backward(
            &gate.contiguous_data::<T>(),
            &up.contiguous_data::<T>(),
            &dy.contiguous_data::<T>(),
            &mut dgate,
            &mut dup,
        );
        (Tensor::from_contiguous(dgate, gate.shape().clone()), Tensor::from_contiguous(dup, gate.shape().clone()))
    })
}
