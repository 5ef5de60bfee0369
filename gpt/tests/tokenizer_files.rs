//! Round trips and file formats: encode/decode, save/load, and the errors a
//! bad vocabulary file produces.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gpt::tokenizer::{train_bpe, AnyTokenizer, BpeTokenizer, CharTokenizer, SpecialTokens, TokenizerError};
use proptest::prelude::*;

fn gpt2() -> &'static BpeTokenizer {
    static TOK: OnceLock<BpeTokenizer> = OnceLock::new();
    TOK.get_or_init(BpeTokenizer::gpt2)
}

/// A fresh, empty folder under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-tok-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

proptest! {
    #[test]
    fn decode_inverts_encode(text in any::<String>()) {
        let ids = gpt2().encode(&text, SpecialTokens::Allow).unwrap();
        prop_assert_eq!(gpt2().decode(&ids).unwrap(), text);
    }

    #[test]
    fn decode_bytes_inverts_encode_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let ids = gpt2().encode_bytes(&bytes, SpecialTokens::AsText).unwrap();
        prop_assert_eq!(gpt2().decode_bytes(&ids).unwrap(), bytes);
    }

    #[test]
    fn any_prefix_of_ids_decodes_without_panic(text in any::<String>(), cut in 0usize..64) {
        let ids = gpt2().encode_ordinary(&text);
        let cut = cut.min(ids.len());
        let lossy = gpt2().decode(&ids[..cut]).unwrap();
        let exact = gpt2().decode_bytes(&ids[..cut]).unwrap();
        prop_assert_eq!(lossy, String::from_utf8_lossy(&exact).into_owned());
    }
}

#[test]
fn a_cut_emoji_decodes_lossily() {
    // GPT-2 spells 🦓 as three tokens, each part of its four UTF-8 bytes.
    let ids = gpt2().encode_ordinary("🦓");
    assert!(ids.len() > 1, "{ids:?}");
    let first = gpt2().decode(&ids[..1]).unwrap();
    assert!(first.chars().all(|c| c == '\u{FFFD}'), "{first:?}");
    assert_eq!(gpt2().decode_bytes(&ids[..1]).unwrap(), &"🦓".as_bytes()[..gpt2().token_bytes(ids[0]).unwrap().len()]);
    assert_eq!(gpt2().decode(&ids).unwrap(), "🦓");
}

#[test]
fn not_utf8_input_is_encoded_as_bytes() {
    let input = b"caf\xE9 \xFF\xFEok";
    let ids = gpt2().encode_bytes(input, SpecialTokens::Allow).unwrap();
    assert_eq!(gpt2().decode_bytes(&ids).unwrap(), input);
    assert_eq!(gpt2().decode(&ids).unwrap(), "caf\u{FFFD} \u{FFFD}\u{FFFD}ok");
}

#[test]
fn saved_gpt2_loads_back_identical() {
    let dir = temp_dir("gpt2-save");
    gpt2().save(&dir).unwrap();
    let loaded = BpeTokenizer::load(&dir).unwrap();
    assert_eq!(loaded.fingerprint(), gpt2().fingerprint());
    assert_eq!(loaded.eot_id(), Some(50256));
    // The written files are GPT-2's own, token for token.
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vocab.json")).unwrap()).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(include_str!("../assets/gpt2/vocab.json")).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(std::fs::read_to_string(dir.join("merges.txt")).unwrap(), include_str!("../assets/gpt2/merges.txt"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn trained_tokenizer_saves_and_loads() {
    let text = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. ".repeat(10);
    let tok = train_bpe(&text, 300).unwrap();
    let dir = temp_dir("trained-save");
    tok.save(&dir).unwrap();
    let loaded = BpeTokenizer::load(&dir).unwrap();
    assert_eq!(loaded.merges(), tok.merges());
    assert_eq!(loaded.specials(), tok.specials());
    let sample = "To suffer the question<|endoftext|>whether";
    assert_eq!(loaded.encode(sample, SpecialTokens::Allow).unwrap(), tok.encode(sample, SpecialTokens::Allow).unwrap());
    // AnyTokenizer finds the format by itself.
    assert!(matches!(AnyTokenizer::load(&dir).unwrap(), AnyTokenizer::Bpe(_)));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn char_tokenizer_saves_and_loads() {
    let tok = CharTokenizer::from_text("First Citizen:\nBefore we proceed any further, hear me speak.");
    let dir = temp_dir("char-save");
    tok.save(&dir).unwrap();
    let loaded = CharTokenizer::load(&dir).unwrap();
    assert_eq!(loaded, tok);
    match AnyTokenizer::load(&dir).unwrap() {
        AnyTokenizer::Char(c) => assert_eq!(c.encode("hear me").unwrap(), tok.encode("hear me").unwrap()),
        other => panic!("expected a char tokenizer, got {other:?}"),
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn tiktoken_rank_file_loads() {
    let dir = temp_dir("tiktoken");
    // 256 bytes, then "ab" (rank 256) and "abc" (rank 257), shuffled order is fine.
    let mut lines: Vec<String> = (0..=255u8).map(|b| format!("{} {b}", base64(&[b]))).collect();
    lines.push(format!("{} 257", base64(b"abc")));
    lines.push(format!("{} 256", base64(b"ab")));
    let path = write(&dir, "tiny.tiktoken", &lines.join("\n"));
    let tok = BpeTokenizer::from_tiktoken_file(&path).unwrap();
    assert_eq!(tok.vocab_size(), 259);
    assert_eq!(tok.eot_id(), Some(258));
    assert_eq!(tok.encode("abcab<|endoftext|>", SpecialTokens::Allow).unwrap(), [257, 256, 258]);
    assert!(matches!(AnyTokenizer::load(&path).unwrap(), AnyTokenizer::Bpe(_)));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_files_name_the_file_and_line() {
    let dir = temp_dir("bad-files");
    // A good vocabulary: bytes, then "ab".
    let mut vocab = serde_json::Map::new();
    for b in 0..=255u8 {
        vocab.insert(gpt::tokenizer::bytes::bytes_to_unicode(&[b]), b.into());
    }
    vocab.insert("ab".into(), 256.into());
    let good_vocab = serde_json::to_string_pretty(&vocab).unwrap();
    let vocab_path = write(&dir, "vocab.json", &good_vocab);

    let expect_line = |merges: &str, line: usize, needle: &str| {
        let merges_path = write(&dir, "merges.txt", merges);
        let err = BpeTokenizer::from_hf_files(&vocab_path, &merges_path).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TokenizerError::Malformed { line: l, .. } if l == line), "{message}");
        assert!(message.contains("merges.txt") && message.contains(needle), "{message}");
    };
    expect_line("#version: 0.2\na b\nab\n", 3, "two tokens");
    expect_line("#version: 0.2\na  b\n", 2, "two tokens");
    expect_line("a b\na c\n", 2, "\"ac\" is not in vocab.json");
    expect_line("#version: 0.2\n\na €\n", 3, "\"€\" is not in vocab.json");
    write(&dir, "merges.txt", "#version: 0.2\na b\n");
    assert_eq!(BpeTokenizer::load(&dir).unwrap().encode_ordinary("abab"), [256, 256]);

    // GPT-2's vocabulary with an empty or cut merges.txt: its words would
    // otherwise all become special tokens.
    let gpt2_dir = temp_dir("cut-merges");
    write(&gpt2_dir, "vocab.json", include_str!("../assets/gpt2/vocab.json"));
    let full = include_str!("../assets/gpt2/merges.txt");
    let half: String = full.lines().take(25_000).map(|l| format!("{l}\n")).collect();
    for merges in ["", "#version: 0.2\n", half.as_str()] {
        write(&gpt2_dir, "merges.txt", merges);
        let err = BpeTokenizer::load(&gpt2_dir).unwrap_err().to_string();
        assert!(err.contains("merges.txt") && err.contains("made by no merge") && err.contains("truncated"), "{err}");
    }
    // The whole file loads, with <|endoftext|> as its one special token.
    write(&gpt2_dir, "merges.txt", full);
    assert_eq!(BpeTokenizer::load(&gpt2_dir).unwrap().encode("<|endoftext|>", SpecialTokens::Allow).unwrap(), [50256]);
    std::fs::remove_dir_all(gpt2_dir).unwrap();

    // Broken JSON: the error names vocab.json and the line of the problem.
    let broken = good_vocab.replacen("\"ab\": 256", "\"ab\": oops", 1);
    write(&dir, "vocab.json", &broken);
    let err = BpeTokenizer::load(&dir).unwrap_err();
    let line = broken.lines().position(|l| l.contains("oops")).unwrap() + 1;
    assert!(matches!(err, TokenizerError::Malformed { line: l, .. } if l == line), "{err}");
    assert!(err.to_string().contains("vocab.json"), "{err}");

    // A vocabulary missing a byte cannot encode everything: refused.
    let mut missing = vocab.clone();
    missing.remove(&gpt::tokenizer::bytes::bytes_to_unicode(b"z"));
    missing.insert("ab".into(), 122.into());
    write(&dir, "vocab.json", &serde_json::to_string(&missing).unwrap());
    let err = BpeTokenizer::load(&dir).unwrap_err();
    assert!(err.to_string().contains("vocab.json") && err.to_string().contains("0x7A"), "{err}");

    // Missing files are I/O errors with the path.
    let err = BpeTokenizer::load(dir.join("nowhere")).unwrap_err();
    assert!(matches!(err, TokenizerError::Io { .. }) && err.to_string().contains("nowhere"), "{err}");

    // A tiktoken file with a bad line.
    let path = write(&dir, "bad.tiktoken", "IQ== 0\nnot-base64! 1\n");
    let err = BpeTokenizer::from_tiktoken_file(&path).unwrap_err();
    assert!(matches!(err, TokenizerError::Malformed { line: 2, .. }), "{err}");
    assert!(err.to_string().contains("bad.tiktoken"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}
