//! Layer norm as one differentiable op.
//!
//! Normalising each row over its last dimension, y = x̂·γ + β with
//! x̂ = (x − mean)·rstd, has a short closed-form backward (see
//! `kernels::cpu::rows`) that needs only x, γ and the per-row mean and rstd
//! saved by the forward. Composing it from mean/sub/var/sqrt/div would save
//! five intermediates and run five passes instead.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct LayerNorm {
    x: Tensor,
    gamma: Option<Tensor>,
    mean: Tensor,
    rstd: Tensor,
}

impl BackwardOp for LayerNorm {
    fn name(&self) -> &'static str {
        "layer_norm"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let grads = Tensor::layer_norm_backward(&self.x, self.gamma.as_ref(), &self.mean, &self.rstd, g);
        let mut out = vec![needs[0].then_some(grads.dx)];
        if needs.len() > 1 {
            out.push(needs[1].then_some(grads.dgamma));
            out.push(needs[2].then_some(grads.dbeta));
        }
        out
    }
}

/// Layer norm over the last dimension, with learned scale `gamma` and shift
/// `beta` (both `[C]`), or neither.
pub fn layer_norm(x: &Var, affine: Option<(&Var, &Var)>, eps: f64) -> Var {
    let xd = x.data();
    let (g, b) = match affine {
        Some((g, b)) => (Some(g.data()), Some(b.data())),
        None => (None, None),
    };
    let out = xd.layer_norm(g.as_ref(), b.as_ref(), eps);
    let inputs: Vec<&Var> = match affine {
        Some((g, b)) => vec![x, g, b],
        None => vec![x],
    };
    Var::from_op(out.y, &inputs, || LayerNorm { x: xd, gamma: g, mean: out.mean, rstd: out.rstd })
}
