//! Data sampling with a sliding window, as in the book's chapter 2: the
//! built-in stories are tokenized, cut into input/target windows shifted by
//! one token, and batched into `[B, T]` tensors.
//!
//! Run: `cargo run --release --example sampling`

use scratchgpt::gpt::data::{builtin_corpus, DataLoader, LoaderConfig, SlidingWindow};
use scratchgpt::gpt::tokenizer::{BpeTokenizer, SpecialTokens};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokenizer = BpeTokenizer::gpt2();
    let text = builtin_corpus(20_000); // generated here: no download needed
    let ids = tokenizer.encode(&text, SpecialTokens::Allow)?;
    println!("Total number of tokens: {}\n", ids.len());

    // What the model learns: each prefix predicts the next token.
    let sample = &ids[..];
    let context_size = 4;
    println!("x: {:?}", &sample[..context_size]);
    println!("y:      {:?}\n", &sample[1..context_size + 1]);
    for i in 1..=context_size {
        let context = tokenizer.decode(&sample[..i])?;
        let desired = tokenizer.decode(&sample[i..i + 1])?;
        println!("{context:?} ----> {desired:?}");
    }

    // Windows of 4 tokens every 4 tokens, batches of 8, in order.
    let dataset = SlidingWindow::new(ids, 4, 4)?;
    let config = LoaderConfig { batch_size: 8, shuffle: false, drop_last: true, seed: 123 };
    let loader = DataLoader::new(dataset, config)?;
    println!("\n{} windows, {} batches per epoch", loader.dataset().len(), loader.batches_per_epoch());
    let (inputs, targets) = loader.iter().next().expect("at least one batch");
    println!("Inputs:\n{inputs}\n");
    println!("Targets:\n{targets}");
    Ok(())
}
