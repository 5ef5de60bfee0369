//! Elementwise functions of one tensor: y[i] = f(x[i]), and x ∘ c for a
//! scalar c.
//!
//! The output is always dense and row-major whatever the input's strides.
//! Floats compute in f32 or f64 (half precision through f32); int64 (and
//! int8) tensors have only the ops that stay integers (neg, abs, relu,
//! square and the scalar ops with a whole scalar). The arithmetic is in
//! `cpu/elementwise.rs` and `cuda/elementwise.rs` (see `backend.rs`).
//!
//! GELU uses the tanh approximation GPT-2 was trained with:
//! gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), computed by the
//! fused kernel in `kernels::cpu::gelu` (forward, and backward in one pass).

use crate::backend;
use crate::dtype::DType;
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
    /// x·σ(x), Llama's activation (SwiGLU's gate; `ops/swiglu.rs`).
    Silu,
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
            UnaryOp::Silu => "silu",
        }
    }

    /// Whether an int64 tensor can take this op and stay int64.
    pub fn defined_for_integers(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Relu | UnaryOp::Square)
    }
}

/// x ∘ c for a scalar c (converted to the tensor's dtype; a float32 tensor
/// rounds c to f32 first, as a float32 tensor op would).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarOp {
    Add,
    Sub,
    Mul,
    Div,
    /// max(x, c).
    ClampMin,
    /// min(x, c).
    ClampMax,
    /// x^c, for float tensors only; c is not rounded.
    Powf,
}

impl ScalarOp {
    pub fn name(self) -> &'static str {
        match self {
            ScalarOp::Add => "add_scalar",
            ScalarOp::Sub => "sub_scalar",
            ScalarOp::Mul => "mul_scalar",
            ScalarOp::Div => "div_scalar",
            ScalarOp::ClampMin => "clamp_min",
            ScalarOp::ClampMax => "clamp_max",
            ScalarOp::Powf => "powf",
        }
    }
}

impl Tensor {
    /// Applies an elementwise function.
    pub fn unary(&self, op: UnaryOp) -> Tensor {
        if !self.dtype().is_float() && !op.defined_for_integers() {
            panic!("{}: needs a float tensor, got int64 (convert with .to_dtype(DType::F32))", op.name());
        }
        backend::of(&[self]).unary(self, op)
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
        assert_eq!(self.shape(), dy.shape(), "gelu_backward: x {} and dy {} differ", self.shape(), dy.shape());
        assert_eq!(self.dtype(), dy.dtype(), "gelu_backward: dtypes {} and {} differ", self.dtype(), dy.dtype());
        assert!(self.dtype().is_float(), "gelu_backward: needs a float tensor, got {}", self.dtype());
        backend::of(&[self, dy]).gelu_backward(self, dy)
    }
    /// SiLU (swish), x·σ(x).
    pub fn silu(&self) -> Tensor {
        self.unary(UnaryOp::Silu)
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

    /// x ∘ c elementwise for a scalar `c`.
    pub fn scalar_op(&self, op: ScalarOp, c: f64) -> Tensor {
        match self.dtype() {
            DType::I64 | DType::I8 if op == ScalarOp::Powf => {
                panic!("powf: needs a float tensor, got {}", self.dtype())
            }
            DType::I64 | DType::I8 => {
                assert!(c.fract() == 0.0, "{}: int64 tensor with a fractional scalar {c}", op.name())
            }
            _ => {}
        }
        backend::of(&[self]).scalar(self, op, c)
    }

    /// x^p elementwise for a float exponent.
    pub fn powf(&self, p: f64) -> Tensor {
        self.scalar_op(ScalarOp::Powf, p)
    }

    /// x + c, x·c, … with a scalar `c` converted to the tensor's dtype.
    pub fn add_scalar(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::Add, c)
    }
    pub fn sub_scalar(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::Sub, c)
    }
    pub fn mul_scalar(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::Mul, c)
    }
    pub fn div_scalar(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::Div, c)
    }
    /// max(x, c) elementwise (`torch.clamp_min`).
    pub fn clamp_min(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::ClampMin, c)
    }
    /// min(x, c) elementwise (`torch.clamp_max`).
    pub fn clamp_max(&self, c: f64) -> Tensor {
        self.scalar_op(ScalarOp::ClampMax, c)
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
