//! The optimizer's update as one tensor op: a fused AdamW step.
//!
//! For each parameter θ with gradient g, step t and moments m, v
//! (PyTorch's `AdamW`: decoupled weight decay, bias correction, eps added
//! after the square root):
//!
//! ```text
//! θ ← θ·(1 − lr·λ)
//! m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
//! θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + eps)
//! ```
//!
//! Written with tensor ops that is a dozen passes over memory and as many
//! temporary buffers per parameter; fused, it is one pass that updates θ,
//! m and v in place. On the CPU each parameter is one pass
//! (`cpu/optim.rs`); on a GPU every parameter is updated by a single
//! kernel launch (`cuda/optim.rs`). The state (m, v, t) stays with the
//! caller (`autograd::optim::AdamW`).

use crate::backend;
use crate::tensor::Tensor;

/// One parameter's part of an AdamW step. `param`, `m` and `v` are updated
/// in place: each is made a dense buffer that nothing else shares first (a
/// copy only if a view or another tensor still shares it), so no other
/// tensor ever sees the change.
pub struct AdamWSlot<'a> {
    pub param: &'a mut Tensor,
    pub grad: &'a Tensor,
    /// First moment, of the parameter's shape.
    pub m: &'a mut Tensor,
    /// Second moment, of the parameter's shape.
    pub v: &'a mut Tensor,
    /// This parameter's 1-based step count (bias correction).
    pub step: u64,
}

/// AdamW's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWSettings {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
}

impl Tensor {
    /// One fused AdamW step over every slot (all parameters on one device).
    pub fn adamw_step(slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings) {
        let Some(first) = slots.first() else { return };
        let device = first.param.device();
        for s in slots.iter() {
            assert_eq!(s.param.device(), device, "AdamW: parameters on {device} and {}", s.param.device());
            for (name, t) in [("gradient", s.grad), ("first moment", &*s.m), ("second moment", &*s.v)] {
                assert_eq!(
                    t.shape(),
                    s.param.shape(),
                    "AdamW: {name} {} for a parameter {}",
                    t.shape(),
                    s.param.shape()
                );
            }
        }
        backend::of(&[&*slots[0].param]).adamw_step(slots, settings)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    /// PyTorch's AdamW update written with tensor ops, one op at a time.
    fn reference(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, t: u64, s: &AdamWSettings) -> [Tensor; 3] {
        let (b1, b2) = s.betas;
        let p = p.mul_scalar(1.0 - s.lr * s.weight_decay);
        let m = m.mul_scalar(b1).add(&g.mul_scalar(1.0 - b1));
        let v = v.mul_scalar(b2).add(&g.square().mul_scalar(1.0 - b2));
        let (bias1, bias2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        let denom = v.sqrt().div_scalar(bias2.sqrt()).add_scalar(s.eps);
        let p = p.sub(&m.div(&denom).mul_scalar(s.lr / bias1));
        [p, m, v]
    }

    #[test]
    fn a_fused_step_equals_the_formula_and_leaves_shared_buffers_alone() {
        let mut gen = Generator::seed(4);
        let s = AdamWSettings { lr: 0.1, betas: (0.9, 0.99), eps: 1e-8, weight_decay: 0.1 };
        let shapes = [vec![3, 5], vec![7]];
        let mut params: Vec<Tensor> =
            shapes.iter().map(|d| Tensor::randn(d.clone(), &mut gen).to_dtype(DType::F64)).collect();
        let mut moments: Vec<(Tensor, Tensor)> = params.iter().map(|p| (p.zeros_like(), p.zeros_like())).collect();
        let before = params[0].clone();
        let original = before.to_vec::<f64>();
        for t in 1..=3u64 {
            let grads: Vec<Tensor> =
                shapes.iter().map(|d| Tensor::randn(d.clone(), &mut gen).to_dtype(DType::F64)).collect();
            let want: Vec<[Tensor; 3]> =
                (0..2).map(|i| reference(&params[i], &grads[i], &moments[i].0, &moments[i].1, t, &s)).collect();
            let mut slots: Vec<AdamWSlot<'_>> = params
                .iter_mut()
                .zip(&grads)
                .zip(moments.iter_mut())
                .map(|((param, grad), (m, v))| AdamWSlot { param, grad, m, v, step: t })
                .collect();
            Tensor::adamw_step(&mut slots, &s);
            for (i, [p, m, v]) in want.iter().enumerate() {
                for (got, want) in [(&params[i], p), (&moments[i].0, m), (&moments[i].1, v)] {
                    for (a, b) in got.to_vec::<f64>().iter().zip(want.to_vec::<f64>()) {
                        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "step {t}: {a} vs {b}");
                    }
                }
            }
        }
        // `before` shared the first parameter's buffer: the update copied it.
        assert_ne!(before.to_vec::<f64>(), params[0].to_vec::<f64>());
        assert_eq!(before.to_vec::<f64>(), original);
    }
}
