//! Softmax, log-softmax and layer norm at the tensor level.
//!
//! The row kernels (`cpu/rows.rs`, `cuda/rows.rs`) work on dense rows;
//! these methods bring any dimension to the end, make it dense, call the
//! backend, and put the dimension back. Layer norm normalises the last
//! dimension and also returns the per-row mean and 1/std that its backward
//! reuses instead of recomputing.

use crate::backend;
use crate::tensor::Tensor;

/// Output of [`Tensor::layer_norm`]: y plus the statistics backward needs.
pub struct LayerNormOutput {
    pub y: Tensor,
    /// Per-row mean, shape = input shape without the last dim.
    pub mean: Tensor,
    /// Per-row 1/sqrt(var + eps), same shape as `mean`.
    pub rstd: Tensor,
}

/// Gradients from [`Tensor::layer_norm_backward`].
pub struct LayerNormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

impl Tensor {
    /// Runs a row op along `dim`: moves it last and makes the tensor dense
    /// (free when it already is), runs, and moves the dimension back.
    fn along_dim(&self, dim: isize, op: &str, rows: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let d = self.layout().resolve(dim, op);
        let last = self.rank().saturating_sub(1);
        if d == last {
            return rows(&self.contiguous());
        }
        let moved = self.transpose(d as isize, last as isize).contiguous();
        rows(&moved).transpose(d as isize, last as isize).contiguous()
    }

    /// softmax(x) along `dim`: exp(x) / Σ exp(x), computed stably.
    pub fn softmax(&self, dim: isize) -> Tensor {
        assert!(self.dtype().is_float(), "softmax: needs a float tensor, got {}", self.dtype());
        self.along_dim(dim, "softmax", |x| backend::of(&[x]).softmax(x, false))
    }

    /// log(softmax(x)) along `dim`, without forming softmax first.
    pub fn log_softmax(&self, dim: isize) -> Tensor {
        assert!(self.dtype().is_float(), "log_softmax: needs a float tensor, got {}", self.dtype());
        self.along_dim(dim, "log_softmax", |x| backend::of(&[x]).softmax(x, true))
    }

    /// Given y = softmax(x) along `dim` and dL/dy, returns dL/dx.
    pub fn softmax_backward(y: &Tensor, dy: &Tensor, dim: isize) -> Tensor {
        softmax_backward_along(y, dy, dim, false)
    }

    /// Given y = log_softmax(x) along `dim` and dL/dy, returns dL/dx.
    pub fn log_softmax_backward(y: &Tensor, dy: &Tensor, dim: isize) -> Tensor {
        softmax_backward_along(y, dy, dim, true)
    }

    /// Layer norm over the last dimension with optional scale and shift.
    pub fn layer_norm(&self, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
        assert!(self.dtype().is_float(), "layer_norm: needs a float tensor, got {}", self.dtype());
        let n = self.dim(-1);
        for (name, p) in [("weight", gamma), ("bias", beta)] {
            if let Some(p) = p {
                assert_eq!(p.dims(), &[n], "layer_norm: {name} of shape {} for input {}", p.shape(), self.shape());
            }
        }
        backend::of(&[self]).layer_norm(self, gamma, beta, eps)
    }

    /// Backward of [`Tensor::layer_norm`] given the saved statistics.
    pub fn layer_norm_backward(
        x: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
    ) -> LayerNormGrads {
        assert_eq!(
            x.shape(),
            dy.shape(),
            "layer_norm_backward: input {} and gradient {} differ",
            x.shape(),
            dy.shape()
        );
        assert!(x.dtype().is_float(), "layer_norm_backward: needs a float tensor, got {}", x.dtype());
        backend::of(&[x, mean, rstd, dy]).layer_norm_backward(x, gamma, mean, rstd, dy)
    }
}

/// softmax's (or log-softmax's) backward along `dim`, as `along_dim` runs
/// the forward: both tensors with `dim` last and dense.
fn softmax_backward_along(y: &Tensor, dy: &Tensor, dim: isize, log: bool) -> Tensor {
    let op = if log { "log_softmax_backward" } else { "softmax_backward" };
    assert_eq!(y.shape(), dy.shape(), "{op}: output {} and gradient {} differ", y.shape(), dy.shape());
    assert!(y.dtype().is_float(), "{op}: needs a float tensor, got {}", y.dtype());
    let d = y.layout().resolve(dim, op);
    let last = y.rank().saturating_sub(1);
    if d == last {
        let (y, dy) = (y.contiguous(), dy.contiguous());
        return backend::of(&[&y, &dy]).softmax_backward(&y, &dy, log);
    }
    let (y, dy) =
        (y.transpose(d as isize, last as isize).contiguous(), dy.transpose(d as isize, last as isize).contiguous());
    backend::of(&[&y, &dy]).softmax_backward(&y, &dy, log).transpose(d as isize, last as isize).contiguous()
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn softmax_along_a_middle_dim() {
        let x = Tensor::arange(0, 12).reshape(&[2, 3, 2]).to_dtype(DType::F64);
        let s = x.softmax(1);
        let sums = s.sum(1, false).to_vec::<f64>();
        assert!(sums.iter().all(|v| (v - 1.0).abs() < 1e-12));
        let l = x.log_softmax(1).exp().to_vec::<f64>();
        for (a, b) in l.iter().zip(s.to_vec::<f64>()) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn layer_norm_with_affine() {
        let x = Tensor::new_as([[1.0, 3.0], [2.0, 2.0]], DType::F64).unwrap();
        let g = Tensor::new_as([2.0, 1.0], DType::F64).unwrap();
        let b = Tensor::new_as([0.5, 0.0], DType::F64).unwrap();
        let out = x.layer_norm(Some(&g), Some(&b), 0.0);
        assert_eq!(out.y.to_vec::<f64>()[..2], [-1.5, 1.0]);
        assert_eq!(out.mean.to_vec::<f64>(), vec![2.0, 2.0]);
    }
}
