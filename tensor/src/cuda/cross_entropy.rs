//! Fused cross-entropy on CUDA tensors.
//!
//! Targets usually come from the host; they are checked there (a target
//! outside the vocabulary is a programming error, as on the CPU) and then
//! copied to the GPU. The loss comes back as a host number, summed on the
//! GPU in a fixed order.

use kernels::cuda::cross_entropy as ce;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_float};
use crate::dtype::DType;
use crate::ops::cross_entropy::CrossEntropyOutput;
use crate::tensor::Tensor;

/// Panics like the CPU kernel on a target outside `0..classes`.
fn check_targets(targets: &Tensor, classes: usize, ignore: i64) {
    let host = if targets.device().is_cuda() { super::host_vec::<i64>(targets) } else { targets.to_vec::<i64>() };
    for &t in &host {
        assert!(t == ignore || (t >= 0 && (t as usize) < classes), "cross_entropy: target {t} is outside 0..{classes}");
    }
}

pub(crate) fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore: i64) -> CrossEntropyOutput {
    let (n, v) = (logits.dims()[0], logits.dims()[1]);
    check_targets(targets, v, ignore);
    let device = cuda_of(&[logits, targets]).expect("cross_entropy: a CUDA operand");
    let (logits, targets) =
        (packed(&bring(logits, device, "cross_entropy")), packed(&bring(targets, device, "cross_entropy")));
    let dev = cuda_device(&logits);
    with_cuda_float!(logits.dtype(), "cross_entropy", T => {
        let f = ok(ce::forward::<T>(dev, slice::<T>(&logits), slice::<i64>(&targets), n, v, ignore), "cross_entropy");
        CrossEntropyOutput { loss: f.total / f.counted as f64, counted: f.counted, lse: dense(dev, f.lse, [n]) }
    })
}

pub(crate) fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    lse: &Tensor,
    ignore: i64,
    scale: f64,
) -> Tensor {
    let (n, v) = (logits.dims()[0], logits.dims()[1]);
    let device = cuda_of(&[logits, targets, lse]).expect("cross_entropy_backward: a CUDA operand");
    let get = |t: &Tensor| packed(&bring(t, device, "cross_entropy_backward"));
    let (logits, targets, lse) = (get(logits), get(targets), get(&lse.to_dtype(DType::F32)));
    let dev = cuda_device(&logits);
    with_cuda_float!(logits.dtype(), "cross_entropy_backward", T => {
        let g = ok(
            ce::backward::<T>(dev, slice::<T>(&logits), slice::<i64>(&targets), slice::<f32>(&lse), n, v, ignore, scale as f32),
            "cross_entropy_backward",
        );
        dense(dev, g, [n, v])
    })
}
