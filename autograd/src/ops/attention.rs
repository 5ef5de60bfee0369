//! Causal self-attention as one differentiable op: softmax(QKᵀ/√d)·V with
//! the future masked, forward and backward each one fused call.
//!
//! The op is a thin wrapper: `Tensor::attention` (tensor's
//! `ops/attention.rs`) checks the shapes, splits the heads and picks the
//! route (the CPU kernel, cuBLAS, or the GPU's flash kernel), and returns a
//! `SavedAttention` that holds whatever that route's backward needs (the
//! attention weights P, or a logsumexp per query row). This op keeps it
//! unopened and hands it to `Tensor::attention_backward`. The unfused
//! composition (matmul, masked_fill, softmax, matmul) would save P plus the
//! scores and run four passes instead of one.
//!
//! From the model to the arithmetic of the backward: `gpt/src/model/
//! attention.rs` → this file → `tensor/src/ops/attention.rs` (one match on
//! the route) → the kernel (`kernels::cpu::attention`, or
//! `tensor/src/cuda/attention.rs` → `kernels::cuda`).

use tensor::{AttentionOptions, Qkv, SavedAttention, Tensor};

use crate::var::{BackwardOp, Var};

struct Attention {
    saved: SavedAttention,
}

impl BackwardOp for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        Tensor::attention_backward(&self.saved, g).into_vec().into_iter().map(Some).collect()
    }
}

/// Causal attention over `input`, differentiable in every operand:
/// - `Qkv::Packed(&qkv)`: a block's projection `[B, T, (H + 2·Hkv)·D]` →
///   `[B, T, H·D]`, the heads read and written in place;
/// - `Qkv::Heads { q, k, v }`: `[B, H, Tq, D]` queries, `[B, Hkv, Tk, D]`
///   keys and values → `[B, H, Tq, D]`.
///
/// Hkv (`options.n_kv_heads`) is H for GPT-2; fewer key/value heads are
/// shared among the query heads, and `options.window` limits each query to
/// its last keys (see `tensor/src/ops/attention.rs`).
pub fn attention(input: Qkv<&Var>, options: &AttentionOptions) -> Var {
    attention_with_weights(input, options).0
}

/// As [`attention`], also handing back the attention weights P
/// `[B, H, Tq, Tk]` this very call computed, when its route keeps them (every
/// route but the GPU's flash kernel, which never forms P). For looking
/// inside a model: the weights are the forward pass's own, not a recomputation.
pub fn attention_with_weights(input: Qkv<&Var>, options: &AttentionOptions) -> (Var, Option<Tensor>) {
    let data = input.map(Var::data);
    let result = Tensor::attention(data.as_ref(), options);
    let weights = result.saved.probs().cloned();
    (Var::from_op(result.out, &input.into_vec(), || Attention { saved: result.saved }), weights)
}
