//! Text generation: turning next-token logits into tokens, one at a time.
//!
//! Each step feeds the sequence so far, takes the logits at the last
//! position `[V]`, and picks a token:
//! - temperature 0: the argmax (greedy, deterministic);
//! - otherwise divide the logits by the temperature (< 1 sharpens, > 1
//!   flattens), keep the `top_k` largest and/or the smallest set whose
//!   probability reaches `top_p` (nucleus), renormalise, and sample with a
//!   seeded generator.
//!
//! With the KV cache each step feeds only the newest token. When the
//! sequence outgrows the context window, the window slides: the model sees
//! the last `context_length` tokens, recomputed from scratch (cached
//! positions would otherwise carry stale position embeddings), exactly as
//! the uncached loop does.

use autograd::no_grad;
use tensor::{Generator, Tensor};

use crate::model::{GPTModel, KvCache};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Stop after emitting this id (GPT-2's `<|endoftext|>`, 50256).
    pub stop_token: Option<u32>,
    /// Stop after emitting any of these too (a chat model's end tokens,
    /// [`crate::end_tokens`]).
    pub stop_tokens: Vec<u32>,
    pub use_cache: bool,
    /// Never pick an id at or past this: the tokenizer's vocabulary size,
    /// when the model's rows are padded beyond it (nanoGPT pads GPT-2's
    /// 50,257 to 50,304), since such an id decodes to nothing.
    pub vocab_limit: Option<usize>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 50,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            stop_token: None,
            stop_tokens: Vec::new(),
            use_cache: true,
            vocab_limit: None,
        }
    }
}

impl GenerateOptions {
    /// Whether generation ends after emitting `id`.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_token == Some(id) || self.stop_tokens.contains(&id)
    }
}

/// Picks the next token from the last position of logits `[1, T, V]`
/// (`T` is 1 for `GPTModel::last_position_logits`),
/// never one at or past `opts.vocab_limit`.
pub(crate) fn next_after(logits: &Tensor, opts: &GenerateOptions, gen: &mut Generator) -> u32 {
    let (t, v) = (logits.dim(1), logits.dim(2));
    let last = logits.narrow(1, t - 1, 1).reshape(&[v as isize]).to_vec::<f32>();
    let allowed = opts.vocab_limit.map_or(v, |limit| limit.clamp(1, v));
    sample_next(&last[..allowed], opts, gen)
}

/// Picks the next token from one row of logits.
pub fn sample_next(logits: &[f32], opts: &GenerateOptions, gen: &mut Generator) -> u32 {
    if opts.temperature <= 0.0 {
        // First index of the maximum, as torch.argmax.
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = opts.top_k {
        order.truncate(k.max(1));
    }
    let scaled: Vec<f64> = order.iter().map(|&i| logits[i] as f64 / opts.temperature).collect();
    let max = scaled[0];
    let mut probs: Vec<f64> = scaled.iter().map(|v| (v - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = opts.top_p {
        // Keep the smallest prefix whose mass reaches p (always one token).
        let mut mass = 0.0;
        let keep = probs.iter().position(|&q| {
            mass += q;
            mass >= p
        });
        let keep = keep.map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        order.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= total);
    }
    let mut u = gen.uniform();
    for (i, &q) in probs.iter().enumerate() {
        if u < q {
            return order[i] as u32;
        }
        u -= q;
    }
    order[probs.len() - 1] as u32
}

/// Generates up to `max_new_tokens` after `prompt`, calling `on_token` with
/// each new id as soon as it is chosen. Returns the new ids.
pub fn generate(model: &GPTModel, prompt: &[u32], opts: &GenerateOptions, mut on_token: impl FnMut(u32)) -> Vec<u32> {
    assert!(!prompt.is_empty(), "generate: the prompt has no tokens");
    let context = model.config.context_length;
    let mut gen = Generator::seed(opts.seed);
    let mut tokens: Vec<u32> = prompt.to_vec();
    let mut new = Vec::new();
    let mut cache: Option<KvCache> = None;
    let as_ids =
        |ids: &[u32]| Tensor::from_vec(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, ids.len()]).unwrap();
    for _ in 0..opts.max_new_tokens {
        let window_start = tokens.len().saturating_sub(context);
        let logits = no_grad(|| {
            if !opts.use_cache {
                return model.last_position_logits(&as_ids(&tokens[window_start..]), None);
            }
            let cached = cache.as_ref().map_or(0, KvCache::len);
            // Reuse the cache only while it covers a prefix of the window
            // and one more position still fits.
            let reusable = window_start == 0 && cached > 0 && cached < tokens.len() && tokens.len() <= context;
            let c = cache.get_or_insert_with(|| model.new_cache());
            if !reusable {
                c.clear();
            }
            let feed = &tokens[window_start + c.len()..];
            model.last_position_logits(&as_ids(feed), Some(c))
        });
        let next = next_after(&logits.data(), opts, &mut gen);
        tokens.push(next);
        new.push(next);
        on_token(next);
        if opts.is_stop(next) {
            break;
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GPTConfig;
    use autograd::nn::Module;

    fn nano() -> GPTModel {
        let config = GPTConfig { context_length: 12, ..GPTConfig::preset("nano").unwrap() };
        GPTModel::new(config, &mut Generator::seed(5))
    }

    #[test]
    fn cached_and_uncached_generation_agree_past_the_context() {
        let model = nano();
        let prompt = [3, 14, 15, 92, 65];
        for temperature in [0.0, 1.0] {
            let opts =
                GenerateOptions { max_new_tokens: 20, temperature, top_k: Some(50), seed: 9, ..Default::default() };
            let cached = generate(&model, &prompt, &opts, |_| {});
            let plain = generate(&model, &prompt, &GenerateOptions { use_cache: false, ..opts.clone() }, |_| {});
            assert_eq!(cached, plain, "temperature {temperature}");
            assert_eq!(cached.len(), 20);
        }
    }

    #[test]
    fn greedy_top_k_and_top_p() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        let mut g = Generator::seed(0);
        assert_eq!(sample_next(&logits, &GenerateOptions::default(), &mut g), 1);
        let top1 = GenerateOptions { temperature: 1.0, top_k: Some(1), ..Default::default() };
        assert!((0..20).all(|_| sample_next(&logits, &top1, &mut g) == 1));
        let nucleus = GenerateOptions { temperature: 1.0, top_p: Some(0.5), ..Default::default() };
        let picks: Vec<u32> = (0..200).map(|_| sample_next(&logits, &nucleus, &mut g)).collect();
        assert!(picks.iter().all(|&p| p == 1 || p == 3) && picks.contains(&3) && picks.contains(&1));
    }

    #[test]
    fn ids_past_the_vocab_limit_are_never_picked() {
        let model = nano();
        let v = model.config.vocab_size;
        // Make the last rows the most likely: the head is tied to wte.
        let (_, wte) = model.named_parameters().into_iter().find(|(n, _)| n == "wte.weight").unwrap();
        let table = wte.data();
        let boosted = table.narrow(0, v - 10, 10).mul_scalar(50.0);
        wte.set_data(Tensor::cat(&[table.narrow(0, 0, v - 10), boosted], 0));
        let free = GenerateOptions { max_new_tokens: 12, ..Default::default() };
        assert!(generate(&model, &[1, 2], &free, |_| {}).iter().any(|&id| id as usize >= v - 10));
        for temperature in [0.0, 1.0] {
            let opts = GenerateOptions { temperature, vocab_limit: Some(v - 10), ..free.clone() };
            let ids = generate(&model, &[1, 2], &opts, |_| {});
            assert!(ids.iter().all(|&id| (id as usize) < v - 10), "{ids:?}");
        }
    }

    #[test]
    fn stops_at_the_stop_token() {
        let model = nano();
        let first = generate(&model, &[1, 2], &GenerateOptions { max_new_tokens: 1, ..Default::default() }, |_| {})[0];
        let opts = GenerateOptions { max_new_tokens: 10, stop_token: Some(first), ..Default::default() };
        assert_eq!(generate(&model, &[1, 2], &opts, |_| {}), vec![first]);
        // Any of several end tokens stops it.
        let opts = GenerateOptions { max_new_tokens: 10, stop_tokens: vec![first + 1, first], ..Default::default() };
        assert_eq!(generate(&model, &[1, 2], &opts, |_| {}), vec![first]);
    }
}
