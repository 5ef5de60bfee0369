//! What can go wrong when loading, saving, training or using a tokenizer.
//!
//! File errors carry the path (and the line, for text formats) so a user can
//! go straight to the problem; errors about input text carry the byte offset.

use std::path::PathBuf;

/// Errors from the tokenizers.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A vocabulary, merges or rank file is not what its format says.
    /// `line` counts from 1.
    #[error("{path}: line {line}: {message}")]
    Malformed { path: PathBuf, line: usize, message: String },

    /// A vocabulary that parses but cannot be used (a byte with no token, a gap
    /// in the ids, ...).
    #[error("{path}: {message}")]
    BadVocab { path: PathBuf, message: String },

    /// The text holds a special token and the caller chose
    /// [`SpecialTokens::Reject`](super::SpecialTokens::Reject).
    #[error("text contains the special token {token:?} at byte {offset}; allow it, or encode it as text")]
    DisallowedSpecial { token: String, offset: usize },

    /// A token id that the vocabulary does not have.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    UnknownId { id: u32, vocab_size: usize },

    /// A character tokenizer met a character it was not built with.
    #[error("character {ch:?} at byte {offset} is not in the character vocabulary")]
    UnknownChar { ch: char, offset: usize },

    /// A character tokenizer was given bytes that are not UTF-8.
    #[error("input is not UTF-8 (first bad byte at {offset}); this tokenizer needs text")]
    NotUtf8 { offset: usize },

    /// BPE training was asked for fewer tokens than the base alphabet.
    #[error(
        "vocab size {requested} is too small: byte-level BPE needs at least {minimum} (256 bytes + special tokens)"
    )]
    VocabTooSmall { requested: usize, minimum: usize },

    /// BPE training was asked for more tokens than the limit.
    #[error("vocab size {requested} is larger than the limit of {limit}")]
    VocabTooLarge { requested: usize, limit: usize },

    /// Nothing to learn from.
    #[error("training text is empty")]
    EmptyTrainingText,
}

impl TokenizerError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TokenizerError::Io { path: path.into(), source }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        TokenizerError::Malformed { path: path.into(), line, message: message.into() }
    }

    pub(crate) fn bad_vocab(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TokenizerError::BadVocab { path: path.into(), message: message.into() }
    }
}
