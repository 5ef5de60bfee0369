//! AdamW with PyTorch's exact semantics (decoupled weight decay, bias
//! correction, eps added after the square root). The arithmetic is one fused
//! kernel per parameter (`kernels::cpu::adamw`) that updates the weights and
//! both moments in place.

use kernels::cpu::adamw::{adamw, AdamWStep};
use tensor::{DType, Tensor};

use super::Optimizer;
use crate::var::Var;

pub struct AdamW {
    params: Vec<Var>,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken per parameter (a frozen parameter does not advance).
    steps: Vec<u64>,
    /// First and second moment estimates, created on first use.
    moments: Vec<Option<(Tensor, Tensor)>>,
}

impl AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    pub fn new(params: Vec<Var>, lr: f64) -> Self {
        AdamW::with_options(params, lr, (0.9, 0.999), 1e-8, 0.01)
    }

    pub fn with_options(params: Vec<Var>, lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Self {
        let n = params.len();
        AdamW { params, lr, betas, eps, weight_decay, steps: vec![0; n], moments: vec![None; n] }
    }

    /// The moment estimates of parameter `i` (for checkpoints).
    pub fn state(&self, i: usize) -> Option<(&Tensor, &Tensor, u64)> {
        self.moments[i].as_ref().map(|(m, v)| (m, v, self.steps[i]))
    }

    /// Restores the state of parameter `i` from a checkpoint.
    pub fn set_state(&mut self, i: usize, m: Tensor, v: Tensor, step: u64) {
        self.moments[i] = Some((m, v));
        self.steps[i] = step;
    }

    pub fn params(&self) -> &[Var] {
        &self.params
    }
}

/// The GPU step: every parameter in one kernel launch.
mod cuda;

impl Optimizer for AdamW {
    fn step(&mut self) {
        if self.params.iter().any(|p| p.device().is_cuda()) {
            return self.step_cuda();
        }
        for (i, p) in self.params.iter().enumerate() {
            let Some(grad) = p.grad() else { continue };
            self.steps[i] += 1;
            let h = AdamWStep {
                lr: self.lr,
                beta1: self.betas.0,
                beta2: self.betas.1,
                eps: self.eps,
                weight_decay: self.weight_decay,
                t: self.steps[i],
            };
            let (m, v) = self.moments[i].get_or_insert_with(|| (grad.zeros_like(), grad.zeros_like()));
            let g = grad.contiguous();
            p.update_data(|value| match value.dtype() {
                DType::F32 => {
                    adamw(value.data_mut::<f32>(), &g.contiguous_data::<f32>(), m.data_mut(), v.data_mut(), h)
                }
                DType::F64 => {
                    adamw(value.data_mut::<f64>(), &g.contiguous_data::<f64>(), m.data_mut(), v.data_mut(), h)
                }
                d => panic!("AdamW: parameters must be float32 or float64, got {d}"),
            });
        }
    }

    fn zero_grad(&self) {
        self.params.iter().for_each(|p| p.zero_grad());
    }
    fn learning_rate(&self) -> f64 {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}
