//! What can go wrong when reading, caching and windowing a corpus.

use std::path::PathBuf;

use crate::tokenizer::TokenizerError;

/// Errors from the data pipeline.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The corpus file has no bytes.
    #[error("{path}: the file is empty")]
    EmptyFile { path: PathBuf },

    /// The corpus could not be tokenized.
    #[error("{path}: {source}")]
    Tokenize {
        path: PathBuf,
        #[source]
        source: TokenizerError,
    },

    /// Fewer tokens than one training window (`max_length` inputs plus the
    /// one extra target).
    #[error("data has {tokens} tokens; one window needs {needed}")]
    TooShort { tokens: usize, needed: usize },

    /// A setting that cannot work (batch size 0, a split fraction of 1.5, ...).
    #[error("{0}")]
    BadConfig(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}
