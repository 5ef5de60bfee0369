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
//! The backward (in `autograd`) is two GEMMs and a column sum for dY
//! `[M, N]`: dx = dY·W, dW = dYᵀ·x (already `[N, K]`, W's own layout) and
//! db = Σ_rows dY.

use kernels::cpu::gemm::{gemm, GemmShape, Strided};

use crate::dtype::{DType, FloatElement};
use crate::tensor::Tensor;

/// How a 2-D tensor lies in its buffer, for the GEMM.
fn operand(t: &Tensor) -> Strided {
    Strided { offset: t.layout().offset(), row_stride: t.strides()[0], col_stride: t.strides()[1] }
}

/// bias + x·Wᵀ, the kernel adding the bias as it writes each tile.
fn biased_product<T: FloatElement>(x2: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let (m, k, n) = (x2.dim(0), x2.dim(1), weight.dim(0));
    let bias = bias.contiguous_data::<T>();
    let wt = operand(weight).transposed();
    let (x, w) = (x2.storage_slice::<T>(), weight.storage_slice::<T>());
    let y = gemm(GemmShape { m, k, n }, x, &[operand(x2)], w, &[wt], Some(&bias), crate::pool::take::<T>(m * n));
    Tensor::from_contiguous(y, [m, n])
}

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
        if self.device().is_cuda() || weight.device().is_cuda() {
            return crate::cuda::linear(self, weight, bias);
        }
        let x2 = self.reshape(&[-1, k as isize]);
        let y = match (bias, self.dtype()) {
            (None, _) => x2.matmul(&weight.t()),
            (Some(b), DType::F32) => biased_product::<f32>(&x2, weight, b),
            (Some(b), DType::F64) => biased_product::<f64>(&x2, weight, b),
            // Half precision computes in f32 inside matmul; add the bias after.
            (Some(b), _) => x2.matmul(&weight.t()).add(b),
        };
        let mut dims = self.dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = n;
        y.reshape_to(dims)
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
