//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`):
//! if ‖g‖₂ over all parameters exceeds `max_norm`, every gradient is scaled
//! by max_norm / (‖g‖ + 1e-6). Returns the norm before clipping, which is
//! worth logging: spikes announce trouble.

use tensor::Tensor;

use crate::var::Var;

pub fn clip_grad_norm(params: &[Var], max_norm: f64) -> f64 {
    let grads: Vec<_> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
    // Each gradient is summed where it lives: from a GPU one number comes
    // back, not the gradient.
    let norm = Tensor::squared_norm(grads.iter().map(|(_, g)| g)).sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (p, g) in grads {
            p.set_grad(Some(g.mul_scalar(coef)));
        }
    }
    norm
}
