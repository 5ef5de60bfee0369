//! The token embedding, packed: GPT-2's largest matrix (`wte`, `[V, C]`,
//! 38.6M of GPT-2 small's 124M weights) in fewer bits.
//!
//! It plays both of the table's parts (`model::TokenEmbedding`): a lookup
//! decodes just the rows asked for, and the tied head runs the quantized
//! matmul over all V rows. Like [`QuantLinear`](super::QuantLinear) it is
//! for inference, lists no parameters, and stays on the CPU.

use autograd::nn::Module;
use autograd::Var;
use tensor::quant::QuantMatrix;
use tensor::{Device, Tensor};

use super::linear::cpu_only;
use crate::model::TokenEmbedding;

pub struct QuantEmbedding {
    /// `[V, C]`, one row per token.
    pub table: QuantMatrix,
}

impl Module for QuantEmbedding {
    /// `x` holds int64 ids.
    fn forward(&self, x: &Var) -> Var {
        self.lookup(&x.data())
    }

    /// A packed table has no trainable parameters.
    fn visit_parameters(&self, _prefix: &str, _f: &mut dyn FnMut(String, &Var)) {}

    /// Nothing to move; any device but the CPU is refused.
    fn to_device(&self, device: Device) -> tensor::Result<()> {
        self.check_device(device)
    }
}

impl TokenEmbedding for QuantEmbedding {
    fn lookup(&self, ids: &Tensor) -> Var {
        Var::constant(self.table.lookup_rows(ids))
    }

    fn logits(&self, hidden: &Var) -> Var {
        Var::constant(self.table.matmul(&hidden.data(), None))
    }

    fn check_device(&self, device: Device) -> tensor::Result<()> {
        cpu_only(self.table.scheme(), device)
    }
}
