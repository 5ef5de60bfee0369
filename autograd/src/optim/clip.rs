//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`):
//! if ‖g‖₂ over all parameters exceeds `max_norm`, every gradient is scaled
//! by max_norm / (‖g‖ + 1e-6). Returns the norm before clipping, which is
//! worth logging: spikes announce trouble.

use crate::var::Var;

pub fn clip_grad_norm(params: &[Var], max_norm: f64) -> f64 {
    let grads: Vec<_> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
    let sum_sq: f64 = grads
        .iter()
        .map(|(_, g)| {
            if g.device().is_cuda() {
                // Summed on the GPU: one number comes back, not the gradient.
                tensor::cuda::sum_squares(g)
            } else {
                kernels::cpu::reduce::sum_squares_f64(&g.to_f64_vec(), |v| v)
            }
        })
        .sum();
    let norm = sum_sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (p, g) in grads {
            p.set_grad(Some(g.mul_scalar(coef)));
        }
    }
    norm
}
