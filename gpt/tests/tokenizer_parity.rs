//! Our GPT-2 tokenizer against the references: tiktoken-rs for the ids, and
//! `fancy-regex` running GPT-2's pattern for the pre-tokenizer's cuts.

use std::sync::OnceLock;

use gpt::tokenizer::{pretokenize, BpeTokenizer, SpecialTokens};
use proptest::prelude::*;
use tiktoken_rs::CoreBPE;

const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

fn ours() -> &'static BpeTokenizer {
    static TOK: OnceLock<BpeTokenizer> = OnceLock::new();
    TOK.get_or_init(BpeTokenizer::gpt2)
}

fn tiktoken() -> &'static CoreBPE {
    tiktoken_rs::r50k_base_singleton()
}

fn regex() -> &'static fancy_regex::Regex {
    static RE: OnceLock<fancy_regex::Regex> = OnceLock::new();
    RE.get_or_init(|| fancy_regex::Regex::new(GPT2_PATTERN).unwrap())
}

fn regex_pieces(text: &str) -> Vec<&str> {
    regex().find_iter(text).map(|m| m.unwrap().as_str()).collect()
}

/// A corpus written to poke at every rule of the pre-tokenizer and at BPE.
fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = [
        "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
        "DON'T stop. We'll see; she'd've known. It's 'quoted' and I'M LOUD. y'all O'Neil rock'n'roll",
        "'s 't 're 've 'm 'll 'd 'S 'RE ''s '''ll",
        "1 12 123 1234 12345 123456789012345678901234567890 3.14159 -42 1,000,000 0x1F 2024-11-22",
        "a  b   c    d     e\t\tf \t g\t h",
        "line one\r\nline two\r\n\r\nline four\n\n\n\nend",
        "\n\nleading blank lines",
        "   leading and trailing spaces   ",
        "\t\ttabs\t\t",
        "trailing newline\n",
        "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} <<< >>> ||| ~~~ ``` \"\"\"",
        "Wait... what?!?! No—yes… (maybe) [citation needed] {json: true} <tag/>",
        "café naïve résumé coöperate Zürich São Paulo Ålesund ŁÓDŹ İstanbul",
        "cafe\u{301} nai\u{308}ve e\u{301}\u{302}\u{303} a\u{20DD} Z\u{335}a\u{336}l\u{337}g\u{338}o",
        "日本語のテキストです。中文文本，还有标点！한국어 텍스트도 있어요.",
        "العربية نص عربي مع أرقام ١٢٣٤ و كلمات. עברית גם כן.",
        "Русский текст и Ελληνικά γράμματα, ქართული, हिन्दी पाठ, ไทย",
        "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🇺🇸🇯🇵 a😀b 1️⃣",
        "fn main() {\n    let x: Vec<u32> = vec![1, 2, 3];\n    println!(\"{x:?}\");\n}\n",
        "def f(x):\n\treturn x**2  # square\n\nclass A(object):\n    pass\n",
        "<div class=\"a\">&nbsp;&amp;</div><!-- comment -->",
        "https://example.com/path/to/page?query=1&lang=en#section http://a.b/c_d-e.f",
        "user@example.com +1 (555) 123-4567 $19.99 €20 £5 ¥100 50% 3×4=12 ½ ¾ ²³",
        "non\u{a0}breaking\u{2003}em\u{3000}ideographic\u{2028}line\u{2029}para\u{85}nel",
        "zero\u{200b}width\u{200d}joiner\u{feff}bom",
        "mixed\u{0}control\u{1}\u{7f}chars\u{1b}[0m",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈 𓀀 beyond the BMP",
        " ",
        "",
        "a",
        "<|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "text <|endoftext|>more<|endoftext|>  \n<|endoftext|>",
        "almost <|endoftext| special <endoftext|>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Long inputs: one 10,000-character word, long runs, long repeats.
    for unit in ["a", "ab", " ", "\n", "1234567890", "!?", "é", "🙂", "hello world ", "The quick brown fox. "] {
        let n = 10_000 / unit.chars().count();
        texts.push(unit.repeat(n));
    }
    texts.push(format!("{}x", " ".repeat(10_000)));
    texts.push(format!("x{}x", "\t\n ".repeat(3_000)));
    texts
}

#[test]
fn ids_match_tiktoken_on_the_corpus() {
    for text in corpus() {
        let expected = tiktoken().encode_ordinary(&text);
        assert_eq!(ours().encode_ordinary(&text), expected, "encode_ordinary differs on {text:?}");
        let expected = tiktoken().encode_with_special_tokens(&text);
        assert_eq!(ours().encode(&text, SpecialTokens::Allow).unwrap(), expected, "encode differs on {text:?}");
        assert_eq!(ours().decode(&expected).unwrap(), text);
    }
}

#[test]
fn pieces_match_the_regex_on_the_corpus() {
    for text in corpus() {
        let ours: Vec<&str> = pretokenize(&text).collect();
        assert_eq!(ours, regex_pieces(&text), "pieces differ on {text:?}");
    }
}

#[test]
fn book_example_ids() {
    // The ids LLMs-from-scratch prints for this sentence with tiktoken.
    let text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.";
    let ids = ours().encode(text, SpecialTokens::Allow).unwrap();
    assert_eq!(
        ids,
        [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 286, 617, 34680, 27271, 13]
    );
    assert_eq!(ours().encode_ordinary("<|endoftext|>"), [27, 91, 437, 1659, 5239, 91, 29]);
    assert_eq!(ours().encode_ordinary("hello world"), [31373, 995]);
}

/// Characters that exercise every class the pattern knows about.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![' ', ' ', '\t', '\n', '\r', '\'', 's', 't', 'l', 'v', 'e', 'r', 'd', 'm']),
        2 => prop::char::range('a', 'z'),
        1 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        1 => prop::sample::select(vec!['.', ',', '!', '?', '-', '"', '(', '<', '|', '>']),
        1 => prop::sample::select(vec!['é', '\u{301}', '日', 'ع', '😀', '\u{200d}', '\u{a0}', '\u{3000}', '½', '𝟙', '\u{0}']),
    ]
}

fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..64).prop_map(|cs| cs.into_iter().collect())
}

/// Tricky strings with special tokens (and near misses) mixed in.
fn with_specials() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => tricky_char().prop_map(String::from),
        1 => Just("<|endoftext|>".to_string()),
        1 => Just("<|endoftext".to_string()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|ps| ps.concat())
}

proptest! {
    #[test]
    fn special_tokens_match_tiktoken(text in with_specials()) {
        let ids = ours().encode(&text, SpecialTokens::Allow).unwrap();
        prop_assert_eq!(&ids, &tiktoken().encode_with_special_tokens(&text));
        prop_assert_eq!(ours().decode(&ids).unwrap(), text);
    }

    #[test]
    fn ids_match_tiktoken_on_tricky_strings(text in tricky_string()) {
        prop_assert_eq!(ours().encode_ordinary(&text), tiktoken().encode_ordinary(&text));
    }

    #[test]
    fn ids_match_tiktoken_on_any_string(text in any::<String>()) {
        prop_assert_eq!(ours().encode_ordinary(&text), tiktoken().encode_ordinary(&text));
    }

    #[test]
    fn pieces_match_the_regex(text in tricky_string()) {
        let ours: Vec<&str> = pretokenize(&text).collect();
        prop_assert_eq!(ours, regex_pieces(&text));
    }

    #[test]
    fn pieces_match_the_regex_on_any_string(text in any::<String>()) {
        let ours: Vec<&str> = pretokenize(&text).collect();
        prop_assert_eq!(ours, regex_pieces(&text));
    }
}
