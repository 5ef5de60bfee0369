//! The block's normalisation: GPT-2's LayerNorm or the Llama family's
//! RMSNorm, chosen by the config.
//!
//! LayerNorm: (x − mean)/√(var + ε)·γ + β over the last dim `C`.
//! RMSNorm: x/√(mean(x²) + ε)·γ: no centring and no bias, cheaper by one
//! reduction, and it trains as well; every Llama-family model uses it.

use autograd::nn::{LayerNorm, Module, RmsNorm};
use autograd::Var;

use super::build::{Init, LayerSource};
use super::config::GPTConfig;

pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    /// The norm `name` of width `dim` for this config's block, its
    /// parameters `name.weight` (and `name.bias` for LayerNorm) from `src`.
    pub fn build<S: LayerSource>(config: &GPTConfig, name: &str, dim: usize, src: &mut S) -> Result<Norm, S::Error> {
        let eps = config.layer_norm_eps;
        let weight = src.float(&format!("{name}.weight"), &[dim], Init::Ones)?;
        Ok(if config.model_type.is_gpt2() {
            Norm::Layer(LayerNorm { weight, bias: src.float(&format!("{name}.bias"), &[dim], Init::Zeros)?, eps })
        } else {
            Norm::Rms(RmsNorm { weight, eps })
        })
    }

    /// The ε added before the square root.
    pub fn eps(&self) -> f64 {
        match self {
            Norm::Layer(n) => n.eps,
            Norm::Rms(n) => n.eps,
        }
    }

    /// The same norm sharing these parameters (a model rebuilt around
    /// them, as quantization does).
    pub fn share(&self) -> Norm {
        match self {
            Norm::Layer(n) => Norm::Layer(LayerNorm { weight: n.weight.clone(), bias: n.bias.clone(), eps: n.eps }),
            Norm::Rms(n) => Norm::Rms(RmsNorm { weight: n.weight.clone(), eps: n.eps }),
        }
    }
}

impl Module for Norm {
    fn forward(&self, x: &Var) -> Var {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        match self {
            Norm::Layer(n) => n.visit_parameters(prefix, f),
            Norm::Rms(n) => n.visit_parameters(prefix, f),
        }
    }
}
