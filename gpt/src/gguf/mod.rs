//! GGUF, llama.cpp's model file: one file holding a model's weights, its
//! hyper-parameters and its tokenizer, so that `llama.cpp` (and everything
//! built on it) runs a model exported here, and `--model FILE.gguf` runs
//! a GGUF GPT-2 or Llama-family model made elsewhere, with the tokenizer
//! its metadata describes (GPT-2's, Llama 3's, Qwen's and the other
//! byte-level BPEs llama.cpp names, and SentencePiece's).
//!
//! A GGUF file is a header, typed key/value metadata (`general.*`, the
//! architecture's hyper-parameters, `tokenizer.ggml.*`), a table of tensor
//! names, shapes, types and offsets, and then the tensors' bytes, each at
//! an aligned offset, stored as whole blocks of its type (f32, f16, or a
//! quantized block such as Q8_0: 32 weights sharing one f16 scale).
//!
//! - [`reader`] and [`writer`]: the container;
//! - [`value`]: metadata values;
//! - [`ggml_type`]: the storage types and their block sizes;
//! - [`dequant`] and [`quantize`]: block formats to f32 and back;
//! - [`arch`]: each architecture's tensor names against ours;
//! - [`tokenizer`]: the tokenizer in the metadata, with [`pre_tokenizer`]
//!   the regexes its `pre` names stand for;
//! - [`gpt2`]: our models to a file and back (GPT-2's layout there);
//! - [`llama`]: what the Llama family's architectures add: their
//!   hyper-parameters and the query/key row order of llama.cpp's `llama`.

pub mod arch;
pub mod dequant;
mod error;
pub mod gemma;
pub mod ggml_type;
pub mod gpt2;
pub mod llama;
pub mod pre_tokenizer;
pub mod quantize;
pub mod reader;
pub mod tokenizer;
pub mod value;
pub mod writer;

use std::path::Path;

pub use error::GgufError;
pub use ggml_type::GgmlType;
pub use gpt2::{export, load, ExportReport};
pub use reader::{GgufFile, TensorInfo};
pub use value::{Value, ValueType};
pub use writer::GgufWriter;

/// Whether `--model PATH` names a GGUF file rather than a model folder: a
/// file (not a folder) is read as GGUF, and the reader says so if its
/// magic is wrong.
pub fn is_model_file(path: &Path) -> bool {
    path.is_file()
}
