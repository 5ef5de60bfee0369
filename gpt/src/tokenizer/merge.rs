//! Applying BPE merges to one word.
//!
//! A trained BPE vocabulary is an ordered list of merges: rule 0 says "join
//! these two tokens wherever they stand side by side", rule 1 the next, and so
//! on. To encode a word we start from its bytes (one token each) and repeat:
//!
//! 1. look at every adjacent pair and find the one whose merge has the lowest
//!    rank (learned earliest);
//! 2. replace each occurrence of that pair, scanning left to right so that
//!    overlapping occurrences resolve the same way every time (`a a a` with
//!    the rule `a a` becomes `aa a`);
//! 3. stop when no adjacent pair has a rule.
//!
//! Example with the rules `[h e, l l, he ll, hell o]`: `h e l l o` →
//! `he l l o` → `he ll o` → `hell o` → `hello`.
//!
//! The ranks of the pairs are kept in a second array beside the symbols and
//! only the pairs that touch a fresh merge are looked up again, so a pass
//! costs one scan, not one hash lookup per pair. That keeps very long words
//! (a 10,000-character run has no spaces to cut it) fast.

use rustc_hash::FxHashMap;

/// What a merge rule does: its priority and the token it produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Merge {
    /// Position in the merge list; lower merges first.
    pub rank: u32,
    /// The token id of the joined pair.
    pub id: u32,
}

/// The merge rules, looked up by pair.
#[derive(Clone, Debug, Default)]
pub(crate) struct MergeTable {
    rules: FxHashMap<u64, Merge>,
}

/// The two ids of a pair packed into one hash key.
#[inline]
fn key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

impl MergeTable {
    /// Builds the table from `(left, right, result)` triples in rank order.
    /// A pair listed twice keeps its first (highest-priority) rule.
    pub fn new(merges: &[(u32, u32, u32)]) -> Self {
        let mut rules = FxHashMap::with_capacity_and_hasher(merges.len(), Default::default());
        for (rank, &(a, b, id)) in merges.iter().enumerate() {
            rules.entry(key(a, b)).or_insert(Merge { rank: rank as u32, id });
        }
        MergeTable { rules }
    }

    #[inline]
    pub fn get(&self, a: u32, b: u32) -> Option<Merge> {
        self.rules.get(&key(a, b)).copied()
    }

    #[inline]
    fn rank(&self, a: u32, b: u32) -> u32 {
        self.get(a, b).map_or(NO_RULE, |m| m.rank)
    }
}

/// Rank of a pair with no rule; larger than any real rank.
const NO_RULE: u32 = u32::MAX;

/// Merges `symbols` (token ids, initially one per byte) in place until no
/// rule applies.
pub(crate) fn apply_merges(symbols: &mut Vec<u32>, table: &MergeTable) {
    if symbols.len() < 2 {
        return;
    }
    // ranks[i] is the rank of the pair (symbols[i], symbols[i + 1]).
    let mut ranks: Vec<u32> = symbols.windows(2).map(|w| table.rank(w[0], w[1])).collect();
    while let Some((first, &best)) = ranks.iter().enumerate().min_by_key(|&(_, &rank)| rank) {
        if best == NO_RULE {
            break;
        }
        // Ranks are unique per pair, so `ranks[i] == best` finds every
        // occurrence of the winning pair.
        let new_id = table.get(symbols[first], symbols[first + 1]).expect("a ranked pair has a rule").id;

        // Compact in place: `read` walks the old symbols, `write` the new.
        let n = symbols.len();
        let (mut read, mut write) = (0, 0);
        // Where the previously written symbol was copied from, if it was
        // copied unchanged (not produced by this pass).
        let mut prev_source: Option<usize> = None;
        while read < n {
            let source = if read + 1 < n && ranks[read] == best {
                symbols[write] = new_id;
                read += 2;
                None
            } else {
                symbols[write] = symbols[read];
                read += 1;
                Some(read - 1)
            };
            if write > 0 {
                // Two neighbours that were neighbours before keep their rank;
                // any pair touching the new token needs a lookup.
                ranks[write - 1] = match (prev_source, source) {
                    (Some(p), Some(s)) if s == p + 1 => ranks[p],
                    _ => table.rank(symbols[write - 1], symbols[write]),
                };
            }
            prev_source = source;
            write += 1;
        }
        symbols.truncate(write);
        ranks.truncate(write - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// GPT-2's reference loop, written the obvious way: find the best pair,
    /// rebuild the word, repeat.
    fn reference(mut word: Vec<u32>, table: &MergeTable) -> Vec<u32> {
        loop {
            let best = word
                .windows(2)
                .filter_map(|w| table.get(w[0], w[1]).map(|m| (m, w[0], w[1])))
                .min_by_key(|(m, _, _)| m.rank);
            let Some((merge, a, b)) = best else { return word };
            let mut next = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == a && word[i + 1] == b {
                    next.push(merge.id);
                    i += 2;
                } else {
                    next.push(word[i]);
                    i += 1;
                }
            }
            word = next;
        }
    }

    #[test]
    fn hello_merges_in_rank_order() {
        // ids: h=0 e=1 l=2 o=3, he=4 ll=5 hell=6 hello=7
        let table = MergeTable::new(&[(0, 1, 4), (2, 2, 5), (4, 5, 6), (6, 3, 7)]);
        let mut word = vec![0, 1, 2, 2, 3];
        apply_merges(&mut word, &table);
        assert_eq!(word, [7]);
    }

    #[test]
    fn overlapping_pairs_resolve_left_to_right() {
        let table = MergeTable::new(&[(0, 0, 1)]);
        let mut word = vec![0, 0, 0];
        apply_merges(&mut word, &table);
        assert_eq!(word, [1, 0]);
        let mut word = vec![0; 5];
        apply_merges(&mut word, &table);
        assert_eq!(word, [1, 1, 0]);
    }

    #[test]
    fn lower_rank_wins_even_when_it_stands_later() {
        // "a b c": rule 0 is "b c", rule 1 "a b"; "b c" must go first.
        let table = MergeTable::new(&[(1, 2, 10), (0, 1, 11)]);
        let mut word = vec![0, 1, 2];
        apply_merges(&mut word, &table);
        assert_eq!(word, [0, 10]);
    }

    proptest! {
        #[test]
        fn matches_the_reference_loop(
            word in prop::collection::vec(0u32..4, 0..40),
            rules in prop::collection::vec((0u32..12, 0u32..12), 0..30),
        ) {
            // Rule r produces id 100 + r; later rules may use earlier results.
            let merges: Vec<(u32, u32, u32)> = rules
                .iter()
                .enumerate()
                .map(|(r, &(a, b))| {
                    let lift = |x: u32| if x < 4 || r == 0 { x % 4 } else { 100 + (x % r as u32) };
                    (lift(a), lift(b), 100 + r as u32)
                })
                .collect();
            let table = MergeTable::new(&merges);
            let mut fast = word.clone();
            apply_merges(&mut fast, &table);
            prop_assert_eq!(fast, reference(word, &table));
        }
    }
}
