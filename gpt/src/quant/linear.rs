//! A Linear layer whose weight is quantized: y = x·Wᵀ + b with W packed.
//!
//! Only the weight is quantized; the bias (a few hundred numbers) stays
//! f32. The layer is for inference: its output is a constant with no
//! gradient, and it lists no parameters for an optimizer to update. It
//! takes a projection's place in the model (`model::Projection`); as the
//! packed matrix is no tensor, it stays on the CPU.

use autograd::nn::{Linear, Module};
use autograd::Var;
use tensor::quant::{QuantMatrix, SharedWeight};
use tensor::{Device, Tensor, TensorError};

use crate::model::Projection;

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

    /// Nothing to move; any device but the CPU is refused.
    fn to_device(&self, device: Device) -> tensor::Result<()> {
        self.check_device(device)
    }
}

impl Projection for QuantLinear {
    /// None: there is no f32 weight to hand back (dequantizing would give
    /// the rounded one, not the layer it was made from).
    fn to_linear(&self) -> Option<Linear> {
        None
    }

    fn check_device(&self, device: Device) -> tensor::Result<()> {
        cpu_only(self.weight.scheme(), device)
    }

    fn shared_input_weight(&self) -> Option<(SharedWeight<'_>, Option<Tensor>)> {
        Some((SharedWeight::Packed(&self.weight), self.bias.clone()))
    }
}

/// A packed layer refuses every device but the CPU.
pub(crate) fn cpu_only(scheme: tensor::quant::Scheme, device: Device) -> tensor::Result<()> {
    if device == Device::Cpu {
        return Ok(());
    }
    Err(TensorError::DeviceUnavailable(device, format!("a quantized ({scheme}) model runs on the CPU only")))
}
