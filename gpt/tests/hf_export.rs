//! Exports a trained tokenizer and its encodings for
//! `scripts/check_hf_tokenizer.py`, which loads the files in Hugging Face
//! `tokenizers` and checks that it encodes the same texts to the same ids.
//!
//! Ignored in ordinary runs (it trains an 8,192-token vocabulary); the script
//! runs it with `SCRATCHGPT_HF_EXPORT=<folder>`.

use std::path::PathBuf;
use std::time::Instant;

use gpt::data::builtin_corpus;
use gpt::tokenizer::{train_bpe, BpeTokenizer, SpecialTokens};
use serde_json::json;

/// Texts beyond the training data: held-out lines plus the hard cases.
fn cases(held_out: &str) -> Vec<String> {
    let mut texts: Vec<String> = held_out.split("\n\n").take(200).map(str::to_string).collect();
    texts.extend(
        [
            "DON'T stop. We'll see; she'd've known. It's 'quoted' and I'M LOUD.",
            "1 12 123 1234 12345 123456789012345678901234567890 3.14159 -42",
            "a  b   c    d\t\te \t f\r\nline\r\n\r\n\n\nend   ",
            "   leading and trailing   ",
            "café naïve cafe\u{301} Zürich — «ça va?» 日本語のテキスト。 العربية نص",
            "emoji 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 a😀b",
            "fn main() {\n    println!(\"{x:?}\");\n}\n",
            "https://example.com/path?query=1&lang=en#section",
            "First part<|endoftext|>Second part <|endoftext|> third",
            "!!! ??? ... --- *** ### $$$ ((( )))",
        ]
        .map(str::to_string),
    );
    texts.push("ab".repeat(2_000));
    texts
}

fn encodings(tok: &BpeTokenizer, texts: &[String]) -> serde_json::Value {
    let cases: Vec<_> =
        texts.iter().map(|t| json!({ "text": t, "ids": tok.encode(t, SpecialTokens::Allow).unwrap() })).collect();
    json!(cases)
}

#[test]
#[ignore = "run by scripts/check_hf_tokenizer.py"]
fn export_for_hugging_face() {
    let out = PathBuf::from(std::env::var("SCRATCHGPT_HF_EXPORT").expect("set SCRATCHGPT_HF_EXPORT to a folder"));
    let vocab_size: usize = std::env::var("SCRATCHGPT_HF_VOCAB").map_or(8192, |v| v.parse().expect("a number"));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tinyshakespeare.txt");
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(text) => (text, "tinyshakespeare"),
        Err(_) => (builtin_corpus(1_115_394), "generated stories"),
    };
    let cut = text.len() * 9 / 10;
    let cut = (cut..text.len()).find(|&i| text.is_char_boundary(i)).unwrap();
    let (train, held_out) = text.split_at(cut);

    let start = Instant::now();
    let trained = train_bpe(train, vocab_size).unwrap();
    eprintln!(
        "trained {} tokens on {} bytes of {source} in {:.2?}",
        trained.vocab_size(),
        train.len(),
        start.elapsed()
    );
    trained.save(out.join("trained")).unwrap();
    BpeTokenizer::gpt2().save(out.join("gpt2")).unwrap();

    let texts = cases(held_out);
    let export = json!({
        "source": source,
        "trained": encodings(&trained, &texts),
        "gpt2": encodings(&BpeTokenizer::gpt2(), &texts),
    });
    std::fs::write(out.join("cases.json"), serde_json::to_string(&export).unwrap()).unwrap();
    // The exported files load back here too.
    assert_eq!(BpeTokenizer::load(out.join("trained")).unwrap().merges(), trained.merges());
}
