//! Elementwise functions and their derivatives, y = f(x), dx = dy · f'(x).
//!
//! Each backward saves the cheapest thing that gives f'(x): the output
//! when f' is a function of it (exp: f' = y, tanh: 1 − y², sigmoid:
//! y(1 − y), sqrt: 1/(2y)), the input otherwise.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct Neg;
impl BackwardOp for Neg {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.neg())]
    }
}

struct Exp {
    y: Tensor,
}
impl BackwardOp for Exp {
    fn name(&self) -> &'static str {
        "exp"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.mul(&self.y))]
    }
}

struct Log {
    x: Tensor,
}
impl BackwardOp for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.div(&self.x))]
    }
}

struct Sqrt {
    y: Tensor,
}
impl BackwardOp for Sqrt {
    fn name(&self) -> &'static str {
        "sqrt"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.div(&self.y.mul_scalar(2.0)))]
    }
}

struct Tanh {
    y: Tensor,
}
impl BackwardOp for Tanh {
    fn name(&self) -> &'static str {
        "tanh"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // 1 − y²
        vec![Some(g.mul(&self.y.square().neg().add_scalar(1.0)))]
    }
}

struct Sigmoid {
    y: Tensor,
}
impl BackwardOp for Sigmoid {
    fn name(&self) -> &'static str {
        "sigmoid"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // y · (1 − y)
        vec![Some(g.mul(&self.y.mul(&self.y.neg().add_scalar(1.0))))]
    }
}

struct Relu {
    x: Tensor,
}
impl BackwardOp for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // Gradient passes where x > 0 (PyTorch uses 0 at exactly 0).
        let positive = self.x.compare_scalar(0.0, tensor::CmpOp::Gt).to_dtype(g.dtype());
        vec![Some(g.mul(&positive))]
    }
}

struct Gelu {
    x: Tensor,
}
impl BackwardOp for Gelu {
    fn name(&self) -> &'static str {
        "gelu"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(self.x.gelu_backward(g))]
    }
}

struct Abs {
    x: Tensor,
}
impl BackwardOp for Abs {
    fn name(&self) -> &'static str {
        "abs"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // sign(x), with 0 at 0 as PyTorch.
        let pos = self.x.compare_scalar(0.0, tensor::CmpOp::Gt).to_dtype(g.dtype());
        let neg = self.x.compare_scalar(0.0, tensor::CmpOp::Lt).to_dtype(g.dtype());
        vec![Some(g.mul(&pos.sub(&neg)))]
    }
}

struct Powf {
    x: Tensor,
    p: f64,
}
impl BackwardOp for Powf {
    fn name(&self) -> &'static str {
        "powf"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // p · x^(p−1)
        vec![Some(g.mul(&self.x.powf(self.p - 1.0).mul_scalar(self.p)))]
    }
}

struct ScaleBy {
    c: f64,
}
impl BackwardOp for ScaleBy {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.mul_scalar(self.c))]
    }
}

struct Shift;
impl BackwardOp for Shift {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.clone())]
    }
}

impl Var {
    pub fn neg(&self) -> Var {
        Var::from_op(self.data().neg(), &[self], || Neg)
    }
    pub fn exp(&self) -> Var {
        let y = self.data().exp();
        Var::from_op(y.clone(), &[self], || Exp { y })
    }
    pub fn log(&self) -> Var {
        let x = self.data();
        Var::from_op(x.log(), &[self], || Log { x })
    }
    pub fn sqrt(&self) -> Var {
        let y = self.data().sqrt();
        Var::from_op(y.clone(), &[self], || Sqrt { y })
    }
    pub fn tanh(&self) -> Var {
        let y = self.data().tanh();
        Var::from_op(y.clone(), &[self], || Tanh { y })
    }
    pub fn sigmoid(&self) -> Var {
        let y = self.data().sigmoid();
        Var::from_op(y.clone(), &[self], || Sigmoid { y })
    }
    pub fn relu(&self) -> Var {
        let x = self.data();
        Var::from_op(x.relu(), &[self], || Relu { x })
    }
    /// GELU with the tanh approximation (GPT-2's).
    pub fn gelu(&self) -> Var {
        let x = self.data();
        Var::from_op(x.gelu(), &[self], || Gelu { x })
    }
    pub fn abs(&self) -> Var {
        let x = self.data();
        Var::from_op(x.abs(), &[self], || Abs { x })
    }
    pub fn powf(&self, p: f64) -> Var {
        let x = self.data();
        Var::from_op(x.powf(p), &[self], || Powf { x, p })
    }
    pub fn square(&self) -> Var {
        self.powf(2.0)
    }
    pub fn mul_scalar(&self, c: f64) -> Var {
        Var::from_op(self.data().mul_scalar(c), &[self], || ScaleBy { c })
    }
    pub fn div_scalar(&self, c: f64) -> Var {
        self.mul_scalar(1.0 / c)
    }
    pub fn add_scalar(&self, c: f64) -> Var {
        Var::from_op(self.data().add_scalar(c), &[self], || Shift)
    }
    pub fn sub_scalar(&self, c: f64) -> Var {
        self.add_scalar(-c)
    }
}
