//! Quantizing a model in memory: an f32 `GPTModel` in, a quantized one out.
//!
//! The same conversion `quantize_folder` writes to disk, for programs that
//! already hold a model (benchmarks, the examples). Each projection is
//! packed from the plain Linear it amounts to (`Projection::to_linear`), so
//! a LoRA adapter is merged first and the result computes what the adapted
//! model computes. Position embeddings and LayerNorms are shared with the
//! source model (they stay f32); the matrices are new packed copies.

use std::collections::HashMap;

use autograd::nn::{Embedding, Module};
use autograd::Var;
use tensor::quant::{QuantMatrix, QuantizeError, Scheme};

use super::embedding::QuantEmbedding;
use super::linear::QuantLinear;
use super::scheme_of;
use crate::model::build::{tensor_specs, Init, LayerSource, Role};
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

/// `model` with its projections and token embedding stored as `scheme`.
pub fn quantize_model(model: &GPTModel, scheme: Scheme) -> Result<GPTModel, ConvertError> {
    if model.wte.downcast_ref::<Embedding>().is_none() {
        let error = QuantizeError::AlreadyQuantized(scheme_of(model).expect("a token table is f32 or packed"));
        let table = tensor_specs(&model.config).into_iter().find(|s| s.role == Role::TokenTable);
        return Err(ConvertError { tensor: table.expect("every model has a token table").name, error });
    }
    let mut source = ModelSource {
        params: model.named_parameters().into_iter().collect(),
        projections: model.projections().map(|(name, p)| (name, p)).collect(),
        scheme,
    };
    GPTModel::build(model.config.clone(), &mut source)
}

/// The layers of an existing model, by name: its projections packed from
/// the plain Linear each amounts to, its token table packed, everything
/// else shared.
struct ModelSource<'a> {
    params: HashMap<String, Var>,
    projections: HashMap<String, &'a dyn Projection>,
    scheme: Scheme,
}

impl LayerSource for ModelSource<'_> {
    type Error = ConvertError;

    fn projection(
        &mut self,
        name: &str,
        _: usize,
        _: usize,
        _: bool,
        _: f64,
    ) -> Result<Box<dyn Projection>, ConvertError> {
        let p = self.projections[name];
        let weight_name = format!("{name}.weight");
        let Some(linear) = p.to_linear() else {
            let packed = p.downcast_ref::<QuantLinear>().expect("only a packed projection has no f32 weight");
            let error = QuantizeError::AlreadyQuantized(packed.weight.scheme());
            return Err(ConvertError { tensor: weight_name, error });
        };
        let weight = pack(&linear.weight, &weight_name, self.scheme)?;
        Ok(Box::new(QuantLinear { weight, bias: linear.bias.as_ref().map(Var::data) }))
    }

    fn token_embedding(&mut self, name: &str, _: usize, _: usize) -> Result<Box<dyn TokenEmbedding>, ConvertError> {
        let name = format!("{name}.weight");
        Ok(Box::new(QuantEmbedding { table: pack(&self.params[&name], &name, self.scheme)? }))
    }

    fn float(&mut self, name: &str, _: &[usize], _: Init) -> Result<Var, ConvertError> {
        Ok(self.params[name].clone())
    }
}
