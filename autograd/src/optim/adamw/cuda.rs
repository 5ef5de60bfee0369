//! AdamW on a GPU: one fused launch for all parameters.
//!
//! The arithmetic is the CPU's (`kernels::cpu::adamw`), done by
//! `tensor::cuda::adamw_step` for every parameter at once. To update a
//! value in place, its tensor is taken out of its `Var` for the duration of
//! the step (so no other handle shares the buffer and no copy is needed),
//! and put back afterwards.

use tensor::{cuda::AdamWSlot, Tensor};

use super::AdamW;

impl AdamW {
    pub(super) fn step_cuda(&mut self) {
        let mut taken: Vec<(usize, Tensor, Tensor, (Tensor, Tensor))> = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            let Some(grad) = p.grad() else { continue };
            self.steps[i] += 1;
            let moments = self.moments[i].take().unwrap_or_else(|| (grad.zeros_like(), grad.zeros_like()));
            let value = p.update_data(|v| std::mem::replace(v, Tensor::zeros([0], v.dtype())));
            taken.push((i, value, grad, moments));
        }
        {
            let mut slots: Vec<AdamWSlot<'_>> = taken
                .iter_mut()
                .map(|(i, value, grad, (m, v))| AdamWSlot { param: value, grad, m, v, step: self.steps[*i] })
                .collect();
            tensor::cuda::adamw_step(&mut slots, self.lr, self.betas, self.eps, self.weight_decay);
        }
        for (i, value, _, moments) in taken {
            self.params[i].update_data(|v| *v = value);
            self.moments[i] = Some(moments);
        }
    }
}
