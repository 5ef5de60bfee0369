//! Tokenizers: turning text into the integer ids a model reads, and back.
//!
//! A language model sees a sequence of ids from a fixed vocabulary. Two ways
//! to get them live here:
//!
//! - [`BpeTokenizer`]: GPT-2's byte-level BPE. Text is cut into words by a
//!   pre-tokenizer ([`pretokenize`]), each word's UTF-8 bytes start as one
//!   token per byte, and learned merge rules join frequent neighbours into
//!   bigger tokens ([`merge`]). [`BpeTokenizer::gpt2`] loads GPT-2's own 50,257
//!   tokens, matching tiktoken id for id; [`train_bpe`] learns a new
//!   vocabulary from a corpus ([`train`]).
//! - [`CharTokenizer`]: one id per character, for small character models.
//!
//! [`AnyTokenizer`] holds either, for code (the data pipeline, the command
//! line) that works with whichever the user picked.

mod base64;
mod bpe;
pub mod bytes;
mod char_level;
mod error;
pub(crate) mod files;
pub mod merge;
pub mod pretokenize;
mod special;
mod stream;
pub mod train;

use std::path::Path;

pub(crate) use bpe::Fnv;
pub use bpe::{BpeTokenizer, ENDOFTEXT};
pub use char_level::{CharTokenizer, CHAR_VOCAB_FILE};
pub use error::TokenizerError;
pub use files::{MERGES_FILE, VOCAB_FILE};
pub use pretokenize::pretokenize;
pub use special::SpecialTokens;
pub use stream::Utf8Stream;
pub use train::{train_bpe, train_bpe_with_progress};

/// A BPE or a character tokenizer, chosen at run time.
// A program holds one or two of these, so the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AnyTokenizer {
    Bpe(BpeTokenizer),
    Char(CharTokenizer),
}

impl AnyTokenizer {
    /// GPT-2's tokenizer.
    pub fn gpt2() -> AnyTokenizer {
        AnyTokenizer::Bpe(BpeTokenizer::gpt2())
    }

    /// Loads a tokenizer from `path`: a `*.tiktoken` rank file, a folder (or
    /// file) with `char_vocab.json`, or a folder with `vocab.json` +
    /// `merges.txt`.
    pub fn load(path: impl AsRef<Path>) -> Result<AnyTokenizer, TokenizerError> {
        let path = path.as_ref();
        if path.is_file() {
            if path.file_name().is_some_and(|n| n == CHAR_VOCAB_FILE) {
                let dir = path.parent().unwrap_or(Path::new("."));
                return CharTokenizer::load(dir).map(AnyTokenizer::Char);
            }
            return BpeTokenizer::from_tiktoken_file(path).map(AnyTokenizer::Bpe);
        }
        if path.join(CHAR_VOCAB_FILE).is_file() {
            return CharTokenizer::load(path).map(AnyTokenizer::Char);
        }
        BpeTokenizer::load(path).map(AnyTokenizer::Bpe)
    }

    /// Saves into folder `dir` in the tokenizer's own format.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.save(dir),
            AnyTokenizer::Char(t) => t.save(dir),
        }
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        match self {
            AnyTokenizer::Bpe(t) => t.vocab_size(),
            AnyTokenizer::Char(t) => t.vocab_size(),
        }
    }

    /// Encodes `text`; `special` applies to BPE (a character vocabulary has
    /// no special tokens).
    pub fn encode(&self, text: &str, special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.encode(text, special),
            AnyTokenizer::Char(t) => t.encode(text),
        }
    }

    /// Encodes the contents of a corpus file, with special tokens allowed
    /// (they separate documents). BPE accepts any bytes (see
    /// [`BpeTokenizer::encode_bytes`]); a character tokenizer needs UTF-8.
    pub fn encode_corpus(&self, bytes: &[u8]) -> Result<Vec<u32>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.encode_bytes(bytes, SpecialTokens::Allow),
            AnyTokenizer::Char(t) => {
                let text =
                    std::str::from_utf8(bytes).map_err(|e| TokenizerError::NotUtf8 { offset: e.valid_up_to() })?;
                t.encode(text)
            }
        }
    }

    /// Decodes ids to text (lossy for BPE sequences cut inside a character).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.decode(ids),
            AnyTokenizer::Char(t) => t.decode(ids),
        }
    }

    /// The exact bytes of `ids` (see [`Utf8Stream`] to print them as they come).
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.decode_bytes(ids),
            AnyTokenizer::Char(t) => t.decode(ids).map(String::into_bytes),
        }
    }

    /// The id of `<|endoftext|>`, where the vocabulary has one.
    pub fn eot_id(&self) -> Option<u32> {
        match self {
            AnyTokenizer::Bpe(t) => t.eot_id(),
            AnyTokenizer::Char(_) => None,
        }
    }

    /// A hash identifying the vocabulary (see [`BpeTokenizer::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        match self {
            AnyTokenizer::Bpe(t) => t.fingerprint(),
            AnyTokenizer::Char(t) => t.fingerprint(),
        }
    }

    /// A short description, e.g. `bpe (50257 tokens)`.
    pub fn describe(&self) -> String {
        match self {
            AnyTokenizer::Bpe(t) => format!("bpe ({} tokens)", t.vocab_size()),
            AnyTokenizer::Char(t) => format!("char ({} tokens)", t.vocab_size()),
        }
    }
}

impl From<BpeTokenizer> for AnyTokenizer {
    fn from(t: BpeTokenizer) -> Self {
        AnyTokenizer::Bpe(t)
    }
}

impl From<CharTokenizer> for AnyTokenizer {
    fn from(t: CharTokenizer) -> Self {
        AnyTokenizer::Char(t)
    }
}
