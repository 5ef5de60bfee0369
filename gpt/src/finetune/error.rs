//! What can go wrong fine-tuning: every message is one line that names the
//! file or the setting at fault.

use std::path::PathBuf;

use autograd::nn::LoraError;

use crate::tokenizer::TokenizerError;
use crate::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum FinetuneError {
    // Not named `source`: the message already includes it, and a source
    // would be printed twice by error chains.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    /// A data file that is readable but wrong (a missing key, one class).
    #[error("{path}: {reason}")]
    Data { path: PathBuf, reason: String },
    /// An adapter that does not fit the base model it is loaded onto.
    #[error("{path}: {reason}")]
    Adapter { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Lora(#[from] LoraError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    ChatTemplate(#[from] crate::chat_template::ChatTemplateError),
}

impl FinetuneError {
    pub fn data(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        FinetuneError::Data { path: path.into(), reason: reason.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FinetuneError::Io { path: path.into(), error: source }
    }
}
