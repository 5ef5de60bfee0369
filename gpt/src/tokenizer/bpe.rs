//! The byte-level BPE tokenizer: text → token ids → text.
//!
//! Encoding runs in three steps:
//!
//! 1. special tokens are cut out first, if the caller allows them
//!    (see [`SpecialTokens`]);
//! 2. each stretch between them is cut into words by GPT-2's pre-tokenizer
//!    ([`pretokenize`](super::pretokenize));
//! 3. each word's UTF-8 bytes start as one token per byte and are merged by
//!    the learned rules, lowest rank first ([`merge`](super::merge)).
//!
//! Decoding is the easy direction: each id stands for a byte string, and the
//! text is their concatenation. Because every byte has a token, any string
//! encodes, and `decode(encode(s)) == s` always. A token may hold only part of
//! a UTF-8 character (GPT-2 spells some emoji in three tokens), so a cut-off
//! id sequence may decode to invalid UTF-8: [`BpeTokenizer::decode`] then puts
//! U+FFFD `�` in place of the broken bytes, and [`BpeTokenizer::decode_bytes`]
//! returns the exact bytes.
//!
//! Natural text repeats its words, so encoded words are cached: most words
//! cost one hash lookup instead of a merge loop.

use std::sync::{Mutex, TryLockError};

use rustc_hash::FxHashMap;

use super::merge::{apply_merges, MergeTable};
use super::pretokenize::pretokenize;
use super::special::{find_special, split_specials, Part, SpecialTokens};
use super::TokenizerError;

/// The special token GPT-2 puts between documents.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// A byte-level BPE tokenizer (GPT-2's, or one trained with
/// [`train_bpe`](super::train_bpe)).
///
/// It is `Send + Sync`; threads may share one and encode at the same time.
pub struct BpeTokenizer {
    /// `tokens[id]` is the byte string token `id` stands for.
    tokens: Vec<Vec<u8>>,
    /// The token of each single byte.
    byte_ids: [u32; 256],
    /// Merge rules in rank order: `(left, right, result)`.
    merges: Vec<(u32, u32, u32)>,
    table: MergeTable,
    /// `(text, id)` of each special token.
    specials: Vec<(String, u32)>,
    fingerprint: u64,
    cache: Mutex<WordCache>,
}

impl Clone for BpeTokenizer {
    fn clone(&self) -> Self {
        BpeTokenizer {
            tokens: self.tokens.clone(),
            byte_ids: self.byte_ids,
            merges: self.merges.clone(),
            table: self.table.clone(),
            specials: self.specials.clone(),
            fingerprint: self.fingerprint,
            cache: Mutex::new(WordCache::default()),
        }
    }
}

impl std::fmt::Debug for BpeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpeTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.merges.len())
            .field("specials", &self.specials)
            .finish()
    }
}

/// Why a set of parts cannot make a tokenizer; the loaders add the file name.
#[derive(Debug)]
pub(crate) struct PartsError {
    /// The merge at fault, if the problem is one merge.
    pub merge: Option<usize>,
    pub message: String,
}

impl BpeTokenizer {
    /// Builds a tokenizer from its parts, checking that they fit together:
    /// every byte has a single-byte token, no two ordinary tokens share bytes,
    /// each merge's result is the concatenation of its two sides, and each
    /// special token's bytes are its text.
    pub(crate) fn from_parts(
        tokens: Vec<Vec<u8>>,
        merges: Vec<(u32, u32, u32)>,
        specials: Vec<(String, u32)>,
    ) -> Result<Self, PartsError> {
        let fail = |merge, message: String| PartsError { merge, message };
        let n = tokens.len() as u32;
        for (text, id) in &specials {
            match tokens.get(*id as usize) {
                Some(bytes) if bytes == text.as_bytes() => {}
                _ => return Err(fail(None, format!("special token {text:?} does not match token id {id}"))),
            }
        }
        let is_special = |id: u32| specials.iter().any(|&(_, s)| s == id);

        let mut ids: FxHashMap<&[u8], u32> = FxHashMap::default();
        for (id, bytes) in tokens.iter().enumerate() {
            let id = id as u32;
            if is_special(id) {
                continue;
            }
            if bytes.is_empty() {
                return Err(fail(None, format!("token id {id} is empty")));
            }
            if let Some(other) = ids.insert(bytes, id) {
                let shown = String::from_utf8_lossy(bytes);
                return Err(fail(None, format!("token ids {other} and {id} both stand for {shown:?}")));
            }
        }
        let mut byte_ids = [0u32; 256];
        for b in 0..=255u8 {
            byte_ids[b as usize] = *ids
                .get(&[b][..])
                .ok_or_else(|| fail(None, format!("no token for byte 0x{b:02X}; byte-level BPE needs all 256")))?;
        }
        for (rank, &(a, b, result)) in merges.iter().enumerate() {
            if a >= n || b >= n || result >= n {
                return Err(fail(Some(rank), format!("merge ({a}, {b}) -> {result} names an id outside 0..{n}")));
            }
            let joined = [&tokens[a as usize][..], &tokens[b as usize][..]].concat();
            if joined != tokens[result as usize] || is_special(result) {
                return Err(fail(Some(rank), format!("merge ({a}, {b}) does not make token {result}")));
            }
        }
        let table = MergeTable::new(&merges);
        let fingerprint = fingerprint(&tokens, &merges, &specials);
        Ok(BpeTokenizer { tokens, byte_ids, merges, table, specials, fingerprint, cache: Mutex::default() })
    }

    /// Number of token ids, special tokens included (GPT-2: 50,257).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The bytes token `id` stands for.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.tokens.get(id as usize).map(|t| &t[..])
    }

    /// The merge rules in rank order, as `(left, right, result)` ids.
    pub fn merges(&self) -> &[(u32, u32, u32)] {
        &self.merges
    }

    /// The special tokens as `(text, id)`.
    pub fn specials(&self) -> &[(String, u32)] {
        &self.specials
    }

    /// The id of special token `text`, e.g. `special_id("<|endoftext|>")`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.specials.iter().find(|(t, _)| t == text).map(|&(_, id)| id)
    }

    /// The id of `<|endoftext|>`, if this vocabulary has it.
    pub fn eot_id(&self) -> Option<u32> {
        self.special_id(ENDOFTEXT)
    }

    /// A hash of the vocabulary, merges and special tokens: equal for two
    /// tokenizers that encode identically. Token caches use it to notice a
    /// change of tokenizer.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Encodes `text`, doing what `special` says with special-token text.
    pub fn encode(&self, text: &str, special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, special, &mut out)?;
        Ok(out)
    }

    /// Encodes `text` treating special-token text as ordinary characters.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.with_cache(|cache| self.encode_segment(text, cache, &mut out));
        out
    }

    /// Encodes bytes that need not be UTF-8. The valid UTF-8 stretches are
    /// encoded as by [`encode`](Self::encode); each invalid byte becomes its
    /// own byte token, and also ends the word before it (the pre-tokenizer
    /// never sees it). Decoding gives back the exact input.
    pub fn encode_bytes(&self, bytes: &[u8], special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(bytes.len() / 3);
        let mut offset = 0;
        for chunk in bytes.utf8_chunks() {
            self.encode_into(chunk.valid(), special, &mut out).map_err(|e| match e {
                TokenizerError::DisallowedSpecial { token, offset: at } => {
                    TokenizerError::DisallowedSpecial { token, offset: offset + at }
                }
                other => other,
            })?;
            out.extend(chunk.invalid().iter().map(|&b| self.byte_ids[b as usize]));
            offset += chunk.valid().len() + chunk.invalid().len();
        }
        Ok(out)
    }

    fn encode_into(&self, text: &str, special: SpecialTokens, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        match special {
            SpecialTokens::AsText => {}
            SpecialTokens::Reject => {
                if let Some((offset, i)) = find_special(text, &self.specials) {
                    return Err(TokenizerError::DisallowedSpecial { token: self.specials[i].0.clone(), offset });
                }
            }
            SpecialTokens::Allow => {
                self.with_cache(|cache| {
                    for part in split_specials(text, &self.specials) {
                        match part {
                            Part::Text(segment) => self.encode_segment(segment, cache, out),
                            Part::Special(id) => out.push(id),
                        }
                    }
                });
                return Ok(());
            }
        }
        self.with_cache(|cache| self.encode_segment(text, cache, out));
        Ok(())
    }

    /// Pre-tokenizes `text` and appends each word's tokens.
    fn encode_segment(&self, text: &str, cache: &mut WordCache, out: &mut Vec<u32>) {
        for word in pretokenize(text) {
            let bytes = word.as_bytes();
            if let [b] = bytes {
                out.push(self.byte_ids[*b as usize]);
            } else if let Some(ids) = cache.get(bytes) {
                out.extend_from_slice(ids);
            } else {
                let mut ids: Vec<u32> = bytes.iter().map(|&b| self.byte_ids[b as usize]).collect();
                apply_merges(&mut ids, &self.table);
                out.extend_from_slice(&ids);
                cache.insert(bytes, ids);
            }
        }
    }

    /// Runs `f` with the word cache, taken once per call so the lock costs
    /// nothing per word. A thread that finds the cache busy works with an
    /// empty private one rather than wait.
    fn with_cache<R>(&self, f: impl FnOnce(&mut WordCache) -> R) -> R {
        match self.cache.try_lock() {
            Ok(mut guard) => f(&mut guard),
            Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => f(&mut WordCache::default()),
        }
    }

    /// The bytes of a token sequence, exactly.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes =
                self.tokens.get(id as usize).ok_or(TokenizerError::UnknownId { id, vocab_size: self.vocab_size() })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// The text of a token sequence. Bytes that do not form valid UTF-8 (a
    /// sequence cut inside a character) become U+FFFD `�`; use
    /// [`decode_bytes`](Self::decode_bytes) to keep them.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        })
    }
}

/// Encoded words, keyed by their bytes. Cleared when full, which keeps memory
/// bounded on huge corpora while the common words are quickly cached again.
#[derive(Default)]
struct WordCache {
    words: FxHashMap<Box<[u8]>, Box<[u32]>>,
}

impl WordCache {
    const CAPACITY: usize = 1 << 17;

    fn get(&self, word: &[u8]) -> Option<&[u32]> {
        self.words.get(word).map(|ids| &ids[..])
    }

    fn insert(&mut self, word: &[u8], ids: Vec<u32>) {
        if self.words.len() >= Self::CAPACITY {
            self.words.clear();
        }
        self.words.insert(word.into(), ids.into_boxed_slice());
    }
}

/// FNV-1a over every part, with lengths so that no two different
/// vocabularies hash the same bytes.
fn fingerprint(tokens: &[Vec<u8>], merges: &[(u32, u32, u32)], specials: &[(String, u32)]) -> u64 {
    let mut h = Fnv::default();
    h.write_u64(tokens.len() as u64);
    for t in tokens {
        h.write_u64(t.len() as u64);
        h.write(t);
    }
    h.write_u64(merges.len() as u64);
    for &(a, b, c) in merges {
        for x in [a, b, c] {
            h.write_u64(x as u64);
        }
    }
    h.write_u64(specials.len() as u64);
    for (text, id) in specials {
        h.write_u64(text.len() as u64);
        h.write(text.as_bytes());
        h.write_u64(*id as u64);
    }
    h.0
}

/// 64-bit FNV-1a: a tiny, stable hash (the std hasher may change between
/// Rust releases, and fingerprints are stored in files).
pub(crate) struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn write_u64(&mut self, x: u64) {
        self.write(&x.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes 0..=255 as ids 0..=255, then "he" 256, "ll" 257, "hell" 258,
    /// "hello" 259, and the special token 260.
    fn tiny() -> BpeTokenizer {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        for t in ["he", "ll", "hell", "hello", ENDOFTEXT] {
            tokens.push(t.as_bytes().to_vec());
        }
        let merges = vec![(104, 101, 256), (108, 108, 257), (256, 257, 258), (258, 111, 259)];
        BpeTokenizer::from_parts(tokens, merges, vec![(ENDOFTEXT.into(), 260)]).unwrap()
    }

    #[test]
    fn encodes_with_merges_and_bytes() {
        let tok = tiny();
        assert_eq!(tok.encode_ordinary("hello"), [259]);
        assert_eq!(tok.encode_ordinary("hell hello"), [258, 32, 259]);
        // the cache gives the same answer the second time
        assert_eq!(tok.encode_ordinary("hello hello"), [259, 32, 259]);
        assert_eq!(tok.encode_ordinary("help"), [256, 108, 112]);
    }

    #[test]
    fn special_policy_is_explicit() {
        let tok = tiny();
        let text = "hello<|endoftext|>hello";
        assert_eq!(tok.encode(text, SpecialTokens::Allow).unwrap(), [259, 260, 259]);
        let as_text = tok.encode(text, SpecialTokens::AsText).unwrap();
        assert_eq!(as_text.len(), 2 + "<|endoftext|>".len());
        match tok.encode(text, SpecialTokens::Reject) {
            Err(TokenizerError::DisallowedSpecial { token, offset }) => {
                assert_eq!((token.as_str(), offset), (ENDOFTEXT, 5));
            }
            other => panic!("expected DisallowedSpecial, got {other:?}"),
        }
        assert_eq!(tok.encode("hello", SpecialTokens::Reject).unwrap(), [259]);
    }

    #[test]
    fn decode_reports_unknown_ids_and_replaces_broken_utf8() {
        let tok = tiny();
        assert_eq!(tok.decode(&[259, 260]).unwrap(), "hello<|endoftext|>");
        assert!(matches!(tok.decode(&[261]), Err(TokenizerError::UnknownId { id: 261, vocab_size: 261 })));
        // "é" is C3 A9: cutting after the first byte leaves a broken character.
        assert_eq!(tok.decode(&[0xC3]).unwrap(), "\u{FFFD}");
        assert_eq!(tok.decode_bytes(&[0xC3]).unwrap(), [0xC3]);
    }

    #[test]
    fn invalid_utf8_is_encoded_byte_by_byte() {
        let tok = tiny();
        let input = b"hello\xFF\xFEhello";
        let ids = tok.encode_bytes(input, SpecialTokens::Allow).unwrap();
        assert_eq!(ids, [259, 0xFF, 0xFE, 259]);
        assert_eq!(tok.decode_bytes(&ids).unwrap(), input);
        let err = tok.encode_bytes(b"\xFF<|endoftext|>", SpecialTokens::Reject).unwrap_err();
        assert!(matches!(err, TokenizerError::DisallowedSpecial { offset: 1, .. }));
    }

    #[test]
    fn parts_are_validated() {
        let bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let missing = BpeTokenizer::from_parts(bytes[1..].to_vec(), vec![], vec![]).unwrap_err();
        assert!(missing.message.contains("byte 0x00"), "{}", missing.message);
        let mut tokens = bytes.clone();
        tokens.push(b"ab".to_vec());
        let wrong = BpeTokenizer::from_parts(tokens, vec![(97, 99, 256)], vec![]).unwrap_err();
        assert_eq!(wrong.merge, Some(0));
        let mut tokens = bytes;
        tokens.push(b"a".to_vec());
        let twice = BpeTokenizer::from_parts(tokens, vec![], vec![]).unwrap_err();
        assert!(twice.message.contains("97 and 256"), "{}", twice.message);
    }

    #[test]
    fn fingerprint_tells_vocabularies_apart() {
        let a = tiny();
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(b"he".to_vec());
        let b = BpeTokenizer::from_parts(tokens, vec![(104, 101, 256)], vec![]).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }

    #[test]
    fn tokenizer_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BpeTokenizer>();
    }
}
