//! The GPT-2 architecture, the book's chapter 4: configurations and
//! parameter counts, a forward pass's shapes, and text from an untrained
//! model (gibberish, as it should be before training).
//!
//! Run: `cargo run --release --example model`

use scratchgpt::autograd::nn::Module;
use scratchgpt::autograd::no_grad;
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::gpt::tokenizer::{BpeTokenizer, SpecialTokens};
use scratchgpt::prelude::*;

fn main() {
    for name in ["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"] {
        let c = GPTConfig::preset(name).unwrap();
        let n = c.num_parameters();
        println!(
            "{name:<12} {:>2} layers × {:>2} heads, width {:>4}: {:>13} parameters, {:>6.2} GB in f32",
            c.n_layers,
            c.n_heads,
            c.emb_dim,
            n,
            4.0 * n as f64 / 1e9
        );
    }

    // A small model with GPT-2's vocabulary, so its output decodes to text.
    let config = GPTConfig { context_length: 64, ..GPTConfig::preset("tiny").unwrap() };
    let model = GPTModel::new(config.clone(), &mut Generator::seed(123));
    println!("\ntiny config: {config:?}");
    println!("parameters: {} (the token embedding is also the output head)", model.num_parameters());

    let tokenizer = BpeTokenizer::gpt2();
    let batch: Vec<i64> = ["Every effort moves you", "Every day holds a"]
        .iter()
        .flat_map(|t| tokenizer.encode(t, SpecialTokens::Allow).unwrap())
        .map(|id| id as i64)
        .collect();
    let ids = Tensor::from_vec(batch, [2, 4]).unwrap();
    println!("\ninput ids [B, T]:\n{ids}");
    let logits = no_grad(|| model.forward(&ids));
    println!("logits shape [B, T, vocab]: {:?}", logits.dims());

    let prompt = tokenizer.encode("Hello, I am", SpecialTokens::Allow).unwrap();
    let opts = GenerateOptions { max_new_tokens: 6, ..Default::default() };
    let new = generate(&model, &prompt, &opts, |_| {});
    let all: Vec<u32> = prompt.iter().copied().chain(new).collect();
    println!("\nuntrained output: {:?}", tokenizer.decode(&all).unwrap());
}
