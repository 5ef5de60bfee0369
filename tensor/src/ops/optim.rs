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
                assert_eq!(t.shape(), s.param.shape(), "AdamW: {name} {} for a parameter {}", t.shape(), s.param.shape());
            }
        }
        backend::of(&[&*slots[0].param]).adamw_step(slots, settings)
    }
}
