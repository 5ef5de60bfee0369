//! What a forward pass saw on its way through the blocks, kept for looking
//! inside the model (`gpt::inspect`), as transformers' `output_attentions`
//! and `output_hidden_states` keep it.
//!
//! [`GPTModel::forward_traced`](super::GPTModel::forward_traced) fills one:
//! each block's attention hands over the weights its own attention op
//! computed, and the model records the residual stream after each block.
//! Nothing is recomputed, so what is shown is what the forward pass did.

use tensor::Tensor;

#[derive(Default)]
pub struct Trace {
    /// Per layer, the attention weights `[B, H, T, T]`: query rows, key
    /// columns; each row sums to 1, masked keys are exactly 0.
    pub attention: Vec<Tensor>,
    /// Per layer, the residual stream `[B, T, C]` after the block, before
    /// the final norm.
    pub residual: Vec<Tensor>,
}
