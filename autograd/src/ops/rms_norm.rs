//! RMSNorm as one differentiable op (Llama's norm).
//!
//! y = x̂ · w with x̂ = x · rstd, rstd = 1/sqrt(mean(x²) + eps) over the last
//! dimension. Its backward (see `kernels::cpu::rms_norm`) needs only x, w
//! and the per-row rstd the forward saved:
//!   dx = rstd · (g − x̂ · mean(g · x̂)),  g = dy · w;   dw = Σ_rows dy · x̂.
//! For second derivatives, `backward_graph` writes that closed form with
//! `Var` ops, rstd recomputed from x so that it is differentiated too.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct RmsNorm {
    x: Tensor,
    weight: Option<Tensor>,
    rstd: Tensor,
    /// Only the graph backward needs it (it recomputes rstd from x).
    eps: f64,
}

impl BackwardOp for RmsNorm {
    fn name(&self) -> &'static str {
        "rms_norm"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let grads = Tensor::rms_norm_backward(&self.x, self.weight.as_ref(), &self.rstd, g);
        let mut out = vec![needs[0].then_some(grads.dx)];
        if needs.len() > 1 {
            out.push(needs[1].then_some(grads.dweight));
        }
        out
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let x = &inputs[0];
        let rstd = x.square().mean(-1, true).add_scalar(self.eps).powf(-0.5);
        let x_hat = x.mul(&rstd);
        let dx_hat = match inputs.get(1) {
            Some(w) => g.mul(w),
            None => g.clone(),
        };
        let mut out = vec![needs[0].then(|| rstd.mul(&dx_hat.sub(&x_hat.mul(&dx_hat.mul(&x_hat).mean(-1, true)))))];
        if needs.len() > 1 {
            out.push(needs[1].then(|| g.mul(&x_hat).reshape(&[-1, x.dim(-1) as isize]).sum(0, false)));
        }
        Some(out)
    }
}

/// RMSNorm over the last dimension with an optional weight `[C]`: x of any
/// shape `[.., C]` (`[B, T, C]` activations, or `[B, T, H, head_dim]` for a
/// per-head norm of q and k).
pub fn rms_norm(x: &Var, weight: Option<&Var>, eps: f64) -> Var {
    let (xd, wd) = (x.data(), weight.map(Var::data));
    let out = xd.rms_norm(wd.as_ref(), eps);
    let inputs: Vec<&Var> = std::iter::once(x).chain(weight).collect();
    Var::from_op(out.y, &inputs, || RmsNorm { x: xd, weight: wd, rstd: out.rstd, eps })
}
