//! scratchgpt: a GPT built from nothing but Rust.
//!
//! This facade re-exports the layers, bottom to top:
//! `kernels` (compute on raw buffers) → `tensor` (shapes, strides, ops) →
//! `autograd` (reverse-mode differentiation, nn, optim) → `gpt` (tokenizer,
//! data, model) → `cli` (the `scratchgpt` binary). Start reading at
//! `docs/TOUR.md`.

pub use autograd;
pub use cli;
pub use gpt;
pub use kernels;
pub use tensor;

/// Everything an example needs in one `use`.
pub mod prelude {
    pub use autograd::prelude::*;
    pub use tensor::{tensor, DType, Device, Generator, Tensor};
}
