//! Cross-entropy of host tensors through the fused kernel in
//! `kernels::cpu::cross_entropy` (f32 or f64 logits), which also checks
//! each target against the vocabulary as it reads it.

use crate::dtype::Element;
use crate::ops::cross_entropy::CrossEntropyOutput;
use crate::tensor::Tensor;

pub(crate) fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore: i64) -> CrossEntropyOutput {
    let (n, v) = (logits.dims()[0], logits.dims()[1]);
    crate::with_float_type!(logits.dtype(), "cross_entropy", T => {
        let mut lse = crate::pool::for_overwrite::<T>(n);
        let (total, counted) = kernels::cpu::cross_entropy::cross_entropy_forward(
            &logits.contiguous_data::<T>(), &targets.contiguous_data::<i64>(), v, ignore, &mut lse,
        );
        CrossEntropyOutput { loss: total / counted as f64, counted, lse: Tensor::from_contiguous(lse, [n]) }
    })
}

pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    ignore: i64,
    scale: f64,
) -> Tensor {
    let v = logits.dims()[1];
    crate::with_float_type!(logits.dtype(), "cross_entropy_backward", T => {
        let mut grad = crate::pool::for_overwrite::<T>(logits.numel());
        kernels::cpu::cross_entropy::cross_entropy_backward(
            &logits.contiguous_data::<T>(), &targets.contiguous_data::<i64>(), &lse.contiguous_data::<T>(),
            v, ignore, T::from_f64(scale), &mut grad,
        );
        Tensor::from_contiguous(grad, logits.shape().clone())
    })
}
