//! RMSNorm over the last dimension, at the tensor level: Llama's norm.
//!
//! y = x / sqrt(mean(x²) + eps) · weight for each row of the last dim, x of
//! any shape `[.., C]` and weight `[C]` (or none). Qwen3 also applies it to
//! each head of q and k, x `[B, T, H, head_dim]` with weight `[head_dim]`:
//! the same op, since only the last dimension is normalised. The forward
//! returns the per-row 1/sqrt(mean(x²) + eps) that the backward reuses.
//! Half-precision inputs normalise in f32 and round before the weight
//! multiplies, as transformers' `LlamaRMSNorm` does. The arithmetic is in
//! `kernels::cpu::rms_norm` and `rms_norm.cu`.

use crate::backend;
use crate::tensor::Tensor;

/// Output of [`Tensor::rms_norm`]: y plus what the backward needs.
pub struct RmsNormOutput {
    pub y: Tensor,
    /// Per-row 1/sqrt(mean(x²) + eps), shape = input shape without the last
    /// dim (f32 for half-precision inputs and on a GPU).
    pub rstd: Tensor,
}

/// Gradients from [`Tensor::rms_norm_backward`].
pub struct RmsNormGrads {
    pub dx: Tensor,
    /// `[C]`, Σ over rows of dy · x̂ (computed with or without a weight).
    pub dweight: Tensor,
}

impl Tensor {
    /// RMSNorm over the last dimension with an optional weight `[C]`.
    pub fn rms_norm(&self, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput {
        assert!(self.dtype().is_float(), "rms_norm: needs a float tensor, got {}", self.dtype());
        assert!(self.rank() >= 1, "rms_norm: needs at least one dimension, got a scalar");
        if let Some(w) = weight {
            assert_eq!(w.dims(), &[self.dim(-1)], "rms_norm: weight of shape {} for input {}", w.shape(), self.shape());
            assert_eq!(w.dtype(), self.dtype(), "rms_norm: weight dtype {} for input {}", w.dtype(), self.dtype());
        }
        match weight {
            Some(w) => backend::of(&[self, w]).rms_norm(self, weight, eps),
            None => backend::of(&[self]).rms_norm(self, None, eps),
        }
    }

    /// Backward of [`Tensor::rms_norm`] given the saved rstd.
    pub fn rms_norm_backward(x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads {
        assert_eq!(x.shape(), dy.shape(), "rms_norm_backward: input {} and gradient {} differ", x.shape(), dy.shape());
        assert!(x.dtype().is_float(), "rms_norm_backward: needs a float tensor, got {}", x.dtype());
        assert_eq!(
            rstd.dims(),
            &x.dims()[..x.rank() - 1],
            "rms_norm_backward: rstd of shape {} for input {}",
            rstd.shape(),
            x.shape()
        );
        backend::of(&[x, rstd, dy]).rms_norm_backward(x, weight, rstd, dy)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn rows_are_scaled_to_unit_rms_then_weighted() {
        let x = Tensor::new_as([[3.0, 4.0], [0.0, -2.0]], DType::F64).unwrap();
        let w = Tensor::new_as([2.0, 1.0], DType::F64).unwrap();
        let out = x.rms_norm(Some(&w), 0.0);
        let r0 = 1.0 / 12.5f64.sqrt();
        assert_eq!(out.rstd.to_vec::<f64>(), vec![r0, 1.0 / 2f64.sqrt()]);
        let y = out.y.to_vec::<f64>();
        assert!((y[0] - 6.0 * r0).abs() < 1e-15 && (y[1] - 4.0 * r0).abs() < 1e-15);
        assert!((y[3] + 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn half_precision_normalises_in_f32() {
        let x = Tensor::new([[1.0f32, 2.0, 3.0, 4.0]]).unwrap();
        let w = Tensor::new([1.0f32, 0.5, 2.0, 1.0]).unwrap();
        let want = x.rms_norm(Some(&w), 1e-6).y.to_f64_vec();
        let (xb, wb) = (x.to_dtype(DType::BF16), w.to_dtype(DType::BF16));
        let out = xb.rms_norm(Some(&wb), 1e-6);
        assert_eq!((out.y.dtype(), out.rstd.dtype()), (DType::BF16, DType::F32));
        for (a, b) in out.y.to_f64_vec().iter().zip(&want) {
            assert!((a - b).abs() < 1e-2 * b.abs());
        }
    }
}
