//! What can go wrong reading or writing weights; every message names the
//! file, and the tensor when there is one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: missing tensor {name}")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor {name} has shape {actual:?}, expected {expected:?}")]
    Shape { path: PathBuf, name: String, expected: Vec<usize>, actual: Vec<usize> },
    #[error("{path}: tensor {name} has unsupported dtype {dtype}")]
    DType { path: PathBuf, name: String, dtype: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A quantized tensor that does not fit its scheme or its scales.
    #[error("{path}: tensor {name} {reason}")]
    Quantized { path: PathBuf, name: String, reason: String },
    /// A tensor whose values cannot be right (a NaN, an infinity).
    #[error("{path}: tensor {name} {reason}")]
    Values { path: PathBuf, name: String, reason: String },
    #[error("{0}")]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error("{0}")]
    Gguf(#[from] crate::gguf::GgufError),
}

impl WeightsError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WeightsError::Io { path: path.into(), source }
    }
}
