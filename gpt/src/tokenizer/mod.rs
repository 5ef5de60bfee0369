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
//! - [`HfTokenizer`]: a Hugging Face `tokenizer.json` (Llama, Mistral, Qwen,
//!   ...), encoded and decoded exactly as the `tokenizers` library does
//!   ([`hf_json`]). The tokenizers in GGUF files are read into the same
//!   machinery; SentencePiece's score-ordered joining is [`spm_merge`].
//!
//! [`AnyTokenizer`] holds any of them, for code (the data pipeline, the command
//! line) that works with whichever the user picked.

mod base64;
mod bpe;
pub mod bytes;
mod char_level;
mod error;
pub(crate) mod files;
pub mod hf_json;
pub mod merge;
pub mod pretokenize;
mod special;
pub(crate) mod spm_merge;
mod stream;
pub mod train;

use std::path::Path;

pub(crate) use bpe::Fnv;
pub use bpe::{BpeTokenizer, ENDOFTEXT};
pub use char_level::{CharTokenizer, CHAR_VOCAB_FILE};
pub use error::TokenizerError;
pub use files::{MERGES_FILE, VOCAB_FILE};
pub use hf_json::{HfTokenizer, TOKENIZER_JSON_FILE};
pub use pretokenize::pretokenize;
pub use special::SpecialTokens;
pub use stream::Utf8Stream;
pub use train::{train_bpe, train_bpe_with_progress};

/// A BPE, `tokenizer.json` or character tokenizer, chosen at run time.
// A program holds one or two of these, so the size gap between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AnyTokenizer {
    Bpe(BpeTokenizer),
    Char(CharTokenizer),
    Hf(HfTokenizer),
}

impl AnyTokenizer {
    /// GPT-2's tokenizer.
    pub fn gpt2() -> AnyTokenizer {
        AnyTokenizer::Bpe(BpeTokenizer::gpt2())
    }

    /// Loads a tokenizer from `path`: a `tokenizer.json` file or a folder
    /// with one (preferred when a folder has several formats), a
    /// `*.tiktoken` rank file, a folder (or file) with `char_vocab.json`, or
    /// a folder with `vocab.json` + `merges.txt`. A `tokenizer.json` whose
    /// pipeline is GPT-2's loads as [`AnyTokenizer::Bpe`].
    pub fn load(path: impl AsRef<Path>) -> Result<AnyTokenizer, TokenizerError> {
        let path = path.as_ref();
        let json = if path.is_dir() { path.join(TOKENIZER_JSON_FILE) } else { path.to_path_buf() };
        if json.is_file() && json.extension().is_some_and(|e| e == "json") && !json.ends_with(CHAR_VOCAB_FILE) {
            return HfTokenizer::from_file(&json).map(HfTokenizer::into_any);
        }
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
            AnyTokenizer::Hf(_) => Err(TokenizerError::bad_vocab(
                dir.as_ref(),
                "saving a tokenizer read from tokenizer.json is not supported; copy its tokenizer.json",
            )),
        }
    }

    /// Number of token ids.
    pub fn vocab_size(&self) -> usize {
        match self {
            AnyTokenizer::Bpe(t) => t.vocab_size(),
            AnyTokenizer::Char(t) => t.vocab_size(),
            AnyTokenizer::Hf(t) => t.vocab_size(),
        }
    }

    /// Encodes `text`; `special` applies to BPE (a character vocabulary has
    /// no special tokens). A `tokenizer.json` tokenizer adds no BOS here
    /// (see [`HfTokenizer::encode`] for its post-processor).
    pub fn encode(&self, text: &str, special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.encode(text, special),
            AnyTokenizer::Char(t) => t.encode(text),
            AnyTokenizer::Hf(t) => t.encode_with(text, special, false),
        }
    }

    /// Encodes `text` as a model's input, as `transformers`' `tokenizer(text)`
    /// does: like [`encode`](Self::encode), then, for a `tokenizer.json`, the
    /// post-processor's special tokens (Llama's BOS in front). GPT-2-style
    /// BPE and character vocabularies add nothing. A chat prompt, whose
    /// template already wrote BOS into the text, is encoded with
    /// [`encode`](Self::encode) instead, as `transformers` does.
    pub fn encode_adding_special_tokens(&self, text: &str, special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        match self {
            AnyTokenizer::Hf(t) => t.encode_with(text, special, true),
            _ => self.encode(text, special),
        }
    }

    /// Encodes the contents of a corpus file, with special tokens allowed
    /// (they separate documents). BPE accepts any bytes (see
    /// [`BpeTokenizer::encode_bytes`]); the others need UTF-8.
    pub fn encode_corpus(&self, bytes: &[u8]) -> Result<Vec<u32>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.encode_bytes(bytes, SpecialTokens::Allow),
            AnyTokenizer::Char(t) => t.encode(utf8(bytes)?),
            AnyTokenizer::Hf(t) => t.encode_with(utf8(bytes)?, SpecialTokens::Allow, false),
        }
    }

    /// Decodes ids to text (lossy for BPE sequences cut inside a character).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.decode(ids),
            AnyTokenizer::Char(t) => t.decode(ids),
            AnyTokenizer::Hf(t) => t.decode(ids, false),
        }
    }

    /// The exact bytes of `ids` (see [`Utf8Stream`] to print them as they
    /// come). A `tokenizer.json` decoder produces text, so for it these are
    /// the bytes of [`decode`](Self::decode).
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        match self {
            AnyTokenizer::Bpe(t) => t.decode_bytes(ids),
            AnyTokenizer::Char(t) => t.decode(ids).map(String::into_bytes),
            AnyTokenizer::Hf(t) => t.decode(ids, false).map(String::into_bytes),
        }
    }

    /// The id of `<|endoftext|>`, where the vocabulary has one; for a
    /// `tokenizer.json`, its end-of-sequence token ([`HfTokenizer::eos_id`]).
    pub fn eot_id(&self) -> Option<u32> {
        match self {
            AnyTokenizer::Bpe(t) => t.eot_id(),
            AnyTokenizer::Char(_) => None,
            AnyTokenizer::Hf(t) => t.eos_id(),
        }
    }

    /// The beginning-of-sequence id, where there is one (`tokenizer.json`
    /// files name it; GPT-2 has none).
    pub fn bos_id(&self) -> Option<u32> {
        match self {
            AnyTokenizer::Hf(t) => t.bos_id(),
            _ => None,
        }
    }

    /// The end-of-sequence id: `<|endoftext|>` for GPT-2-style BPE.
    pub fn eos_id(&self) -> Option<u32> {
        self.eot_id()
    }

    /// The id of special token `name` (`"<|endoftext|>"`, `"<s>"`, ...).
    pub fn special_id(&self, name: &str) -> Option<u32> {
        match self {
            AnyTokenizer::Bpe(t) => t.special_id(name),
            AnyTokenizer::Char(_) => None,
            AnyTokenizer::Hf(t) => t.special_tokens().into_iter().find(|(text, _)| text == name).map(|(_, id)| id),
        }
    }

    /// A hash identifying the vocabulary (see [`BpeTokenizer::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        match self {
            AnyTokenizer::Bpe(t) => t.fingerprint(),
            AnyTokenizer::Char(t) => t.fingerprint(),
            AnyTokenizer::Hf(t) => t.fingerprint(),
        }
    }

    /// A short description, e.g. `bpe (50257 tokens)`, `tokenizer.json
    /// (49152 tokens)` or `GGUF (32000 tokens)`.
    pub fn describe(&self) -> String {
        match self {
            AnyTokenizer::Bpe(t) => format!("bpe ({} tokens)", t.vocab_size()),
            AnyTokenizer::Char(t) => format!("char ({} tokens)", t.vocab_size()),
            AnyTokenizer::Hf(t) => format!("{} ({} tokens)", t.source(), t.vocab_size()),
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, TokenizerError> {
    std::str::from_utf8(bytes).map_err(|e| TokenizerError::NotUtf8 { offset: e.valid_up_to() })
}

impl From<HfTokenizer> for AnyTokenizer {
    fn from(t: HfTokenizer) -> Self {
        AnyTokenizer::Hf(t)
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
