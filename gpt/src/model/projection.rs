//! A block's projection: a plain Linear, or one wrapped by a LoRA adapter.
//!
//! GPT-2's four projections per block (`attn.c_attn`, `attn.c_proj`,
//! `mlp.c_fc`, `mlp.c_proj`) are where LoRA adapters go. Holding them as
//! this enum lets `finetune::lora` swap a layer for its adapted version in
//! place, and later swap the merged result back, without the model knowing
//! anything about fine-tuning: both variants are just a `Module`.
//!
//! A third variant holds a quantized weight (`quantize` writes such
//! models); it is for inference only and takes no adapter.

use autograd::nn::{Linear, LoraError, LoraLinear, Module};
use autograd::Var;
use tensor::Generator;

use crate::quant::QuantLinear;

pub enum Projection {
    Linear(Linear),
    Lora(LoraLinear),
    Quantized(QuantLinear),
}

impl Projection {
    /// The pretrained layer (the frozen base under an adapter). Panics on a
    /// quantized layer, which has no f32 weight to adapt or train.
    pub fn base(&self) -> &Linear {
        match self {
            Projection::Linear(l) => l,
            Projection::Lora(l) => &l.base,
            Projection::Quantized(_) => panic!("a quantized projection has no f32 weight; use the f32 model"),
        }
    }

    pub fn lora(&self) -> Option<&LoraLinear> {
        match self {
            Projection::Lora(l) => Some(l),
            Projection::Linear(_) | Projection::Quantized(_) => None,
        }
    }

    /// Wraps the layer with a fresh rank-`rank` adapter (freezing the base).
    pub fn add_lora(&mut self, rank: usize, alpha: f64, gen: &mut Generator) -> Result<(), LoraError> {
        let base = share(self.base());
        *self = Projection::Lora(LoraLinear::new(base, rank, alpha, gen)?);
        Ok(())
    }

    /// Replaces the layer by `lora` (loading a saved adapter).
    pub fn set_lora(&mut self, lora: LoraLinear) {
        *self = Projection::Lora(lora);
    }

    /// Folds an adapter into the weight, leaving a plain Linear.
    pub fn merge(&mut self) {
        if let Projection::Lora(l) = self {
            *self = Projection::Linear(l.merged());
        }
    }
}

/// The same parameters under a second owner (a `Var` clone shares storage).
fn share(l: &Linear) -> Linear {
    Linear::from_weights(l.weight.clone(), l.bias.clone())
}

impl From<Linear> for Projection {
    fn from(l: Linear) -> Self {
        Projection::Linear(l)
    }
}

impl Module for Projection {
    fn forward(&self, x: &Var) -> Var {
        match self {
            Projection::Linear(l) => l.forward(x),
            Projection::Lora(l) => l.forward(x),
            Projection::Quantized(l) => l.forward(x),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        match self {
            Projection::Linear(l) => l.visit_parameters(prefix, f),
            Projection::Lora(l) => l.visit_parameters(prefix, f),
            Projection::Quantized(l) => l.visit_parameters(prefix, f),
        }
    }
}
