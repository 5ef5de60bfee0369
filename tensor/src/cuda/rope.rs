//! Rotary position embedding on CUDA tensors (`kernels::cuda::rope`): a
//! strided x is packed first; tables made on the host are copied over
//! (build them on the GPU once with `RopeTables::to_device` to avoid that).

use kernels::cuda::rope::{self as k, RopeDims};

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_float};
use crate::dtype::DType;
use crate::tensor::Tensor;

pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Tensor {
    let device = cuda_of(&[x, cos, sin]).expect("rope: a CUDA operand");
    let x = packed(&bring(x, device, "rope"));
    let table = |t: &Tensor| packed(&bring(&t.to_dtype(DType::F32), device, "rope"));
    let (cos, sin) = (table(cos), table(sin));
    let (t, heads, d) = (x.dim(-3), x.dim(-2), x.dim(-1));
    let outer = x.numel().checked_div(t * heads * d).unwrap_or(0);
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "rope", T => {
        let dims = RopeDims { outer, t, heads, d, rotary: 2 * cos.dim(-1) };
        let y = ok(k::rope::<T>(dev, slice::<T>(&x), slice::<f32>(&cos), slice::<f32>(&sin), dims, inverse), "rope");
        dense(dev, y, x.shape().clone())
    })
}
