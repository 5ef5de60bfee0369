//! Learning BPE merges from a corpus.
//!
//! Training starts from the 256 byte tokens, so any input stays encodable,
//! and repeats one step until the vocabulary is full: find the pair of
//! adjacent tokens that occurs most often in the corpus, and add their join as
//! a new token (a merge rule). The words come from GPT-2's pre-tokenizer, so
//! merges never cross a word boundary, exactly as when encoding.
//!
//! The corpus is reduced to its distinct words with their counts: `" the"`
//! seen 20,000 times is stored once with weight 20,000. Recounting every pair
//! after each merge would cost the whole corpus per merge; instead we keep
//!
//! - `counts`: pair → total occurrences (weighted by word count);
//! - `where_`: pair → the words it occurs in;
//! - a max-heap of `(count, pair)` with *lazy invalidation*.
//!
//! A merge of `(a, b)` only changes the words in `where_[(a, b)]`: in each,
//! the pairs around every `a b` lose their counts and the pairs with the new
//! token gain theirs. Old pairs only ever lose counts, so a heap entry may
//! be too high but never too low; when one is popped we compare it with
//! `counts` and push it back with the true count if it went stale. The top
//! entry that survives that check is the true maximum. Ties go to the
//! smallest pair of ids, which makes training deterministic.
//!
//! Ids: bytes are 0..=255 (id = byte value), merge `i` makes id 256 + i, and
//! `<|endoftext|>` comes last. `vocab_size` counts all three kinds; if the
//! corpus runs out of pairs first, the vocabulary is smaller.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::bpe::{BpeTokenizer, ENDOFTEXT};
use super::pretokenize::pretokenize;
use super::special::{split_specials, Part};
use super::TokenizerError;

/// A pair of token ids packed into one key; ordering keys orders pairs.
type Pair = u64;

fn pair(a: u32, b: u32) -> Pair {
    ((a as u64) << 32) | b as u64
}

fn unpair(p: Pair) -> (u32, u32) {
    ((p >> 32) as u32, p as u32)
}

/// Learns a byte-level BPE vocabulary of `vocab_size` tokens (256 bytes +
/// merges + `<|endoftext|>`) from `text`. Occurrences of `<|endoftext|>` in
/// the text separate documents and are not learned from.
pub fn train_bpe(text: &str, vocab_size: usize) -> Result<BpeTokenizer, TokenizerError> {
    train_bpe_with_progress(text, vocab_size, |_, _| {})
}

/// The largest vocabulary BPE training makes (GPT-4's has about 100,000).
pub const MAX_VOCAB: usize = 1 << 20;

/// [`train_bpe`], calling `progress(merges_done, merges_wanted)` after each
/// merge (for a progress bar).
pub fn train_bpe_with_progress(
    text: &str,
    vocab_size: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<BpeTokenizer, TokenizerError> {
    let minimum = 256 + 1;
    if vocab_size < minimum {
        return Err(TokenizerError::VocabTooSmall { requested: vocab_size, minimum });
    }
    if vocab_size > MAX_VOCAB {
        return Err(TokenizerError::VocabTooLarge { requested: vocab_size, limit: MAX_VOCAB });
    }
    if text.is_empty() {
        return Err(TokenizerError::EmptyTrainingText);
    }
    let wanted = vocab_size - minimum;

    let mut words = Words::count(text);
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    // Not sized by `wanted`: a text runs out of pairs long before a large
    // request is met, and the request is the user's number.
    let mut merges = Vec::new();
    let mut heap: BinaryHeap<(i64, Reverse<Pair>)> = words.counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

    while merges.len() < wanted {
        let Some((count, Reverse(best))) = heap.pop() else { break };
        let current = words.counts.get(&best).copied().unwrap_or(0);
        if current != count {
            if current > 0 {
                heap.push((current, Reverse(best)));
            }
            continue;
        }
        let (a, b) = unpair(best);
        let new_id = tokens.len() as u32;
        tokens.push([&tokens[a as usize][..], &tokens[b as usize][..]].concat());
        merges.push((a, b, new_id));
        for (p, c) in words.merge(a, b, new_id) {
            heap.push((c, Reverse(p)));
        }
        progress(merges.len(), wanted);
    }

    let specials = vec![(ENDOFTEXT.to_string(), tokens.len() as u32)];
    tokens.push(ENDOFTEXT.as_bytes().to_vec());
    Ok(BpeTokenizer::from_parts(tokens, merges, specials).expect("training builds consistent parts"))
}

/// The corpus as distinct words, with the pair statistics over them.
struct Words {
    /// Each distinct word as its current token ids.
    symbols: Vec<Vec<u32>>,
    /// How often each word occurs in the corpus.
    weight: Vec<i64>,
    /// pair → weighted number of occurrences.
    counts: FxHashMap<Pair, i64>,
    /// pair → indices of the words it occurs in (may list stale words).
    where_: FxHashMap<Pair, Vec<u32>>,
}

impl Words {
    fn count(text: &str) -> Words {
        let mut freq: FxHashMap<&str, i64> = FxHashMap::default();
        let specials = [(ENDOFTEXT.to_string(), 0)];
        for part in split_specials(text, &specials) {
            if let Part::Text(segment) = part {
                for word in pretokenize(segment) {
                    *freq.entry(word).or_default() += 1;
                }
            }
        }
        // Sorted, so that word indices (and everything after) are reproducible.
        let mut distinct: Vec<(&str, i64)> = freq.into_iter().collect();
        distinct.sort_unstable();

        let mut words = Words {
            symbols: Vec::with_capacity(distinct.len()),
            weight: Vec::with_capacity(distinct.len()),
            counts: FxHashMap::default(),
            where_: FxHashMap::default(),
        };
        for (w, (word, n)) in distinct.into_iter().enumerate() {
            let ids: Vec<u32> = word.bytes().map(u32::from).collect();
            for pair_ids in ids.windows(2) {
                let p = pair(pair_ids[0], pair_ids[1]);
                *words.counts.entry(p).or_default() += n;
                note_word(words.where_.entry(p).or_default(), w as u32);
            }
            words.symbols.push(ids);
            words.weight.push(n);
        }
        words
    }

    /// Joins every `a b` into `new_id` and updates the statistics; returns
    /// the pairs that contain the new token, with their counts.
    fn merge(&mut self, a: u32, b: u32, new_id: u32) -> Vec<(Pair, i64)> {
        let merged = pair(a, b);
        let affected = self.where_.remove(&merged).unwrap_or_default();
        let mut created: FxHashMap<Pair, i64> = FxHashMap::default();
        for w in affected {
            let ids = &mut self.symbols[w as usize];
            if !ids.windows(2).any(|p| p[0] == a && p[1] == b) {
                continue; // a stale entry: an earlier merge already took the pair
            }
            let n = self.weight[w as usize];
            // Take the word's pairs out of the counts, merge, put them back.
            for p in ids.windows(2) {
                *self.counts.get_mut(&pair(p[0], p[1])).expect("counted pair") -= n;
            }
            let mut out = Vec::with_capacity(ids.len());
            let mut i = 0;
            while i < ids.len() {
                if i + 1 < ids.len() && ids[i] == a && ids[i + 1] == b {
                    out.push(new_id);
                    i += 2;
                } else {
                    out.push(ids[i]);
                    i += 1;
                }
            }
            *ids = out;
            for p in ids.windows(2) {
                let key = pair(p[0], p[1]);
                *self.counts.entry(key).or_default() += n;
                if p[0] == new_id || p[1] == new_id {
                    *created.entry(key).or_default() += n;
                    note_word(self.where_.entry(key).or_default(), w);
                }
            }
        }
        self.counts.remove(&merged);
        created.into_keys().map(|p| (p, self.counts[&p])).collect()
    }
}

/// Adds word `w` to a pair's word list unless it was the last one added.
fn note_word(list: &mut Vec<u32>, w: u32) {
    if list.last() != Some(&w) {
        list.push(w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::SpecialTokens;

    #[test]
    fn learns_the_most_frequent_pair_first() {
        // " low" x3, " lower" x2, " newest" x2 ...: the classic example.
        let text = "low low low lower lower newest newest widest";
        let tok = train_bpe(text, 256 + 1 + 3).unwrap();
        let spelled: Vec<String> = tok
            .merges()
            .iter()
            .map(|&(_, _, id)| String::from_utf8(tok.token_bytes(id).unwrap().to_vec()).unwrap())
            .collect();
        // "lo" and "ow" both occur 5 times: the tie goes to the smaller ids.
        assert_eq!(spelled, ["lo", "low", " low"]);
        assert_eq!(tok.vocab_size(), 260);
        assert_eq!(tok.eot_id(), Some(259));
        assert_eq!(tok.encode_ordinary("low low"), [257, 258]);
    }

    #[test]
    fn counts_match_a_full_recount_after_every_merge() {
        let text = "aaaa abab abababa baab the then there their theirs aaa aa a";
        let mut words = Words::count(text);
        for next in 256..268 {
            let Some((&best, _)) = words.counts.iter().filter(|(_, &c)| c > 0).max_by_key(|(&p, &c)| (c, Reverse(p)))
            else {
                break;
            };
            let (a, b) = unpair(best);
            words.merge(a, b, next);
            let mut recount: FxHashMap<Pair, i64> = FxHashMap::default();
            for (ids, &n) in words.symbols.iter().zip(&words.weight) {
                for p in ids.windows(2) {
                    *recount.entry(pair(p[0], p[1])).or_default() += n;
                }
            }
            let live: FxHashMap<Pair, i64> =
                words.counts.iter().filter(|(_, &c)| c != 0).map(|(&p, &c)| (p, c)).collect();
            assert_eq!(live, recount);
        }
    }

    /// Training the slow, obvious way: recount every pair before each merge.
    fn naive_merges(text: &str, merges: usize) -> Vec<(u32, u32, u32)> {
        let counted = Words::count(text);
        let mut words: Vec<(Vec<u32>, i64)> = counted.symbols.into_iter().zip(counted.weight).collect();
        let mut out = Vec::new();
        for new_id in 256..256 + merges as u32 {
            let mut counts: FxHashMap<Pair, i64> = FxHashMap::default();
            for (ids, n) in &words {
                for p in ids.windows(2) {
                    *counts.entry(pair(p[0], p[1])).or_default() += n;
                }
            }
            let Some((&best, _)) = counts.iter().max_by_key(|(&p, &c)| (c, Reverse(p))) else { break };
            let (a, b) = unpair(best);
            for (ids, _) in &mut words {
                let mut next = Vec::new();
                let mut i = 0;
                while i < ids.len() {
                    if i + 1 < ids.len() && ids[i] == a && ids[i + 1] == b {
                        next.push(new_id);
                        i += 2;
                    } else {
                        next.push(ids[i]);
                        i += 1;
                    }
                }
                *ids = next;
            }
            out.push((a, b, new_id));
        }
        out
    }

    #[test]
    fn incremental_training_equals_full_recounts() {
        let text = crate::data::generate_stories(5, 30_000) + " aaaa aaaaa abababab 1111 2222222 \n\n\n  x";
        let tok = train_bpe(&text, 257 + 300).unwrap();
        assert_eq!(tok.merges(), naive_merges(&text, 300));
    }

    #[test]
    fn trained_tokenizer_compresses_and_round_trips() {
        let text = "the cat sat on the mat. the cat ate the rat. ".repeat(20);
        let tok = train_bpe(&text, 300).unwrap();
        // Eight distinct words: the pairs run out before 300, each word whole.
        assert!(tok.vocab_size() < 300);
        for word in [" cat", " mat", " rat", " ate", "the", " the"] {
            assert_eq!(tok.encode_ordinary(word).len(), 1, "{word:?}");
        }
        let ids = tok.encode(&text, SpecialTokens::Allow).unwrap();
        assert_eq!(ids.len(), pretokenize(&text).count()); // one token per word
        assert_eq!(tok.decode(&ids).unwrap(), text);
        // bytes never seen in training still encode
        let odd = "Zebra 🦓 ñ";
        assert_eq!(tok.decode(&tok.encode_ordinary(odd)).unwrap(), odd);
    }

    #[test]
    fn stops_early_when_pairs_run_out_and_skips_specials() {
        let tok = train_bpe("ab<|endoftext|>ab", 1000).unwrap();
        // only "ab" can be learned; "<|" etc. are never seen as text
        assert_eq!(tok.merges().len(), 1);
        assert_eq!(tok.vocab_size(), 258);
        assert_eq!(tok.encode("ab<|endoftext|>", SpecialTokens::Allow).unwrap(), [256, 257]);
    }

    #[test]
    fn rejects_impossible_requests() {
        assert!(matches!(train_bpe("abc", 100), Err(TokenizerError::VocabTooSmall { requested: 100, minimum: 257 })));
        assert!(matches!(train_bpe("abc", usize::MAX), Err(TokenizerError::VocabTooLarge { .. })));
        assert!(matches!(train_bpe("", 300), Err(TokenizerError::EmptyTrainingText)));
    }

    #[test]
    fn training_is_deterministic() {
        let text = "she sells sea shells by the sea shore; the shells she sells are sea shells";
        let a = train_bpe(text, 290).unwrap();
        let b = train_bpe(text, 290).unwrap();
        assert_eq!(a.merges(), b.merges());
    }
}
