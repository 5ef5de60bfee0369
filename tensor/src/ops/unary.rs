//! Elementwise functions of one tensor: y[i] = f(x[i]).
//!
//! The output is always dense and row-major whatever the input's strides.
//! Float math runs in f32 or f64; half-precision inputs are widened to f32,
//! computed, and narrowed back (the CPU has no fast f16 arithmetic).
//!
//! GELU uses the tanh approximation GPT-2 was trained with:
//! gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed by the
//! fused kernel in `kernels::cpu::gelu` (forward, and backward in one pass).

use crate::dtype::{DType, FloatElement};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Relu,
    GeluTanh,
    /// d gelu(x) / dx, for GELU's backward.
    GeluTanhGrad,
    Square,
    Recip,
    Sin,
    Cos,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::GeluTanh => "gelu",
            UnaryOp::GeluTanhGrad => "gelu_grad",
            UnaryOp::Square => "square",
            UnaryOp::Recip => "recip",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
        }
    }
}

fn float_unary<T: FloatElement>(x: &Tensor, op: UnaryOp) -> Tensor {
    match op {
        UnaryOp::Neg => x.map::<T, T>(|v| -v),
        UnaryOp::Abs => x.map::<T, T>(|v| v.abs()),
        UnaryOp::Exp => x.map::<T, T>(|v| v.exp()),
        UnaryOp::Log => x.map::<T, T>(|v| v.ln()),
        UnaryOp::Sqrt => x.map::<T, T>(|v| v.sqrt()),
        UnaryOp::Tanh => x.map::<T, T>(|v| v.tanh()),
        UnaryOp::Sigmoid => x.map::<T, T>(|v| T::one() / (T::one() + (-v).exp())),
        UnaryOp::Relu => x.map::<T, T>(|v| if v > T::ZERO { v } else { T::ZERO }),
        UnaryOp::GeluTanh => {
            let src = x.contiguous_data::<T>();
            let mut out = crate::pool::for_overwrite::<T>(src.len());
            kernels::cpu::gelu::gelu_forward(&src, &mut out);
            Tensor::from_contiguous(out, x.shape().clone())
        }
        UnaryOp::GeluTanhGrad => x.gelu_backward(&x.ones_like()),
        UnaryOp::Square => x.map::<T, T>(|v| v * v),
        UnaryOp::Recip => x.map::<T, T>(|v| T::one() / v),
        UnaryOp::Sin => x.map::<T, T>(|v| v.sin()),
        UnaryOp::Cos => x.map::<T, T>(|v| v.cos()),
    }
}

impl Tensor {
    /// Applies an elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::unary(self, op);
        }
        match self.dtype() {
            DType::F32 => float_unary::<f32>(self, op),
            DType::F64 => float_unary::<f64>(self, op),
            DType::F16 | DType::BF16 => self.to_dtype(DType::F32).unary(op).to_dtype(self.dtype()),
            DType::I64 => match op {
                UnaryOp::Neg => self.map::<i64, i64>(|v| -v),
                UnaryOp::Abs => self.map::<i64, i64>(|v| v.abs()),
                UnaryOp::Relu => self.map::<i64, i64>(|v| v.max(0)),
                UnaryOp::Square => self.map::<i64, i64>(|v| v * v),
                _ => panic!("{}: needs a float tensor, got int64 (convert with .to_dtype(DType::F32))", op.name()),
            },
            DType::I8 => self.to_dtype(DType::I64).unary(op).to_dtype(DType::I8),
        }
    }

    pub fn neg(&self) -> Tensor {
        self.unary(UnaryOp::Neg)
    }
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryOp::Abs)
    }
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Tensor {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryOp::Relu)
    }
    pub fn gelu(&self) -> Tensor {
        self.unary(UnaryOp::GeluTanh)
    }
    /// dy · gelu'(x) for x = `self`, in one pass (GELU's backward).
    pub fn gelu_backward(&self, dy: &Tensor) -> Tensor {
        if self.device().is_cuda() || dy.device().is_cuda() {
            return crate::cuda::gelu_backward(self, dy);
        }
        assert_eq!(self.shape(), dy.shape(), "gelu_backward: x {} and dy {} differ", self.shape(), dy.shape());
        match self.dtype() {
            DType::F32 | DType::F64 => crate::with_float_type!(self.dtype(), "gelu_backward", T => {
                let (x, g) = (self.contiguous_data::<T>(), dy.contiguous_data::<T>());
                let mut dx = crate::pool::for_overwrite::<T>(x.len());
                kernels::cpu::gelu::gelu_backward(&x, &g, &mut dx);
                Tensor::from_contiguous(dx, self.shape().clone())
            }),
            _ => self.to_dtype(DType::F32).gelu_backward(&dy.to_dtype(DType::F32)).to_dtype(self.dtype()),
        }
    }
    pub fn square(&self) -> Tensor {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Tensor {
        self.unary(UnaryOp::Recip)
    }
    pub fn sin(&self) -> Tensor {
        self.unary(UnaryOp::Sin)
    }
    pub fn cos(&self) -> Tensor {
        self.unary(UnaryOp::Cos)
    }

    /// x^p elementwise for a float exponent.
    pub fn powf(&self, p: f64) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::powf(self, p);
        }
        match self.dtype() {
            DType::F32 => self.map::<f32, f32>(|v| v.powf(p as f32)),
            DType::F64 => self.map::<f64, f64>(|v| v.powf(p)),
            DType::F16 | DType::BF16 => self.to_dtype(DType::F32).powf(p).to_dtype(self.dtype()),
            d => panic!("powf: needs a float tensor, got {d}"),
        }
    }

    /// x + c, x·c, … with a scalar `c` converted to the tensor's dtype.
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.scalar_map(c, "add_scalar", |x, c| x + c)
    }
    pub fn sub_scalar(&self, c: f64) -> Tensor {
        self.scalar_map(c, "sub_scalar", |x, c| x - c)
    }
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.scalar_map(c, "mul_scalar", |x, c| x * c)
    }
    pub fn div_scalar(&self, c: f64) -> Tensor {
        self.scalar_map(c, "div_scalar", |x, c| x / c)
    }
    /// max(x, c) elementwise (`torch.clamp_min`).
    pub fn clamp_min(&self, c: f64) -> Tensor {
        self.scalar_map(c, "clamp_min", |x, c| x.max(c))
    }
    /// min(x, c) elementwise (`torch.clamp_max`).
    pub fn clamp_max(&self, c: f64) -> Tensor {
        self.scalar_map(c, "clamp_max", |x, c| x.min(c))
    }

    fn scalar_map(&self, c: f64, op: &str, f: impl Fn(f64, f64) -> f64 + Copy + Sync + Send) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::scalar(self, c, op);
        }
        match self.dtype() {
            DType::F32 => {
                // Computing in f32 keeps results bit-identical to f32 tensor ops.
                let c32 = c as f32;
                self.map::<f32, f32>(move |x| f(x as f64, c32 as f64) as f32)
            }
            DType::F64 => self.map::<f64, f64>(move |x| f(x, c)),
            DType::F16 | DType::BF16 => self.to_dtype(DType::F32).scalar_map(c, op, f).to_dtype(self.dtype()),
            DType::I64 => {
                assert!(c.fract() == 0.0, "{op}: int64 tensor with a fractional scalar {c}");
                self.map::<i64, i64>(move |x| f(x as f64, c) as i64)
            }
            DType::I8 => self.to_dtype(DType::I64).scalar_map(c, op, f).to_dtype(DType::I8),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn functions_match_std() {
        let x = Tensor::new_as([-1.5, 0.0, 2.0], DType::F64).unwrap();
        assert_eq!(x.relu().to_vec::<f64>(), vec![0.0, 0.0, 2.0]);
        assert_eq!(x.exp().to_vec::<f64>()[2], 2f64.exp());
        let s = x.sigmoid().to_vec::<f64>();
        assert!((s[0] - 1.0 / (1.0 + 1.5f64.exp())).abs() < 1e-15);
        // gelu(1) with the tanh approximation (PyTorch, approximate="tanh": 0.84119199)
        let g = Tensor::new_as([1.0], DType::F64).unwrap().gelu().item::<f64>();
        assert!((g - 0.841_191_990_608_276_8).abs() < 1e-12);
        assert_eq!(x.mul_scalar(2.0).add_scalar(1.0).to_vec::<f64>(), vec![-2.0, 1.0, 5.0]);
    }

    #[test]
    fn gelu_grad_matches_finite_difference() {
        let xs = [-3.0f64, -0.5, 0.0, 0.7, 2.5];
        let h = 1e-6;
        let at = |d: f64| Tensor::new_as(xs.map(|x| x + d), DType::F64).unwrap().gelu().to_vec::<f64>();
        let (up, down) = (at(h), at(-h));
        let grad = Tensor::new_as(xs, DType::F64).unwrap().unary(UnaryOp::GeluTanhGrad).to_vec::<f64>();
        for i in 0..xs.len() {
            assert!(((up[i] - down[i]) / (2.0 * h) - grad[i]).abs() < 1e-8);
        }
    }

    #[test]
    fn half_precision_computes_through_f32() {
        let x = Tensor::new([1.0, 4.0]).unwrap().to_dtype(DType::BF16);
        assert_eq!(x.sqrt().dtype(), DType::BF16);
        assert_eq!(x.sqrt().to_f64_vec(), vec![1.0, 2.0]);
    }
}
