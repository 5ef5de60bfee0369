//! Reverse-mode automatic differentiation, and the neural-network pieces
//! built on it.
//!
//! - [`Var`] wraps a `Tensor` and records the op that made it;
//!   `loss.backward()` applies the chain rule through that graph (see
//!   `var.rs` for the algorithm, `ops/` for each op's derivative).
//! - [`nn`]: layers (`Linear`, `Embedding`, `LayerNorm`, `Dropout`,
//!   activations, `Sequential`) behind the [`nn::Module`] trait.
//! - [`loss`]: cross-entropy (fused), binary cross-entropy, MSE.
//! - [`optim`]: SGD, AdamW, gradient clipping, learning-rate schedules.
//! - [`grad`] returns gradients as `Var`s; with `create_graph` they can be
//!   differentiated again (Hessian-vector products, gradient penalties; see
//!   `higher_order.rs`).
//! - [`gradcheck`]: compares every backward against finite differences, and
//!   [`gradcheck::second_order`] every second derivative.

pub mod grad_mode;
pub mod gradcheck;
pub mod higher_order;
pub mod loss;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod profile;
mod var;

pub use grad_mode::{is_grad_enabled, no_grad, with_grad_mode, NoGradGuard};
pub use gradcheck::{gradcheck, gradcheck_fast, gradcheck_with, GradcheckOptions, GradcheckReport};
pub use higher_order::{grad, grad_with};
pub use ops::attention::{attention, attention_with_weights};
pub use ops::dropout::dropout;
pub use ops::layer_norm::layer_norm;
pub use ops::linear::linear;
pub use ops::rms_norm::rms_norm;
pub use ops::swiglu::swiglu;
pub use var::{BackwardOp, Var};

/// The names examples and models use most.
pub mod prelude {
    pub use crate::loss::{binary_cross_entropy, cross_entropy, mse_loss};
    pub use crate::nn::{Module, Sequential};
    pub use crate::optim::{AdamW, LrSchedule, Optimizer, Sgd};
    pub use crate::{gradcheck, no_grad, Var};
}
