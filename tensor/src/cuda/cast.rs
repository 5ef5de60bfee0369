//! Dtype conversion on CUDA (`cast.cu`), with the CPU's rules: through
//! f64, truncating and saturating into integers, rounding to nearest even
//! into f16/bf16. The input may be any view; the output is dense.

use kernels::cuda::cast::cast;

use super::{cuda_device, dense, device_layout, ok, slice, with_cuda_type};
use crate::dtype::DType;
use crate::tensor::Tensor;

pub(crate) fn to_dtype(t: &Tensor, dtype: DType) -> Tensor {
    if dtype == t.dtype() {
        return t.clone();
    }
    assert!(
        dtype != DType::F64,
        "to_dtype: float64 tensors cannot live on a CUDA device; move to the CPU first (.to_device(Device::Cpu))"
    );
    let dev = cuda_device(t);
    let layout = device_layout(t.layout(), "to_dtype");
    with_cuda_type!(t.dtype(), "to_dtype", S => {
        with_cuda_type!(dtype, "to_dtype", D => {
            let out = ok(cast::<S, D>(dev, slice::<S>(t), &layout), "to_dtype");
            dense(dev, out, t.shape().clone())
        })
    })
}
