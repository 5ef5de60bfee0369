//! A mixture of experts, small enough to watch: a two-layer Qwen3-MoE-style
//! model with 4 experts per layer, 2 per token, trained briefly on a short
//! text (one byte per token), then asked which experts each character of a
//! sentence goes to.
//!
//! Each layer's router scores the 4 experts for every token; the token runs
//! through its 2 best and their outputs are summed, weighted by the
//! router's probabilities (see `gpt::model::moe`). The load-balancing loss
//! (`output_router_logits`) is added to the training loss, so the router
//! keeps every expert busy rather than sending everything to one.
//!
//! Run: `cargo run --release --example moe [STEPS]` (80 steps by default).

use scratchgpt::gpt::model::{GPTConfig, GPTModel, ModelType, MoeConfig};
use scratchgpt::gpt::train::next_token_loss;
use scratchgpt::prelude::*;

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat by a log. \
                    the mat was red and the log was old. 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20. ";

fn config() -> GPTConfig {
    GPTConfig {
        model_type: ModelType::Qwen3Moe,
        vocab_size: 128, // ASCII bytes
        context_length: 64,
        n_kv_heads: Some(2),
        qk_norm: true,
        moe: Some(MoeConfig {
            n_experts: 4,
            top_k: 2,
            norm_topk_prob: true,
            expert_width: 48,
            router_aux_loss_coef: 0.01,
            output_router_logits: true,
            dense_layers: Vec::new(),
            sparse_step: 1,
        }),
        ..GPTConfig::llama(48, 2, 4, 48)
    }
}

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(80);
    let config = config();
    println!(
        "{} parameters, {} of them used per token (4 experts per layer, 2 per token)",
        config.num_parameters(),
        config.active_parameters()
    );
    let mut gen = Generator::seed(0);
    let mut model = GPTModel::new(config, &mut gen);
    model.train();
    let bytes: Vec<i64> = TEXT.bytes().map(i64::from).collect();
    let (batch, t) = (8, 32);
    let mut opt = AdamW::new(model.parameters(), 3e-3);
    for step in 0..steps {
        // Random windows of the text, the targets one byte later.
        let starts: Vec<usize> = (0..batch).map(|_| (gen.next_u64() as usize) % (bytes.len() - t - 1)).collect();
        let window = |offset: usize| {
            let ids: Vec<i64> = starts.iter().flat_map(|&s| bytes[s + offset..s + offset + t].to_vec()).collect();
            Tensor::from_vec(ids, [batch, t]).unwrap()
        };
        opt.zero_grad();
        let loss = next_token_loss(&model, &(window(0), window(1)));
        loss.backward();
        opt.step();
        if step % 20 == 0 || step + 1 == steps {
            println!("step {step:3}: loss {:.3} (cross-entropy + 0.01 × load balancing)", loss.item());
        }
    }

    model.eval();
    let sentence = "the cat sat on the log. 12 13 14";
    let ids: Vec<i64> = sentence.bytes().map(i64::from).collect();
    let ids = Tensor::from_vec(ids, [1, sentence.len()]).unwrap();
    let (_, router_logits) = no_grad(|| model.forward_with_router_logits(&ids));
    for (layer, logits) in router_logits.iter().enumerate() {
        let routing = logits.data().softmax(-1).route_top_k(2);
        let chosen = routing.chosen.to_vec::<i64>();
        println!("\nlayer {layer}: the two experts of each character (most probable first)");
        for (i, ch) in sentence.chars().enumerate() {
            let shown = if ch == ' ' { '␣' } else { ch };
            print!("{shown}:{}{} ", chosen[2 * i], chosen[2 * i + 1]);
        }
        println!();
        let load: Vec<usize> = (0..routing.n_experts()).map(|e| routing.count(e)).collect();
        println!("tokens per expert: {load:?} (of {} choices)", 2 * sentence.len());
    }
}
