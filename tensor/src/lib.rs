//! An n-dimensional tensor, written from scratch.
//!
//! A [`Tensor`] is a flat buffer ([`storage`]) plus a [`Layout`] that says
//! how n-dimensional indices map into it (shape, strides, offset), a
//! [`DType`] and a [`Device`]. Reading a buffer through different layouts is
//! what makes transposes, slices and broadcasts free; ops that compute write
//! a fresh dense buffer. Tensors never change after they are made, so they
//! can be shared between threads and saved for a backward pass safely.
//!
//! Shapes follow PyTorch: `[batch, tokens, channels]` is `[B, T, C]`,
//! dimensions may be negative (`-1` is the last), and binary ops broadcast
//! as NumPy does. This crate knows nothing of gradients; `autograd` builds
//! differentiation on top of it.
//!
//! A tensor lives on a [`Device`], the CPU or a GPU. Each op is a method in
//! `ops/` that checks its arguments and hands the work to the backend of
//! its operands' device, `cpu/` or `cuda/` (see `backend.rs`); nothing
//! above this crate needs to know which.

pub mod autocast;
mod backend;
mod cpu;
pub mod creation;
pub mod cuda;
pub mod device;
pub mod display;
pub mod dtype;
pub mod error;
pub mod huge_pages;
pub mod layout;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod random;
pub mod rope;
pub mod shape;
pub mod storage;
mod tensor;
pub mod views;

pub use creation::NdData;
pub use cuda::collective::{DeviceGroup, GROUP_ID_BYTES};
pub use device::Device;
pub use dtype::{DType, Element, FloatElement};
pub use error::{Result, TensorError};
pub use layout::Layout;
pub use ops::attention::{merge_heads, split_heads, Attention, AttentionOptions, Qkv, SavedAttention};
pub use ops::binary::{BinaryOp, CmpOp};
pub use ops::moe_route::ExpertRouting;
pub use ops::optim::{AdamWSettings, AdamWSlot};
pub use ops::reduce::ReduceOp;
pub use ops::rms_norm::{RmsNormGrads, RmsNormOutput};
pub use ops::rows::{LayerNormGrads, LayerNormOutput};
pub use ops::unary::{ScalarOp, UnaryOp};
pub use random::Generator;
pub use rope::{RopeConfig, RopeScaling, RopeTables};
pub use shape::Shape;
pub use tensor::Tensor;

// Re-exported so `with_type!` works in downstream crates.
#[doc(hidden)]
pub use half;
