//! Self-attention from scratch, the book's chapter 3: six tokens of
//! "Your journey starts with one step", attention scores, weights, context
//! vectors; then the causal mask; then the fused multi-head kernel the
//! model uses, checked against the step-by-step version.
//!
//! Run: `cargo run --release --example attention`

use scratchgpt::prelude::*;
use scratchgpt::tensor::{AttentionOptions, Qkv};

fn main() {
    // 3-dimensional embeddings of "Your journey starts with one step".
    let inputs = tensor![
        [0.43, 0.15, 0.89], // Your
        [0.55, 0.87, 0.66], // journey
        [0.57, 0.85, 0.64], // starts
        [0.22, 0.58, 0.33], // with
        [0.77, 0.25, 0.10], // one
        [0.05, 0.80, 0.55], // step
    ];

    // 1. Simplified attention: scores are dot products, weights their softmax.
    let scores = inputs.matmul(&inputs.t());
    let weights = scores.softmax(-1);
    println!("attention weights (each row sums to 1):\n{weights}\n");
    println!("context vectors:\n{}\n", weights.matmul(&inputs));

    // 2. Trainable projections: queries, keys and values, scaled by √d_k.
    let mut gen = Generator::seed(123);
    let (d_in, d_out) = (3, 2);
    let w_query = Tensor::rand([d_in, d_out], &mut gen);
    let w_key = Tensor::rand([d_in, d_out], &mut gen);
    let w_value = Tensor::rand([d_in, d_out], &mut gen);
    let (q, k, v) = (inputs.matmul(&w_query), inputs.matmul(&w_key), inputs.matmul(&w_value));
    let scores = q.matmul(&k.t()).div_scalar((d_out as f64).sqrt());

    // 3. Causal: a token may not look at the tokens after it.
    let future = Tensor::ones([6, 6], DType::F32).triu(1);
    let causal_weights = scores.masked_fill(&future, f64::NEG_INFINITY).softmax(-1);
    println!("causal attention weights:\n{causal_weights}\n");
    let step_by_step = causal_weights.matmul(&v);
    println!("causal context vectors:\n{step_by_step}\n");

    // 4. The fused kernel on [batch, heads, tokens, head_dim] does all of it
    //    in one pass per head and never computes the masked half's softmax.
    let [q, k, v] = [q, k, v].map(|t| t.reshape(&[1, 1, 6, d_out as isize]));
    let one_head = AttentionOptions::new(1);
    let fused = Tensor::attention(Qkv::Heads { q: &q, k: &k, v: &v }, &one_head).out.reshape(&[6, d_out as isize]);
    let diff = fused.sub(&step_by_step).abs().max_all().item::<f32>();
    println!("fused kernel vs step by step: max difference {diff:.2e}");
}
