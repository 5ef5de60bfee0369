//! A character-level tokenizer: one token per distinct character.
//!
//! The vocabulary is the sorted set of characters in a corpus (Shakespeare
//! has 65), and a character's id is its place in that list. Sequences come
//! out about four times longer than with BPE, but the vocabulary is tiny,
//! which is what nanoGPT's `shakespeare_char` model uses to train in minutes.
//! There is no fallback: a character the corpus did not contain cannot be
//! encoded, and [`CharTokenizer::encode`] says which one and where.
//!
//! Saved as `char_vocab.json`: `{"kind": "char", "chars": "\n !$&..."}`.

use std::path::Path;

use rustc_hash::FxHashMap;

use super::bpe::Fnv;
use super::TokenizerError;
use crate::atomic::write_atomic;

/// File name of a saved character vocabulary.
pub const CHAR_VOCAB_FILE: &str = "char_vocab.json";

/// Maps each character of a fixed alphabet to its index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: FxHashMap<char, u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedChars {
    kind: String,
    chars: String,
}

impl CharTokenizer {
    /// The tokenizer whose vocabulary is the distinct characters of `text`,
    /// sorted by code point.
    pub fn from_text(text: &str) -> CharTokenizer {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self::from_sorted(chars)
    }

    fn from_sorted(chars: Vec<char>) -> CharTokenizer {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        CharTokenizer { chars, index }
    }

    /// Number of characters in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.chars.len()
    }

    /// The vocabulary, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The id of each character of `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        text.char_indices()
            .map(|(offset, ch)| self.index.get(&ch).copied().ok_or(TokenizerError::UnknownChar { ch, offset }))
            .collect()
    }

    /// The characters of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        ids.iter()
            .map(|&id| {
                self.chars
                    .get(id as usize)
                    .copied()
                    .ok_or(TokenizerError::UnknownId { id, vocab_size: self.vocab_size() })
            })
            .collect()
    }

    /// A hash of the alphabet; equal for tokenizers that encode identically.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(b"char");
        for c in &self.chars {
            h.write_u64(*c as u64);
        }
        h.0
    }

    /// Writes `char_vocab.json` into `dir` (created if missing).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| TokenizerError::io(dir, e))?;
        let saved = SavedChars { kind: "char".into(), chars: self.chars.iter().collect() };
        let json = serde_json::to_string_pretty(&saved).expect("a string serializes") + "\n";
        let path = dir.join(CHAR_VOCAB_FILE);
        write_atomic(&path, json.as_bytes()).map_err(|e| TokenizerError::io(&path, e))
    }

    /// Reads `char_vocab.json` from `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<CharTokenizer, TokenizerError> {
        let path = dir.as_ref().join(CHAR_VOCAB_FILE);
        let text = crate::input::read_capped_string(&path, crate::input::JSON_LIMIT)
            .map_err(|e| TokenizerError::io(&path, e))?;
        let saved: SavedChars = serde_json::from_str(&text)
            .map_err(|e| TokenizerError::malformed(&path, e.line(), format!("not a character vocabulary: {e}")))?;
        if saved.kind != "char" {
            return Err(TokenizerError::bad_vocab(&path, format!("kind is {:?}, expected \"char\"", saved.kind)));
        }
        let chars: Vec<char> = saved.chars.chars().collect();
        if chars.is_empty() {
            return Err(TokenizerError::bad_vocab(&path, "the vocabulary is empty"));
        }
        if let Some(w) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(TokenizerError::bad_vocab(
                &path,
                format!("characters must be sorted and distinct ({:?} then {:?})", w[0], w[1]),
            ));
        }
        Ok(Self::from_sorted(chars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_the_sorted_distinct_characters() {
        let tok = CharTokenizer::from_text("hello world");
        assert_eq!(tok.chars(), [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
        assert_eq!(tok.encode("hold").unwrap(), [3, 5, 4, 1]);
        assert_eq!(tok.decode(&[3, 5, 4, 1]).unwrap(), "hold");
    }

    #[test]
    fn unknown_characters_and_ids_are_errors() {
        let tok = CharTokenizer::from_text("abc");
        assert!(matches!(tok.encode("abz"), Err(TokenizerError::UnknownChar { ch: 'z', offset: 2 })));
        assert!(matches!(tok.decode(&[3]), Err(TokenizerError::UnknownId { id: 3, vocab_size: 3 })));
    }

    #[test]
    fn fingerprint_follows_the_alphabet() {
        assert_eq!(CharTokenizer::from_text("ab").fingerprint(), CharTokenizer::from_text("ba").fingerprint());
        assert_ne!(CharTokenizer::from_text("ab").fingerprint(), CharTokenizer::from_text("abc").fingerprint());
    }
}
