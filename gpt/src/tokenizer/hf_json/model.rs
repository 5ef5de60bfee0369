//! The BPE model of `tokenizer.json`: one pre-tokenized piece → token ids.
//!
//! The vocabulary maps token strings to ids, in whatever alphabet the
//! pre-tokenizer produced: GPT-2's byte stand-ins (`"Ġthe"`) for byte-level
//! files, plain Unicode with `▁` for spaces in SentencePiece-style files. A
//! piece starts as one symbol per character; a character the vocabulary
//! lacks becomes, in order of preference,
//!
//! 1. its UTF-8 bytes as `<0xNN>` tokens, when `byte_fallback` is on and the
//!    vocabulary has all of them (Llama 2: `"😀"` → `<0xF0> <0x9F> <0x98> <0x80>`);
//! 2. the `unk_token`, with neighbouring unknowns fused into one when
//!    `fuse_unk` is on;
//! 3. nothing: `tokenizers` drops the character, and so do we.
//!
//! Then the merges run, lowest rank first, by the same loop as our own BPE
//! ([`apply_merges`]). With `ignore_merges` (Llama 3) a piece that is itself
//! a token skips the merges and becomes that token.
//!
//! A model may instead carry a score per token (SentencePiece vocabularies
//! read from GGUF, which hold no merges): then the whole piece is joined by
//! score ([`merge_by_score`]) and a character no token spells becomes its
//! `<0xNN>` byte tokens, as llama.cpp does.

use rustc_hash::FxHashMap;

use super::schema::{kind, Node};
use crate::tokenizer::merge::{apply_merges, MergeTable};
use crate::tokenizer::spm_merge::merge_by_score;

#[derive(Clone, Debug)]
pub(super) struct BpeModel {
    pub vocab: FxHashMap<String, u32>,
    /// Merges in rank order as `(left, right, result)` ids.
    pub merges: Vec<(u32, u32, u32)>,
    table: MergeTable,
    pub unk: Option<u32>,
    pub fuse_unk: bool,
    pub byte_fallback: bool,
    pub ignore_merges: bool,
    /// Per-id scores: join by score (SentencePiece) instead of by merge rank.
    pub scores: Option<Box<[f32]>>,
    /// `<0xNN>` ids, when byte fallback is on and the vocabulary has all 256.
    byte_tokens: Option<Box<[u32; 256]>>,
    /// The id of each character below U+0144, which covers every GPT-2 byte
    /// stand-in: the common case costs an array read, not a hash lookup.
    small_chars: Box<[Option<u32>; SMALL]>,
}

const SMALL: usize = 0x144;

impl BpeModel {
    pub fn parse(node: Node) -> Result<BpeModel, String> {
        match node.type_name()? {
            "BPE" => {}
            _ => return Err(node.unsupported("model")),
        }
        if let Some(dropout) = node.get("dropout").and_then(|d| d.as_f64()).filter(|&d| d != 0.0) {
            return Err(node.fail("dropout", format!("{dropout} is set; BPE dropout is not supported")));
        }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if node.opt_str(field)?.is_some_and(|s| !s.is_empty()) {
                return Err(node.fail(field, "is set; BPE with a subword prefix or suffix is not supported"));
            }
        }
        let vocab_value = node.required("vocab")?;
        let vocab: FxHashMap<String, u32> = serde_json::from_value(vocab_value.clone())
            .map_err(|e| node.fail("vocab", format!("expected a map of token to id: {e}")))?;

        let mut merges = Vec::new();
        for (rank, item) in node.array("merges")?.iter().enumerate() {
            // Two spellings: "left right" (older files) or ["left", "right"].
            let (left, right): (&str, &str) = match item {
                serde_json::Value::String(line) => line
                    .split_once(' ')
                    .ok_or_else(|| node.fail("merges", format!("merge {rank} ({line:?}) is not two tokens")))?,
                serde_json::Value::Array(pair) if pair.len() == 2 => match (&pair[0], &pair[1]) {
                    (serde_json::Value::String(a), serde_json::Value::String(b)) => (a, b),
                    _ => return Err(node.fail("merges", format!("merge {rank} is not two strings"))),
                },
                other => return Err(node.fail("merges", format!("merge {rank} is {}", kind(other)))),
            };
            let id = |token: &str| {
                vocab.get(token).copied().ok_or_else(|| {
                    node.fail(
                        "merges",
                        format!("merge {rank} ({left:?} {right:?}) names {token:?}, which is not in the vocabulary"),
                    )
                })
            };
            let result = format!("{left}{right}");
            merges.push((id(left)?, id(right)?, id(&result)?));
        }

        let unk = match node.opt_str("unk_token")? {
            None => None,
            Some(token) => Some(
                *vocab
                    .get(token)
                    .ok_or_else(|| node.fail("unk_token", format!("{token:?} is not in the vocabulary")))?,
            ),
        };
        let byte_fallback = node.bool_or("byte_fallback", false)?;
        let byte_tokens = byte_fallback
            .then(|| {
                let mut ids = Box::new([0u32; 256]);
                for b in 0..256 {
                    ids[b] = *vocab.get(&format!("<0x{b:02X}>"))?;
                }
                Some(ids)
            })
            .flatten();
        let mut small_chars = Box::new([None; SMALL]);
        for (token, &id) in &vocab {
            let mut chars = token.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if (c as usize) < SMALL {
                    small_chars[c as usize] = Some(id);
                }
            }
        }
        Ok(BpeModel {
            table: MergeTable::new(&merges),
            vocab,
            merges,
            unk,
            fuse_unk: node.bool_or("fuse_unk", false)?,
            byte_fallback,
            ignore_merges: node.bool_or("ignore_merges", false)?,
            scores: None,
            byte_tokens,
            small_chars,
        })
    }

    /// Makes the model join pieces by these per-id scores (SentencePiece)
    /// rather than by its merges, which must then be empty.
    pub fn join_by_scores(&mut self, scores: Vec<f32>) -> Result<(), String> {
        if !self.merges.is_empty() {
            return Err("a model joined by scores has no merges".into());
        }
        if let Some(id) = self.vocab.values().find(|&&id| id as usize >= scores.len()) {
            return Err(format!("{} scores for a vocabulary with id {id}", scores.len()));
        }
        self.scores = Some(scores.into_boxed_slice());
        Ok(())
    }

    /// The `<0xNN>` ids of a string's bytes, when byte fallback has them all.
    fn byte_ids(&self, spelled: &str) -> Option<Vec<u32>> {
        if !self.byte_fallback {
            return None;
        }
        match &self.byte_tokens {
            Some(bytes) => Some(spelled.bytes().map(|b| bytes[b as usize]).collect()),
            None => spelled.bytes().map(|b| self.vocab.get(&format!("<0x{b:02X}>")).copied()).collect(),
        }
    }

    /// SentencePiece: the piece joined by score; a symbol that is no token
    /// (a character the vocabulary lacks) as its byte tokens, else `unk`.
    fn tokenize_by_scores(&self, piece: &str, scores: &[f32], out: &mut Vec<u32>) {
        let score = |s: &str| self.vocab.get(s).map(|&id| scores[id as usize]);
        for range in merge_by_score(piece, score) {
            let symbol = &piece[range];
            match self.vocab.get(symbol) {
                Some(&id) => out.push(id),
                None => match self.byte_ids(symbol) {
                    Some(ids) => out.extend(ids),
                    None => out.extend(self.unk),
                },
            }
        }
    }

    #[inline]
    fn char_id(&self, c: char, spelled: &str) -> Option<u32> {
        if (c as usize) < SMALL {
            self.small_chars[c as usize]
        } else {
            self.vocab.get(spelled).copied()
        }
    }

    /// The ids of one piece, appended to `out`.
    pub fn tokenize(&self, piece: &str, out: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        if let Some(scores) = &self.scores {
            self.tokenize_by_scores(piece, scores, out);
            return;
        }
        if self.ignore_merges {
            if let Some(&id) = self.vocab.get(piece) {
                out.push(id);
                return;
            }
        }
        let mut symbols: Vec<u32> = Vec::with_capacity(piece.len());
        // A run of unknown characters waiting to be written (fused or not).
        let mut pending_unk: Option<u32> = None;
        for (i, c) in piece.char_indices() {
            let spelled = &piece[i..i + c.len_utf8()];
            if let Some(id) = self.char_id(c, spelled) {
                symbols.extend(pending_unk.take());
                symbols.push(id);
                continue;
            }
            if self.byte_fallback {
                // `tokenizers` leaves a pending unknown waiting here too.
                if let Some(bytes) = &self.byte_tokens {
                    symbols.extend(spelled.bytes().map(|b| bytes[b as usize]));
                    continue;
                }
                let ids: Option<Vec<u32>> =
                    spelled.bytes().map(|b| self.vocab.get(&format!("<0x{b:02X}>")).copied()).collect();
                if let Some(ids) = ids {
                    symbols.extend(ids);
                    continue;
                }
            }
            if let Some(unk) = self.unk {
                if pending_unk.is_some() && !self.fuse_unk {
                    symbols.push(unk);
                }
                pending_unk = Some(unk);
            }
        }
        symbols.extend(pending_unk);
        apply_merges(&mut symbols, &self.table);
        out.extend_from_slice(&symbols);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &str) -> BpeModel {
        let json =
            format!(r#"{{"type": "BPE", "vocab": {{"<unk>": 0, "a": 1, "b": 2, "ab": 3}}, "merges": ["a b"]{extra}}}"#);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        BpeModel::parse(Node::of("model", &value).unwrap()).unwrap()
    }

    fn ids(model: &BpeModel, piece: &str) -> Vec<u32> {
        let mut out = Vec::new();
        model.tokenize(piece, &mut out);
        out
    }

    #[test]
    fn unknown_characters_become_unk_fused_or_not_or_vanish() {
        assert_eq!(ids(&model(r#", "unk_token": "<unk>""#), "xyab"), [0, 0, 3]);
        assert_eq!(ids(&model(r#", "unk_token": "<unk>", "fuse_unk": true"#), "xyabz"), [0, 3, 0]);
        // With no unk token, `tokenizers` drops what it cannot spell.
        assert_eq!(ids(&model(""), "xab"), [3]);
    }

    #[test]
    fn ignore_merges_takes_a_whole_piece_from_the_vocabulary() {
        // "b c" outranks "a b", so the merges make "a" + "bc" and never "abc".
        let json = |ignore: bool| {
            format!(
                r#"{{"type": "BPE", "vocab": {{"a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5}},
                    "merges": ["b c", "a b", "ab c"], "ignore_merges": {ignore}}}"#
            )
        };
        let parse = |text: String| {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            BpeModel::parse(Node::of("model", &value).unwrap()).unwrap()
        };
        assert_eq!(ids(&parse(json(false)), "abc"), [0, 3]);
        assert_eq!(ids(&parse(json(true)), "abc"), [5]);
    }
}
