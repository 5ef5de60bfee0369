//! The block's normalisation: GPT-2's LayerNorm or the Llama family's
//! RMSNorm, chosen by the config.
//!
//! LayerNorm: (x − mean)/√(var + ε)·γ + β over the last dim `C`.
//! RMSNorm: x/√(mean(x²) + ε)·γ: no centring and no bias, cheaper by one
//! reduction, and it trains as well; every Llama-family model uses it.
//! Gemma's RMSNorm multiplies by 1 + w instead of w, its weights stored
//! around 0 (initialised to zeros): a weight decayed towards zero pulls the
//! norm towards the plain x/rms(x) rather than towards zero output. The
//! 1 + w is an addition in the graph before the same RMSNorm op, so the
//! gradient reaches w unchanged (d(1 + w)/dw = 1).

use autograd::nn::{LayerNorm, Module, RmsNorm};
use autograd::Var;

use super::build::{Init, LayerSource};
use super::config::GPTConfig;

pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
    /// Gemma's: x/√(mean(x²) + ε)·(1 + w).
    OnePlusRms(RmsNorm),
}

/// What an RMSNorm with `weight` multiplies by: the weight itself, or
/// 1 + weight for the Gemma family (`one_plus`).
pub fn rms_scale(weight: &Var, one_plus: bool) -> Var {
    if one_plus {
        weight.add_scalar(1.0)
    } else {
        weight.clone()
    }
}

impl Norm {
    /// The norm `name` of width `dim` for this config's block, its
    /// parameters `name.weight` (and `name.bias` for LayerNorm) from `src`.
    pub fn build<S: LayerSource>(config: &GPTConfig, name: &str, dim: usize, src: &mut S) -> Result<Norm, S::Error> {
        let eps = config.layer_norm_eps;
        let gemma = config.model_type.is_gemma();
        // Gemma stores w around 0 (1 + w is one at init).
        let weight = src.float(&format!("{name}.weight"), &[dim], if gemma { Init::Zeros } else { Init::Ones })?;
        Ok(if gemma {
            Norm::OnePlusRms(RmsNorm { weight, eps })
        } else if config.model_type.is_gpt2() {
            Norm::Layer(LayerNorm { weight, bias: src.float(&format!("{name}.bias"), &[dim], Init::Zeros)?, eps })
        } else {
            Norm::Rms(RmsNorm { weight, eps })
        })
    }

    /// The ε added before the square root.
    pub fn eps(&self) -> f64 {
        match self {
            Norm::Layer(n) => n.eps,
            Norm::Rms(n) | Norm::OnePlusRms(n) => n.eps,
        }
    }

    /// The same norm sharing these parameters (a model rebuilt around
    /// them, as quantization does).
    pub fn share(&self) -> Norm {
        match self {
            Norm::Layer(n) => Norm::Layer(LayerNorm { weight: n.weight.clone(), bias: n.bias.clone(), eps: n.eps }),
            Norm::Rms(n) => Norm::Rms(RmsNorm { weight: n.weight.clone(), eps: n.eps }),
            Norm::OnePlusRms(n) => Norm::OnePlusRms(RmsNorm { weight: n.weight.clone(), eps: n.eps }),
        }
    }
}

impl Module for Norm {
    fn forward(&self, x: &Var) -> Var {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
            Norm::OnePlusRms(n) => autograd::rms_norm(x, Some(&rms_scale(&n.weight, true)), n.eps),
        }
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        match self {
            Norm::Layer(n) => n.visit_parameters(prefix, f),
            Norm::Rms(n) | Norm::OnePlusRms(n) => n.visit_parameters(prefix, f),
        }
    }
}
