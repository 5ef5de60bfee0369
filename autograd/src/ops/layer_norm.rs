//! Layer norm as one differentiable op.
//!
//! Normalising each row over its last dimension, y = x̂·γ + β with
//! x̂ = (x − mean)·rstd, has a short closed-form backward (see
//! `kernels::cpu::rows`) that needs only x, γ and the per-row mean and rstd
//! saved by the forward. Composing it from mean/sub/var/sqrt/div would save
//! five intermediates and run five passes instead.
//! For second derivatives, `backward_graph` writes the closed form with
//! `Var` ops, recomputing mean and rstd from x so they are differentiated.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct LayerNorm {
    x: Tensor,
    gamma: Option<Tensor>,
    mean: Tensor,
    rstd: Tensor,
    /// Only the graph backward needs it (it recomputes rstd from x).
    eps: f64,
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
    /// The closed form on `Var`s, with the statistics recomputed from x so
    /// that they are differentiated too: with x̂ = (x − mean)·rstd and
    /// dx̂ = dy·γ,
    ///   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)),
    ///   dγ = Σ_rows dy ⊙ x̂,  dβ = Σ_rows dy.
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let x = &inputs[0];
        let centered = x.sub(&x.mean(-1, true));
        let rstd = centered.square().mean(-1, true).add_scalar(self.eps).powf(-0.5);
        let x_hat = centered.mul(&rstd);
        let dx_hat = match inputs.get(1) {
            Some(gamma) => g.mul(gamma),
            None => g.clone(),
        };
        let mut out = vec![needs[0].then(|| {
            let mean_term = dx_hat.mean(-1, true);
            let projection = x_hat.mul(&dx_hat.mul(&x_hat).mean(-1, true));
            rstd.mul(&dx_hat.sub(&mean_term).sub(&projection))
        })];
        if needs.len() > 1 {
            let sum_rows = |t: Var| t.reshape(&[-1, x.dim(-1) as isize]).sum(0, false);
            out.push(needs[1].then(|| sum_rows(g.mul(&x_hat))));
            out.push(needs[2].then(|| sum_rows(g.clone())));
        }
        Some(out)
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
    Var::from_op(out.y, &inputs, || LayerNorm { x: xd, gamma: g, mean: out.mean, rstd: out.rstd, eps })
}
