//! Vocabulary files: reading and writing the formats BPE tokenizers ship in.
//!
//! - **Hugging Face / GPT-2** (`vocab.json` + `merges.txt`): the vocabulary
//!   maps each token, spelled with GPT-2's byte stand-ins (see
//!   [`bytes`](super::bytes)), to its id; `merges.txt` lists the merge rules,
//!   one `left right` pair a line, best first, after a `#version` line.
//!   OpenAI's original `encoder.json` and `vocab.bpe` are the same two files.
//! - **tiktoken** rank files: one `base64(token bytes) rank` a line and no
//!   merge list. The rank doubles as the id, and the merges are recovered by
//!   asking, for each token in rank order, which two lower-ranked tokens join
//!   to make it — running BPE on its bytes with only the lower ranks allowed.
//!
//! A loader checks before it trusts: a bad line is reported with the file and
//! line number, and a vocabulary that cannot work (a byte with no token, a
//! merge that does not make its token) with the file and the token.
//!
//! GPT-2's own vocabulary is compiled into the library, so
//! [`BpeTokenizer::gpt2`] works offline.

use crate::atomic::write_atomic;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use super::bpe::{BpeTokenizer, PartsError, ENDOFTEXT};
use super::bytes::{bytes_to_unicode, unicode_to_bytes};
use super::{base64, TokenizerError};

/// File name of the vocabulary in a tokenizer folder.
pub const VOCAB_FILE: &str = "vocab.json";
/// File name of the merge list in a tokenizer folder.
pub const MERGES_FILE: &str = "merges.txt";

const GPT2_VOCAB: &str = include_str!("../../assets/gpt2/vocab.json");
const GPT2_MERGES: &str = include_str!("../../assets/gpt2/merges.txt");

impl BpeTokenizer {
    /// GPT-2's tokenizer (50,257 tokens, `<|endoftext|>` = 50256), from the
    /// copy of its vocabulary built into the library.
    pub fn gpt2() -> BpeTokenizer {
        static GPT2: OnceLock<BpeTokenizer> = OnceLock::new();
        GPT2.get_or_init(|| {
            parse_hf(GPT2_VOCAB, Path::new("gpt2/vocab.json"), GPT2_MERGES, Path::new("gpt2/merges.txt"))
                .expect("the built-in GPT-2 vocabulary is valid")
        })
        .clone()
    }

    /// Loads `vocab.json` and `merges.txt` from a folder (a Hugging Face
    /// model folder, or one written by [`save`](Self::save)).
    pub fn load(dir: impl AsRef<Path>) -> Result<BpeTokenizer, TokenizerError> {
        let dir = dir.as_ref();
        Self::from_hf_files(dir.join(VOCAB_FILE), dir.join(MERGES_FILE))
    }

    /// Loads a Hugging Face `vocab.json` and `merges.txt` (or GPT-2's
    /// `encoder.json` and `vocab.bpe`). Vocabulary entries that are neither a
    /// byte nor made by a merge (GPT-2's `<|endoftext|>`) become special tokens.
    pub fn from_hf_files(vocab: impl AsRef<Path>, merges: impl AsRef<Path>) -> Result<BpeTokenizer, TokenizerError> {
        let (vocab, merges) = (vocab.as_ref(), merges.as_ref());
        let vocab_text = read_text(vocab)?;
        let merges_text = read_text(merges)?;
        parse_hf(&vocab_text, vocab, &merges_text, merges)
    }

    /// Loads a tiktoken rank file (such as `r50k_base.tiktoken`, GPT-2's).
    /// Rank files carry no special tokens, so `<|endoftext|>` is added at the
    /// next free id, where GPT-2 has it.
    pub fn from_tiktoken_file(path: impl AsRef<Path>) -> Result<BpeTokenizer, TokenizerError> {
        let path = path.as_ref();
        parse_tiktoken(&read_text(path)?, path)
    }

    /// Writes `vocab.json` and `merges.txt` into `dir` (created if missing)
    /// in GPT-2's Hugging Face format, and the same vocabulary as a
    /// `tokenizer.json` (see [`hf_json`](super::hf_json)); each file is written under a temporary
    /// name and renamed, so a crash never leaves half a file.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir).map_err(|e| TokenizerError::io(dir, e))?;

        let mut vocab = String::from("{\n");
        for id in 0..self.vocab_size() as u32 {
            let spelled = bytes_to_unicode(self.token_bytes(id).expect("id below vocab_size"));
            let key = serde_json::to_string(&spelled).expect("a string serializes");
            let comma = if id as usize + 1 < self.vocab_size() { "," } else { "" };
            vocab.push_str(&format!("  {key}: {id}{comma}\n"));
        }
        vocab.push_str("}\n");

        let mut merges = String::from("#version: 0.2\n");
        for &(a, b, _) in self.merges() {
            let spell = |id| bytes_to_unicode(self.token_bytes(id).expect("merge ids are valid"));
            merges.push_str(&format!("{} {}\n", spell(a), spell(b)));
        }

        let vocab_path = dir.join(VOCAB_FILE);
        write_atomic(&vocab_path, vocab.as_bytes()).map_err(|e| TokenizerError::io(&vocab_path, e))?;
        let merges_path = dir.join(MERGES_FILE);
        write_atomic(&merges_path, merges.as_bytes()).map_err(|e| TokenizerError::io(&merges_path, e))?;
        let json_path = dir.join(super::TOKENIZER_JSON_FILE);
        let json = super::hf_json::tokenizer_json(self);
        write_atomic(&json_path, json.as_bytes()).map_err(|e| TokenizerError::io(&json_path, e))
    }
}

fn read_text(path: &Path) -> Result<String, TokenizerError> {
    let bytes = crate::input::read_capped(path, crate::input::JSON_LIMIT).map_err(|e| TokenizerError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count();
        TokenizerError::malformed(path, line, "not valid UTF-8")
    })
}

fn parse_hf(
    vocab_text: &str,
    vocab_path: &Path,
    merges_text: &str,
    merges_path: &Path,
) -> Result<BpeTokenizer, TokenizerError> {
    let vocab: FxHashMap<String, u32> = serde_json::from_str(vocab_text)
        .map_err(|e| TokenizerError::malformed(vocab_path, e.line(), format!("not a JSON map of token to id: {e}")))?;
    from_spelled(vocab, vocab_path, merges_text, merges_path)
}

/// A tokenizer from a vocabulary spelled with GPT-2's byte stand-ins and
/// merge lines `left right` (the second half of reading `vocab.json` and
/// `merges.txt`; GGUF files carry the same two lists in their metadata).
/// Messages name `vocab_path` for the vocabulary and `merges_path` with a
/// line number (a merge's place in the list, counting from 1) for a merge.
pub(crate) fn from_spelled(
    vocab: FxHashMap<String, u32>,
    vocab_path: &Path,
    merges_text: &str,
    merges_path: &Path,
) -> Result<BpeTokenizer, TokenizerError> {
    if vocab.is_empty() {
        return Err(TokenizerError::bad_vocab(vocab_path, "the vocabulary is empty"));
    }

    // Lay the tokens out by id, insisting on ids 0..n with no gaps. The
    // largest id is checked against the entry count first: it sizes the
    // table, and one id of 4294967295 must not ask for 100 GB.
    let n = vocab.values().max().map_or(0, |&m| m as usize + 1);
    if n > vocab.len() {
        let message = format!("ids must be 0..{} without gaps, but {} is among them", vocab.len(), n - 1);
        return Err(TokenizerError::bad_vocab(vocab_path, message));
    }
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
    for (spelled, &id) in &vocab {
        let bytes = unicode_to_bytes(spelled).ok_or_else(|| {
            let message = format!(
                "token {spelled:?} (id {id}) has a character that is not one of GPT-2's byte stand-ins; \
                 this is not a byte-level BPE vocabulary"
            );
            TokenizerError::bad_vocab(vocab_path, message)
        })?;
        if slots[id as usize].replace(bytes).is_some() {
            return Err(TokenizerError::bad_vocab(vocab_path, format!("two tokens have id {id}")));
        }
    }
    let tokens: Vec<Vec<u8>> = slots
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| TokenizerError::bad_vocab(vocab_path, format!("no token has id {id}"))))
        .collect::<Result<_, _>>()?;

    let mut merges = Vec::new();
    let mut merge_lines = Vec::new();
    let vocab_name =
        vocab_path.file_name().map_or_else(|| vocab_path.display().to_string(), |n| n.to_string_lossy().into());
    for (i, line) in merges_text.lines().enumerate() {
        let line_no = i + 1;
        if (i == 0 && line.starts_with("#version")) || line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TokenizerError::malformed(merges_path, line_no, message);
        let (a, b) = match line.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => (a, b),
            _ => return Err(bad(format!("expected two tokens separated by one space, found {line:?}"))),
        };
        let id_of = |spelled: &str| vocab.get(spelled).copied();
        let a_id = id_of(a).ok_or_else(|| bad(format!("token {a:?} is not in {vocab_name}")))?;
        let b_id = id_of(b).ok_or_else(|| bad(format!("token {b:?} is not in {vocab_name}")))?;
        let joined = format!("{a}{b}");
        let result =
            id_of(&joined).ok_or_else(|| bad(format!("the merged token {joined:?} is not in {vocab_name}")))?;
        merges.push((a_id, b_id, result));
        merge_lines.push(line_no);
    }

    // Whatever is neither a byte nor made by a merge can only be special.
    let mut reachable = vec![false; tokens.len()];
    for (id, t) in tokens.iter().enumerate() {
        reachable[id] = t.len() == 1;
    }
    for &(_, _, result) in &merges {
        reachable[result as usize] = true;
    }
    let mut specials = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        if !reachable[id] {
            let text = String::from_utf8(t.clone()).map_err(|_| {
                TokenizerError::bad_vocab(
                    vocab_path,
                    format!("token id {id} is neither a byte, a merge result, nor text"),
                )
            })?;
            // Special tokens are spelled as markers (`<|endoftext|>`, `<s>`,
            // `[PAD]`); an ordinary word that no merge makes means merges
            // are missing, and taking it for a special token would split
            // text around it.
            let marker =
                (text.starts_with('<') && text.ends_with('>')) || (text.starts_with('[') && text.ends_with(']'));
            if !marker {
                let unmade = tokens.iter().enumerate().filter(|&(i, t)| !reachable[i] && t.len() > 1).count();
                let message = format!(
                    "{unmade} tokens of {vocab_name} (e.g. {text:?}, id {id}) are made by no merge; the file is empty or \
                     truncated, or belongs to another vocabulary"
                );
                return Err(TokenizerError::malformed(merges_path, merges_text.lines().count().max(1), message));
            }
            specials.push((text, id as u32));
        }
    }

    BpeTokenizer::from_parts(tokens, merges, specials).map_err(|PartsError { merge, message }| match merge {
        Some(i) => TokenizerError::malformed(merges_path, merge_lines[i], message),
        None => TokenizerError::bad_vocab(vocab_path, message),
    })
}

fn parse_tiktoken(text: &str, path: &Path) -> Result<BpeTokenizer, TokenizerError> {
    // Ranks are 0..lines without gaps, so the line count bounds the table
    // a rank may size.
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let mut slots: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TokenizerError::malformed(path, i + 1, message);
        let (coded, rank) =
            line.split_once(' ').ok_or_else(|| bad(format!("expected `<base64> <rank>`, found {line:?}")))?;
        let bytes = base64::decode(coded)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad(format!("{coded:?} is not base64 token bytes")))?;
        let rank: usize = rank.trim().parse().map_err(|_| bad(format!("{rank:?} is not a rank")))?;
        if rank >= lines {
            return Err(bad(format!(
                "rank {rank} is past the file's {lines} tokens; ranks must be 0..{lines} without gaps"
            )));
        }
        if slots.len() <= rank {
            slots.resize(rank + 1, None);
        }
        if slots[rank].replace(bytes).is_some() {
            return Err(bad(format!("rank {rank} appears twice")));
        }
    }
    let mut tokens: Vec<Vec<u8>> = slots
        .into_iter()
        .enumerate()
        .map(|(rank, t)| t.ok_or_else(|| TokenizerError::bad_vocab(path, format!("no token has rank {rank}"))))
        .collect::<Result<_, _>>()?;
    if tokens.is_empty() {
        return Err(TokenizerError::bad_vocab(path, "the file holds no tokens"));
    }

    let merges = merges_from_ranks(&tokens).map_err(|m| TokenizerError::bad_vocab(path, m))?;
    let mut specials = Vec::new();
    if !tokens.iter().any(|t| t == ENDOFTEXT.as_bytes()) {
        specials.push((ENDOFTEXT.to_string(), tokens.len() as u32));
        tokens.push(ENDOFTEXT.as_bytes().to_vec());
    }
    BpeTokenizer::from_parts(tokens, merges, specials).map_err(|e| TokenizerError::bad_vocab(path, e.message))
}

/// Recovers the merge list from tokens ordered by rank: each multi-byte
/// token is split by BPE restricted to lower ranks, which must leave exactly
/// the two halves it was merged from.
fn merges_from_ranks(tokens: &[Vec<u8>]) -> Result<Vec<(u32, u32, u32)>, String> {
    let ranks: FxHashMap<&[u8], u32> = tokens.iter().enumerate().map(|(r, t)| (&t[..], r as u32)).collect();
    let mut merges = Vec::new();
    for (rank, token) in tokens.iter().enumerate() {
        if token.len() < 2 {
            continue;
        }
        let rank = rank as u32;
        // Boundaries between parts; start with one part per byte.
        let mut cuts: Vec<usize> = (0..=token.len()).collect();
        loop {
            let best = (0..cuts.len() - 2)
                .filter_map(|i| ranks.get(&token[cuts[i]..cuts[i + 2]]).map(|&r| (r, i)))
                .filter(|&(r, _)| r < rank)
                .min();
            match best {
                Some((_, i)) => {
                    cuts.remove(i + 1);
                }
                None => break,
            }
        }
        if cuts.len() != 3 {
            let shown = String::from_utf8_lossy(token);
            return Err(format!("token {shown:?} (rank {rank}) is not the merge of two lower-ranked tokens"));
        }
        let left = ranks[&token[..cuts[1]]];
        let right = ranks[&token[cuts[1]..]];
        merges.push((left, right, rank));
    }
    Ok(merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_has_the_known_shape() {
        let tok = BpeTokenizer::gpt2();
        assert_eq!(tok.vocab_size(), 50257);
        assert_eq!(tok.merges().len(), 50000);
        assert_eq!(tok.eot_id(), Some(50256));
        assert_eq!(tok.token_bytes(1169), Some(&b"the"[..]));
        assert_eq!(tok.token_bytes(262), Some(&b" the"[..]));
    }

    #[test]
    fn rank_file_gives_the_same_merges_as_merges_txt() {
        // Write GPT-2's vocabulary as a tiktoken rank file and read it back.
        let gpt2 = BpeTokenizer::gpt2();
        let mut rank_file = String::new();
        for id in 0..50256 {
            rank_file.push_str(&format!("{} {id}\n", base64::encode(gpt2.token_bytes(id).unwrap())));
        }
        let from_ranks = parse_tiktoken(&rank_file, Path::new("r50k_base.tiktoken")).unwrap();
        assert_eq!(from_ranks.vocab_size(), 50257);
        assert_eq!(from_ranks.eot_id(), Some(50256));
        assert_eq!(from_ranks.merges(), gpt2.merges());
        assert_eq!(from_ranks.fingerprint(), gpt2.fingerprint());
    }

    #[test]
    fn merges_from_ranks_finds_the_two_halves() {
        let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        tokens.push(b"ab".to_vec()); // 256
        tokens.push(b"abc".to_vec()); // 257
        assert_eq!(merges_from_ranks(&tokens).unwrap(), [(97, 98, 256), (256, 99, 257)]);
        tokens.push(b"xyz".to_vec()); // no "xy" or "yz" below it
        assert!(merges_from_ranks(&tokens).unwrap_err().contains("\"xyz\" (rank 258)"));
    }
}
