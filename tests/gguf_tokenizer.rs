//! The tokenizers of downloaded GGUF files against llama.cpp itself: small
//! vocabulary-only files of each kind (SentencePiece `llama`, byte-level BPE
//! with Llama 3's, Qwen2's and SmolLM's pre-tokenizers and with none), and the ids and
//! text llama.cpp gives for awkward strings
//! (`scripts/make_gguf_tokenizer_fixtures.py`). Each file is read by
//! `tokenizer::from_metadata`, the reader `--model FILE.gguf` uses.

mod common;

use std::path::{Path, PathBuf};

use common::scratch_dir;
use scratchgpt::gpt::gguf::{tokenizer, GgufFile, GgufWriter, Value};
use scratchgpt::gpt::tokenizer::{AnyTokenizer, SpecialTokens};
use serde_json::Value as Json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tokenizers").join(name)
}

fn load(path: &Path) -> Result<AnyTokenizer, String> {
    let file = GgufFile::open(path).map_err(|e| e.to_string())?;
    tokenizer::from_metadata(&file).map_err(|e| e.to_string())
}

/// Every case of `kind`: llama.cpp's ids for `tokenize(text, add_bos=False,
/// special=False)`, and its text for those ids.
fn check(kind: &str, decoded_as: &str) {
    let cases: Json = serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap();
    let tokenizer = load(&fixture(&format!("{kind}.gguf"))).unwrap();
    // Labelled by where it came from (training metadata and token caches
    // record this), not as a tokenizer.json.
    assert_eq!(tokenizer.describe(), format!("GGUF ({} tokens)", tokenizer.vocab_size()), "{kind}");
    let cases = cases[kind].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let ids = tokenizer.encode(text, SpecialTokens::AsText).unwrap();
        assert_eq!(ids, expected, "{kind}: ids of {text:?}");
        let decoded = tokenizer.decode(&ids).unwrap();
        assert_eq!(decoded, case[decoded_as].as_str().unwrap(), "{kind}: text of the ids of {text:?}");
    }
}

#[test]
fn sentencepiece_encodes_and_decodes_as_llama_cpp() {
    // Leading space dropped on decoding, as llama.cpp's detokenizer does.
    check("spm", "detokenized");
}

#[test]
fn llama3_bpe_encodes_and_decodes_as_llama_cpp() {
    // llama.cpp's whole-sequence detokenizer also drops the space before
    // `,.!?` for this family (transformers' `clean_up_tokenization_spaces`);
    // we decode what the tokens spell, as llama.cpp prints them generating.
    check("llama_bpe", "pieces");
}

#[test]
fn qwen2_bpe_encodes_and_decodes_as_llama_cpp() {
    check("qwen2", "detokenized");
}

#[test]
fn smollm_bpe_encodes_and_decodes_as_llama_cpp() {
    check("smollm", "detokenized");
}

#[test]
fn a_bpe_file_naming_no_pre_tokenizer_is_cut_as_llama_cpp_cuts_it() {
    // No `tokenizer.ggml.pre`: llama.cpp's `default` regexes (punctuation
    // runs, GPT-2's, digit runs, digits in threes), not GPT-2's alone. Its
    // detokenizer cleans spaces before punctuation here too, so compare the
    // pieces the tokens spell.
    check("no_pre", "pieces");
}

/// A copy of fixture `name` with `pre` set and `extra` tokens (normal ones)
/// appended to the vocabulary.
fn with_tokens(name: &str, pre: &str, extra: &[&str], out: &str) -> PathBuf {
    let file = GgufFile::open(fixture(name)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata() {
        let v = match (k.as_str(), v) {
            (tokenizer::PRE_KEY, _) => Value::String(pre.into()),
            (tokenizer::TOKENS_KEY, Value::Array(ty, items)) => Value::Array(
                *ty,
                items.iter().cloned().chain(extra.iter().map(|t| Value::String(t.to_string()))).collect(),
            ),
            (tokenizer::TOKEN_TYPE_KEY, Value::Array(ty, items)) => Value::Array(
                *ty,
                items.iter().cloned().chain(extra.iter().map(|_| Value::I32(tokenizer::NORMAL))).collect(),
            ),
            _ => v.clone(),
        };
        w.set(k, v);
    }
    let path = scratch_dir("gguf-tokenizer").join(out);
    w.write(&path).unwrap();
    path
}

#[test]
fn a_token_spelled_twice_encodes_to_the_later_id_and_both_decode() {
    // As llama.cpp builds its maps: string to id overwritten by the later
    // id, every id still decoding to its own string.
    let cases: Json = serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap();
    // `Ġthe` is 361 and `world` 292 in the fixture's vocabulary (602 tokens).
    let (the, world, n) = (361u32, 292u32, 602u32);
    // GPT-2's `pre` (our own BPE reads it unless a token repeats; this
    // vocabulary's whole words no merge makes send the plain copy to the
    // general reader under "phi-2", the same regex) and another.
    for (pre, plain_pre) in [("gpt-2", "phi-2"), ("qwen2", "qwen2")] {
        let plain = load(&with_tokens("smollm.gguf", plain_pre, &[], &format!("plain-{pre}.gguf"))).unwrap();
        let twice = load(&with_tokens("smollm.gguf", pre, &["Ġthe", "world"], &format!("twice-{pre}.gguf"))).unwrap();
        assert_eq!(twice.decode(&[the]).unwrap(), " the");
        assert_eq!(twice.decode(&[n]).unwrap(), " the");
        assert_eq!(twice.decode(&[world, n + 1]).unwrap(), "worldworld");
        let later = |id: u32| match id {
            id if id == the => n,
            id if id == world => n + 1,
            id => id,
        };
        let mut moved = 0;
        for case in cases["smollm"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let expected: Vec<u32> =
                plain.encode(text, SpecialTokens::AsText).unwrap().into_iter().map(later).collect();
            let ids = twice.encode(text, SpecialTokens::AsText).unwrap();
            assert_eq!(ids, expected, "{pre}: ids of {text:?}");
            assert!(!ids.contains(&the) && !ids.contains(&world), "{pre}: {text:?}");
            assert_eq!(
                twice.decode(&ids).unwrap(),
                plain.decode(&plain.encode(text, SpecialTokens::AsText).unwrap()).unwrap()
            );
            moved += ids.iter().filter(|&&id| id >= n).count();
        }
        assert!(moved >= 4, "{pre}: only {moved} tokens of the cases are the repeated ones");
    }
}

#[test]
fn bos_and_eos_are_the_ones_the_file_names() {
    // `<|endoftext|>` is id 0, but the file names `<|im_end|>` (1) as EOS.
    let tokenizer = load(&fixture("qwen2.gguf")).unwrap();
    assert_eq!((tokenizer.bos_id(), tokenizer.eos_id()), (Some(0), Some(1)));
    let tokenizer = load(&fixture("spm.gguf")).unwrap();
    assert_eq!((tokenizer.bos_id(), tokenizer.eos_id()), (Some(1), Some(2)));
}

#[test]
fn sentencepiece_adds_bos_where_the_file_says() {
    let tokenizer = load(&fixture("spm.gguf")).unwrap();
    assert_eq!(tokenizer.bos_id(), Some(1));
    let ids = tokenizer.encode_adding_special_tokens("Hello", SpecialTokens::AsText).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(&ids[1..], tokenizer.encode("Hello", SpecialTokens::AsText).unwrap());
}

/// A copy of fixture `name` with `key` set to `value`.
fn altered(name: &str, key: &str, value: &str) -> PathBuf {
    let file = GgufFile::open(fixture(name)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata() {
        w.set(k, if k == key { Value::String(value.into()) } else { v.clone() });
    }
    let path = scratch_dir("gguf-tokenizer").join(format!("{value}.gguf"));
    w.write(&path).unwrap();
    path
}

#[test]
fn unknown_models_and_pre_tokenizers_are_refused_by_name() {
    let path = altered("qwen2.gguf", tokenizer::PRE_KEY, "no-such-pre");
    let err = load(&path).unwrap_err();
    assert!(err.contains("\"no-such-pre\"") && err.contains("no-such-pre.gguf"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let path = altered("spm.gguf", tokenizer::MODEL_KEY, "bert");
    let err = load(&path).unwrap_err();
    assert!(err.contains("model is \"bert\"") && err.contains("bert.gguf"), "{err}");
}
