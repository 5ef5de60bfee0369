//! Linear: y = x·Wᵀ + b, with W stored `[out, in]` as in PyTorch.
//!
//! Initialised like `torch.nn.Linear`: W and b uniform in ±1/√in (Kaiming
//! uniform with a = √5 reduces to that bound).

use tensor::{DType, Generator, Tensor};

use super::{join_name, Module};
use crate::var::Var;

pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, bias: bool, gen: &mut Generator) -> Self {
        let bound = 1.0 / (in_features as f64).sqrt();
        let weight = Var::parameter(Tensor::uniform([out_features, in_features], -bound, bound, DType::F32, gen));
        let bias = bias.then(|| Var::parameter(Tensor::uniform([out_features], -bound, bound, DType::F32, gen)));
        Linear { weight, bias }
    }

    /// A layer with given weights (`[out, in]`) and optional bias (`[out]`).
    pub fn from_weights(weight: Var, bias: Option<Var>) -> Self {
        Linear { weight, bias }
    }

    pub fn in_features(&self) -> usize {
        self.weight.dim(1)
    }
    pub fn out_features(&self) -> usize {
        self.weight.dim(0)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Var) -> Var {
        // One GEMM over all rows of x, reading W in place (see ops::linear).
        crate::ops::linear::linear(x, &self.weight, self.bias.as_ref())
    }

    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        f(join_name(prefix, "weight"), &self.weight);
        if let Some(b) = &self.bias {
            f(join_name(prefix, "bias"), b);
        }
    }
}
