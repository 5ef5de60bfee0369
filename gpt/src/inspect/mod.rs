//! Looking inside a model: pictures of what a forward pass computes on the
//! way to its prediction.
//!
//! - [`attention`]: for each layer and head, how much each query position
//!   attends to each earlier key position: the softmax weights `[T, T]` the
//!   forward pass itself computed (`GPTModel::forward_traced` hands them
//!   over from the attention op's own call).
//! - [`lens`]: the logit lens. The residual stream after each block is
//!   pushed through the final norm and the output head, as if the model
//!   stopped there: a layer × position table of the token it would predict
//!   and with what probability. The last layer's row is the real prediction.
//! - [`embeddings`]: the token embedding table on a 2-D map, and each
//!   token's nearest neighbours by cosine similarity; [`pca`] is the
//!   principal component analysis behind that map.
//!
//! Attention and the lens run one sequence (batch 1) on the CPU;
//! [`heatmap`] draws them as SVG. Every picture is SVG first; [`png`]
//! rasterises it, with the font the project carries.

pub mod attention;
pub mod embeddings;
pub mod heatmap;
pub mod lens;
pub mod pca;
pub mod png;

use autograd::no_grad;
use tensor::Tensor;

use crate::model::{GPTModel, Trace};

/// Why a prompt or a choice of layer or head cannot be inspected: one line
/// for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectError(pub String);

impl std::fmt::Display for InspectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InspectError {}

/// Refuses an empty prompt and one longer than the model's context.
pub fn check_prompt(model: &GPTModel, ids: &[u32]) -> Result<(), InspectError> {
    if ids.is_empty() {
        return Err(InspectError("the prompt is empty".into()));
    }
    let context = model.config.context_length;
    if ids.len() > context {
        return Err(InspectError(format!("the prompt is {} tokens; the model's context holds {context}", ids.len())));
    }
    Ok(())
}

/// One traced forward pass over `ids` (batch 1, no gradients): the logits
/// `[1, T, V]` and what the pass saw (see `Trace`).
pub fn traced_forward(model: &GPTModel, ids: &[u32]) -> Result<(Tensor, Trace), InspectError> {
    check_prompt(model, ids)?;
    let ids = Tensor::from_vec(ids.iter().map(|&id| id as i64).collect::<Vec<_>>(), [1, ids.len()])
        .expect("a [1, T] shape holds T ids");
    let (logits, trace) = no_grad(|| model.forward_traced(&ids));
    Ok((logits.data(), trace))
}
