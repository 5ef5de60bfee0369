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
//! calls `forward`, one call through the box per projection, and knows no
//! other kind of layer. A module that put its own layer into a slot finds
//! it again with `downcast_ref` (PyTorch's `isinstance`).
//!
//! One exception is for speed: projections of the same input (q, k and v;
//! gate and up) go through [`project_shared_input`], which runs them as
//! one product when every one of them is a weight and a bias and nothing
//! more ([`Projection::shared_input_weight`]: a packed matrix, or a plain
//! Linear's f32 weight while no gradient is recorded), and calls each
//! `forward` otherwise.

use std::any::Any;

use autograd::nn::{Linear, Module};
use autograd::Var;
use tensor::quant::{matmul_shared_input, SharedWeight};
use tensor::{DType, Device, Tensor};

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

    /// The weight and the bias, when the layer's `forward` is exactly their
    /// product and its output a constant: a quantized layer, or a plain
    /// Linear on the CPU while no gradient is recorded. Several such layers
    /// of one input then run as one product ([`project_shared_input`]).
    /// `None` for any other layer (a LoRA wrapper, a layer being trained).
    fn shared_input_weight(&self) -> Option<(SharedWeight<'_>, Option<Tensor>)> {
        None
    }
}

/// Several projections of one input, `[.., in]` → one `[.., out_i]` each:
/// a layer's q, k and v, or its gate and up. Each layer's `forward`, except
/// when all of them hand over their weights: then they are one product,
/// whose matrix-vector passes at decoding share the threads out once for
/// all of them instead of once per layer (the outputs are the same, bit
/// for bit). f32 weights join only for a single input row (decoding): for
/// more rows each is its own GEMM, which is what it was.
pub fn project_shared_input<const N: usize>(layers: [&dyn Projection; N], x: &Var) -> [Var; N] {
    let weights = layers.map(|layer| layer.shared_input_weight());
    let input = x.data();
    let one_row = input.numel() == input.dim(-1);
    let shared = weights.iter().all(|w| match w {
        Some((SharedWeight::Packed(_), _)) => true,
        Some((SharedWeight::Dense(_), _)) => one_row,
        None => false,
    });
    if shared {
        let weights = weights.map(|w| w.expect("every layer handed over its weight"));
        let outputs = matmul_shared_input(weights.each_ref().map(|(w, b)| (w.clone(), b.as_ref())), &input);
        return outputs.map(Var::constant);
    }
    layers.map(|layer| layer.forward(x))
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

    /// Outside `no_grad` the product must be recorded for backward, so the
    /// layer runs its own `forward`; on a GPU too.
    fn shared_input_weight(&self) -> Option<(SharedWeight<'_>, Option<Tensor>)> {
        if autograd::is_grad_enabled() {
            return None;
        }
        let weight = self.weight.data();
        if weight.dtype() != DType::F32 || weight.rank() != 2 || weight.device() != Device::Cpu {
            return None;
        }
        Some((SharedWeight::Dense(weight), self.bias.as_ref().map(Var::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GPTConfig, GPTModel};
    use autograd::{no_grad, Var};
    use tensor::{Generator, Tensor};

    /// A layer from outside the model: twice a Linear.
    struct Doubled(Linear);

    impl Module for Doubled {
        fn forward(&self, x: &Var) -> Var {
            self.0.forward(x).mul_scalar(2.0)
        }
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
            self.0.visit_parameters(prefix, f)
        }
    }

    impl Projection for Doubled {
        fn to_linear(&self) -> Option<Linear> {
            let double = |v: &Var| Var::parameter(v.data().mul_scalar(2.0));
            Some(Linear::from_weights(double(&self.0.weight), self.0.bias.as_ref().map(double)))
        }
    }

    #[test]
    fn a_layer_from_outside_takes_every_slot_and_is_found_again() {
        let mut model = GPTModel::new(GPTConfig::preset("nano").unwrap(), &mut Generator::seed(0));
        let ids = Tensor::from_vec((0..8).map(|i| i * 61 % 512).collect::<Vec<i64>>(), [1, 8]).unwrap();
        let logits = |m: &GPTModel| no_grad(|| m.forward(&ids)).data().to_vec::<f32>();
        let plain = logits(&model);
        let mut widths = Vec::new();
        for (name, p) in model.projections_mut() {
            let linear = p.to_linear().unwrap();
            widths.push((name, linear.in_features(), linear.out_features()));
            *p = Box::new(Doubled(linear));
        }
        // Each name is its own slot's: in → out with C = 64.
        let c = 64;
        let layers =
            [("attn.c_attn", c, 3 * c), ("attn.c_proj", c, c), ("mlp.c_fc", c, 4 * c), ("mlp.c_proj", 4 * c, c)];
        assert_eq!(widths.len(), 4 * model.h.len());
        for (k, (name, i, o)) in widths.into_iter().enumerate() {
            let (layer, want_in, want_out) = layers[k % 4];
            assert_eq!((name, i, o), (format!("h.{}.{layer}", k / 4), want_in, want_out));
        }
        assert!(model.projections().all(|(_, p)| p.downcast_ref::<Doubled>().is_some()));
        assert!(model.projections().all(|(_, p)| p.downcast_ref::<Linear>().is_none()));
        let doubled = logits(&model);
        assert!(doubled.iter().zip(&plain).any(|(a, b)| (a - b).abs() > 1e-3), "the new layers are used");
        // Each slot's `to_linear` computes what the layer in it computes.
        for (_, p) in model.projections_mut() {
            *p = Box::new(p.to_linear().unwrap());
        }
        let worst = logits(&model).iter().zip(&doubled).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }
}
