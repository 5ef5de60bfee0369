//! The slot a block's projection sits in: any layer that maps `[.., in]`
//! to `[.., out]`.
//!
//! GPT-2 has four projections per block (`attn.c_attn`, `attn.c_proj`,
//! `mlp.c_fc`, `mlp.c_proj`), and in this chapter each is a plain
//! [`Linear`], y = x·Wᵀ + b. Later chapters change them without editing
//! the model, the way the book's later chapters import the chapter-4 GPT
//! and replace its `nn.Linear`s from outside:
//! - LoRA (`finetune::lora`) wraps a Linear with a low-rank adapter;
//! - quantization (`quant`) replaces it with a layer whose weight is
//!   packed in fewer bits.
//!
//! So the model holds each projection as a `Box<dyn Projection>`: a
//! [`Module`] that can also say which plain Linear it amounts to. The model
//! only ever calls `forward`, one call through the box per projection, and
//! knows no other kind of layer. A module that put its own layer into a
//! slot finds it again with `downcast_ref` (PyTorch's `isinstance`).

use std::any::Any;

use autograd::nn::{Linear, Module};
use tensor::Device;

pub trait Projection: Module + Any {
    /// This layer as one plain f32 Linear computing the same outputs: a
    /// Linear shares its own parameters, a wrapper folds in what it adds
    /// (a LoRA adapter's ΔW). `None` when the layer has no f32 weight (a
    /// quantized one).
    fn to_linear(&self) -> Option<Linear>;

    /// Why the layer cannot run on `device`, if it cannot. A layer of
    /// tensors runs anywhere; a packed one runs on the CPU only. The model
    /// asks every layer before it moves any.
    fn check_device(&self, _device: Device) -> tensor::Result<()> {
        Ok(())
    }
}

impl dyn Projection {
    /// The layer as a `T`, if it is one.
    pub fn downcast_ref<T: Projection>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref()
    }
}

/// The chapter-4 projection.
impl Projection for Linear {
    fn to_linear(&self) -> Option<Linear> {
        // A `Var` clone is the same parameter under a second owner.
        Some(Linear::from_weights(self.weight.clone(), self.bias.clone()))
    }
}
