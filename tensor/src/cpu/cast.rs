//! Dtype conversion of host tensors: every element through f64, which
//! holds every value of every other dtype exactly (i64 ids beyond 2^53
//! aside, which no vocabulary has). Floats to integers truncate toward
//! zero and saturate, as `as` does; into f16/bf16 rounds to nearest even.

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

pub(crate) fn to_dtype(t: &Tensor, dtype: DType) -> Tensor {
    crate::with_type!(t.dtype(), S => {
        let src = t.contiguous_data::<S>();
        crate::with_type!(dtype, D => {
            let out: Vec<D> = convert_slice::<S, D>(&src);
            Tensor::from_contiguous(out, t.shape().clone())
        })
    })
}

fn convert_slice<S: Element, D: Element>(src: &[S]) -> Vec<D> {
    src.iter().map(|&v| D::from_f64(v.to_f64())).collect()
}
