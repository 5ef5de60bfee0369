//! Quantizing a model in memory: an f32 `GPTModel` in, a quantized one out.
//!
//! The same conversion `quantize_folder` writes to disk, for programs that
//! already hold a model (benchmarks, the examples). LoRA adapters are
//! merged first, so the result computes what the adapted model computes.
//! Position embeddings and LayerNorms are shared with the source model
//! (they stay f32); the matrices are new packed copies.

use autograd::nn::{Embedding, LayerNorm};
use autograd::Var;

use super::linear::QuantLinear;
use super::matrix::QuantMatrix;
use super::quantize::QuantizeError;
use super::scheme::Scheme;
use crate::model::attention::CausalSelfAttention;
use crate::model::block::{Block, Mlp};
use crate::model::{GPTModel, Projection, TokenEmbedding};

/// A tensor that could not be quantized, by name.
#[derive(Clone, Debug, thiserror::Error)]
#[error("tensor {tensor} {error}")]
pub struct ConvertError {
    pub tensor: String,
    pub error: QuantizeError,
}

/// Packs a `[rows, cols]` f32 parameter.
fn pack(weight: &Var, name: &str, scheme: Scheme) -> Result<QuantMatrix, ConvertError> {
    let w = weight.data();
    let values = w.to_dtype(tensor::DType::F32);
    QuantMatrix::quantize(&values.contiguous_data::<f32>(), w.dim(0), w.dim(1), scheme)
        .map_err(|error| ConvertError { tensor: name.into(), error })
}

fn quantize_projection(p: &Projection, name: &str, scheme: Scheme) -> Result<Projection, ConvertError> {
    let merged;
    let linear = match p {
        Projection::Linear(l) => l,
        Projection::Lora(l) => {
            merged = l.merged();
            &merged
        }
        Projection::Quantized(q) => {
            let error = QuantizeError::AlreadyQuantized(q.weight.scheme());
            return Err(ConvertError { tensor: format!("{name}.weight"), error });
        }
    };
    let weight = pack(&linear.weight, &format!("{name}.weight"), scheme)?;
    Ok(Projection::Quantized(QuantLinear { weight, bias: linear.bias.as_ref().map(Var::data) }))
}

fn share(ln: &LayerNorm) -> LayerNorm {
    LayerNorm { weight: ln.weight.clone(), bias: ln.bias.clone(), eps: ln.eps }
}

/// `model` with its linear weights and token embedding stored as `scheme`.
pub fn quantize_model(model: &GPTModel, scheme: Scheme) -> Result<GPTModel, ConvertError> {
    let wte = match &model.wte {
        TokenEmbedding::Float(e) => TokenEmbedding::Quantized(pack(&e.weight, "wte.weight", scheme)?),
        TokenEmbedding::Quantized(q) => {
            let error = QuantizeError::AlreadyQuantized(q.scheme());
            return Err(ConvertError { tensor: "wte.weight".into(), error });
        }
    };
    let mut blocks = Vec::with_capacity(model.h.len());
    for (i, b) in model.h.iter().enumerate() {
        let p = format!("h.{i}");
        let c_attn = quantize_projection(&b.attn.c_attn, &format!("{p}.attn.c_attn"), scheme)?;
        let c_proj = quantize_projection(&b.attn.c_proj, &format!("{p}.attn.c_proj"), scheme)?;
        let mlp = Mlp {
            c_fc: quantize_projection(&b.mlp.c_fc, &format!("{p}.mlp.c_fc"), scheme)?,
            c_proj: quantize_projection(&b.mlp.c_proj, &format!("{p}.mlp.c_proj"), scheme)?,
        };
        let attn = CausalSelfAttention::from_parts(c_attn, c_proj, model.config.n_heads);
        blocks.push(Block::from_parts(share(&b.ln_1), attn, share(&b.ln_2), mlp, &model.config));
    }
    let wpe = Embedding { weight: model.wpe.weight.clone() };
    Ok(GPTModel::from_parts(model.config.clone(), wte, wpe, blocks, share(&model.ln_f)))
}
