//! Decoding strategies, the end of the book's chapter 5: greedy, temperature
//! and top-k on a next-token distribution, then the KV cache, which gives
//! the same tokens as recomputing everything but costs one position per
//! step instead of the whole sequence.
//!
//! Run: `cargo run --release --example generation [MODEL_DIR]`
//! (without a folder it uses a randomly initialised GPT-2-sized layer stack
//! on a tiny vocabulary, which is enough to time the cache).

use std::time::Instant;

use scratchgpt::gpt::generate::{generate, sample_next, GenerateOptions};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The book's toy vocabulary and next-token logits.
    let vocab = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"];
    // The book's logits; 6.28 is a logit, not an approximation of τ.
    #[allow(clippy::approx_constant)]
    let logits = [4.51f32, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79];
    let mut gen = Generator::seed(123);
    let count = |opts: &GenerateOptions, gen: &mut Generator| {
        let mut counts = [0usize; 9];
        (0..1000).for_each(|_| counts[sample_next(&logits, opts, gen) as usize] += 1);
        counts
    };
    let greedy = sample_next(&logits, &GenerateOptions::default(), &mut gen);
    println!("greedy: {}", vocab[greedy as usize]);
    for t in [0.1, 1.0, 5.0] {
        let counts = count(&GenerateOptions { temperature: t, ..Default::default() }, &mut gen);
        println!("temperature {t}: {:?}", vocab.iter().zip(counts).filter(|(_, c)| *c > 0).collect::<Vec<_>>());
    }
    let counts = count(&GenerateOptions { temperature: 1.0, top_k: Some(3), ..Default::default() }, &mut gen);
    println!("top-k 3: {:?}", vocab.iter().zip(counts).filter(|(_, c)| *c > 0).collect::<Vec<_>>());

    // The KV cache: same tokens, less work.
    let model = match std::env::args().nth(1) {
        Some(dir) => scratchgpt::gpt::weights::load_model(dir)?,
        None => {
            GPTModel::new(GPTConfig { vocab_size: 512, ..GPTConfig::preset("tiny").unwrap() }, &mut Generator::seed(1))
        }
    };
    let prompt: Vec<u32> = (0..16).map(|i| (i * 7) % 100).collect();
    for use_cache in [false, true] {
        let opts = GenerateOptions {
            max_new_tokens: 100,
            use_cache,
            temperature: 1.0,
            top_k: Some(50),
            seed: 3,
            ..Default::default()
        };
        let start = Instant::now();
        let new = generate(&model, &prompt, &opts, |_| {});
        let secs = start.elapsed().as_secs_f64();
        println!(
            "KV cache {}: {:.1} tokens/s, first ids {:?}",
            if use_cache { "on " } else { "off" },
            new.len() as f64 / secs,
            &new[..8]
        );
    }
    Ok(())
}
