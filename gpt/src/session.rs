//! Generation that keeps its KV cache from one call to the next, for a
//! conversation.
//!
//! Each turn of a chat renders the whole conversation again, and the new
//! prompt usually begins with exactly the ids of the last one and its
//! reply:
//!
//! ```text
//! turn 1 prompt  [<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n]
//! turn 1 reply                                                           [Hello<|im_end|>]
//! turn 2 prompt  [──────────────── the same ids ─────────────────────────────────────────][\n<|im_start|>user\n…]
//!                 keys and values already in the cache                                    only this is fed
//! ```
//!
//! A [`Session`] remembers the ids whose keys and values its [`KvCache`]
//! holds. When a prompt extends them, only the new suffix goes through
//! `last_position_logits` with the cache; when it does not (a template
//! that rewrites earlier turns, or `/reset`), the cache is cleared and the
//! prompt fed whole.
//! Either way the logits are the ones a fresh run gives.
//!
//! Unlike [`generate`](crate::generate::generate), a session does not slide
//! its window: it stops when the context is full.

use autograd::no_grad;
use tensor::{Generator, Tensor};

use crate::generate::{next_after, GenerateOptions};
use crate::model::{GPTModel, KvCache};

/// A model, its KV cache, and the ids the cache holds.
pub struct Session<'m> {
    model: &'m GPTModel,
    cache: KvCache,
    /// The ids whose keys and values are in `cache`, in order.
    cached: Vec<u32>,
    /// How many prompt ids the last [`generate`](Self::generate) fed.
    last_prompt_fed: usize,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m GPTModel) -> Session<'m> {
        Session { model, cache: model.new_cache(), cached: Vec::new(), last_prompt_fed: 0 }
    }

    /// Forgets the cache.
    pub fn clear(&mut self) {
        self.cache.clear();
        self.cached.clear();
    }

    /// The prompt ids the last call had to feed: all of them after a
    /// recomputation, only the new suffix when the cache was reused.
    pub fn last_prompt_fed(&self) -> usize {
        self.last_prompt_fed
    }

    /// Generates after `prompt` as [`generate`](crate::generate::generate)
    /// does (the same options, the same ids while the context holds them),
    /// reusing the cache when `prompt` extends what it holds. Stops at a
    /// stop token, after `max_new_tokens`, or when the context is full.
    pub fn generate(&mut self, prompt: &[u32], opts: &GenerateOptions, mut on_token: impl FnMut(u32)) -> Vec<u32> {
        assert!(!prompt.is_empty(), "generate: the prompt has no tokens");
        // The cache must hold a strict prefix: the last prompt position's
        // logits are needed, so at least one id is fed.
        let extends = self.cached.len() < prompt.len() && prompt.starts_with(&self.cached);
        if !extends || self.cache.len() != self.cached.len() {
            self.clear();
        }
        let context = self.model.config.context_length;
        let mut gen = Generator::seed(opts.seed);
        let mut feed: Vec<u32> = prompt[self.cached.len()..].to_vec();
        self.last_prompt_fed = feed.len();
        let mut new = Vec::new();
        while new.len() < opts.max_new_tokens && self.cached.len() + feed.len() <= context {
            let ids = Tensor::from_vec(feed.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, feed.len()]).unwrap();
            let logits = no_grad(|| self.model.last_position_logits(&ids, Some(&mut self.cache)));
            self.cached.append(&mut feed);
            let next = next_after(&logits.data(), opts, &mut gen);
            new.push(next);
            on_token(next);
            if opts.is_stop(next) {
                break;
            }
            feed.push(next);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate;
    use crate::model::GPTConfig;

    fn nano() -> GPTModel {
        let config = GPTConfig { context_length: 40, ..GPTConfig::preset("nano").unwrap() };
        GPTModel::new(config, &mut Generator::seed(7))
    }

    #[test]
    fn a_prompt_that_extends_the_last_turn_feeds_only_its_suffix() {
        let model = nano();
        let opts = GenerateOptions { max_new_tokens: 4, ..Default::default() };
        let mut session = Session::new(&model);
        let first: Vec<u32> = vec![5, 9, 2, 33, 4];
        let reply = session.generate(&first, &opts, |_| {});
        assert_eq!(session.last_prompt_fed(), 5);
        assert_eq!(reply, generate(&model, &first, &opts, |_| {}));

        // The next turn: the last prompt, its reply, and three new ids. The
        // reply's last id was picked but never fed, so it is fed now.
        let second: Vec<u32> = first.iter().chain(&reply).chain(&[8, 1, 6]).copied().collect();
        let reply = session.generate(&second, &opts, |_| {});
        assert_eq!(session.last_prompt_fed(), 1 + 3);
        let plain = GenerateOptions { use_cache: false, ..opts.clone() };
        assert_eq!(reply, generate(&model, &second, &plain, |_| {}));

        // A prompt that rewrites history is recomputed whole.
        let rewritten: Vec<u32> = [7].iter().chain(&second[1..]).copied().collect();
        let reply = session.generate(&rewritten, &opts, |_| {});
        assert_eq!(session.last_prompt_fed(), rewritten.len());
        assert_eq!(reply, generate(&model, &rewritten, &plain, |_| {}));

        // The same prompt again: nothing new to feed, so recomputed too.
        let again = session.generate(&rewritten, &opts, |_| {});
        assert_eq!((again, session.last_prompt_fed()), (reply, rewritten.len()));
    }

    #[test]
    fn stops_when_the_context_is_full() {
        let model = nano();
        let opts = GenerateOptions { max_new_tokens: 100, ..Default::default() };
        let prompt: Vec<u32> = (0..30).collect();
        let new = Session::new(&model).generate(&prompt, &opts, |_| {});
        // 30 prompt positions and 10 fed new ids fill 40; the 11th is picked
        // from the last position.
        assert_eq!(new.len(), 11);
        assert_eq!(new, generate(&model, &prompt, &GenerateOptions { max_new_tokens: 11, ..opts }, |_| {}));
    }
}
