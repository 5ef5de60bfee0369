//! Which token ids end a generated reply.
//!
//! GPT-2 has one, `<|endoftext|>`. Chat models often have several: Qwen3
//! ends a turn with `<|im_end|>` but a document with `<|endoftext|>`, and
//! Llama 3 Instruct with `<|eot_id|>` or `<|end_of_text|>`. A model folder
//! says which, as `transformers`' `generate` reads them:
//!
//! 1. `generation_config.json`'s `eos_token_id`, a number or a list;
//! 2. else `config.json`'s `eos_token_id`;
//! 3. else the tokenizer's end-of-sequence token.
//!
//! Generation stops after emitting any of them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat_template::ChatTemplate;
use crate::tokenizer::AnyTokenizer;

/// Generation settings saved beside the weights.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// Why a folder's end tokens could not be read; one line.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct EndTokensError {
    pub path: PathBuf,
    pub reason: String,
}

/// The ids that end generation for the model in `dir` (see the module
/// notes); empty when neither the folder nor the tokenizer names one.
pub fn end_token_ids(dir: &Path, tokenizer: &AnyTokenizer) -> Result<Vec<u32>, EndTokensError> {
    // A single-file model (GGUF) has no folder files: its tokenizer says.
    let files = if dir.is_dir() { &[GENERATION_CONFIG_FILE, crate::weights::hf::CONFIG_FILE][..] } else { &[] };
    for file in files {
        if let Some(ids) = eos_in_file(&dir.join(file))? {
            return Ok(ids);
        }
    }
    Ok(tokenizer.eos_id().into_iter().collect())
}

/// The ids that end a chat reply: [`end_token_ids`], and the template's
/// `eos_token` (`tokenizer_config.json`) when it is a special token: the
/// token that closes a turn (`<|im_end|>`), which a fine-tuned folder's
/// `config.json` may not list.
pub fn chat_end_token_ids(
    dir: &Path,
    tokenizer: &AnyTokenizer,
    template: &ChatTemplate,
) -> Result<Vec<u32>, EndTokensError> {
    let mut ids = end_token_ids(dir, tokenizer)?;
    if let Some(id) = template.token("eos_token").and_then(|text| tokenizer.special_id(text)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `eos_token_id` of a JSON file: `None` when the file or the key is
/// missing (or `null`).
fn eos_in_file(path: &Path) -> Result<Option<Vec<u32>>, EndTokensError> {
    let fail = |reason: String| EndTokensError { path: path.to_path_buf(), reason };
    let text = match crate::input::read_capped_string(path, crate::input::JSON_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let config: Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON ({e})")))?;
    let id = |v: &Value| v.as_u64().and_then(|i| u32::try_from(i).ok());
    let bad = || fail("eos_token_id must be a token id or a list of token ids".into());
    match config.get("eos_token_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) if list.is_empty() => Ok(None),
        Some(Value::Array(list)) => list.iter().map(id).collect::<Option<Vec<u32>>>().map(Some).ok_or_else(bad),
        Some(single) => id(single).map(|i| Some(vec![i])).ok_or_else(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_config_then_config_then_the_tokenizer() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-end-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gpt2 = AnyTokenizer::gpt2();
        assert_eq!(end_token_ids(&dir, &gpt2).unwrap(), vec![50256]);
        std::fs::write(dir.join("config.json"), r#"{"eos_token_id": 7}"#).unwrap();
        assert_eq!(end_token_ids(&dir, &gpt2).unwrap(), vec![7]);
        std::fs::write(dir.join(GENERATION_CONFIG_FILE), r#"{"eos_token_id": [5, 3], "top_k": 20}"#).unwrap();
        assert_eq!(end_token_ids(&dir, &gpt2).unwrap(), vec![5, 3]);
        std::fs::write(dir.join(GENERATION_CONFIG_FILE), r#"{"eos_token_id": null}"#).unwrap();
        assert_eq!(end_token_ids(&dir, &gpt2).unwrap(), vec![7]);
        for bad in [r#"{"eos_token_id": "</s>"}"#, r#"{"eos_token_id": [1, -2]}"#, "{"] {
            std::fs::write(dir.join(GENERATION_CONFIG_FILE), bad).unwrap();
            let e = end_token_ids(&dir, &gpt2).unwrap_err().to_string();
            assert!(e.contains(GENERATION_CONFIG_FILE) && e.lines().count() == 1, "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
