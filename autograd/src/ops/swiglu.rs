//! SiLU and the fused SwiGLU of the Llama MLP, differentiable.
//!
//! silu(x) = x·σ(x), silu'(x) = σ(x)·(1 + x·(1 − σ(x))).
//! swiglu(gate, up) = silu(gate)·up, one fused node whose backward gives
//! both gradients in one pass: dgate = dy·up·silu'(gate), dup = dy·silu(gate).
//! The MLP is `down_proj(swiglu(gate_proj(x), up_proj(x)))`. The graph
//! backwards write silu' with `Var` ops so they can be differentiated again.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct Silu {
    x: Tensor,
}

impl BackwardOp for Silu {
    fn name(&self) -> &'static str {
        "silu"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(self.x.silu_backward(g))]
    }
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        Some(vec![Some(g.mul(&silu_derivative(&x[0])))])
    }
}

struct SwiGlu {
    gate: Tensor,
    up: Tensor,
}

impl BackwardOp for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let (dgate, dup) = Tensor::swiglu_backward(&self.gate, &self.up, g);
        vec![Some(dgate), Some(dup)]
    }
    fn backward_graph(&self, g: &Var, x: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (gate, up) = (&x[0], &x[1]);
        Some(vec![
            needs[0].then(|| g.mul(up).mul(&silu_derivative(gate))),
            needs[1].then(|| g.mul(&gate.mul(&gate.sigmoid()))),
        ])
    }
}

/// silu'(x) = s·(1 + x·(1 − s)), s = σ(x), as `Var` ops.
fn silu_derivative(x: &Var) -> Var {
    let s = x.sigmoid();
    s.mul(&x.mul(&s.neg().add_scalar(1.0)).add_scalar(1.0))
}

impl Var {
    /// SiLU (swish), x·σ(x).
    pub fn silu(&self) -> Var {
        let x = self.data();
        Var::from_op(x.silu(), &[self], || Silu { x })
    }
}

/// silu(gate)·up in one fused op (gate and up of one shape).
pub fn swiglu(gate: &Var, up: &Var) -> Var {
    let (g, u) = (gate.data(), up.data());
    Var::from_op(g.swiglu(&u), &[gate, up], || SwiGlu { gate: g, up: u })
}
