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
    let mut best: Option<(usize, usize)> = None;
    for (i, (token, _)) in specials.iter().enumerate() {
        if token.is_empty() {
            continue;
        }
        // Search only up to the best offset found so far (plus the token).
        let limit = best.map_or(text.len(), |(at, _)| (at + token.len()).min(text.len()));
        if let Some(at) = text[..limit].find(token.as_str()) {
            let better = match best {
                None => true,
                Some((b_at, b_i)) => at < b_at || (at == b_at && token.len() > specials[b_i].0.len()),
            };
            if better {
                best = Some((at, i));
            }
        }
    }
    best
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
    fn parses_policy_names() {
        for name in SpecialTokens::NAMES {
            let policy: SpecialTokens = name.parse().unwrap();
            assert_eq!(policy.to_string(), name);
        }
        assert!("maybe".parse::<SpecialTokens>().unwrap_err().contains("allow, text, reject"));
    }
}
