//! A linear layer's affine map as one op: y = x·Wᵀ + b.
//!
//! x `[.., K]`, W `[N, K]` (PyTorch's layout, one row per output feature),
//! b `[N]` → y `[.., N]`. Three things make it cheaper than `matmul` then
//! `add`:
//! - every leading dimension of x is one batch of M rows, so the product is
//!   a single `[M, K]·[K, N]` GEMM (not one per batch entry with W repeated,
//!   whose weight gradients would then have to be summed);
//! - Wᵀ is W's buffer read with swapped strides, never copied;
//! - the GEMM kernel adds the bias to each tile of y as it writes it, so
//!   there is no separate pass broadcasting the bias over y.
//!
//! The CPU's product is in `cpu/matmul.rs`, cuBLAS's in `cuda/matmul.rs`.
//!
//! The backward (in `autograd`) is two GEMMs and a column sum for dY
//! `[M, N]`: dx = dY·W, dW = dYᵀ·x (already `[N, K]`, W's own layout) and
//! db = Σ_rows dY.

use crate::backend;
use crate::tensor::Tensor;

impl Tensor {
    /// x·Wᵀ + b for W `[N, K]` and an optional bias `[N]` (`F.linear`).
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        assert_eq!(weight.rank(), 2, "linear: weight must be [out, in], got {}", weight.shape());
        let (n, k) = (weight.dim(0), weight.dim(1));
        assert!(
            self.rank() >= 1 && self.dim(-1) == k,
            "linear: input {} does not end in the weight's {k} input features ({})",
            self.shape(),
            weight.shape()
        );
        assert_eq!(
            self.dtype(),
            weight.dtype(),
            "linear: input {} and weight {} dtypes differ",
            self.dtype(),
            weight.dtype()
        );
        if let Some(b) = bias {
            assert_eq!(b.dims(), [n], "linear: bias {} for {n} outputs", b.shape());
            assert_eq!(
                b.dtype(),
                weight.dtype(),
                "linear: bias {} and weight {} dtypes differ",
                b.dtype(),
                weight.dtype()
            );
        }
        assert!(self.dtype().is_float(), "linear: needs float tensors, got {}", self.dtype());
        backend::of(&[self, weight]).linear(self, weight, bias)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn equals_matmul_then_add() {
        let mut g = Generator::seed(7);
        let x = Tensor::randn([2, 3, 5], &mut g);
        let w = Tensor::randn([4, 5], &mut g);
        let b = Tensor::randn([4], &mut g);
        let fused = x.linear(&w, Some(&b));
        assert_eq!(fused.dims(), &[2, 3, 4]);
        let reference = x.matmul(&w.t()).add(&b);
        assert_eq!(fused.to_vec::<f32>(), reference.to_vec::<f32>());
        assert_eq!(x.linear(&w, None).to_vec::<f32>(), x.matmul(&w.t()).to_vec::<f32>());
        // One row (a decode step) takes the matrix-vector path.
        let row = x.narrow(1, 0, 1).narrow(0, 0, 1);
        let one = row.linear(&w, Some(&b)).to_vec::<f32>();
        let expected = row.matmul(&w.t()).add(&b).to_vec::<f32>();
        for (a, e) in one.iter().zip(&expected) {
            assert!((a - e).abs() < 1e-5, "{a} vs {e}");
        }
    }

    #[test]
    #[should_panic(expected = "linear: input [2, 3] does not end in the weight's 4 input features ([5, 4])")]
    fn mismatched_features_name_both_shapes() {
        Tensor::zeros([2, 3], DType::F32).linear(&Tensor::zeros([5, 4], DType::F32), None);
    }
}
