//! AdamW with PyTorch's exact semantics (decoupled weight decay, bias
//! correction, eps added after the square root). This type holds the
//! state, the moment estimates m and v and each parameter's step count;
//! the arithmetic is one fused tensor op, `Tensor::adamw_step`
//! (`tensor/src/ops/optim.rs`), that updates the weights and both moments
//! in place: one pass per parameter on the CPU, one kernel launch for all
//! of them on a GPU.

use tensor::{AdamWSettings, AdamWSlot, Tensor};

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

impl Optimizer for AdamW {
    fn step(&mut self) {
        // Each value is taken out of its `Var` for the step, so no other
        // handle shares its buffer and the in-place update copies nothing;
        // it is put back afterwards.
        let mut taken: Vec<(usize, Tensor, Tensor, (Tensor, Tensor))> = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let Some(grad) = p.grad() else { continue };
            self.steps[i] += 1;
            let moments = self.moments[i].take().unwrap_or_else(|| (grad.zeros_like(), grad.zeros_like()));
            let value = p.update_data(|v| std::mem::replace(v, Tensor::zeros([0], v.dtype())));
            taken.push((i, value, grad, moments));
        }
        let mut slots: Vec<AdamWSlot<'_>> = taken
            .iter_mut()
            .map(|(i, value, grad, (m, v))| AdamWSlot { param: value, grad, m, v, step: self.steps[*i] })
            .collect();
        let settings = AdamWSettings { lr: self.lr, betas: self.betas, eps: self.eps, weight_decay: self.weight_decay };
        Tensor::adamw_step(&mut slots, &settings);
        drop(slots);
        for (i, value, _, moments) in taken {
            self.params[i].update_data(|v| *v = value);
            self.moments[i] = Some(moments);
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
