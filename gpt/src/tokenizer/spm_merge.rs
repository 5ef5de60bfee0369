//! SentencePiece's BPE as llama.cpp runs it: joining pieces by their score,
//! not by a list of merge rules.
//!
//! A SentencePiece model (Llama 2, Mistral, TinyLlama) stores no merges.
//! Each piece of its vocabulary has a score instead (for a BPE model, minus
//! the step at which training learned it), and encoding one stretch of text,
//! spaces already spelled `▁`, goes:
//!
//! 1. start with one symbol per character;
//! 2. among all adjacent pairs whose concatenation is a piece, join the pair
//!    whose piece scores highest (the leftmost pair on a tie);
//! 3. repeat until no adjacent pair spells a piece.
//!
//! With the pieces `▁h` -1, `el` -2, `▁hel` -3, `lo` -4, `▁hello` -5:
//! `▁ h e l l o` → `▁h e l l o` → `▁h el l o` → `▁hel l o` → `▁hel lo` →
//! `▁hello`.
//!
//! Rank-ordered BPE ([`merge`](super::merge)) differs in two ways: any two
//! neighbours may join when together they spell a piece (not only the pairs
//! training joined), and a tie between two pairs spelling the same piece
//! goes to the leftmost. So this is its own loop, the one llama.cpp's
//! `llm_tokenizer_spm` runs: candidate pairs wait in a priority queue, and a
//! candidate whose symbols have since grown is stale and skipped.
//!
//! Every joined symbol spells a piece; a symbol that does not is a single
//! character no piece spells, which the caller writes as byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Range;

/// One symbol of the text: a byte range, linked to its neighbours.
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A pair that may be joined: symbols `left` and `right` (its next), whose
/// text, `len` bytes long, is a piece scoring `score`.
struct Candidate {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Ord for Candidate {
    /// The best candidate is the greatest: highest score, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// The symbols `text` ends up as, in order, as byte ranges of `text`.
/// `piece_score` gives a string's score when it is a piece of the
/// vocabulary, `None` otherwise.
pub(crate) fn merge_by_score(text: &str, piece_score: impl Fn(&str) -> Option<f32>) -> Vec<Range<usize>> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (i, (start, c)) in text.char_indices().enumerate() {
        let next = start + c.len_utf8();
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (next < text.len()).then_some(i + 1),
        });
    }
    let mut queue = BinaryHeap::new();
    let candidate = |symbols: &[Symbol], left: Option<usize>, right: Option<usize>| {
        let (left, right) = (left?, right?);
        let start = symbols[left].start;
        let len = symbols[left].len + symbols[right].len;
        piece_score(&text[start..start + len]).map(|score| Candidate { score, left, right, len })
    };
    for right in 1..symbols.len() {
        queue.extend(candidate(&symbols, Some(right - 1), Some(right)));
    }
    while let Some(best) = queue.pop() {
        let (left, right) = (&symbols[best.left], &symbols[best.right]);
        // A symbol only grows, by taking in its next one; so if both still
        // have the lengths the pair was found with, neither has changed.
        if left.len == 0 || right.len == 0 || left.len + right.len != best.len {
            continue;
        }
        let after = right.next;
        symbols[best.left].len = best.len;
        symbols[best.left].next = after;
        symbols[best.right].len = 0;
        if let Some(after) = after {
            symbols[after].prev = Some(best.left);
        }
        let before = symbols[best.left].prev;
        queue.extend(candidate(&symbols, before, Some(best.left)));
        queue.extend(candidate(&symbols, Some(best.left), after));
    }
    let mut out = Vec::new();
    let mut at = (!symbols.is_empty()).then_some(0);
    while let Some(i) = at {
        out.push(symbols[i].start..symbols[i].start + symbols[i].len);
        at = symbols[i].next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces<'a>(text: &'a str, vocab: &[(&str, f32)]) -> Vec<&'a str> {
        let score = |s: &str| vocab.iter().find(|(p, _)| *p == s).map(|&(_, score)| score);
        merge_by_score(text, score).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn joins_the_best_scoring_piece_first() {
        let vocab = [("▁h", -1.0), ("el", -2.0), ("▁hel", -3.0), ("lo", -4.0), ("▁hello", -5.0)];
        assert_eq!(pieces("▁hello", &vocab), ["▁hello"]);
        // Without `▁hello` the last two pieces stay apart.
        assert_eq!(pieces("▁hello", &vocab[..4]), ["▁hel", "lo"]);
        // A character no piece spells stays a symbol of its own.
        assert_eq!(pieces("▁h😀el", &vocab), ["▁h", "😀", "el"]);
        assert_eq!(pieces("", &vocab), Vec::<&str>::new());
    }

    #[test]
    fn ties_go_to_the_leftmost_pair() {
        assert_eq!(pieces("abc", &[("ab", -1.0), ("bc", -1.0)]), ["ab", "c"]);
        assert_eq!(pieces("abc", &[("ab", -1.5), ("bc", -1.0)]), ["a", "bc"]);
        // A joined symbol joins on with any neighbour that spells a piece.
        assert_eq!(pieces("abc", &[("ab", -1.5), ("bc", -1.0), ("abc", -9.0)]), ["abc"]);
    }
}
