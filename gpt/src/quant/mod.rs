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
//! - [`scheme`]: the four formats;
//! - [`quantize`]: f32 → packed, with the rounding-error bound;
//! - [`matrix`]: a packed matrix and the products a model needs from it
//!   (the arithmetic is in `kernels::cpu::quant`);
//! - [`linear`]: a quantized Linear layer;
//! - [`folder`]: writing and loading quantized model folders;
//! - [`convert`]: quantizing a model already in memory;
//! - [`memory`]: the bytes each format needs for a given model.
//!
//! Quantized models are for inference: they carry no gradients, and
//! training or fine-tuning starts from the f32 model instead.

pub mod convert;
pub mod folder;
pub mod linear;
pub mod matrix;
pub mod memory;
pub mod quantize;
pub mod scheme;

pub use convert::{quantize_model, ConvertError};
pub use folder::{folder_scheme, load_quantized, quantize_folder, QuantizeReport};
/// The instruction set the quantized kernels run on (for reports).
pub use kernels::cpu::quant::Isa;
pub use linear::QuantLinear;
pub use matrix::{QuantData, QuantMatrix};
pub use quantize::QuantizeError;
pub use scheme::Scheme;
