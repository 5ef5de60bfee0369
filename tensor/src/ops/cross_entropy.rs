//! Cross-entropy at the tensor level: rows of logits `[N, V]` against int64
//! targets `[N]`, through one fused kernel per device (`cpu/cross_entropy.rs`,
//! `cuda/cross_entropy.rs`) that never forms the softmax.

use crate::backend;
use crate::dtype::DType;
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
        backend::of(&[self, targets]).cross_entropy(self, targets, ignore)
    }

    /// dloss/dlogits for [`Tensor::cross_entropy`], times `scale` (the
    /// incoming gradient divided by the counted rows).
    pub fn cross_entropy_backward(&self, targets: &Tensor, lse: &Tensor, ignore: i64, scale: f64) -> Tensor {
        assert_eq!(self.rank(), 2, "cross_entropy_backward: logits must be [N, V], got {}", self.shape());
        assert_eq!(
            (targets.dims(), lse.dims()),
            (&self.dims()[..1], &self.dims()[..1]),
            "cross_entropy_backward: logits {}, targets {} and lse {} disagree",
            self.shape(),
            targets.shape(),
            lse.shape()
        );
        backend::of(&[self, targets, lse]).cross_entropy_backward(self, targets, lse, ignore, scale)
    }
}
