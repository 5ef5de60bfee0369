//! Pretraining, the book's chapter 5, on text the project generates itself:
//! learn a small BPE vocabulary, train a tiny GPT for a few dozen steps,
//! watch the training and validation losses fall, and sample from it.
//! (`scratchgpt train` is the same loop with checkpoints, a progress bar and
//! a loss plot.)
//!
//! Run: `cargo run --release --example pretraining`

use std::sync::atomic::AtomicBool;

use scratchgpt::gpt::data::builtin_corpus;
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::gpt::tokenizer::{train_bpe, AnyTokenizer, SpecialTokens};
use scratchgpt::gpt::train::{TrainEvent, TrainOptions, Trainer};
use scratchgpt::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = builtin_corpus(400_000);
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&text, 512)?);
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?;
    println!("{} bytes of stories → {} tokens with a {}-token BPE", text.len(), tokens.len(), tokenizer.vocab_size());

    let config =
        GPTConfig { vocab_size: tokenizer.vocab_size(), context_length: 64, ..GPTConfig::preset("tiny").unwrap() };
    let model = GPTModel::new(config, &mut Generator::seed(123));
    let options = TrainOptions {
        steps: Some(60),
        batch_size: 8,
        context: 64,
        lr: 2e-3,
        warmup: 10,
        eval_every: 20,
        sample_every: 60,
        checkpoint_every: 0,
        ..Default::default()
    };
    let out = std::env::temp_dir().join("scratchgpt-pretraining-example");
    let mut trainer = Trainer::new(model, tokenizer, tokens, "built-in stories".into(), options, out.clone())?;
    trainer.run(&AtomicBool::new(false), |event| match event {
        TrainEvent::Step { step, loss, tokens_per_s, .. } if step % 10 == 0 => {
            println!("step {step:>3}: train loss {loss:.3} ({tokens_per_s:.0} tokens/s)")
        }
        TrainEvent::Eval { step, result } => println!("step {step:>3}: validation loss {:.3}", result.loss),
        TrainEvent::Sample { text, .. } => println!("\nsample: {text}"),
        _ => {}
    })?;
    println!("\nmodel, metrics.jsonl and loss.svg are in {}", out.display());
    Ok(())
}
