//! Quantizing a model in memory: an f32 `GPTModel` in, a quantized one out.
//!
//! The same conversion `quantize_folder` writes to disk, for programs that
//! already hold a model (benchmarks, the examples). Each projection is
//! packed from the plain Linear it amounts to (`Projection::to_linear`), so
//! a LoRA adapter is merged first and the result computes what the adapted
//! model computes. Position embeddings and LayerNorms are shared with the
//! source model (they stay f32); the matrices are new packed copies.

use autograd::nn::{Embedding, LayerNorm};
use autograd::Var;
use tensor::quant::{QuantMatrix, QuantizeError, Scheme};

use super::embedding::QuantEmbedding;
use super::linear::QuantLinear;
use super::scheme_of;
use crate::model::attention::CausalSelfAttention;
use crate::model::block::{Block, Mlp};
use crate::model::{GPTModel, Projection};

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

fn quantize_projection(p: &dyn Projection, name: &str, scheme: Scheme) -> Result<Box<dyn Projection>, ConvertError> {
    let name = format!("{name}.weight");
    let Some(linear) = p.to_linear() else {
        let packed = p.downcast_ref::<QuantLinear>().expect("only a packed projection has no f32 weight");
        let error = QuantizeError::AlreadyQuantized(packed.weight.scheme());
        return Err(ConvertError { tensor: name, error });
    };
    let weight = pack(&linear.weight, &name, scheme)?;
    Ok(Box::new(QuantLinear { weight, bias: linear.bias.as_ref().map(Var::data) }))
}

fn share(ln: &LayerNorm) -> LayerNorm {
    LayerNorm { weight: ln.weight.clone(), bias: ln.bias.clone(), eps: ln.eps }
}

/// `model` with its linear weights and token embedding stored as `scheme`.
pub fn quantize_model(model: &GPTModel, scheme: Scheme) -> Result<GPTModel, ConvertError> {
    let Some(table) = model.wte.downcast_ref::<Embedding>() else {
        let error = QuantizeError::AlreadyQuantized(scheme_of(model).expect("a token table is f32 or packed"));
        return Err(ConvertError { tensor: "wte.weight".into(), error });
    };
    let wte = Box::new(QuantEmbedding { table: pack(&table.weight, "wte.weight", scheme)? });
    let mut blocks = Vec::with_capacity(model.h.len());
    for (i, b) in model.h.iter().enumerate() {
        let p = format!("h.{i}");
        let c_attn = quantize_projection(&*b.attn.c_attn, &format!("{p}.attn.c_attn"), scheme)?;
        let c_proj = quantize_projection(&*b.attn.c_proj, &format!("{p}.attn.c_proj"), scheme)?;
        let mlp = Mlp {
            c_fc: quantize_projection(&*b.mlp.c_fc, &format!("{p}.mlp.c_fc"), scheme)?,
            c_proj: quantize_projection(&*b.mlp.c_proj, &format!("{p}.mlp.c_proj"), scheme)?,
        };
        let attn = CausalSelfAttention::from_parts(c_attn, c_proj, model.config.n_heads);
        blocks.push(Block::from_parts(share(&b.ln_1), attn, share(&b.ln_2), mlp, &model.config));
    }
    let wpe = Embedding { weight: model.wpe.weight.clone() };
    Ok(GPTModel::from_parts(model.config.clone(), wte, wpe, blocks, share(&model.ln_f)))
}
