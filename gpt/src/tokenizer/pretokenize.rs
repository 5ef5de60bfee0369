//! GPT-2's pre-tokenizer: cutting text into words before BPE runs.
//!
//! BPE never merges across the pieces made here, so this step decides what a
//! token can be: `" dog"` may become one token, `"dog."` never will. GPT-2
//! cuts with this regular expression, trying the alternatives left to right
//! at each position:
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! 1. an English contraction (`'s`, `'ll`, ... lower case only, so `DON'T`
//!    splits as `DON`, `'`, `T`);
//! 2. an optional single space, then a run of letters, or of digits, or of
//!    anything else that is not whitespace (punctuation, symbols, emoji);
//! 3. a run of whitespace — but if non-whitespace follows, the run gives up
//!    its last character (`(?!\S)`), so the final space can start the next
//!    word: `"a   b"` cuts as `"a"`, `"  "`, `" b"`.
//!
//! The `regex` crate cannot run the look-ahead in rule 3, so this file
//! implements the pattern by hand as a small scanner over character classes
//! (letter, number, whitespace, other). It is faster than a backtracking
//! engine, and it takes its Unicode tables from `regex-syntax` — the very
//! tables behind `\p{L}`, `\p{N}` and `\s` in the regex engines — so its cuts
//! are identical to the pattern's; the tests check that against
//! `fancy-regex` running the pattern itself.

use std::sync::OnceLock;

/// Which part of the pattern a character belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CharClass {
    /// `\p{L}`: any letter, in any script.
    Letter,
    /// `\p{N}`: digits and other numerals (`½`, `Ⅻ`, `٣`).
    Number,
    /// `\s`: Unicode white space (space, tab, newline, NBSP, ...).
    Space,
    /// Everything else: punctuation, symbols, emoji, marks, controls.
    Other,
}

/// The class of a character, as the regex engines see it.
#[inline]
pub fn class_of(c: char) -> CharClass {
    let code = c as u32;
    if code < 128 {
        return ascii_class(code as u8);
    }
    let tables = tables();
    if code < 0x1_0000 {
        return tables.bmp[code as usize];
    }
    // Outside the Basic Multilingual Plane: binary search the sorted ranges.
    let i = tables.astral.partition_point(|&(_, end, _)| end < code);
    match tables.astral.get(i) {
        Some(&(start, _, class)) if start <= code => class,
        _ => CharClass::Other,
    }
}

#[inline]
fn ascii_class(b: u8) -> CharClass {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => CharClass::Letter,
        b'0'..=b'9' => CharClass::Number,
        // ASCII's \s: tab, newline, vertical tab, form feed, carriage return, space.
        b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ' => CharClass::Space,
        _ => CharClass::Other,
    }
}

struct Tables {
    /// Direct lookup for U+0000..U+FFFF, where nearly all text lives.
    bmp: Vec<CharClass>,
    /// Sorted, disjoint `(first, last, class)` ranges above U+FFFF.
    astral: Vec<(u32, u32, CharClass)>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

/// The code point ranges of a Unicode class, read from `regex-syntax`.
fn ranges_of(class: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::parse(class).expect("a valid Unicode class");
    match hir.kind() {
        HirKind::Class(Class::Unicode(set)) => {
            set.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        other => unreachable!("{class} parsed as {other:?}"),
    }
}

fn build_tables() -> Tables {
    // L, N and White_Space are disjoint, so the order of filling is free.
    let mut bmp = vec![CharClass::Other; 0x1_0000];
    let mut astral = Vec::new();
    for (pattern, class) in [(r"\p{L}", CharClass::Letter), (r"\p{N}", CharClass::Number), (r"\s", CharClass::Space)] {
        for (start, end) in ranges_of(pattern) {
            for code in start..=end.min(0xFFFF) {
                bmp[code as usize] = class;
            }
            if end > 0xFFFF {
                astral.push((start.max(0x1_0000), end, class));
            }
        }
    }
    astral.sort_unstable_by_key(|&(start, _, _)| start);
    Tables { bmp, astral }
}

/// Cuts `text` into GPT-2 pre-tokens; concatenated, the pieces are `text`.
pub fn pretokenize(text: &str) -> Pieces<'_> {
    Pieces { text, pos: 0 }
}

/// Iterator over the pieces of a text, in order. See [`pretokenize`].
#[derive(Clone, Debug)]
pub struct Pieces<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.pos..];
        let len = piece_len(rest)?;
        self.pos += len;
        Some(&rest[..len])
    }
}

/// Byte length of the piece at the start of `rest`; `None` when `rest` is empty.
fn piece_len(rest: &str) -> Option<usize> {
    let mut chars = rest.chars();
    let first = chars.next()?;

    // Rule 1: contractions, tried before anything else at this position.
    if first == '\'' {
        let after = &rest.as_bytes()[1..];
        if after.starts_with(b"re") || after.starts_with(b"ve") || after.starts_with(b"ll") {
            return Some(3);
        }
        if matches!(after.first(), Some(b's' | b't' | b'm' | b'd')) {
            return Some(2);
        }
    }

    // Rule 2: ` ?X+` — a space may lead a run of one non-space class.
    let (lead, class) = match class_of(first) {
        CharClass::Space if first == ' ' => match chars.next().map(class_of) {
            Some(next) if next != CharClass::Space => (1, next),
            _ => return Some(whitespace_len(rest)),
        },
        CharClass::Space => return Some(whitespace_len(rest)),
        class => (0, class),
    };
    Some(lead + run_len(&rest[lead..], class))
}

/// Byte length of the run of `class` characters at the start of `text`.
#[inline]
fn run_len(text: &str, class: CharClass) -> usize {
    text.char_indices().find(|&(_, c)| class_of(c) != class).map_or(text.len(), |(i, _)| i)
}

/// Rule 3: `\s+(?!\S)|\s+` for the whitespace run at the start of `text`.
fn whitespace_len(text: &str) -> usize {
    let mut last_start = 0;
    for (i, c) in text.char_indices() {
        if class_of(c) != CharClass::Space {
            // Non-whitespace follows: leave the run's last character to lead
            // the next piece, unless it is the run's only character.
            return if last_start == 0 { i } else { last_start };
        }
        last_start = i;
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<&str> {
        pretokenize(text).collect()
    }

    #[test]
    fn matches_the_documented_example() {
        assert_eq!(
            cut("Hello world's  123 naïve   end\n\n"),
            ["Hello", " world", "'s", " ", " 123", " naïve", "  ", " end", "\n\n"]
        );
    }

    #[test]
    fn contractions_are_lower_case_only() {
        assert_eq!(cut("DON'T we'll"), ["DON", "'", "T", " we", "'ll"]);
        assert_eq!(cut("it's 'tis"), ["it", "'s", " '", "tis"]);
    }

    #[test]
    fn whitespace_gives_its_last_char_to_the_next_word() {
        assert_eq!(cut("a   b"), ["a", "  ", " b"]);
        assert_eq!(cut("a\tb"), ["a", "\t", "b"]);
        assert_eq!(cut("a \t b"), ["a", " \t", " b"]);
        assert_eq!(cut("x\r\n\r\ny"), ["x", "\r\n\r", "\n", "y"]);
        assert_eq!(cut("end  "), ["end", "  "]);
        assert_eq!(cut(" "), [" "]);
    }

    #[test]
    fn runs_keep_to_one_class() {
        assert_eq!(cut("abc123!!?"), ["abc", "123", "!!?"]);
        assert_eq!(cut(" 2024 ..."), [" 2024", " ..."]);
        assert_eq!(cut("日本語 テキスト"), ["日本語", " テキスト"]);
    }

    #[test]
    fn classes_come_from_unicode_tables() {
        assert_eq!(class_of('é'), CharClass::Letter);
        assert_eq!(class_of('½'), CharClass::Number);
        assert_eq!(class_of('\u{00A0}'), CharClass::Space);
        assert_eq!(class_of('\u{0301}'), CharClass::Other); // combining mark: Mn, not L
        assert_eq!(class_of('😀'), CharClass::Other);
        assert_eq!(class_of('𝔸'), CharClass::Letter); // U+1D538, above the BMP
        assert_eq!(class_of('𝟙'), CharClass::Number);
    }

    #[test]
    fn pieces_concatenate_to_the_input() {
        let text = "  Hi!\n\n  It's 3:45pm — «ça va?» 👍🏽  \t";
        assert_eq!(cut(text).concat(), text);
        assert!(cut(text).iter().all(|p| !p.is_empty()));
    }
}
