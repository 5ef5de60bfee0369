//! Added tokens: strings matched in the text before the model sees it.
//!
//! `added_tokens` lists tokens that are found by plain string search, not by
//! BPE: special tokens (`<|endoftext|>`, `<s>`, `<|im_start|>`) and extra
//! words a model was given after training. Matching runs twice, as in
//! `tokenizers`:
//!
//! 1. tokens with `normalized: false` are searched in the raw text;
//! 2. each stretch between them is normalized, and tokens with
//!    `normalized: true` are searched there, spelled as the normalizer would
//!    spell them.
//!
//! At each position the longest token wins (leftmost-longest). Options:
//! `single_word` matches only when no word character (`\w`) touches either
//! end; `lstrip` / `rstrip` swallow the whitespace on that side into the
//! token. A `special` token is left out of decoding with
//! `skip_special_tokens`, and can be refused or read as text on request
//! ([`SpecialTokens`](crate::tokenizer::SpecialTokens)).

use std::sync::OnceLock;

use super::schema::Node;

#[derive(Clone, Debug)]
pub(super) struct AddedToken {
    pub id: u32,
    pub content: String,
    pub special: bool,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
}

impl AddedToken {
    pub fn parse(node: Node) -> Result<AddedToken, String> {
        let id = node.required("id")?;
        let id = id.as_u64().filter(|&i| i <= u32::MAX as u64).ok_or_else(|| node.fail("id", "not a token id"))?;
        let content = node.str("content")?.to_string();
        if content.is_empty() {
            return Err(node.fail("content", "an added token cannot be empty"));
        }
        Ok(AddedToken {
            id: id as u32,
            content,
            special: node.bool_or("special", false)?,
            single_word: node.bool_or("single_word", false)?,
            lstrip: node.bool_or("lstrip", false)?,
            rstrip: node.bool_or("rstrip", false)?,
            normalized: node.bool_or("normalized", true)?,
        })
    }
}

/// A stretch of text, or an added token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found<'a> {
    /// Text and its byte offset in the string searched.
    Text(&'a str, usize),
    /// An added token's id and the byte offset of its match.
    Token(u32, usize),
}

/// A set of added tokens searched together: the raw-text set or the
/// normalized one.
#[derive(Clone, Debug, Default)]
pub(super) struct MatchSet {
    /// `(pattern, index into the token list)`, longest pattern first so the
    /// first hit at a position is the leftmost-longest match.
    patterns: Vec<(String, usize)>,
    /// Whether any pattern starts with this byte: most positions are
    /// rejected with one table read.
    first_bytes: Vec<bool>,
}

impl MatchSet {
    pub fn new(patterns: Vec<(String, usize)>) -> MatchSet {
        let mut patterns: Vec<(String, usize)> = patterns.into_iter().filter(|(p, _)| !p.is_empty()).collect();
        patterns.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let mut first_bytes = vec![false; 256];
        for (p, _) in &patterns {
            first_bytes[p.as_bytes()[0] as usize] = true;
        }
        MatchSet { patterns, first_bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The leftmost-longest match at or after `from`: `(start, end, token index)`.
    fn next_match(&self, text: &str, from: usize, skip: &dyn Fn(usize) -> bool) -> Option<(usize, usize, usize)> {
        let bytes = text.as_bytes();
        (from..bytes.len()).filter(|&at| self.first_bytes[bytes[at] as usize]).find_map(|at| {
            self.patterns
                .iter()
                .find(|(p, i)| !skip(*i) && bytes[at..].starts_with(p.as_bytes()))
                .map(|(p, i)| (at, at + p.len(), *i))
        })
    }

    /// Cuts `text` at the tokens of this set (`tokenizers`' `find_matches`).
    /// `skip(i)` leaves token `i` unmatched (special tokens read as text).
    pub fn split<'a>(&self, text: &'a str, tokens: &[AddedToken], skip: &dyn Fn(usize) -> bool) -> Vec<Found<'a>> {
        let mut out = Vec::new();
        if self.is_empty() {
            out.push(Found::Text(text, 0));
            return out;
        }
        let mut done = 0; // everything before `done` is in `out`
        let mut search = 0; // where the next search starts (end of the last raw match)
        while let Some((mut start, mut stop, index)) = self.next_match(text, search, skip) {
            search = stop;
            let token = &tokens[index];
            if token.single_word {
                let start_free = start == 0 || !ends_with_word(&text[..start]);
                let stop_free = stop == text.len() || !starts_with_word(&text[stop..]);
                if !start_free || !stop_free {
                    continue;
                }
            }
            if token.lstrip {
                let trimmed = text[..start].trim_end_matches(is_space).len();
                start = trimmed.max(done);
            }
            if token.rstrip {
                stop += text[stop..].len() - text[stop..].trim_start_matches(is_space).len();
            }
            if done < start {
                out.push(Found::Text(&text[done..start], done));
            }
            out.push(Found::Token(token.id, start));
            done = stop;
        }
        if done < text.len() || out.is_empty() {
            out.push(Found::Text(&text[done..], done));
        }
        out
    }
}

/// `\s` as the `regex` crate reads it (Unicode White_Space).
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn word_regexes() -> &'static (fancy_regex::Regex, fancy_regex::Regex) {
    static WORD: OnceLock<(fancy_regex::Regex, fancy_regex::Regex)> = OnceLock::new();
    WORD.get_or_init(|| {
        (fancy_regex::Regex::new(r"^\w").expect("valid"), fancy_regex::Regex::new(r"\w$").expect("valid"))
    })
}

fn starts_with_word(text: &str) -> bool {
    word_regexes().0.is_match(text).unwrap_or(false)
}

fn ends_with_word(text: &str) -> bool {
    word_regexes().1.is_match(text).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: u32, content: &str) -> AddedToken {
        AddedToken {
            id,
            content: content.into(),
            special: true,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
        }
    }

    fn set(tokens: &[AddedToken]) -> MatchSet {
        MatchSet::new(tokens.iter().enumerate().map(|(i, t)| (t.content.clone(), i)).collect())
    }

    #[test]
    fn longest_match_wins_and_options_apply() {
        // The example of `tokenizers`' own test: lstrip + rstrip take both
        // spaces, single_word refuses "ony" inside "Anthony".
        let mut my = token(0, "my");
        (my.lstrip, my.rstrip) = (true, true);
        let mut ony = token(2, "ony");
        ony.single_word = true;
        let tokens = [my, token(1, "name"), ony, token(3, "[CLS]"), token(4, "[CLS]x")];
        let found = set(&tokens).split("[CLS]x my name is Anthony", &tokens, &|_| false);
        use Found::*;
        assert_eq!(found, [Token(4, 0), Token(0, 6), Token(1, 10), Text(" is Anthony", 14)]);
        let as_text = set(&tokens).split("[CLS]", &tokens, &|i| i >= 3);
        assert_eq!(as_text, [Text("[CLS]", 0)]);
    }
}
