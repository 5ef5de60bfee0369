//! A Linear layer whose weight is quantized: y = x·Wᵀ + b with W packed.
//!
//! Only the weight is quantized; the bias (a few hundred numbers) stays
//! f32. The layer is for inference: its output is a constant with no
//! gradient, and it lists no parameters for an optimizer to update.

use autograd::nn::Module;
use autograd::Var;
use tensor::Tensor;

use super::matrix::QuantMatrix;

pub struct QuantLinear {
    /// `[out, in]`, as a `Linear` weight.
    pub weight: QuantMatrix,
    pub bias: Option<Tensor>,
}

impl QuantLinear {
    pub fn in_features(&self) -> usize {
        self.weight.cols()
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }
}

impl Module for QuantLinear {
    fn forward(&self, x: &Var) -> Var {
        Var::constant(self.weight.matmul(&x.data(), self.bias.as_ref()))
    }

    /// Quantized weights are not trainable parameters.
    fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Var)) {}
}
