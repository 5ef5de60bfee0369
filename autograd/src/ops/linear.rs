//! A linear layer's y = x·Wᵀ + b and its derivative.
//!
//! With every leading dimension of x flattened into M rows (x `[M, K]`,
//! W `[N, K]`, dY `[M, N]`):
//!   dx = dY·W            `[M, K]`
//!   dW = dYᵀ·x           `[N, K]`, W's own layout, so nothing is transposed
//!   db = Σ over rows dY  `[N]`
//! Each is one GEMM (or one column sum) however many batch dimensions x had;
//! see `tensor::ops::linear` for the forward. `backward_graph` writes the
//! same three products with `Var` ops.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct Linear {
    x: Tensor,
    weight: Tensor,
}

impl BackwardOp for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        let (n, k) = (self.weight.dim(0), self.weight.dim(1));
        let g2 = g.reshape(&[-1, n as isize]);
        let dx = needs[0].then(|| g2.matmul(&self.weight).reshape_to(self.x.shape().clone()));
        let dw = needs[1].then(|| g2.t().matmul(&self.x.reshape(&[-1, k as isize])));
        let mut grads = vec![dx, dw];
        if needs.len() == 3 {
            grads.push(needs[2].then(|| g2.sum(0, false)));
        }
        grads
    }
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (x, w) = (&inputs[0], &inputs[1]);
        let (n, k) = (w.dim(0) as isize, w.dim(1) as isize);
        let g2 = g.reshape(&[-1, n]);
        let mut grads = vec![
            needs[0].then(|| g2.matmul(w).reshape_to(&x.shape())),
            needs[1].then(|| g2.t().matmul(&x.reshape(&[-1, k]))),
        ];
        if needs.len() == 3 {
            grads.push(needs[2].then(|| g2.sum(0, false)));
        }
        Some(grads)
    }
}

/// x·Wᵀ + b for W `[out, in]` and an optional bias `[out]` (`F.linear`).
pub fn linear(x: &Var, weight: &Var, bias: Option<&Var>) -> Var {
    let (xd, wd) = (x.data(), weight.data());
    let y = xd.linear(&wd, bias.map(|b| b.data()).as_ref());
    let inputs: Vec<&Var> = [Some(x), Some(weight), bias].into_iter().flatten().collect();
    Var::from_op(y, &inputs, || Linear { x: xd, weight: wd })
}
