//! SiLU's backward and SwiGLU on CUDA tensors (`kernels::cuda::swiglu`),
//! on packed copies of strided inputs.

use kernels::cuda::swiglu as k;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_float};
use crate::tensor::Tensor;

/// The operands packed on the first CUDA device among them.
fn on_one_device(op: &str, ts: &[&Tensor]) -> Vec<Tensor> {
    let device = cuda_of(ts).unwrap_or_else(|| panic!("{op}: a CUDA operand"));
    ts.iter().map(|t| packed(&bring(t, device, op))).collect()
}

pub(crate) fn silu_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    let t = on_one_device("silu_backward", &[x, dy]);
    let dev = cuda_device(&t[0]);
    with_cuda_float!(t[0].dtype(), "silu_backward", T => {
        let dx = ok(k::silu_backward::<T>(dev, slice::<T>(&t[0]), slice::<T>(&t[1]), t[0].numel()), "silu_backward");
        dense(dev, dx, t[0].shape().clone())
    })
}

pub(crate) fn swiglu(gate: &Tensor, up: &Tensor) -> Tensor {
    let t = on_one_device("swiglu", &[gate, up]);
    let dev = cuda_device(&t[0]);
    with_cuda_float!(t[0].dtype(), "swiglu", T => {
        let y = ok(k::swiglu_forward::<T>(dev, slice::<T>(&t[0]), slice::<T>(&t[1]), t[0].numel()), "swiglu");
        dense(dev, y, t[0].shape().clone())
    })
}

pub(crate) fn swiglu_backward(gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
    let t = on_one_device("swiglu_backward", &[gate, up, dy]);
    let dev = cuda_device(&t[0]);
    with_cuda_float!(t[0].dtype(), "swiglu_backward", T => {
        let (dg, du) = ok(
            k::swiglu_backward::<T>(dev, slice::<T>(&t[0]), slice::<T>(&t[1]), slice::<T>(&t[2]), t[0].numel()),
            "swiglu_backward",
        );
        (dense(dev, dg, t[0].shape().clone()), dense(dev, du, t[0].shape().clone()))
    })
}
