//! Softmax and log-softmax with fused backwards.
//!
//! With y = softmax(x): dx = y ⊙ (dy − Σ dy ⊙ y). With y = log_softmax(x):
//! dx = dy − softmax(x) · Σ dy. Both need only the saved output y, and both
//! run as one row kernel (see `kernels::cpu::rows`). `backward_graph` writes
//! the same formulas with `Var` ops on the output `Var` y, whose own graph
//! then gives the second derivative (exp(y) is the softmax for log-softmax).

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct Softmax {
    y: Tensor,
    dim: isize,
}
impl BackwardOp for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(Tensor::softmax_backward(&self.y, g, self.dim))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(y.mul(&g.sub(&g.mul(y).sum(self.dim, true))))])
    }
}

struct LogSoftmax {
    y: Tensor,
    dim: isize,
}
impl BackwardOp for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(Tensor::log_softmax_backward(&self.y, g, self.dim))]
    }
    fn backward_graph(&self, g: &Var, _: &[Var], y: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.sub(&y.exp().mul(&g.sum(self.dim, true))))])
    }
}

impl Var {
    pub fn softmax(&self, dim: isize) -> Var {
        let y = self.data().softmax(dim);
        Var::from_op(y.clone(), &[self], || Softmax { y, dim })
    }
    pub fn log_softmax(&self, dim: isize) -> Var {
        let y = self.data().log_softmax(dim);
        Var::from_op(y.clone(), &[self], || LogSoftmax { y, dim })
    }
}
