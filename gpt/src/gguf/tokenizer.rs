//! The tokenizer in GGUF metadata, as llama.cpp reads it for GPT-2 (and for
//! any architecture whose file carries a GPT-2-style BPE):
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE;
//! - `tokenizer.ggml.pre = "gpt-2"`: GPT-2's pre-tokenizer pattern;
//! - `tokenizer.ggml.tokens`: every token by id, spelled with GPT-2's byte
//!   stand-ins (`Ġthe`), as in `vocab.json`; special tokens as their text;
//! - `tokenizer.ggml.token_type`: 1 normal, 3 control (special tokens),
//!   5 unused (ids past the tokenizer's vocabulary that pad it to the
//!   model's embedding rows, spelled `[PAD<id>]` as llama.cpp's converter
//!   does);
//! - `tokenizer.ggml.merges`: `left right` per merge, best first, as in
//!   `merges.txt`;
//! - `tokenizer.ggml.bos_token_id`, `eos_token_id`: `<|endoftext|>`.
//!
//! Reading rebuilds our `BpeTokenizer` through the same checks as a
//! `vocab.json` + `merges.txt` pair (`tokenizer::files`).

use rustc_hash::FxHashMap;

use super::error::GgufError;
use super::reader::GgufFile;
use super::value::{strings, Value, ValueType};
use crate::tokenizer::bytes::bytes_to_unicode;
use crate::tokenizer::AnyTokenizer;

pub const MODEL_KEY: &str = "tokenizer.ggml.model";
pub const PRE_KEY: &str = "tokenizer.ggml.pre";
pub const TOKENS_KEY: &str = "tokenizer.ggml.tokens";
pub const TOKEN_TYPE_KEY: &str = "tokenizer.ggml.token_type";
pub const MERGES_KEY: &str = "tokenizer.ggml.merges";
pub const BOS_KEY: &str = "tokenizer.ggml.bos_token_id";
pub const EOS_KEY: &str = "tokenizer.ggml.eos_token_id";
pub const ADD_BOS_KEY: &str = "tokenizer.ggml.add_bos_token";

/// llama.cpp's token types.
pub const NORMAL: i32 = 1;
pub const CONTROL: i32 = 3;
pub const UNUSED: i32 = 5;

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

/// The tokenizer a file's metadata describes.
pub fn from_metadata(file: &GgufFile) -> Result<AnyTokenizer, GgufError> {
    let model = file.get(MODEL_KEY).ok_or_else(|| file.error(format!("has no tokenizer ({MODEL_KEY} is missing)")))?;
    if model.as_str() != Some("gpt2") {
        return Err(file.error(format!("{MODEL_KEY} is {model:?}; only \"gpt2\" (byte-level BPE) tokenizers are read")));
    }
    match file.get(PRE_KEY).map(|v| v.as_str()) {
        None | Some(Some("gpt-2")) => {}
        Some(other) => {
            return Err(file.error(format!("{PRE_KEY} is {other:?}; only GPT-2's pre-tokenizer (\"gpt-2\") is read")))
        }
    }
    let strings_of = |key: &str| -> Result<Vec<&str>, GgufError> {
        let items = file
            .get(key)
            .ok_or_else(|| file.error(format!("{key} is missing")))?
            .as_array()
            .ok_or_else(|| file.error(format!("{key} is not an array")))?;
        items.iter().map(|v| v.as_str().ok_or_else(|| file.error(format!("{key} holds a non-string")))).collect()
    };
    let tokens = strings_of(TOKENS_KEY)?;
    let merges = strings_of(MERGES_KEY)?;
    let types: Vec<i32> = match file.get(TOKEN_TYPE_KEY) {
        None => vec![NORMAL; tokens.len()],
        Some(v) => {
            let items = v.as_array().ok_or_else(|| file.error(format!("{TOKEN_TYPE_KEY} is not an array")))?;
            let types: Option<Vec<i32>> = items.iter().map(|t| t.as_u64().map(|t| t as i32)).collect();
            types
                .filter(|t| t.len() == tokens.len())
                .ok_or_else(|| file.error(format!("{TOKEN_TYPE_KEY} is not one small integer per token")))?
        }
    };
    // Padding past the tokenizer's own ids is not part of it.
    let used = types.iter().rposition(|&t| t != UNUSED).map_or(0, |i| i + 1);
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    for (id, (&token, &ty)) in tokens.iter().zip(&types).take(used).enumerate() {
        // Special tokens are stored as their text; our reader expects
        // every token in byte stand-ins.
        let spelled = if ty == CONTROL { bytes_to_unicode(token.as_bytes()) } else { token.to_string() };
        if vocab.insert(spelled, id as u32).is_some() {
            return Err(file.error(format!("{TOKENS_KEY}: token {token:?} appears twice")));
        }
    }
    let merges_text = merges.join("\n");
    let bpe = crate::tokenizer::files::from_spelled(vocab, file.path(), &merges_text, file.path())
        .map_err(|e| file.error(format!("the tokenizer in the metadata is not usable: {e}")))?;
    Ok(AnyTokenizer::Bpe(bpe))
}
