//! Matrix multiply and its derivative.
//!
//! For C = A·B with dC the incoming gradient: dA = dC·Bᵀ and dB = Aᵀ·dC.
//! The transposes are free views, so the backward is two more GEMMs reading
//! the saved operands in place. Batched and broadcast operands follow the
//! same rule per batch entry, then `sum_to_shape` folds broadcast batch
//! dimensions; 1-D operands are treated as a row (left) or column (right).

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct Matmul {
    a: Tensor,
    b: Tensor,
}

impl BackwardOp for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn backward(&self, g: &Tensor, needs: &[bool]) -> Vec<Option<Tensor>> {
        // Lift vectors to matrices so one rule covers every case.
        let a = if self.a.rank() == 1 { self.a.unsqueeze(0) } else { self.a.clone() };
        let b = if self.b.rank() == 1 { self.b.unsqueeze(1) } else { self.b.clone() };
        let mut g = g.clone();
        if self.b.rank() == 1 {
            g = g.unsqueeze(-1);
        }
        if self.a.rank() == 1 {
            g = g.unsqueeze(-2);
        }
        let da = needs[0].then(|| g.matmul(&b.t()).sum_to_shape(a.shape()).reshape_to(self.a.shape().clone()));
        let db = needs[1].then(|| {
            if a.rank() > 2 && b.rank() == 2 {
                // The same b for every row of a batch: one GEMM over all rows
                // (Aᵀ·dC with the batch folded in) instead of a per-entry
                // product and a sum over the batch.
                let (k, n) = (b.dim(0) as isize, b.dim(1) as isize);
                a.reshape(&[-1, k]).t().matmul(&g.reshape(&[-1, n])).reshape_to(self.b.shape().clone())
            } else {
                a.t().matmul(&g).sum_to_shape(b.shape()).reshape_to(self.b.shape().clone())
            }
        });
        vec![da, db]
    }
    /// The same rule on the operand `Var`s: dA = dC·Bᵀ and dB = Aᵀ·dC are
    /// matmuls again, so they are differentiable (the batch-folding GEMM of
    /// `backward` is a speed trick the graph version does without).
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, needs: &[bool]) -> Option<Vec<Option<Var>>> {
        let (a0, b0) = (&inputs[0], &inputs[1]);
        let a = if a0.rank() == 1 { a0.unsqueeze(0) } else { a0.clone() };
        let b = if b0.rank() == 1 { b0.unsqueeze(1) } else { b0.clone() };
        let mut g = g.clone();
        if b0.rank() == 1 {
            g = g.unsqueeze(-1);
        }
        if a0.rank() == 1 {
            g = g.unsqueeze(-2);
        }
        let da = needs[0].then(|| g.matmul(&b.t()).sum_to_shape(&a.shape()).reshape_to(&a0.shape()));
        let db = needs[1].then(|| a.t().matmul(&g).sum_to_shape(&b.shape()).reshape_to(&b0.shape()));
        Some(vec![da, db])
    }
}

impl Var {
    /// Matrix product following `torch.matmul`.
    pub fn matmul(&self, rhs: &Var) -> Var {
        let (a, b) = (self.data(), rhs.data());
        Var::from_op(a.matmul(&b), &[self, rhs], || Matmul { a, b })
    }
}
