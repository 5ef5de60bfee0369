//! Special tokens such as `<|endoftext|>`, and the caller's choice about them.
//!
//! A special token is a control signal, not text: GPT-2 saw `<|endoftext|>`
//! (id 50256) between documents during training. Its spelling is ordinary
//! characters, though, so a tokenizer must be told what to do when the text
//! contains it. Treating it as special on untrusted input would let a user
//! inject control tokens, so — like tiktoken, which raises unless the token
//! is in `allowed_special` — the choice is explicit:
//!
//! - [`SpecialTokens::Allow`]: cut the text at each special token *before*
//!   pre-tokenizing, encode the pieces between, and emit the special's id;
//! - [`SpecialTokens::AsText`]: encode the characters like any others
//!   (`<|endoftext|>` becomes `[27, 91, 437, 1659, 5239, 91, 29]` in GPT-2);
//! - [`SpecialTokens::Reject`]: return an error if the text contains one.

use std::fmt;
use std::str::FromStr;

/// What `encode` does with special-token text found in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialTokens {
    /// Emit the special token's id (tiktoken's `allowed_special="all"`).
    Allow,
    /// Encode the characters as ordinary text (tiktoken's `encode_ordinary`).
    AsText,
    /// Fail with [`TokenizerError::DisallowedSpecial`](super::TokenizerError::DisallowedSpecial)
    /// (tiktoken's default).
    Reject,
}

impl SpecialTokens {
    /// The names accepted by `FromStr`, for command-line help.
    pub const NAMES: [&'static str; 3] = ["allow", "text", "reject"];
}

impl fmt::Display for SpecialTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpecialTokens::Allow => "allow",
            SpecialTokens::AsText => "text",
            SpecialTokens::Reject => "reject",
        })
    }
}

impl FromStr for SpecialTokens {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "allow" => Ok(SpecialTokens::Allow),
            "text" | "as-text" => Ok(SpecialTokens::AsText),
            "reject" | "error" => Ok(SpecialTokens::Reject),
            _ => Err(format!("unknown special-token policy {s:?}; expected one of allow, text, reject")),
        }
    }
}

/// The first special token in `text`: `(byte offset, index into specials)`.
/// At equal offsets the longest token wins, so `<|a|>` never shadows `<|a|>x`.
pub(crate) fn find_special(text: &str, specials: &[(String, u32)]) -> Option<(usize, usize)> {
    specials
        .iter()
        .enumerate()
        .filter(|(_, (token, _))| !token.is_empty())
        .filter_map(|(i, (token, _))| text.find(token.as_str()).map(|at| (at, std::cmp::Reverse(token.len()), i)))
        .min()
        .map(|(at, _, i)| (at, i))
}

/// A stretch of text between special tokens, or one special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    Text(&'a str),
    Special(u32),
}

/// Cuts `text` at every special token, in one pass over the text: each
/// token's next occurrence is remembered and searched again only once the
/// cut has moved past it.
pub(crate) fn split_specials<'a>(text: &'a str, specials: &'a [(String, u32)]) -> SpecialSplit<'a> {
    let next = specials.iter().map(|(token, _)| find_from(text, 0, token)).collect();
    SpecialSplit { text, specials, next, pos: 0, pending: None }
}

fn find_from(text: &str, from: usize, token: &str) -> Option<usize> {
    if token.is_empty() {
        return None;
    }
    text[from..].find(token).map(|at| from + at)
}

/// Iterator of [`Part`]s; see [`split_specials`].
pub(crate) struct SpecialSplit<'a> {
    text: &'a str,
    specials: &'a [(String, u32)],
    /// Where each special token next occurs at or after `pos`, if anywhere.
    next: Vec<Option<usize>>,
    pos: usize,
    /// A special token to yield right after the text before it.
    pending: Option<u32>,
}

impl<'a> Iterator for SpecialSplit<'a> {
    type Item = Part<'a>;

    fn next(&mut self) -> Option<Part<'a>> {
        if let Some(id) = self.pending.take() {
            return Some(Part::Special(id));
        }
        if self.pos > self.text.len() {
            return None;
        }
        let best = self
            .next
            .iter()
            .enumerate()
            .filter_map(|(i, at)| at.map(|at| (at, std::cmp::Reverse(self.specials[i].0.len()), i)))
            .min();
        let Some((at, _, i)) = best else {
            // No special token left: the rest is text (possibly empty).
            let rest = &self.text[self.pos..];
            self.pos = self.text.len() + 1;
            return Some(Part::Text(rest));
        };
        let (token, id) = &self.specials[i];
        let before = &self.text[self.pos..at];
        self.pos = at + token.len();
        for (j, slot) in self.next.iter_mut().enumerate() {
            if slot.is_some_and(|s| s < self.pos) {
                *slot = find_from(self.text, self.pos, &self.specials[j].0);
            }
        }
        self.pending = Some(*id);
        Some(Part::Text(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> Vec<(String, u32)> {
        vec![("<|endoftext|>".into(), 50256), ("<|pad|>".into(), 50257)]
    }

    #[test]
    fn finds_the_earliest_special() {
        let s = specials();
        assert_eq!(find_special("a <|pad|> b <|endoftext|>", &s), Some((2, 1)));
        assert_eq!(find_special("x<|endoftext|><|pad|>", &s), Some((1, 0)));
        assert_eq!(find_special("<|endoftext", &s), None);
    }

    #[test]
    fn longest_wins_at_the_same_offset() {
        let s = vec![("<|a|>".to_string(), 1), ("<|a|>x".to_string(), 2)];
        assert_eq!(find_special("..<|a|>x", &s), Some((2, 1)));
    }

    #[test]
    fn splits_at_every_special_token() {
        let s = specials();
        let parts: Vec<Part> = split_specials("a<|pad|>b<|endoftext|><|pad|>é", &s).collect();
        use Part::*;
        assert_eq!(parts, [Text("a"), Special(50257), Text("b"), Special(50256), Text(""), Special(50257), Text("é")]);
        assert_eq!(split_specials("plain", &s).collect::<Vec<_>>(), [Text("plain")]);
        assert_eq!(split_specials("", &s).collect::<Vec<_>>(), [Text("")]);
        // Multi-byte characters right after a token are never cut.
        let nested = [("<|a|>".to_string(), 1), ("<|a|>xyz".to_string(), 2)];
        let parts: Vec<Part> = split_specials("<|a|>日本", &nested).collect();
        assert_eq!(parts, [Text(""), Special(1), Text("日本")]);
    }

    #[test]
    fn parses_policy_names() {
        for name in SpecialTokens::NAMES {
            let policy: SpecialTokens = name.parse().unwrap();
            assert_eq!(policy.to_string(), name);
        }
        assert!("maybe".parse::<SpecialTokens>().unwrap_err().contains("allow, text, reject"));
    }
}
