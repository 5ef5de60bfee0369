//! Decoders: token strings back into text.
//!
//! Decoding looks each id up as its token string (added tokens first, then
//! the model's vocabulary), drops special tokens if asked, and hands the list
//! to the decoder chain. Each decoder maps a list of strings to a list of
//! strings; the results are concatenated at the end:
//!
//! - `ByteLevel`: stand-in characters back to bytes, all tokens at once
//!   (`["Ġhel", "lo"]` → `[" hello"]`); a token holding a character that is
//!   not a stand-in is taken as its own UTF-8. Broken UTF-8 becomes `�`.
//! - `Replace`: `▁` → space, token by token.
//! - `ByteFallback`: a run of `<0xNN>` tokens becomes the text of its bytes,
//!   or one `�` per byte if they are not valid UTF-8.
//! - `Fuse`: joins everything into one string.
//! - `Strip`: takes up to `start` / `stop` copies of a character off each
//!   token's ends (Llama 2 strips the space its `▁` prefix became).
//! - `Metaspace`: `▁` → space, and the first token loses its `▁` when a
//!   prefix was prepended on encoding.
//!
//! With no decoder the tokens are joined with single spaces, as in
//! `tokenizers`.

use super::pre_tokenizer::PrependScheme;
use super::schema::{Node, PatternSpec};
use crate::tokenizer::bytes::char_to_byte;

#[derive(Clone, Debug)]
pub(super) enum Decoder {
    ByteLevel,
    Replace { pattern: fancy_regex::Regex, content: String },
    ByteFallback,
    Fuse,
    Strip { content: char, start: usize, stop: usize },
    Metaspace { replacement: char, prepend_scheme: PrependScheme },
    Sequence(Vec<Decoder>),
}

impl Decoder {
    pub fn parse(node: Node) -> Result<Decoder, String> {
        Ok(match node.type_name()? {
            "ByteLevel" => Decoder::ByteLevel,
            "Replace" => Decoder::Replace {
                pattern: PatternSpec::read(&node, "pattern")?.compile(&node, "pattern")?,
                content: node.str("content")?.to_string(),
            },
            "ByteFallback" => Decoder::ByteFallback,
            "Fuse" => Decoder::Fuse,
            "Strip" => Decoder::Strip {
                content: node.char("content")?,
                start: node.usize_or("start", 0)?,
                stop: node.usize_or("stop", 0)?,
            },
            "Metaspace" => Decoder::Metaspace {
                replacement: node.char("replacement")?,
                prepend_scheme: PrependScheme::read(&node)?,
            },
            "Sequence" => {
                let mut parts = Vec::new();
                for (i, item) in node.array("decoders")?.iter().enumerate() {
                    let path = format!("{}.decoders[{i}]", node.path);
                    parts.push(Decoder::parse(Node::of(&path, item)?)?);
                }
                Decoder::Sequence(parts)
            }
            _ => return Err(node.unsupported("decoder")),
        })
    }

    pub fn decode_chain(&self, tokens: Vec<String>) -> Vec<String> {
        match self {
            Decoder::ByteLevel => {
                let mut bytes = Vec::new();
                for token in &tokens {
                    match token.chars().map(char_to_byte).collect::<Option<Vec<u8>>>() {
                        Some(b) => bytes.extend(b),
                        None => bytes.extend_from_slice(token.as_bytes()),
                    }
                }
                vec![String::from_utf8_lossy(&bytes).into_owned()]
            }
            Decoder::Replace { pattern, content } => tokens
                .iter()
                .map(|t| {
                    let mut out = String::with_capacity(t.len());
                    for (s, e, is_match) in super::schema::find_matches(pattern, t) {
                        out.push_str(if is_match { content } else { &t[s..e] });
                    }
                    out
                })
                .collect(),
            Decoder::ByteFallback => {
                let mut out = Vec::with_capacity(tokens.len());
                let mut pending: Vec<u8> = Vec::new();
                let flush = |pending: &mut Vec<u8>, out: &mut Vec<String>| {
                    if pending.is_empty() {
                        return;
                    }
                    match String::from_utf8(std::mem::take(pending)) {
                        Ok(text) => out.push(text),
                        Err(e) => out.extend(std::iter::repeat_n("\u{FFFD}".to_string(), e.as_bytes().len())),
                    }
                };
                for token in tokens {
                    match byte_token(&token) {
                        Some(b) => pending.push(b),
                        None => {
                            flush(&mut pending, &mut out);
                            out.push(token);
                        }
                    }
                }
                flush(&mut pending, &mut out);
                out
            }
            Decoder::Fuse => vec![tokens.concat()],
            Decoder::Strip { content, start, stop } => tokens
                .into_iter()
                .map(|t| {
                    let chars: Vec<char> = t.chars().collect();
                    let start_cut = chars.iter().take(*start).take_while(|&&c| c == *content).count();
                    let stop_cut = chars.len() - chars.iter().rev().take(*stop).take_while(|&&c| c == *content).count();
                    chars[start_cut..stop_cut.max(start_cut)].iter().collect()
                })
                .collect(),
            Decoder::Metaspace { replacement, prepend_scheme } => tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    t.chars()
                        .filter_map(|c| match c == *replacement {
                            true if i == 0 && *prepend_scheme != PrependScheme::Never => None,
                            true => Some(' '),
                            false => Some(c),
                        })
                        .collect()
                })
                .collect(),
            Decoder::Sequence(parts) => parts.iter().fold(tokens, |tokens, part| part.decode_chain(tokens)),
        }
    }
}

/// The byte of a `<0xNN>` token.
fn byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn llama2_chain_restores_text_and_bytes() {
        let chain = Decoder::Sequence(vec![
            Decoder::Replace { pattern: fancy_regex::Regex::new("▁").unwrap(), content: " ".into() },
            Decoder::ByteFallback,
            Decoder::Fuse,
            Decoder::Strip { content: ' ', start: 1, stop: 0 },
        ]);
        let tokens = strings(&["▁Hi", "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "▁", "<0xFF>", "▁there"]);
        assert_eq!(chain.decode_chain(tokens), ["Hi 😀 � there"]);
        // A run that is not valid UTF-8 as a whole gives one `�` per byte.
        let broken = strings(&["<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "<0xFF>"]);
        assert_eq!(chain.decode_chain(broken), ["�����"]);
    }

    #[test]
    fn metaspace_decoder_drops_the_first_tokens_markers() {
        let meta = Decoder::Metaspace { replacement: '▁', prepend_scheme: PrependScheme::First };
        assert_eq!(meta.decode_chain(strings(&["▁a▁b", "▁c"])).concat(), "ab c");
        let never = Decoder::Metaspace { replacement: '▁', prepend_scheme: PrependScheme::Never };
        assert_eq!(never.decode_chain(strings(&["▁a", "▁c"])).concat(), " a c");
    }
}
