//! Elementwise functions and their derivatives, y = f(x), dx = dy · f'(x).
//!
//! Each backward saves the cheapest thing that gives f'(x): the output
//! when f' is a function of it (exp: f' = y, tanh: 1 − y², sigmoid:
//! y(1 − y), sqrt: 1/(2y)), the input otherwise.
//!
//! `backward_graph` writes the same f'(x) with `Var` ops on the node's input
//! and output, so a `create_graph` backward can be differentiated again: the
//! second derivative of exp comes from differentiating `dy · y` through y.
//! Masks (relu's x > 0, abs's sign) are constants: their derivative is 0
//! away from the kink.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

/// The graph-mode result for a one-input op: dx, or nothing.
fn only(dx: Var) -> Option<Vec<Option<Var>>> {
    Some(vec![Some(dx)])
}

struct Neg;
impl BackwardOp for Neg {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(g.neg())]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.neg())
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
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(y))
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
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.div(&x[0]))
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
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.div(&y.mul_scalar(2.0)))
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
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&y.square().neg().add_scalar(1.0)))
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
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&y.mul(&y.neg().add_scalar(1.0))))
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
        vec![Some(g.mul(&positive_mask(&self.x, g.dtype())))]
    }
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&Var::constant(positive_mask(&x[0].data(), g.dtype()))))
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
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&gelu_derivative(&x[0])))
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
        vec![Some(g.mul(&sign(&self.x, g.dtype())))]
    }
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&Var::constant(sign(&x[0].data(), g.dtype()))))
    }
}

/// relu'(x): 1 where x > 0, else 0 (PyTorch uses 0 at exactly 0).
fn positive_mask(x: &Tensor, dtype: tensor::DType) -> Tensor {
    x.compare_scalar(0.0, tensor::CmpOp::Gt).to_dtype(dtype)
}

/// abs'(x) = sign(x), with 0 at 0 as PyTorch.
fn sign(x: &Tensor, dtype: tensor::DType) -> Tensor {
    let pos = x.compare_scalar(0.0, tensor::CmpOp::Gt).to_dtype(dtype);
    let neg = x.compare_scalar(0.0, tensor::CmpOp::Lt).to_dtype(dtype);
    pos.sub(&neg)
}

/// gelu'(x) = ½(1 + tanh u) + ½x(1 − tanh²u)·du/dx with
/// u = √(2/π)(x + 0.044715x³), as `Var` ops (the fused kernel's
/// `gelu_derivative_reference`), so that it can be differentiated again.
fn gelu_derivative(x: &Var) -> Var {
    let (c, cubic) = ((2.0 / std::f64::consts::PI).sqrt(), 0.044715);
    let x2 = x.mul(x);
    let t = x.add(&x2.mul(x).mul_scalar(cubic)).mul_scalar(c).tanh();
    let du = x2.mul_scalar(3.0 * cubic).add_scalar(1.0).mul_scalar(c);
    let outer = t.add_scalar(1.0).mul_scalar(0.5);
    let inner = x.mul(&t.square().neg().add_scalar(1.0)).mul(&du).mul_scalar(0.5);
    outer.add(&inner)
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
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul(&x[0].powf(self.p - 1.0).mul_scalar(self.p)))
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
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.mul_scalar(self.c))
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
    fn backward_graph(&self, g: &Var, _: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        only(g.clone())
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
