//! Softmax, log-softmax and layer norm at the tensor level.
//!
//! The kernels in `kernels::cpu::rows` work on dense rows; these methods
//! bring any dimension to the end, make it dense, call the kernel, and put
//! the dimension back. Layer norm also returns the per-row mean and
//! 1/std that its backward reuses instead of recomputing.

use crate::dtype::FloatElement;
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
    /// Runs a row kernel along `dim`: moves it last, runs, moves it back.
    fn along_dim(&self, dim: isize, op: &str, kernel: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let d = self.layout().resolve(dim, op);
        let last = self.rank().saturating_sub(1);
        if d == last {
            return kernel(&self.contiguous());
        }
        let moved = self.transpose(d as isize, last as isize).contiguous();
        kernel(&moved).transpose(d as isize, last as isize).contiguous()
    }

    /// softmax(x) along `dim`: exp(x) / Σ exp(x), computed stably.
    pub fn softmax(&self, dim: isize) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::softmax(self, dim, false);
        }
        self.along_dim(
            dim,
            "softmax",
            |x| crate::with_float_type!(x.dtype(), "softmax", T => row_kernel::<T>(x, kernels::cpu::rows::softmax)),
        )
    }

    /// log(softmax(x)) along `dim`, without forming softmax first.
    pub fn log_softmax(&self, dim: isize) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::softmax(self, dim, true);
        }
        self.along_dim(dim, "log_softmax", |x| {
            crate::with_float_type!(x.dtype(), "log_softmax", T => row_kernel::<T>(x, kernels::cpu::rows::log_softmax))
        })
    }

    /// Given y = softmax(x) along `dim` and dL/dy, returns dL/dx.
    pub fn softmax_backward(y: &Tensor, dy: &Tensor, dim: isize) -> Tensor {
        if y.device().is_cuda() || dy.device().is_cuda() {
            return crate::cuda::softmax_backward(y, dy, dim, false);
        }
        backward_along(y, dy, dim, "softmax_backward", false)
    }

    /// Given y = log_softmax(x) along `dim` and dL/dy, returns dL/dx.
    pub fn log_softmax_backward(y: &Tensor, dy: &Tensor, dim: isize) -> Tensor {
        if y.device().is_cuda() || dy.device().is_cuda() {
            return crate::cuda::softmax_backward(y, dy, dim, true);
        }
        backward_along(y, dy, dim, "log_softmax_backward", true)
    }

    /// Layer norm over the last dimension with optional scale and shift.
    pub fn layer_norm(&self, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
        if self.device().is_cuda() {
            return crate::cuda::layer_norm(self, gamma, beta, eps);
        }
        let n = self.dim(-1);
        for (name, p) in [("weight", gamma), ("bias", beta)] {
            if let Some(p) = p {
                assert_eq!(p.dims(), &[n], "layer_norm: {name} of shape {} for input {}", p.shape(), self.shape());
            }
        }
        let x = self.contiguous();
        let rows = self.numel() / n.max(1);
        let stat_shape = self.dims()[..self.rank() - 1].to_vec();
        crate::with_float_type!(self.dtype(), "layer_norm", T => {
            let (g, b) = (gamma.map(|g| g.contiguous_data::<T>()), beta.map(|b| b.contiguous_data::<T>()));
            let mut y = crate::pool::for_overwrite::<T>(x.numel());
            let (mut mean, mut rstd) = (crate::pool::zeroed::<T>(rows), crate::pool::zeroed::<T>(rows));
            kernels::cpu::rows::layer_norm(&x.contiguous_data::<T>(), g.as_deref(), b.as_deref(), eps, n, &mut y, &mut mean, &mut rstd);
            LayerNormOutput {
                y: Tensor::from_contiguous(y, self.shape().clone()),
                mean: Tensor::from_contiguous(mean, stat_shape.clone()),
                rstd: Tensor::from_contiguous(rstd, stat_shape),
            }
        })
    }

    /// Backward of [`Tensor::layer_norm`] given the saved statistics.
    pub fn layer_norm_backward(
        x: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
    ) -> LayerNormGrads {
        if x.device().is_cuda() || dy.device().is_cuda() {
            return crate::cuda::layer_norm_backward(x, gamma, mean, rstd, dy);
        }
        let n = x.dim(-1);
        crate::with_float_type!(x.dtype(), "layer_norm_backward", T => {
            let g = gamma.map(|g| g.contiguous_data::<T>());
            let mut dx = crate::pool::for_overwrite::<T>(x.numel());
            let (dgamma, dbeta) = kernels::cpu::rows::layer_norm_backward(
                &x.contiguous_data::<T>(),
                g.as_deref(),
                &mean.contiguous_data::<T>(),
                &rstd.contiguous_data::<T>(),
                &dy.contiguous_data::<T>(),
                n,
                &mut dx,
            );
            LayerNormGrads {
                dx: Tensor::from_contiguous(dx, x.shape().clone()),
                dgamma: Tensor::from_contiguous(dgamma, [n]),
                dbeta: Tensor::from_contiguous(dbeta, [n]),
            }
        })
    }
}

fn row_kernel<T: FloatElement>(x: &Tensor, kernel: fn(&[T], &mut [T], usize)) -> Tensor {
    let mut out = crate::pool::for_overwrite::<T>(x.numel());
    kernel(&x.contiguous_data::<T>(), &mut out, x.dims().last().copied().unwrap_or(1));
    Tensor::from_contiguous(out, x.shape().clone())
}

fn backward_along(y: &Tensor, dy: &Tensor, dim: isize, op: &str, log: bool) -> Tensor {
    assert_eq!(y.shape(), dy.shape(), "{op}: output {} and gradient {} differ", y.shape(), dy.shape());
    let d = y.layout().resolve(dim, op);
    let last = y.rank().saturating_sub(1);
    let (y2, dy2) = if d == last {
        (y.contiguous(), dy.contiguous())
    } else {
        (y.transpose(d as isize, last as isize).contiguous(), dy.transpose(d as isize, last as isize).contiguous())
    };
    let n = y2.dims().last().copied().unwrap_or(1);
    let dx = crate::with_float_type!(y.dtype(), op, T => {
        let mut dx = crate::pool::for_overwrite::<T>(y2.numel());
        let (yv, dyv) = (y2.contiguous_data::<T>(), dy2.contiguous_data::<T>());
        if log {
            kernels::cpu::rows::log_softmax_backward(&yv, &dyv, &mut dx, n);
        } else {
            kernels::cpu::rows::softmax_backward(&yv, &dyv, &mut dx, n);
        }
        Tensor::from_contiguous(dx, y2.shape().clone())
    });
    if d == last {
        dx
    } else {
        dx.transpose(d as isize, last as isize).contiguous()
    }
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
