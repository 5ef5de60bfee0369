//! Activation layers: parameter-free wrappers over the elementwise ops.

use super::Module;
use crate::var::Var;

pub struct Relu;
pub struct Sigmoid;
/// GELU with the tanh approximation, as GPT-2.
pub struct Gelu;
/// SiLU (swish), x·σ(x), as Llama's MLP gate.
pub struct Silu;

impl Module for Relu {
    fn forward(&self, x: &Var) -> Var {
        x.relu()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Var)) {}
}

impl Module for Sigmoid {
    fn forward(&self, x: &Var) -> Var {
        x.sigmoid()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Var)) {}
}

impl Module for Silu {
    fn forward(&self, x: &Var) -> Var {
        x.silu()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Var)) {}
}

impl Module for Gelu {
    fn forward(&self, x: &Var) -> Var {
        x.gelu()
    }
    fn visit_parameters(&self, _: &str, _: &mut dyn FnMut(String, &Var)) {}
}
