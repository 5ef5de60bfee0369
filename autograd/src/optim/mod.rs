//! Optimizers, gradient clipping and learning-rate schedules.
//!
//! An optimizer holds the parameters it updates and whatever per-parameter
//! state its rule needs (SGD's momentum buffer, AdamW's two moment
//! estimates). `step()` reads each parameter's `.grad()` and updates its
//! value in place; frozen parameters (no gradient) are skipped.

mod adamw;
mod clip;
mod schedule;
mod sgd;

pub use adamw::AdamW;
pub use clip::clip_grad_norm;
pub use schedule::LrSchedule;
pub use sgd::Sgd;

pub trait Optimizer {
    /// Applies one update from the current gradients.
    fn step(&mut self);
    /// Clears the gradients of every parameter this optimizer updates.
    fn zero_grad(&self);
    fn learning_rate(&self) -> f64;
    fn set_learning_rate(&mut self, lr: f64);
}
