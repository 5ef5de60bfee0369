//! Cross-entropy at the tensor level: rows of logits `[N, V]` against int64
//! targets `[N]`, through the fused kernel in `kernels::cpu::cross_entropy`.

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

/// Output of [`Tensor::cross_entropy`].
pub struct CrossEntropyOutput {
    /// Mean loss over counted rows (NaN when none counts, as PyTorch).
    pub loss: f64,
    /// Rows whose target was not ignored.
    pub counted: usize,
    /// Per-row logsumexp `[N]`, which the backward reuses.
    pub lse: Tensor,
}

impl Tensor {
    /// Mean cross-entropy of `[N, V]` logits against `[N]` targets,
    /// skipping targets equal to `ignore`.
    pub fn cross_entropy(&self, targets: &Tensor, ignore: i64) -> CrossEntropyOutput {
        assert_eq!(self.rank(), 2, "cross_entropy: logits must be [N, V], got {}", self.shape());
        assert_eq!(targets.dtype(), DType::I64, "cross_entropy: targets must be int64, got {}", targets.dtype());
        assert_eq!(
            targets.dims(),
            &self.dims()[..1],
            "cross_entropy: logits {} and targets {} disagree",
            self.shape(),
            targets.shape()
        );
        if self.device().is_cuda() {
            return crate::cuda::cross_entropy(self, targets, ignore);
        }
        let (n, v) = (self.dims()[0], self.dims()[1]);
        crate::with_float_type!(self.dtype(), "cross_entropy", T => {
            let mut lse = crate::pool::for_overwrite::<T>(n);
            let (total, counted) = kernels::cpu::cross_entropy::cross_entropy_forward(
                &self.contiguous_data::<T>(), &targets.contiguous_data::<i64>(), v, ignore, &mut lse,
            );
            CrossEntropyOutput { loss: total / counted as f64, counted, lse: Tensor::from_contiguous(lse, [n]) }
        })
    }

    /// dloss/dlogits for [`Tensor::cross_entropy`], times `scale` (the
    /// incoming gradient divided by the counted rows).
    pub fn cross_entropy_backward(&self, targets: &Tensor, lse: &Tensor, ignore: i64, scale: f64) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::cross_entropy_backward(self, targets, lse, ignore, scale);
        }
        let v = self.dims()[1];
        crate::with_float_type!(self.dtype(), "cross_entropy_backward", T => {
            let mut grad = crate::pool::for_overwrite::<T>(self.numel());
            kernels::cpu::cross_entropy::cross_entropy_backward(
                &self.contiguous_data::<T>(), &targets.contiguous_data::<i64>(), &lse.contiguous_data::<T>(),
                v, ignore, T::from_f64(scale), &mut grad,
            );
            Tensor::from_contiguous(grad, self.shape().clone())
        })
    }
}
