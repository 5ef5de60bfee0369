//! LayerNorm over the last dimension with learned scale (ones) and shift
//! (zeros); eps 1e-5 as PyTorch and GPT-2.

use tensor::{DType, Tensor};

use super::{join_name, Module};
use crate::ops::layer_norm::layer_norm;
use crate::var::Var;

pub struct LayerNorm {
    pub weight: Var,
    pub bias: Var,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(dim: usize) -> Self {
        LayerNorm::with_eps(dim, 1e-5)
    }

    /// With another ε (a config's `layer_norm_epsilon`).
    pub fn with_eps(dim: usize, eps: f64) -> Self {
        LayerNorm {
            weight: Var::parameter(Tensor::ones([dim], DType::F32)),
            bias: Var::parameter(Tensor::zeros([dim], DType::F32)),
            eps,
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Var) -> Var {
        layer_norm(x, Some((&self.weight, &self.bias)), self.eps)
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        f(join_name(prefix, "weight"), &self.weight);
        f(join_name(prefix, "bias"), &self.bias);
    }
}
