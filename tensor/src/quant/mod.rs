//! Packed weight matrices: a `[rows, cols]` matrix stored in fewer bits
//! than f32, and the products a model needs from it.
//!
//! f16/bf16 keep 16 bits per weight; int8 keeps one byte and a scale per
//! row; int4 half a byte and a scale per 32 weights. None of these is a
//! [`DType`](crate::DType) a `Tensor` computes in: a packed matrix is its
//! own small type, [`QuantMatrix`], that owns the buffers and hands them
//! to the quantized kernels (`kernels::cpu::quant`), which read them in
//! place. What goes in and comes out is an ordinary f32 `Tensor`.
//!
//! - [`scheme`]: the four formats;
//! - [`quantize`]: f32 → packed, with the rounding-error bound;
//! - [`matrix`]: a packed matrix, its matmul and its row lookup.
//!
//! How a model uses these (quantized layers, folders on disk) is
//! `gpt::quant`.

pub mod matrix;
pub mod quantize;
pub mod scheme;

/// The instruction set the quantized kernels run on (for reports).
pub use kernels::cpu::quant::Isa;
pub use matrix::{matmul_shared_input, QuantData, QuantMatrix, SharedWeight};
pub use quantize::QuantizeError;
pub use scheme::Scheme;
