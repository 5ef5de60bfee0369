//! Writing a `tokenizer.json` for our byte-level BPE, so that `tokenizers`
//! and transformers' `AutoTokenizer` load what we train and give our ids.
//!
//! The file says what GPT-2's own `tokenizer.json` says: a BPE model whose
//! vocabulary is spelled in GPT-2's byte stand-ins, the `ByteLevel`
//! pre-tokenizer with GPT-2's regex and no prefix space, the `ByteLevel`
//! decoder, and each special token as an added token that is matched before
//! anything else. Vocabulary entries are written in id order and merges in
//! rank order, so the file reads like `vocab.json` and `merges.txt`.

use crate::tokenizer::bytes::bytes_to_unicode;
use crate::tokenizer::BpeTokenizer;

/// The text of a `tokenizer.json` for `tokenizer`.
pub fn tokenizer_json(tokenizer: &BpeTokenizer) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let byte_level = r#"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#;
    let mut out = String::from("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");

    out.push_str("  \"added_tokens\": [");
    for (i, (text, id)) in tokenizer.specials().iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        out.push_str(&format!(
            "{comma}\n    {{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": false, \
             \"rstrip\": false, \"normalized\": false, \"special\": true}}",
            quote(text)
        ));
    }
    out.push_str("\n  ],\n  \"normalizer\": null,\n");
    out.push_str(&format!("  \"pre_tokenizer\": {byte_level},\n"));
    out.push_str(&format!(
        "  \"post_processor\": {},\n",
        byte_level.replace("\"trim_offsets\":true", "\"trim_offsets\":false")
    ));
    out.push_str(&format!("  \"decoder\": {byte_level},\n"));
    out.push_str(
        "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n    \
         \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \
         \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {",
    );
    for id in 0..tokenizer.vocab_size() as u32 {
        let comma = if id == 0 { "" } else { "," };
        let bytes = tokenizer.token_bytes(id).expect("id below vocab_size");
        // Special tokens keep their text; `tokenizers` stores them so.
        let spelled = match tokenizer.specials().iter().find(|&&(_, s)| s == id) {
            Some((text, _)) => text.clone(),
            None => bytes_to_unicode(bytes),
        };
        out.push_str(&format!("{comma}\n      {}: {id}", quote(&spelled)));
    }
    out.push_str("\n    },\n    \"merges\": [");
    for (rank, &(a, b, _)) in tokenizer.merges().iter().enumerate() {
        let comma = if rank == 0 { "" } else { "," };
        let spell = |id| bytes_to_unicode(tokenizer.token_bytes(id).expect("merge ids are valid"));
        out.push_str(&format!("{comma}\n      [{}, {}]", quote(&spell(a)), quote(&spell(b))));
    }
    out.push_str("\n    ]\n  }\n}\n");
    out
}
