//! Quantization: storing a trained model's weights in fewer bits.
//!
//! A GPT-2's parameters are f32, 4 bytes each; almost all of them sit in
//! the matrices of its linear layers and in the token embedding (which is
//! also the output head). Storing those matrices as f16/bf16 (2 bytes),
//! int8 (1 byte + a scale per row) or int4 (½ byte + a scale per 32
//! weights) shrinks the file and the memory a model needs to run by 2×,
//! ~4× and ~7×, and makes decoding faster, because producing one token
//! reads every weight once and memory bandwidth is the limit.
//!
//! What stays f32: position embeddings, LayerNorms and biases — together
//! well under 1% of the parameters, and the most sensitive to rounding.
//!
//! The packed matrix itself, its formats and the rounding are
//! `tensor::quant` ([`QuantMatrix`], [`Scheme`]); this module puts them
//! into the chapter-4 model from outside, as the book's later chapters do
//! with theirs. The model holds its projections and token embedding behind
//! two traits (`model::Projection`, `model::TokenEmbedding`); quantization
//! implements them with packed layers and swaps them in:
//! - [`linear`]: a quantized Linear layer, a model projection;
//! - [`embedding`]: the packed token table, also the tied head;
//! - [`convert`]: quantizing a model already in memory;
//! - [`folder`]: writing and loading quantized model folders;
//! - [`memory`]: the bytes each format needs for a given model.
//!
//! Quantized models are for inference: they carry no gradients, and
//! training or fine-tuning starts from the f32 model instead.

pub mod convert;
pub mod embedding;
pub mod folder;
pub mod linear;
pub mod memory;

pub use convert::{quantize_model, ConvertError};
pub use embedding::QuantEmbedding;
pub use folder::{folder_scheme, load_quantized, quantize_folder, QuantizeReport};
pub use linear::QuantLinear;
pub use tensor::quant::{Isa, QuantData, QuantMatrix, QuantizeError, Scheme};

use crate::model::GPTModel;

/// The format of `model`'s weights when it is quantized (inference only),
/// `None` for a trainable f32 model.
pub fn scheme_of(model: &GPTModel) -> Option<Scheme> {
    model.wte.downcast_ref::<QuantEmbedding>().map(|e| e.table.scheme())
}
