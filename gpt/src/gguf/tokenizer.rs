//! The tokenizer in GGUF metadata, read as llama.cpp reads it, and written
//! for our own byte-level BPE.
//!
//! Every kind stores its vocabulary in `tokenizer.ggml.*`:
//!
//! - `tokens`: every token by id; `token_type`: 1 normal, 2 unknown,
//!   3 control (special tokens, stored as their text), 4 user-defined,
//!   5 unused (padding up to the model's embedding rows, `[PAD<id>]`),
//!   6 byte (`<0x0A>`);
//! - `bos_token_id`, `eos_token_id`, `add_bos_token`.
//!
//! and `model` says how text becomes those tokens:
//!
//! - `"gpt2"`: byte-level BPE. Tokens are spelled with GPT-2's byte
//!   stand-ins (`Ġthe`) and `merges` holds `left right` per merge, best
//!   first, as in `merges.txt`. How text is cut into words first is named
//!   by `pre`: `"gpt-2"` (what our exports write) rebuilds our own
//!   `BpeTokenizer` through the same checks as a `vocab.json` +
//!   `merges.txt` pair; another name (`llama-bpe`, `qwen2`, `smollm`, ...)
//!   is looked up in [`pre_tokenizer`](super::pre_tokenizer) and the whole
//!   pipeline laid out as the `tokenizer.json` it stands for (a `Split` per
//!   regex, `ByteLevel`, BPE, the `ByteLevel` decoder) and read by
//!   [`HfTokenizer`], which encodes as `tokenizers` does.
//! - `"llama"`: SentencePiece (Llama 2, Mistral, TinyLlama). No merges:
//!   `scores` holds one score per token, and llama.cpp joins neighbouring
//!   pieces by highest score ([`spm_merge`](crate::tokenizer::spm_merge)).
//!   Laid out the same way: spaces replaced by `▁` with one `▁` in front of
//!   each stretch of text (`add_space_prefix`, default on), the model
//!   joining by score with `<0xNN>` byte fallback, and decoding back
//!   (`▁` to space, byte tokens to bytes, the front space dropped).
//!
//! Control and unknown tokens become special added tokens (matched whole
//! only where special tokens are allowed), user-defined ones plain added
//! tokens (always matched first), as llama.cpp matches them. Another
//! `model` or `pre` is an error that names it. A `gpt2` file with no `pre`
//! is cut with llama.cpp's `default` regexes, as llama.cpp reads it. A
//! token spelled twice keeps both ids: each decodes to its string, and text
//! encodes to the later one, as llama.cpp's string-to-id map is overwritten.

use rustc_hash::FxHashMap;
use serde_json::{json, Value as Json};

use super::error::GgufError;
use super::pre_tokenizer::{self, PreTokenizer};
use super::reader::GgufFile;
use super::value::{strings, Value, ValueType};
use crate::tokenizer::bytes::bytes_to_unicode;
use crate::tokenizer::{AnyTokenizer, Fnv, HfTokenizer};

pub const MODEL_KEY: &str = "tokenizer.ggml.model";
pub const PRE_KEY: &str = "tokenizer.ggml.pre";
pub const TOKENS_KEY: &str = "tokenizer.ggml.tokens";
pub const TOKEN_TYPE_KEY: &str = "tokenizer.ggml.token_type";
pub const MERGES_KEY: &str = "tokenizer.ggml.merges";
pub const BOS_KEY: &str = "tokenizer.ggml.bos_token_id";
pub const EOS_KEY: &str = "tokenizer.ggml.eos_token_id";
pub const ADD_BOS_KEY: &str = "tokenizer.ggml.add_bos_token";
pub const SCORES_KEY: &str = "tokenizer.ggml.scores";
pub const ADD_SPACE_PREFIX_KEY: &str = "tokenizer.ggml.add_space_prefix";

/// llama.cpp's token types.
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

/// The metadata for `tokenizer`, its vocabulary padded to `vocab_size`
/// ids. Only byte-level BPE has a GGUF form here.
pub fn to_metadata(tokenizer: &AnyTokenizer, vocab_size: usize) -> Result<Vec<(&'static str, Value)>, String> {
    let AnyTokenizer::Bpe(bpe) = tokenizer else {
        return Err(format!(
            "the model's tokenizer is {}; GGUF's gpt2 tokenizer is byte-level BPE, so it cannot be written",
            tokenizer.describe()
        ));
    };
    let n = bpe.vocab_size();
    if n > vocab_size {
        return Err(format!("the tokenizer has {n} tokens but the model's vocabulary holds {vocab_size}"));
    }
    let special = |id: u32| bpe.specials().iter().find(|(_, s)| *s == id).map(|(text, _)| text.clone());
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for id in 0..n as u32 {
        match special(id) {
            Some(text) => {
                tokens.push(text);
                types.push(CONTROL);
            }
            None => {
                tokens.push(bytes_to_unicode(bpe.token_bytes(id).expect("id below vocab_size")));
                types.push(NORMAL);
            }
        }
    }
    for id in n..vocab_size {
        tokens.push(format!("[PAD{id}]"));
        types.push(UNUSED);
    }
    let spell = |id: u32| bytes_to_unicode(bpe.token_bytes(id).expect("merge ids are valid"));
    let merges = bpe.merges().iter().map(|&(a, b, _)| format!("{} {}", spell(a), spell(b)));
    let mut out = vec![
        (MODEL_KEY, Value::String("gpt2".into())),
        (PRE_KEY, Value::String("gpt-2".into())),
        (TOKENS_KEY, strings(tokens)),
        (TOKEN_TYPE_KEY, Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect())),
        (MERGES_KEY, strings(merges)),
        (ADD_BOS_KEY, Value::Bool(false)),
    ];
    if let Some(eot) = bpe.eot_id() {
        out.push((BOS_KEY, Value::U32(eot)));
        out.push((EOS_KEY, Value::U32(eot)));
    }
    Ok(out)
}

/// The tokenizer a file's metadata describes: `gpt2` with `pre = "gpt-2"`
/// as our own [`BpeTokenizer`](crate::tokenizer::BpeTokenizer),
/// `gpt2` with another `pre` or none, and `llama` (SentencePiece), as an
/// [`HfTokenizer`]. An unknown model or `pre` is an error naming it.
pub fn from_metadata(file: &GgufFile) -> Result<AnyTokenizer, GgufError> {
    let model = file.get(MODEL_KEY).ok_or_else(|| file.error(format!("has no tokenizer ({MODEL_KEY} is missing)")))?;
    match model.as_str() {
        Some("gpt2") => {}
        Some("llama") => return sentencepiece(file),
        Some(other) => {
            return Err(file.error(format!(
            "{MODEL_KEY} is {other:?}; the tokenizers read are \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece)"
        )))
        }
        None => return Err(file.error(format!("{MODEL_KEY} is not a string"))),
    }
    match file.get(PRE_KEY).map(|v| v.as_str()) {
        Some(Some("gpt-2")) => gpt2(file),
        // llama.cpp's fallback, which it warns degrades generation.
        None => byte_level_bpe(file, pre_tokenizer::find("default").expect("the default is listed")),
        Some(Some(name)) => match pre_tokenizer::find(name) {
            Some(pre) => byte_level_bpe(file, pre),
            None => Err(file.error(format!(
                "{PRE_KEY} is {name:?}, a pre-tokenizer not read here (read: GPT-2's, Llama 3's \"llama-bpe\", \
                 Qwen2's \"qwen2\", SmolLM's \"smollm\", DeepSeek's and Falcon's)"
            ))),
        },
        Some(None) => Err(file.error(format!("{PRE_KEY} is not a string"))),
    }
}

/// The strings of an array entry.
fn strings_of<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>, GgufError> {
    let items = file
        .get(key)
        .ok_or_else(|| file.error(format!("{key} is missing")))?
        .as_array()
        .ok_or_else(|| file.error(format!("{key} is not an array")))?;
    items.iter().map(|v| v.as_str().ok_or_else(|| file.error(format!("{key} holds a non-string")))).collect()
}

/// Each token's type (all normal when the file has none).
fn token_types(file: &GgufFile, n: usize) -> Result<Vec<i32>, GgufError> {
    let Some(v) = file.get(TOKEN_TYPE_KEY) else { return Ok(vec![NORMAL; n]) };
    let items = v.as_array().ok_or_else(|| file.error(format!("{TOKEN_TYPE_KEY} is not an array")))?;
    let types: Option<Vec<i32>> = items.iter().map(|t| t.as_u64().and_then(|t| i32::try_from(t).ok())).collect();
    types
        .filter(|t| t.len() == n)
        .ok_or_else(|| file.error(format!("{TOKEN_TYPE_KEY} is not one small integer per token")))
}

/// A boolean entry, `default` when absent.
fn flag(file: &GgufFile, key: &str, default: bool) -> Result<bool, GgufError> {
    match file.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(file.error(format!("{key} is not a boolean"))),
    }
}

/// GPT-2's own kind: rebuilt as our [`BpeTokenizer`](crate::tokenizer::BpeTokenizer),
/// through the same checks as a `vocab.json` + `merges.txt` pair.
fn gpt2(file: &GgufFile) -> Result<AnyTokenizer, GgufError> {
    let tokens = strings_of(file, TOKENS_KEY)?;
    let merges = strings_of(file, MERGES_KEY)?;
    let types = token_types(file, tokens.len())?;
    // Padding past the tokenizer's own ids is not part of it.
    let used = types.iter().rposition(|&t| t != UNUSED).map_or(0, |i| i + 1);
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    for (id, (&token, &ty)) in tokens.iter().zip(&types).take(used).enumerate() {
        // Special tokens are stored as their text; our reader expects
        // every token in byte stand-ins.
        let spelled = if ty == CONTROL { bytes_to_unicode(token.as_bytes()) } else { token.to_string() };
        if vocab.insert(spelled, id as u32).is_some() {
            // Our BPE holds one id per string; the general reader keeps
            // both, as llama.cpp does.
            return byte_level_bpe(file, pre_tokenizer::find("gpt-2").expect("GPT-2's is listed"));
        }
    }
    let merges_text = merges.join("\n");
    let bpe = crate::tokenizer::files::from_spelled(vocab, file.path(), &merges_text, file.path())
        .map_err(|e| file.error(format!("the tokenizer in the metadata is not usable: {e}")))?;
    Ok(AnyTokenizer::Bpe(bpe))
}

/// A byte-level BPE with a named pre-tokenizer other than GPT-2's (Llama 3,
/// Qwen2, SmolLM, ...), laid out as its `tokenizer.json` would be: a `Split`
/// per regex of the name, then `ByteLevel` spelling each piece's bytes with
/// GPT-2's stand-ins, the vocabulary's alphabet.
fn byte_level_bpe(file: &GgufFile, pre: &PreTokenizer) -> Result<AnyTokenizer, GgufError> {
    let tokens = strings_of(file, TOKENS_KEY)?;
    let merges = strings_of(file, MERGES_KEY)?;
    let types = token_types(file, tokens.len())?;
    let mut h = Fnv::default();
    h.write(b"gpt2");
    // Each string with its length first, so that no two lists of strings
    // hash alike by running into each other.
    for text in pre.regexes.iter().copied().chain(merges.iter().copied()) {
        h.write_u64(text.len() as u64);
        h.write(text.as_bytes());
    }
    let shared = shared_parts(file, &tokens, &types, pre.add_bos, &mut h)?;
    let mut cuts: Vec<Json> = pre
        .regexes
        .iter()
        .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
        .collect();
    cuts.push(json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}));
    let spec = json!({
        "added_tokens": shared.added,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": cuts},
        "model": {"type": "BPE", "vocab": shared.vocab, "merges": merges, "ignore_merges": pre.ignore_merges},
        "post_processor": shared.post_processor,
        "decoder": {"type": "ByteLevel"},
    });
    build(file, &spec, None, &shared.shadowed, h)
}

/// SentencePiece (`model = "llama"`: Llama 2, Mistral, TinyLlama), as
/// llama.cpp encodes it: spaces become `▁`, one `▁` goes in front of each
/// stretch of text (at the start, and after each token matched as a whole)
/// unless `add_space_prefix` is false, and the stretch is joined by piece
/// score ([`spm_merge`](crate::tokenizer::spm_merge)), with `<0xNN>` byte
/// tokens for characters no piece spells. Decoding turns `▁` back into
/// spaces, byte tokens into their bytes, and drops the space put in front.
fn sentencepiece(file: &GgufFile) -> Result<AnyTokenizer, GgufError> {
    let tokens = strings_of(file, TOKENS_KEY)?;
    let types = token_types(file, tokens.len())?;
    // llama.cpp takes a missing score as 0.
    let scores: Vec<f32> = match file.get(SCORES_KEY) {
        None => vec![0.0; tokens.len()],
        Some(v) => {
            let items = v.as_array().ok_or_else(|| file.error(format!("{SCORES_KEY} is not an array")))?;
            let scores: Option<Vec<f32>> = items.iter().map(|s| s.as_f64().map(|s| s as f32)).collect();
            scores
                .filter(|s| s.len() == tokens.len())
                .ok_or_else(|| file.error(format!("{SCORES_KEY} is not one number per token")))?
        }
    };
    let add_space_prefix = flag(file, ADD_SPACE_PREFIX_KEY, true)?;
    let mut h = Fnv::default();
    h.write(b"llama");
    h.write(&[add_space_prefix as u8]);
    scores.iter().for_each(|s| h.write(&s.to_le_bytes()));
    let shared = shared_parts(file, &tokens, &types, true, &mut h)?;
    let unk = types.iter().position(|&t| t == UNKNOWN).map(|id| tokens[id]);
    let spaces = json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"});
    let normalizer = match add_space_prefix {
        true => json!({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, spaces]}),
        false => spaces,
    };
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "▁"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if add_space_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let spec = json!({
        "added_tokens": shared.added,
        "normalizer": normalizer,
        "model": {"type": "BPE", "vocab": shared.vocab, "merges": [], "byte_fallback": true, "unk_token": unk},
        "post_processor": shared.post_processor,
        "decoder": {"type": "Sequence", "decoders": decoders},
    });
    build(file, &spec, Some(scores), &shared.shadowed, h)
}

/// What both kinds lay out alike.
struct SharedParts {
    /// Every token by its text, as llama.cpp looks tokens up.
    vocab: serde_json::Map<String, Json>,
    /// Ids whose string a later id spells too (see `HfTokenizer::from_value`).
    shadowed: Vec<(u32, String)>,
    /// Tokens matched whole before anything else: control and unknown
    /// tokens as special ones (matched only where special tokens are
    /// allowed), user-defined ones always, as llama.cpp does.
    added: Vec<Json>,
    /// BOS in front when the file says to add it (`Null` otherwise).
    post_processor: Json,
}

fn shared_parts(
    file: &GgufFile,
    tokens: &[&str],
    types: &[i32],
    add_bos_default: bool,
    h: &mut Fnv,
) -> Result<SharedParts, GgufError> {
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut shadowed = Vec::new();
    for (id, &token) in tokens.iter().enumerate() {
        h.write_u64(token.len() as u64);
        h.write(token.as_bytes());
        h.write(&types[id].to_le_bytes());
        // A token spelled twice: the later id is the one text encodes to,
        // as llama.cpp overwrites its string-to-id map; the earlier still
        // decodes to its string.
        if let Some(earlier) = vocab.insert(token.to_string(), json!(id)) {
            shadowed.push((earlier.as_u64().expect("ids are numbers") as u32, token.to_string()));
        }
    }
    let mut added = Vec::new();
    for (id, (&token, &ty)) in tokens.iter().zip(types).enumerate() {
        let shadowed_by_later = vocab[token] != json!(id);
        if matches!(ty, CONTROL | UNKNOWN | USER_DEFINED) && !token.is_empty() && !shadowed_by_later {
            added.push(json!({
                "id": id, "content": token, "special": ty != USER_DEFINED,
                "normalized": false, "lstrip": false, "rstrip": false, "single_word": false,
            }));
        }
    }
    let bos = match file.get(BOS_KEY) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|id| tokens.get(id as usize).map(|t| (id, *t)))
                .ok_or_else(|| file.error(format!("{BOS_KEY} is not a token id")))?,
        ),
    };
    let post_processor = match (bos, flag(file, ADD_BOS_KEY, add_bos_default)?) {
        (Some((id, text)), true) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {text: {"id": text, "ids": [id], "tokens": [text]}},
        }),
        _ => Json::Null,
    };
    Ok(SharedParts { vocab, shadowed, added, post_processor })
}

fn build(
    file: &GgufFile,
    spec: &Json,
    scores: Option<Vec<f32>>,
    shadowed: &[(u32, String)],
    mut h: Fnv,
) -> Result<AnyTokenizer, GgufError> {
    // `tokenizer.json` leaves out a stage as null.
    let spec = match spec {
        Json::Object(map) => {
            Json::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        other => other.clone(),
    };
    // The fingerprint (which keys cached token files) covers every stage
    // and the model's options (Llama 3's `ignore_merges`, the BOS it adds),
    // not only the vocabulary: two files differing in those encode alike
    // text differently.
    if let Json::Object(map) = &spec {
        for (key, value) in map {
            let text = match (key.as_str(), value) {
                ("model", Json::Object(model)) => model
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "vocab" | "merges"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                _ => value.to_string(),
            };
            h.write_u64(key.len() as u64 + text.len() as u64);
            h.write(key.as_bytes());
            h.write(text.as_bytes());
        }
    }
    let tokenizer = HfTokenizer::from_value(&spec, scores, shadowed, h.0)
        .map_err(|e| file.error(format!("the tokenizer in the metadata is not usable: {e}")))?;
    // The file names its end of sequence (Qwen's chat models `<|im_end|>`,
    // not `<|endoftext|>`); generation stops there.
    let id = |key: &str| file.get(key).and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok());
    Ok(AnyTokenizer::Hf(tokenizer.with_named_bos_eos(id(BOS_KEY), id(EOS_KEY)).with_source("GGUF")))
}
