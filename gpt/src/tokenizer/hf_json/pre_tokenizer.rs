//! Pre-tokenizers: cutting normalized text into the pieces BPE works on.
//!
//! BPE never merges across two pieces, so this stage decides what a token
//! can be. The families differ here:
//!
//! - GPT-2: `ByteLevel` with its own regex, the one our hand-written
//!   [`pretokenize`](crate::tokenizer::pretokenize) scanner implements.
//! - Llama 3, Qwen2/3, DeepSeek: `Split` with the family's regex (look-ahead
//!   `\s+(?!\S)`, digits in runs of at most three, case-insensitive
//!   contractions), then `ByteLevel(use_regex=false)`, which cuts nothing
//!   and only rewrites each piece's bytes as GPT-2's stand-in characters
//!   ([`bytes`](crate::tokenizer::bytes)), the alphabet of the vocabulary.
//! - SentencePiece-style: `Metaspace` turns spaces into `▁` and may prepend
//!   one, and cuts before each `▁`.
//!
//! A [`Piece`] is a string plus whether it starts the original input:
//! `Metaspace`'s `prepend_scheme: "first"` prepends `▁` only there.

use super::schema::{find_matches, Node, PatternSpec};
use crate::tokenizer::bytes::BYTE_TO_CHAR;
use crate::tokenizer::pretokenize;

/// A stretch of text on its way to the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Piece {
    pub text: String,
    /// The piece begins at offset 0 of the input text.
    pub at_start: bool,
}

/// How `Split` treats the pieces its pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Behavior {
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// When `Metaspace` puts a `▁` before a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PrependScheme {
    First,
    Always,
    Never,
}

impl PrependScheme {
    pub fn read(node: &Node) -> Result<PrependScheme, String> {
        match node.opt_str("prepend_scheme")? {
            Some("first") => Ok(PrependScheme::First),
            Some("always") => Ok(PrependScheme::Always),
            Some("never") => Ok(PrependScheme::Never),
            Some(other) => Err(node.fail("prepend_scheme", format!("unknown value {other:?}"))),
            // Files older than `prepend_scheme` say `add_prefix_space`.
            None if node.bool_or("add_prefix_space", true)? => Ok(PrependScheme::Always),
            None => Ok(PrependScheme::Never),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum PreTokenizer {
    Split { pattern: fancy_regex::Regex, behavior: Behavior, invert: bool },
    ByteLevel { add_prefix_space: bool, use_regex: bool },
    Metaspace { replacement: char, prepend_scheme: PrependScheme, split: bool },
    Sequence(Vec<PreTokenizer>),
}

impl PreTokenizer {
    pub fn parse(node: Node) -> Result<PreTokenizer, String> {
        Ok(match node.type_name()? {
            "Split" => {
                let pattern = PatternSpec::read(&node, "pattern")?.compile(&node, "pattern")?;
                let behavior = match node.str("behavior")? {
                    "Removed" => Behavior::Removed,
                    "Isolated" => Behavior::Isolated,
                    "MergedWithPrevious" => Behavior::MergedWithPrevious,
                    "MergedWithNext" => Behavior::MergedWithNext,
                    "Contiguous" => Behavior::Contiguous,
                    other => return Err(node.fail("behavior", format!("unknown value {other:?}"))),
                };
                PreTokenizer::Split { pattern, behavior, invert: node.bool_or("invert", false)? }
            }
            "ByteLevel" => PreTokenizer::ByteLevel {
                add_prefix_space: node.bool_or("add_prefix_space", true)?,
                use_regex: node.bool_or("use_regex", true)?,
            },
            "Metaspace" => PreTokenizer::Metaspace {
                replacement: node.char("replacement")?,
                prepend_scheme: PrependScheme::read(&node)?,
                split: node.bool_or("split", true)?,
            },
            "Sequence" => {
                let mut parts = Vec::new();
                for (i, item) in node.array("pretokenizers")?.iter().enumerate() {
                    let path = format!("{}.pretokenizers[{i}]", node.path);
                    parts.push(PreTokenizer::parse(Node::of(&path, item)?)?);
                }
                PreTokenizer::Sequence(parts)
            }
            _ => return Err(node.unsupported("pre_tokenizer")),
        })
    }

    /// Cuts every piece; empty pieces are dropped, as `tokenizers` drops them.
    pub fn apply(&self, pieces: Vec<Piece>) -> Vec<Piece> {
        match self {
            PreTokenizer::Sequence(parts) => parts.iter().fold(pieces, |pieces, part| part.apply(pieces)),
            _ => {
                let mut out = Vec::with_capacity(pieces.len());
                for piece in pieces {
                    self.cut(piece, &mut out);
                }
                out
            }
        }
    }

    fn cut(&self, piece: Piece, out: &mut Vec<Piece>) {
        match self {
            PreTokenizer::Split { pattern, behavior, invert } => {
                let mut spans = find_matches(pattern, &piece.text);
                if *invert {
                    spans.iter_mut().for_each(|s| s.2 = !s.2);
                }
                for (start, end) in merge_spans(spans, *behavior) {
                    push(out, &piece, start, piece.text[start..end].to_string());
                }
            }
            PreTokenizer::ByteLevel { add_prefix_space, use_regex } => {
                let text = if *add_prefix_space && !piece.text.starts_with(' ') {
                    format!(" {}", piece.text)
                } else {
                    piece.text.clone()
                };
                let at_start = piece.at_start;
                if *use_regex {
                    let mut offset = 0;
                    for word in pretokenize(&text) {
                        out.push(Piece { text: to_stand_ins(word), at_start: at_start && offset == 0 });
                        offset += word.len();
                    }
                } else if !text.is_empty() {
                    out.push(Piece { text: to_stand_ins(&text), at_start });
                }
            }
            PreTokenizer::Metaspace { replacement, prepend_scheme, split } => {
                let mut text: String = piece.text.chars().map(|c| if c == ' ' { *replacement } else { c }).collect();
                let prepend = match prepend_scheme {
                    PrependScheme::Always => true,
                    PrependScheme::First => piece.at_start,
                    PrependScheme::Never => false,
                };
                if prepend && !text.starts_with(*replacement) {
                    text.insert(0, *replacement);
                }
                if !*split {
                    if !text.is_empty() {
                        out.push(Piece { text, at_start: piece.at_start });
                    }
                    return;
                }
                // Cut before every replacement character (MergedWithNext).
                let mut start = 0;
                for (i, c) in text.char_indices() {
                    if c == *replacement && i > start {
                        out.push(Piece { text: text[start..i].to_string(), at_start: piece.at_start && start == 0 });
                        start = i;
                    }
                }
                if start < text.len() {
                    out.push(Piece { text: text[start..].to_string(), at_start: piece.at_start && start == 0 });
                }
            }
            PreTokenizer::Sequence(_) => out.extend(self.apply(vec![piece])),
        }
    }

    /// Whether this is exactly GPT-2's pre-tokenizer: `ByteLevel` with its
    /// regex and no prefix space.
    pub fn is_gpt2_byte_level(&self) -> bool {
        matches!(self, PreTokenizer::ByteLevel { add_prefix_space: false, use_regex: true })
    }
}

fn push(out: &mut Vec<Piece>, parent: &Piece, start: usize, text: String) {
    if !text.is_empty() {
        out.push(Piece { text, at_start: parent.at_start && start == 0 });
    }
}

/// GPT-2's stand-in spelling of `text`'s bytes (`" the"` becomes `"Ġthe"`).
pub(super) fn to_stand_ins(text: &str) -> String {
    text.bytes().map(|b| BYTE_TO_CHAR[b as usize]).collect()
}

/// Joins the spans of a split as `behavior` says and returns the pieces to
/// keep, as `(start, end)` byte ranges. Mirrors `tokenizers`'
/// `NormalizedString::split`.
fn merge_spans(spans: Vec<(usize, usize, bool)>, behavior: Behavior) -> Vec<(usize, usize)> {
    let mut kept: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    match behavior {
        Behavior::Isolated => kept.extend(spans.iter().map(|&(s, e, _)| (s, e))),
        Behavior::Removed => kept.extend(spans.iter().filter(|s| !s.2).map(|&(s, e, _)| (s, e))),
        Behavior::MergedWithPrevious => {
            let mut previous_match = false;
            for (s, e, is_match) in spans {
                match kept.last_mut() {
                    Some(last) if is_match && !previous_match => last.1 = e,
                    _ => kept.push((s, e)),
                }
                previous_match = is_match;
            }
        }
        Behavior::MergedWithNext => {
            let mut previous_match = false;
            for (s, e, is_match) in spans.into_iter().rev() {
                match kept.last_mut() {
                    Some(last) if is_match && !previous_match => last.0 = s,
                    _ => kept.push((s, e)),
                }
                previous_match = is_match;
            }
            kept.reverse();
        }
        Behavior::Contiguous => {
            let mut previous_match = false;
            for (s, e, is_match) in spans {
                match kept.last_mut() {
                    Some(last) if is_match == previous_match => last.1 = e,
                    _ => kept.push((s, e)),
                }
                previous_match = is_match;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(pre: &PreTokenizer, text: &str) -> Vec<String> {
        pre.apply(vec![Piece { text: text.into(), at_start: true }]).into_iter().map(|p| p.text).collect()
    }

    fn split(pattern: &str, behavior: Behavior, invert: bool) -> PreTokenizer {
        PreTokenizer::Split { pattern: fancy_regex::Regex::new(pattern).unwrap(), behavior, invert }
    }

    #[test]
    fn split_behaviors_follow_tokenizers() {
        // What `tokenizers`' Split gives for each behavior on this text.
        let text = "the-final--countdown";
        assert_eq!(texts(&split("-", Behavior::Removed, false), text), ["the", "final", "countdown"]);
        assert_eq!(texts(&split("-", Behavior::Isolated, false), text), ["the", "-", "final", "-", "-", "countdown"]);
        assert_eq!(texts(&split("-", Behavior::MergedWithPrevious, false), text), ["the-", "final-", "-", "countdown"]);
        assert_eq!(texts(&split("-", Behavior::MergedWithNext, false), text), ["the", "-final", "-", "-countdown"]);
        assert_eq!(texts(&split("-", Behavior::Contiguous, false), text), ["the", "-", "final", "--", "countdown"]);
        // Inverted, the words are the matches; each dash was found on its own.
        assert_eq!(texts(&split("-", Behavior::Removed, true), text), ["-", "-", "-"]);
    }

    #[test]
    fn metaspace_prepends_only_at_the_start_for_first() {
        let meta = PreTokenizer::Metaspace { replacement: '▁', prepend_scheme: PrependScheme::First, split: true };
        let pieces = meta.apply(vec![
            Piece { text: "Hi there".into(), at_start: true },
            Piece { text: "again".into(), at_start: false },
        ]);
        let got: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(got, ["▁Hi", "▁there", "again"]);
    }

    #[test]
    fn byte_level_spells_bytes_with_stand_ins() {
        let byte_level = PreTokenizer::ByteLevel { add_prefix_space: true, use_regex: true };
        assert_eq!(texts(&byte_level, "Hi  there"), ["ĠHi", "Ġ", "Ġthere"]);
        let no_regex = PreTokenizer::ByteLevel { add_prefix_space: false, use_regex: false };
        assert_eq!(texts(&no_regex, "a é"), ["aĠÃ©"]);
    }
}
