//! Tensor operations, one family per file.
//!
//! Each file holds the public methods of one family (`Tensor::softmax`,
//! `Tensor::linear`, …): what the op means, its shapes, and the checks of
//! its arguments, made once, here, with both shapes in the panic message.
//! Then one line hands the work to the backend of the operands' device,
//! `backend::of(&[..]).op(..)`: the device is matched in that one place
//! (`backend.rs`), and the arithmetic lives in `cpu/<family>.rs` and
//! `cuda/<family>.rs`, which trust these checks and only compute.
//!
//! A learner follows `x.softmax(-1)` from `ops/rows.rs` (the contract and
//! the shapes) to `cpu/rows.rs` (the arithmetic, through
//! `kernels::cpu::rows`) or `cuda/rows.rs` (the kernel launches).

pub mod attention;
pub mod binary;
pub mod cross_entropy;
pub mod embedding;
pub mod index;
pub mod inplace;
pub mod linear;
pub mod matmul;
pub mod moe_route;
pub mod operators;
pub mod optim;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod rows;
pub mod swiglu;
pub mod unary;
