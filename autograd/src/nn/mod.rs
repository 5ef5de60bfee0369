//! Layers: parameters plus a forward function.
//!
//! A [`Module`] owns its parameters as `Var`s and lists them with dotted
//! names (`0.weight`, `blocks.3.attn.c_attn.bias`), which is how optimizers
//! find them and how checkpoints name them. Initialisations follow
//! PyTorch's defaults so a model here starts where the same model there
//! would.

mod activation;
mod dropout;
mod embedding;
mod layer_norm;
mod linear;
mod lora;
mod rms_norm;
mod sequential;

pub use activation::{Gelu, Relu, Sigmoid, Silu};
pub use dropout::Dropout;
pub use embedding::Embedding;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use lora::{check_rank, LoraError, LoraLinear};
pub use rms_norm::RmsNorm;
pub use sequential::Sequential;

use crate::var::Var;

pub trait Module: Send + Sync {
    /// Applies the layer.
    fn forward(&self, x: &Var) -> Var;

    /// Calls `f(name, param)` for every parameter, names prefixed by
    /// `prefix` (empty at the top).
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var));

    /// Switches dropout and similar layers between training and evaluation.
    fn set_training(&mut self, _training: bool) {}

    /// Moves every parameter to `device` (dropping their gradients), e.g.
    /// `model.to_device(Device::Cuda(0))?` before training on a GPU.
    fn to_device(&self, device: tensor::Device) -> tensor::Result<()> {
        move_parameters(self, device)
    }

    /// Every parameter with its dotted name, in a stable order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        self.visit_parameters("", &mut |name, v| out.push((name, v.clone())));
        out
    }

    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, v)| v).collect()
    }

    /// Total number of parameter elements.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.numel()).sum()
    }

    /// Parameter elements that require grad (not frozen).
    fn num_trainable_parameters(&self) -> usize {
        self.parameters().iter().filter(|p| p.requires_grad()).map(|p| p.numel()).sum()
    }

    fn train(&mut self) {
        self.set_training(true)
    }
    fn eval(&mut self) {
        self.set_training(false)
    }

    /// Clears every parameter's gradient.
    fn zero_grad(&self) {
        self.parameters().iter().for_each(|p| p.zero_grad());
    }
}

/// Moves every parameter of `module` to `device`, dropping their gradients:
/// what [`Module::to_device`] does unless a module must refuse first.
pub fn move_parameters<M: Module + ?Sized>(module: &M, device: tensor::Device) -> tensor::Result<()> {
    let mut result = Ok(());
    module.visit_parameters("", &mut |_, p| {
        if result.is_ok() && p.device() != device {
            match p.data().to_device(device) {
                Ok(moved) => {
                    p.zero_grad();
                    p.set_data(moved);
                }
                Err(e) => result = Err(e),
            }
        }
    });
    result
}

/// Joins a prefix and a name with a dot (`"" + "weight"` → `"weight"`).
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
