//! Normalizers: the text rewrites that run before anything is cut.
//!
//! A normalizer maps a string to a string. Byte-level tokenizers usually have
//! none, or NFC (Qwen: `e` + combining acute becomes the single `é`, so both
//! spellings encode alike). SentencePiece-style tokenizers converted to
//! `tokenizer.json` (Llama 2, Mistral) do their space handling here:
//! `Prepend("▁")` then `Replace(" ", "▁")` turns `"Hi there"` into
//! `"▁Hi▁there"`.
//!
//! Normalization runs on each stretch of text between added tokens
//! separately (see [`added`](super::added)), so `Prepend` puts its `▁`
//! before every such stretch, not only at the start of the input — that is
//! what `tokenizers` does, and what Llama 2's ids show.

use unicode_normalization::UnicodeNormalization;

use super::schema::{find_matches, Node, PatternSpec};

/// One normalizer of the pipeline.
#[derive(Clone, Debug)]
pub(super) enum Normalizer {
    Nfc,
    Nfd,
    Nfkc,
    Nfkd,
    Lowercase,
    /// Puts `prefix` before any non-empty text.
    Prepend(String),
    /// Replaces every match of the pattern with `content`.
    Replace {
        pattern: fancy_regex::Regex,
        content: String,
    },
    Sequence(Vec<Normalizer>),
}

impl Normalizer {
    pub fn parse(node: Node) -> Result<Normalizer, String> {
        Ok(match node.type_name()? {
            "NFC" => Normalizer::Nfc,
            "NFD" => Normalizer::Nfd,
            "NFKC" => Normalizer::Nfkc,
            "NFKD" => Normalizer::Nfkd,
            "Lowercase" => Normalizer::Lowercase,
            "Prepend" => Normalizer::Prepend(node.str("prepend")?.to_string()),
            "Replace" => {
                let pattern = PatternSpec::read(&node, "pattern")?.compile(&node, "pattern")?;
                Normalizer::Replace { pattern, content: node.str("content")?.to_string() }
            }
            "Sequence" => {
                let mut parts = Vec::new();
                for (i, item) in node.array("normalizers")?.iter().enumerate() {
                    let path = format!("{}.normalizers[{i}]", node.path);
                    parts.push(Normalizer::parse(Node::of(&path, item)?)?);
                }
                Normalizer::Sequence(parts)
            }
            _ => return Err(node.unsupported("normalizer")),
        })
    }

    pub fn normalize(&self, text: &str) -> String {
        match self {
            Normalizer::Nfc => text.nfc().collect(),
            Normalizer::Nfd => text.nfd().collect(),
            Normalizer::Nfkc => text.nfkc().collect(),
            Normalizer::Nfkd => text.nfkd().collect(),
            // Character by character, as `tokenizers` does (no final-sigma rule).
            Normalizer::Lowercase => text.chars().flat_map(char::to_lowercase).collect(),
            Normalizer::Prepend(prefix) if !text.is_empty() => format!("{prefix}{text}"),
            Normalizer::Prepend(_) => String::new(),
            Normalizer::Replace { pattern, content } => {
                let mut out = String::with_capacity(text.len());
                for (start, end, is_match) in find_matches(pattern, text) {
                    out.push_str(if is_match { content } else { &text[start..end] });
                }
                out
            }
            Normalizer::Sequence(parts) => {
                let mut text = text.to_string();
                for part in parts {
                    text = part.normalize(&text);
                }
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentencepiece_spaces_and_unicode_forms() {
        let replace = Normalizer::Replace { pattern: fancy_regex::Regex::new(" ").unwrap(), content: "▁".into() };
        let llama2 = Normalizer::Sequence(vec![Normalizer::Prepend("▁".into()), replace]);
        assert_eq!(llama2.normalize("Hi  there"), "▁Hi▁▁there");
        assert_eq!(llama2.normalize(""), "");
        assert_eq!(Normalizer::Nfc.normalize("cafe\u{301}"), "café");
        assert_eq!(Normalizer::Nfd.normalize("é"), "e\u{301}");
        assert_eq!(Normalizer::Nfkc.normalize("ﬁ①"), "fi1");
    }
}
