//! `tokenizer.json` against the `tokenizers` library: the fixtures under
//! `tests/fixtures/hf_json/` (written by `scripts/make_hf_json_fixtures.py`)
//! hold five small tokenizers, one per family layout, and the ids and text
//! `tokenizers` produced for a corpus of hard cases. Every case must come out
//! identical here: encoded with and without special tokens, decoded with and
//! without `skip_special_tokens`.

use std::path::{Path, PathBuf};

use gpt::tokenizer::{train_bpe, AnyTokenizer, HfTokenizer, SpecialTokens, TokenizerError};
use serde_json::Value;

const FAMILIES: [&str; 5] = ["gpt2", "llama3", "qwen", "metaspace", "llama2"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf_json")
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-hfjson-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_case_matches_tokenizers() {
    let cases = cases();
    let texts = cases["texts"].as_array().unwrap();
    let mut failures = Vec::new();
    for family in FAMILIES {
        let tok = HfTokenizer::from_file(fixtures().join(format!("{family}.tokenizer.json"))).unwrap();
        let rows = cases["tokenizers"][family].as_array().unwrap();
        assert_eq!(rows.len(), texts.len(), "{family}: one row per text");
        for (text, row) in texts.iter().zip(rows) {
            let text = text.as_str().unwrap();
            let with_special = ids(&row["ids"]);
            let checks = [
                ("encode", format!("{:?}", tok.encode(text, true)), format!("{with_special:?}")),
                ("encode plain", format!("{:?}", tok.encode(text, false)), format!("{:?}", ids(&row["ids_plain"]))),
                ("decode", tok.decode(&with_special, false).unwrap(), row["decoded"].as_str().unwrap().to_string()),
                (
                    "decode skip",
                    tok.decode(&with_special, true).unwrap(),
                    row["decoded_skip"].as_str().unwrap().to_string(),
                ),
            ];
            for (what, ours, theirs) in checks {
                if ours != theirs {
                    failures.push(format!("{family} {what} {text:?}:\n  ours   {ours}\n  theirs {theirs}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn gpt2_layout_takes_the_fast_path_with_the_same_ids() {
    let path = fixtures().join("gpt2.tokenizer.json");
    let AnyTokenizer::Bpe(fast) = AnyTokenizer::load(&path).unwrap() else { panic!("expected the BPE fast path") };
    let slow = HfTokenizer::from_file(&path).unwrap();
    let cases = cases();
    for (text, row) in cases["texts"].as_array().unwrap().iter().zip(cases["tokenizers"]["gpt2"].as_array().unwrap()) {
        let text = text.as_str().unwrap();
        assert_eq!(fast.encode(text, SpecialTokens::Allow).unwrap(), ids(&row["ids_plain"]), "{text:?}");
        assert_eq!(slow.encode_with(text, SpecialTokens::AsText, false).unwrap(), fast.encode_ordinary(text));
    }
    // Other layouts are not GPT-2's and keep the general path.
    for family in ["llama3", "qwen", "metaspace", "llama2"] {
        let any = AnyTokenizer::load(fixtures().join(format!("{family}.tokenizer.json"))).unwrap();
        assert!(matches!(any, AnyTokenizer::Hf(_)), "{family}");
    }
}

#[test]
fn bos_eos_and_special_lookups() {
    let llama2 = AnyTokenizer::load(fixtures().join("llama2.tokenizer.json")).unwrap();
    assert_eq!((llama2.bos_id(), llama2.eos_id(), llama2.special_id("<unk>")), (Some(1), Some(2), Some(0)));
    let llama3 = AnyTokenizer::load(fixtures().join("llama3.tokenizer.json")).unwrap();
    assert_eq!((llama3.bos_id(), llama3.eos_id(), llama3.special_id("<|eot_id|>")), (Some(0), Some(1), Some(2)));
    let AnyTokenizer::Hf(qwen) = AnyTokenizer::load(fixtures().join("qwen.tokenizer.json")).unwrap() else { panic!() };
    let im_end = qwen.token_id("<|im_end|>").unwrap();
    assert_eq!(qwen.encode_with("a<|im_end|>", SpecialTokens::Allow, false).unwrap().last(), Some(&im_end));
    let err = qwen.encode_with("a<|im_end|>", SpecialTokens::Reject, false).unwrap_err();
    assert!(matches!(err, TokenizerError::DisallowedSpecial { offset: 1, .. }), "{err}");
    assert!(!qwen.encode_with("a<|im_end|>", SpecialTokens::AsText, false).unwrap().contains(&im_end));
}

#[test]
fn our_tokenizer_json_reads_back_with_our_ids() {
    let corpus = gpt::data::builtin_corpus(20_000);
    let trained = train_bpe(&format!("{corpus}<|endoftext|>"), 400).unwrap();
    let dir = temp_dir("export");
    trained.save(&dir).unwrap();
    let json = dir.join("tokenizer.json");
    let general = HfTokenizer::from_file(&json).unwrap();
    assert!(general.to_gpt2_style().is_some());
    let AnyTokenizer::Bpe(fast) = AnyTokenizer::load(&dir).unwrap() else { panic!("expected the BPE fast path") };
    assert_eq!(fast.fingerprint(), trained.fingerprint(), "the same vocabulary, merges and specials");
    let cases = cases();
    let texts: Vec<&str> = cases["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for text in texts.iter().copied().chain([&corpus[..2000]]) {
        let ours = trained.encode(text, SpecialTokens::Allow).unwrap();
        assert_eq!(general.encode(text, false), ours, "{text:?}");
        assert_eq!(general.decode(&ours, false).unwrap(), trained.decode(&ours).unwrap());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The message of loading `json` as `name`.
fn load_error(name: &str, json: &str) -> String {
    let dir = temp_dir(name);
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, json).unwrap();
    let message = match AnyTokenizer::load(&dir) {
        Ok(_) => panic!("{name}: loaded"),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::remove_dir_all(dir);
    assert!(message.contains("tokenizer.json") && !message.contains('\n'), "{name}: {message}");
    message
}

#[test]
fn bad_files_are_one_line_errors_naming_the_problem() {
    let model = r#""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#;
    let good = format!("{{{model}}}");
    assert!(HfTokenizer::from_json(&good).is_ok());
    assert!(load_error("not-json", "{ nope").contains("not JSON"));
    let unknown = format!(r#"{{"pre_tokenizer": {{"type": "Whitespace"}}, {model}}}"#);
    assert!(load_error("unknown-pre", &unknown).contains(r#"pre_tokenizer type "Whitespace" is not supported"#));
    let wordpiece = r#"{"model": {"type": "WordPiece", "vocab": {}}}"#;
    assert!(load_error("wordpiece", wordpiece).contains(r#"model type "WordPiece""#));
    let missing = good.replace(r#"["a b"]"#, r#"["a c"]"#);
    assert!(load_error("merge", &missing).contains(r#"names "c", which is not in the vocabulary"#));
    let prefix = good.replace(r#""type": "BPE","#, r#""type": "BPE", "continuing_subword_prefix": "@@","#);
    assert!(load_error("prefix", &prefix).contains("continuing_subword_prefix"));
    let truncation = format!(r#"{{"truncation": {{"max_length": 8}}, {model}}}"#);
    assert!(load_error("truncation", &truncation).contains("truncation"));

    let tok = HfTokenizer::from_json(&good).unwrap();
    assert_eq!(tok.encode("ab", false), [2]);
    assert!(matches!(tok.decode(&[3], false), Err(TokenizerError::UnknownId { id: 3, vocab_size: 3 })));
}
