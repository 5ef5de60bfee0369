//! Hugging Face `tokenizer.json`: reading it, encoding and decoding exactly
//! as the `tokenizers` library does, and writing it for our own BPE.
//!
//! Open models (Llama 2/3, Mistral, Qwen2/3, SmolLM2, DeepSeek, Gemma) ship
//! their tokenizer as one JSON file that spells out a pipeline:
//!
//! ```text
//! encode:  text ─ added tokens ─ normalizer ─ pre-tokenizer ─ model ─ post-processor ─ ids
//!                 (<s>, <|im_end|>  (NFC,      (Split regex,   (BPE    (TemplateProcessing:
//!                  cut out first)    ▁ for      ByteLevel,      merges)  BOS in front)
//!                                    spaces)    Metaspace)
//! decode:  ids ─ token strings ─ decoder (ByteLevel, ByteFallback, Metaspace, ...) ─ text
//! ```
//!
//! One file per stage: [`added`] (matched before everything, on the raw and
//! on the normalized text), [`normalizer`], [`pre_tokenizer`], [`model`]
//! (BPE on the shared merge loop, with `byte_fallback` and `unk`),
//! [`post_processor`], [`decoder`]; [`schema`] reads the JSON and [`export`]
//! writes a `tokenizer.json` for a [`BpeTokenizer`].
//!
//! A file whose pipeline is exactly GPT-2's (byte-level BPE, GPT-2's regex,
//! no normalizer, special tokens only) loads as a [`BpeTokenizer`], the fast
//! path with byte-keyed merges; anything else loads as an [`HfTokenizer`].
//! A stage or option this reader does not implement is an error that names
//! it, never a quiet difference in the ids.

mod added;
mod decoder;
mod export;
mod model;
mod normalizer;
mod post_processor;
mod pre_tokenizer;
mod schema;

use std::path::Path;
use std::sync::{Mutex, TryLockError};

use rustc_hash::FxHashMap;

use super::bpe::{BpeTokenizer, Fnv};
use super::{AnyTokenizer, SpecialTokens, TokenizerError};
use added::{AddedToken, Found, MatchSet};
use decoder::Decoder;
use model::BpeModel;
use normalizer::Normalizer;
use post_processor::PostProcessor;
use pre_tokenizer::{Piece, PreTokenizer};
use schema::Node;

pub use export::tokenizer_json;

/// File name of the Hugging Face tokenizer in a model folder.
pub const TOKENIZER_JSON_FILE: &str = "tokenizer.json";

/// A tokenizer read from a `tokenizer.json`.
///
/// `Send + Sync`; threads may share one (encoded pieces are cached, and a
/// thread that finds the cache busy works without it).
pub struct HfTokenizer {
    normalizer: Option<Normalizer>,
    pre_tokenizer: Option<PreTokenizer>,
    model: BpeModel,
    added: Vec<AddedToken>,
    /// Added tokens searched in the raw text (`normalized: false`).
    raw_set: MatchSet,
    /// Added tokens searched in the normalized text, as normalized.
    normalized_set: MatchSet,
    post_processor: Option<PostProcessor>,
    decoder: Option<Decoder>,
    /// `tokens[id]`: the token string of each id (added tokens override).
    tokens: Vec<Option<String>>,
    special: Vec<bool>,
    /// BOS and EOS as a file names them outright (GGUF's `bos_token_id`,
    /// `eos_token_id`), ahead of what the pipeline implies.
    named_bos: Option<u32>,
    named_eos: Option<u32>,
    /// Where the pipeline came from, for [`describe`](crate::tokenizer::AnyTokenizer::describe):
    /// `"tokenizer.json"`, or `"GGUF"` for one built from a GGUF file's metadata.
    source: &'static str,
    fingerprint: u64,
    cache: Mutex<FxHashMap<String, Box<[u32]>>>,
}

impl Clone for HfTokenizer {
    fn clone(&self) -> Self {
        HfTokenizer {
            normalizer: self.normalizer.clone(),
            pre_tokenizer: self.pre_tokenizer.clone(),
            model: self.model.clone(),
            added: self.added.clone(),
            raw_set: self.raw_set.clone(),
            normalized_set: self.normalized_set.clone(),
            post_processor: self.post_processor.clone(),
            decoder: self.decoder.clone(),
            tokens: self.tokens.clone(),
            special: self.special.clone(),
            named_bos: self.named_bos,
            named_eos: self.named_eos,
            source: self.source,
            fingerprint: self.fingerprint,
            cache: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.model.merges.len())
            .field("added_tokens", &self.added.len())
            .finish()
    }
}

/// Pieces cached per tokenizer before the cache is cleared.
const CACHE_CAPACITY: usize = 1 << 16;

impl HfTokenizer {
    /// Reads a `tokenizer.json` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<HfTokenizer, TokenizerError> {
        let path = path.as_ref();
        let bytes =
            crate::input::read_capped(path, crate::input::JSON_LIMIT).map_err(|e| TokenizerError::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| TokenizerError::bad_vocab(path, "not valid UTF-8"))?;
        Self::from_json(&text).map_err(|message| TokenizerError::bad_vocab(path, message))
    }

    /// Parses the text of a `tokenizer.json`; the error names the part at fault.
    pub fn from_json(text: &str) -> Result<HfTokenizer, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a tokenizer.json (not JSON: {e})"))?;
        let mut h = Fnv::default();
        h.write(text.as_bytes());
        Self::from_value(&value, None, &[], h.0)
    }

    /// A tokenizer from the parsed JSON of a `tokenizer.json` (or one laid
    /// out the same way from other metadata, as GGUF's is), with `fingerprint`
    /// identifying it. With `scores`, one per id, the model joins pieces by
    /// score as SentencePiece does ([`spm_merge`](crate::tokenizer::spm_merge))
    /// and its merges must be empty. `shadowed` lists ids whose string a
    /// later id of the vocabulary also spells (a GGUF vocabulary may hold a
    /// token twice): each decodes to its string, but encoding gives the
    /// later id, the one `vocab` maps the string to.
    pub(crate) fn from_value(
        value: &serde_json::Value,
        scores: Option<Vec<f32>>,
        shadowed: &[(u32, String)],
        fingerprint: u64,
    ) -> Result<HfTokenizer, String> {
        let root = Node::of("tokenizer", value).map_err(|_| "not a tokenizer.json (not a JSON object)")?;
        for field in ["truncation", "padding"] {
            if root.get(field).is_some() {
                return Err(format!("{field} is set; truncation and padding are not supported (set them to null)"));
            }
        }
        let stage = |field: &'static str| root.get(field).map(|v| Node::of(field, v)).transpose();
        let normalizer = stage("normalizer")?.map(Normalizer::parse).transpose()?;
        let pre_tokenizer = stage("pre_tokenizer")?.map(PreTokenizer::parse).transpose()?;
        let mut model = BpeModel::parse(Node::of("model", root.required("model")?)?)?;
        if let Some(scores) = scores {
            model.join_by_scores(scores)?;
        }
        let post_processor = stage("post_processor")?.map(PostProcessor::parse).transpose()?;
        let decoder = stage("decoder")?.map(Decoder::parse).transpose()?;

        let mut added = Vec::new();
        if let Some(list) = root.get("added_tokens") {
            let list = list.as_array().ok_or("added_tokens: expected a list")?;
            for (i, item) in list.iter().enumerate() {
                let path = format!("added_tokens[{i}]");
                let token = AddedToken::parse(Node::of(&path, item)?)?;
                if let Some(&id) = model.vocab.get(&token.content).filter(|&&id| id != token.id) {
                    return Err(format!(
                        "{path}: {:?} has id {} but the model's vocabulary gives it {id}",
                        token.content, token.id
                    ));
                }
                added.push(token);
            }
        }

        // Lay out every id's token string; ids must leave no gap.
        let size = model
            .vocab
            .values()
            .chain(added.iter().map(|t| &t.id))
            .chain(shadowed.iter().map(|(id, _)| id))
            .max()
            .map_or(0, |&m| m as usize + 1);
        if size > model.vocab.len() + added.len() + shadowed.len() {
            return Err(format!("ids must be 0..{} without gaps, but {} is among them", size - 1, size - 1));
        }
        let mut tokens: Vec<Option<String>> = vec![None; size];
        for (token, &id) in &model.vocab {
            if let Some(other) = tokens[id as usize].replace(token.clone()) {
                return Err(format!("model.vocab: {other:?} and {token:?} both have id {id}"));
            }
        }
        for (id, token) in shadowed {
            if model.vocab.get(token).is_none_or(|&later| later <= *id) {
                return Err(format!("{token:?} (id {id}) is not spelled again by a later id"));
            }
            if let Some(other) = tokens[*id as usize].replace(token.clone()) {
                return Err(format!("model.vocab: {other:?} and {token:?} both have id {id}"));
            }
        }
        let mut special = vec![false; size];
        for token in &added {
            // `tokenizers` decodes a normalized added token as the
            // normalizer spells it (Llama 2: `"custom"` as `"▁custom"`).
            let spelled = match (&normalizer, token.normalized) {
                (Some(n), true) => n.normalize(&token.content),
                _ => token.content.clone(),
            };
            tokens[token.id as usize] = Some(spelled);
            special[token.id as usize] = token.special;
        }
        if let Some(id) = tokens.iter().position(Option::is_none) {
            return Err(format!("no token has id {id}"));
        }

        let raw_set = MatchSet::new(
            added.iter().enumerate().filter(|(_, t)| !t.normalized).map(|(i, t)| (t.content.clone(), i)).collect(),
        );
        let normalized_set = MatchSet::new(
            added
                .iter()
                .enumerate()
                .filter(|(_, t)| t.normalized)
                .map(|(i, t)| (normalizer.as_ref().map_or_else(|| t.content.clone(), |n| n.normalize(&t.content)), i))
                .collect(),
        );
        Ok(HfTokenizer {
            normalizer,
            pre_tokenizer,
            model,
            added,
            raw_set,
            normalized_set,
            post_processor,
            decoder,
            tokens,
            special,
            named_bos: None,
            named_eos: None,
            source: "tokenizer.json",
            fingerprint,
            cache: Mutex::default(),
        })
    }

    /// Number of token ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// A hash of the file's text (see [`BpeTokenizer::fingerprint`]).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The id of a token by its string (`"<s>"`, `"<|im_end|>"`, `"▁the"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added.iter().find(|t| t.content == token).map(|t| t.id).or_else(|| self.model.vocab.get(token).copied())
    }

    /// The string of token `id`, as the file spells it.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).and_then(|t| t.as_deref())
    }

    /// The special tokens as `(text, id)`, in file order.
    pub fn special_tokens(&self) -> Vec<(String, u32)> {
        self.added.iter().filter(|t| t.special).map(|t| (t.content.clone(), t.id)).collect()
    }

    /// Sets the BOS and EOS ids a file names outright; they take precedence
    /// in [`bos_id`](Self::bos_id) and [`eos_id`](Self::eos_id).
    pub(crate) fn with_named_bos_eos(mut self, bos: Option<u32>, eos: Option<u32>) -> Self {
        self.named_bos = bos.filter(|&id| (id as usize) < self.tokens.len());
        self.named_eos = eos.filter(|&id| (id as usize) < self.tokens.len());
        self
    }

    /// Marks the tokenizer as built from `source` (`"GGUF"`) rather than a
    /// `tokenizer.json`; only its [`source`](Self::source) label changes.
    pub(crate) fn with_source(mut self, source: &'static str) -> Self {
        self.source = source;
        self
    }

    /// What the tokenizer was read from: `"tokenizer.json"` or `"GGUF"`.
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The beginning-of-sequence id: the one the file names, or the one the
    /// post-processor puts first, or else a special token spelled as BOS
    /// usually is.
    pub fn bos_id(&self) -> Option<u32> {
        if self.named_bos.is_some() {
            return self.named_bos;
        }
        let template = self.post_processor.as_ref().and_then(|p| p.wrapping().0.first().copied());
        template.or_else(|| self.first_special(&["<s>", "<|begin_of_text|>", "<bos>"]))
    }

    /// The end-of-sequence id: the one the file names, or the one the
    /// post-processor puts last, or else a special token spelled as EOS
    /// usually is.
    pub fn eos_id(&self) -> Option<u32> {
        if self.named_eos.is_some() {
            return self.named_eos;
        }
        let template = self.post_processor.as_ref().and_then(|p| p.wrapping().1.last().copied());
        template.or_else(|| self.first_special(&["</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"]))
    }

    fn first_special(&self, names: &[&str]) -> Option<u32> {
        names.iter().find_map(|name| self.added.iter().find(|t| t.special && t.content == *name)).map(|t| t.id)
    }

    /// Encodes `text` as `tokenizers`' `encode(text, add_special_tokens)`:
    /// added tokens are matched, and the post-processor's template (BOS) is
    /// applied when `add_special_tokens` is set.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        self.encode_with(text, SpecialTokens::Allow, add_special_tokens).expect("Allow never fails")
    }

    /// Encodes `text`, doing what `special` says with special-token text:
    /// [`SpecialTokens::AsText`] encodes it as ordinary text (`tokenizers`'
    /// `encode_special_tokens`), [`SpecialTokens::Reject`] fails on it.
    pub fn encode_with(
        &self,
        text: &str,
        special: SpecialTokens,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let skip = |i: usize| special == SpecialTokens::AsText && self.added[i].special;
        let mut pieces: Vec<Piece> = Vec::new();
        let mut ids: Vec<u32> = Vec::with_capacity(text.len() / 3);
        // Model pieces are collected up to each added token, then encoded.
        let flush = |pieces: &mut Vec<Piece>, ids: &mut Vec<u32>| {
            let cut = match &self.pre_tokenizer {
                Some(pre) => pre.apply(std::mem::take(pieces)),
                None => std::mem::take(pieces),
            };
            self.with_cache(|cache| {
                for piece in &cut {
                    self.tokenize_piece(&piece.text, cache, ids);
                }
            });
        };
        for raw in self.raw_set.split(text, &self.added, &skip) {
            let (segment, offset) = match raw {
                Found::Token(id, at) => {
                    self.check_special(id, at, special)?;
                    flush(&mut pieces, &mut ids);
                    ids.push(id);
                    continue;
                }
                Found::Text(segment, offset) => (segment, offset),
            };
            let normalized = match &self.normalizer {
                Some(n) => std::borrow::Cow::Owned(n.normalize(segment)),
                None => std::borrow::Cow::Borrowed(segment),
            };
            for part in self.normalized_set.split(&normalized, &self.added, &skip) {
                match part {
                    Found::Token(id, at) => {
                        self.check_special(id, offset + at, special)?;
                        flush(&mut pieces, &mut ids);
                        ids.push(id);
                    }
                    Found::Text(t, at) if !t.is_empty() => {
                        pieces.push(Piece { text: t.to_string(), at_start: offset == 0 && at == 0 })
                    }
                    Found::Text(..) => {}
                }
            }
        }
        flush(&mut pieces, &mut ids);
        Ok(match (&self.post_processor, add_special_tokens) {
            (Some(post), true) => post.process(ids),
            _ => ids,
        })
    }

    fn check_special(&self, id: u32, offset: usize, special: SpecialTokens) -> Result<(), TokenizerError> {
        if special == SpecialTokens::Reject && self.special[id as usize] {
            let token = self.tokens[id as usize].clone().unwrap_or_default();
            return Err(TokenizerError::DisallowedSpecial { token, offset });
        }
        Ok(())
    }

    fn tokenize_piece(&self, piece: &str, cache: &mut FxHashMap<String, Box<[u32]>>, out: &mut Vec<u32>) {
        if let Some(ids) = cache.get(piece) {
            out.extend_from_slice(ids);
            return;
        }
        let start = out.len();
        self.model.tokenize(piece, out);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(piece.to_string(), out[start..].into());
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut FxHashMap<String, Box<[u32]>>) -> R) -> R {
        match self.cache.try_lock() {
            Ok(mut guard) => f(&mut guard),
            Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => f(&mut FxHashMap::default()),
        }
    }

    /// Decodes as `tokenizers`' `decode(ids, skip_special_tokens)`. An id
    /// outside the vocabulary is an error (`tokenizers` drops it silently).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        let mut tokens = Vec::with_capacity(ids.len());
        for &id in ids {
            let token = self.token(id).ok_or(TokenizerError::UnknownId { id, vocab_size: self.vocab_size() })?;
            if !(skip_special_tokens && self.special[id as usize]) {
                tokens.push(token.to_string());
            }
        }
        Ok(match &self.decoder {
            Some(decoder) => decoder.decode_chain(tokens).concat(),
            None => tokens.join(" "),
        })
    }

    /// The fast path: this tokenizer as a [`BpeTokenizer`], when its
    /// pipeline is exactly GPT-2's (see the module notes); `None` otherwise.
    pub fn to_gpt2_style(&self) -> Option<BpeTokenizer> {
        let plain_post = matches!(self.post_processor, None | Some(PostProcessor::ByteLevel));
        let byte_decoder = matches!(self.decoder, None | Some(Decoder::ByteLevel));
        let model = &self.model;
        if self.normalizer.is_some()
            || !self.pre_tokenizer.as_ref().is_some_and(PreTokenizer::is_gpt2_byte_level)
            || !plain_post
            || !byte_decoder
            || model.ignore_merges
            || model.unk.is_some()
            || model.scores.is_some()
        {
            return None;
        }
        let mut specials = Vec::new();
        for t in &self.added {
            // A special token must spell its own bytes in GPT-2's alphabet.
            let self_spelled = t.content.bytes().all(|b| b.is_ascii_graphic());
            if !t.special || t.lstrip || t.rstrip || t.single_word || !self_spelled {
                return None;
            }
            specials.push((t.content.clone(), t.id));
        }
        let mut tokens = Vec::with_capacity(self.tokens.len());
        for (id, token) in self.tokens.iter().enumerate() {
            let token = token.as_ref()?;
            match specials.iter().any(|&(_, s)| s as usize == id) {
                true => tokens.push(token.as_bytes().to_vec()),
                false => tokens.push(super::bytes::unicode_to_bytes(token)?),
            }
        }
        BpeTokenizer::from_parts(tokens, model.merges.clone(), specials).ok()
    }

    /// Wraps into [`AnyTokenizer`], taking the fast path when it applies.
    pub fn into_any(self) -> AnyTokenizer {
        match self.to_gpt2_style() {
            Some(bpe) => AnyTokenizer::Bpe(bpe),
            None => AnyTokenizer::Hf(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HfTokenizer>();
    }
}
