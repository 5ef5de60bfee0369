//! Broadcast binary ops and their derivatives.
//!
//! For z = a ∘ b the local derivatives are the familiar ones
//! (add: 1, 1; mul: b, a; div: 1/b, −a/b²). When an operand was broadcast,
//! it was used once per repetition, so its gradient is the sum over the
//! repeated dimensions: `sum_to_shape` folds dz back to the operand's shape.
//! `backward_graph` is the same formulas on the input `Var`s (`Var::sum_to_shape`).

use tensor::{CmpOp, Shape, Tensor};

use crate::var::{BackwardOp, Var};

struct Add {
    a_shape: Shape,
    b_shape: Shape,
}
impl BackwardOp for Add {
    fn name(&self) -> &'static str {
        "add"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        vec![needs[0].then(|| g.sum_to_shape(&self.a_shape)), needs[1].then(|| g.sum_to_shape(&self.b_shape))]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        Some(vec![needs[0].then(|| g.sum_to_shape(&a.shape())), needs[1].then(|| g.sum_to_shape(&b.shape()))])
    }
}

struct Sub {
    a_shape: Shape,
    b_shape: Shape,
}
impl BackwardOp for Sub {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        vec![needs[0].then(|| g.sum_to_shape(&self.a_shape)), needs[1].then(|| g.neg().sum_to_shape(&self.b_shape))]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        Some(vec![needs[0].then(|| g.sum_to_shape(&a.shape())), needs[1].then(|| g.neg().sum_to_shape(&b.shape()))])
    }
}

struct Mul {
    a: Tensor,
    b: Tensor,
}
impl BackwardOp for Mul {
    fn name(&self) -> &'static str {
        "mul"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        vec![
            needs[0].then(|| g.mul(&self.b).sum_to_shape(self.a.shape())),
            needs[1].then(|| g.mul(&self.a).sum_to_shape(self.b.shape())),
        ]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        Some(vec![
            needs[0].then(|| g.mul(b).sum_to_shape(&a.shape())),
            needs[1].then(|| g.mul(a).sum_to_shape(&b.shape())),
        ])
    }
}

struct Div {
    a: Tensor,
    b: Tensor,
}
impl BackwardOp for Div {
    fn name(&self) -> &'static str {
        "div"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        vec![
            needs[0].then(|| g.div(&self.b).sum_to_shape(self.a.shape())),
            // d(a/b)/db = −a/b²
            needs[1].then(|| g.mul(&self.a).div(&self.b.square()).neg().sum_to_shape(self.b.shape())),
        ]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        Some(vec![
            needs[0].then(|| g.div(b).sum_to_shape(&a.shape())),
            needs[1].then(|| g.mul(a).div(&b.square()).neg().sum_to_shape(&b.shape())),
        ])
    }
}

/// The share of max(a, b)'s gradient each operand receives: 1 to the
/// larger, ½ each on ties, 0 to the smaller.
fn max_routing(a: &Tensor, b: &Tensor, dtype: tensor::DType) -> (Tensor, Tensor) {
    let gt = a.compare(b, CmpOp::Gt).to_dtype(dtype);
    let eq = a.compare(b, CmpOp::Eq).to_dtype(dtype).mul_scalar(0.5);
    let to_a = gt.add(&eq);
    let to_b = to_a.neg().add_scalar(1.0);
    (to_a, to_b)
}

/// max(a, b): the gradient goes to the larger operand; on ties it is
/// split evenly, as PyTorch does.
struct Maximum {
    a: Tensor,
    b: Tensor,
}
impl BackwardOp for Maximum {
    fn name(&self) -> &'static str {
        "maximum"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let (to_a, to_b) = max_routing(&self.a, &self.b, g.dtype());
        vec![
            needs[0].then(|| g.mul(&to_a).sum_to_shape(self.a.shape())),
            needs[1].then(|| g.mul(&to_b).sum_to_shape(self.b.shape())),
        ]
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        // The routing is piecewise constant: its own derivative is 0.
        let (to_a, to_b) = max_routing(&a.data(), &b.data(), g.dtype());
        Some(vec![
            needs[0].then(|| g.mul(&Var::constant(to_a)).sum_to_shape(&a.shape())),
            needs[1].then(|| g.mul(&Var::constant(to_b)).sum_to_shape(&b.shape())),
        ])
    }
}

impl Var {
    pub fn add(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        let out = a.add(&b);
        Var::from_op(out, &[self, rhs], || Add { a_shape: a.shape().clone(), b_shape: b.shape().clone() })
    }
    pub fn sub(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        let out = a.sub(&b);
        Var::from_op(out, &[self, rhs], || Sub { a_shape: a.shape().clone(), b_shape: b.shape().clone() })
    }
    pub fn mul(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        Var::from_op(a.mul(&b), &[self, rhs], || Mul { a, b })
    }
    pub fn div(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        Var::from_op(a.div(&b), &[self, rhs], || Div { a, b })
    }
    pub fn maximum(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        Var::from_op(a.maximum(&b), &[self, rhs], || Maximum { a, b })
    }
    /// min(a, b) = −max(−a, −b).
    pub fn minimum(&self, rhs: &Var) -> Var {
        self.neg().maximum(&rhs.neg()).neg()
    }
}

macro_rules! var_operator {
    ($trait:ident, $method:ident, $scalar:ident) => {
        impl std::ops::$trait<&Var> for &Var {
            type Output = Var;
            fn $method(self, rhs: &Var) -> Var {
                Var::$method(self, rhs)
            }
        }
        impl std::ops::$trait<Var> for Var {
            type Output = Var;
            fn $method(self, rhs: Var) -> Var {
                Var::$method(&self, &rhs)
            }
        }
        impl std::ops::$trait<&Var> for Var {
            type Output = Var;
            fn $method(self, rhs: &Var) -> Var {
                Var::$method(&self, rhs)
            }
        }
        impl std::ops::$trait<Var> for &Var {
            type Output = Var;
            fn $method(self, rhs: Var) -> Var {
                Var::$method(self, &rhs)
            }
        }
        impl std::ops::$trait<f64> for &Var {
            type Output = Var;
            fn $method(self, rhs: f64) -> Var {
                self.$scalar(rhs)
            }
        }
        impl std::ops::$trait<f64> for Var {
            type Output = Var;
            fn $method(self, rhs: f64) -> Var {
                self.$scalar(rhs)
            }
        }
    };
}
var_operator!(Add, add, add_scalar);
var_operator!(Sub, sub, sub_scalar);
var_operator!(Mul, mul, mul_scalar);
var_operator!(Div, div, div_scalar);

impl std::ops::Neg for &Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(self)
    }
}
impl std::ops::Neg for Var {
    type Output = Var;
    fn neg(self) -> Var {
        Var::neg(&self)
    }
}
