//! RMSNorm over the last dimension with a learned weight (ones), as
//! Llama's `input_layernorm`, `post_attention_layernorm` and final `norm`
//! (eps from the config's `rms_norm_eps`, 1e-6 by default here as in
//! transformers' `LlamaRMSNorm`), and Qwen3's per-head `q_norm`/`k_norm`
//! (weight `[head_dim]`).

use tensor::{DType, Tensor};

use super::{join_name, Module};
use crate::ops::rms_norm::rms_norm;
use crate::var::Var;

pub struct RmsNorm {
    pub weight: Var,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(dim: usize) -> Self {
        RmsNorm::with_eps(dim, 1e-6)
    }

    /// With another ε (a config's `rms_norm_eps`).
    pub fn with_eps(dim: usize, eps: f64) -> Self {
        RmsNorm { weight: Var::parameter(Tensor::ones([dim], DType::F32)), eps }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Var) -> Var {
        rms_norm(x, Some(&self.weight), self.eps)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        f(join_name(prefix, "weight"), &self.weight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_rows_and_names_its_weight() {
        let norm = RmsNorm::new(4);
        let x = Var::constant(Tensor::new([[1.0f32, -1.0, 1.0, -1.0], [2.0, 2.0, 2.0, 2.0]]).unwrap());
        let y = norm.forward(&x).data().to_vec::<f32>();
        assert!(y.iter().all(|v| (v.abs() - 1.0).abs() < 1e-5), "{y:?}");
        assert_eq!(norm.named_parameters()[0].0, "weight");
    }
}
