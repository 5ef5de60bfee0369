//! Looking inside a small trained model: which earlier tokens each head
//! attends to, what the model would predict if it stopped after each layer
//! (the logit lens), and where tokens sit in its embedding space.
//!
//! It trains the `tiny` GPT-2 (4 layers × 4 heads) on the built-in stories,
//! then reads one prompt through `gpt::inspect`, the same code behind
//! `scratchgpt inspect attention|lens|embeddings`:
//! - every head's attention weights `[T, T]`, scored by how much of each
//!   query's weight goes to the token just before it ("previous-token
//!   head") and to the first token (a "sink" many heads park on);
//! - the lens: per layer, the top next-token guess and its probability at
//!   every position, whose average confidence rises layer by layer, and
//!   whose last row is the model's own prediction;
//! - a PCA map of frequent tokens and each one's nearest neighbours by
//!   cosine similarity.
//!
//! Each picture is also written as SVG (the paths are printed).
//!
//! Run: `cargo run --release --example inspect [STEPS]` (300 steps by
//! default, about a minute on 2 cores; a debug build trains far slower).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use scratchgpt::gpt::data::builtin_corpus;
use scratchgpt::gpt::inspect::{attention, embeddings, lens};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::gpt::tokenizer::{train_bpe, AnyTokenizer, SpecialTokens};
use scratchgpt::gpt::train::{TrainOptions, Trainer};
use scratchgpt::prelude::*;

const PROMPT: &str =
    "Once upon a time, there was a little girl named Lily. Lily liked to play with her ball. One day, Lily";

/// The mean weight a head puts on the key `offset` positions before each
/// query (1: the previous token), over the queries that have one.
fn mean_weight_back(map: &[Vec<f32>], offset: usize) -> f64 {
    let rows: Vec<f64> = (offset..map.len()).map(|q| map[q][q - offset] as f64).collect();
    rows.iter().sum::<f64>() / rows.len().max(1) as f64
}

/// The mean weight a head puts on the first token, over the queries after it.
fn mean_weight_on_first(map: &[Vec<f32>]) -> f64 {
    let rows: Vec<f64> = (1..map.len()).map(|q| map[q][0] as f64).collect();
    rows.iter().sum::<f64>() / rows.len().max(1) as f64
}

fn write(path: &Path, svg: &str) -> std::io::Result<()> {
    std::fs::write(path, svg)?;
    println!("  (picture: {})", path.display());
    Ok(())
}

/// Trains `tiny` on the stories with the library's trainer.
fn trained_model(
    tokenizer: &AnyTokenizer,
    tokens: Vec<u32>,
    steps: usize,
) -> Result<GPTModel, Box<dyn std::error::Error>> {
    let config =
        GPTConfig { vocab_size: tokenizer.vocab_size(), context_length: 64, ..GPTConfig::preset("tiny").unwrap() };
    let model = GPTModel::new(config, &mut Generator::seed(7));
    let options = TrainOptions {
        steps: Some(steps),
        batch_size: 8,
        context: 64,
        lr: 2e-3,
        warmup: steps / 10,
        eval_every: steps,
        sample_every: 0,
        checkpoint_every: 0,
        ..Default::default()
    };
    let out = std::env::temp_dir().join("scratchgpt-inspect-example").join("run");
    let mut trainer = Trainer::new(model, tokenizer.clone(), tokens, "built-in stories".into(), options, out)?;
    let summary = trainer.run(&AtomicBool::new(false), |_| {})?;
    println!("trained {} steps: training loss {:.3}", summary.steps, summary.last_loss);
    let mut model = trainer.model;
    model.eval();
    Ok(model)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(format!("STEPS must be a positive number, got {arg:?}"))?,
        None => 300,
    };
    let out = std::env::temp_dir().join("scratchgpt-inspect-example");
    std::fs::create_dir_all(&out)?;
    let text = builtin_corpus(300_000);
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&text, 512)?);
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?;
    let model = trained_model(&tokenizer, tokens, steps)?;

    let ids = tokenizer.encode(PROMPT, SpecialTokens::AsText)?;
    let labels: Vec<String> = ids.iter().map(|&id| embeddings::token_text(&tokenizer, id)).collect();
    println!("\nThe prompt, {} tokens: {}", ids.len(), labels.join("|"));

    // 1. Attention: every layer and head.
    let all = attention::Selection { layer: None, head: None };
    let maps = attention::attention_maps(&model, &ids, labels.clone(), all)?;
    println!(
        "\n1. Attention. Per head, the mean weight a query puts on the token just before it and on the first token:"
    );
    println!("  layer head  previous  first");
    let mut best_previous = (0.0, 0, 0);
    let mut best_first = (0.0, 0, 0);
    for (li, layer) in maps.weights.iter().enumerate() {
        for (hi, map) in layer.iter().enumerate() {
            let (previous, first) = (mean_weight_back(map, 1), mean_weight_on_first(map));
            println!("  {:>5} {:>4}  {previous:>8.2}  {first:>5.2}", maps.layers[li], maps.heads[hi]);
            if previous > best_previous.0 {
                best_previous = (previous, li, hi);
            }
            if first > best_first.0 {
                best_first = (first, li, hi);
            }
        }
    }
    println!(
        "  The strongest previous-token head is layer {} head {} ({:.0}% of each query's weight on the token before);",
        best_previous.1,
        best_previous.2,
        100.0 * best_previous.0
    );
    println!(
        "  the strongest first-token head is layer {} head {} ({:.0}% on the first token, a place to put weight when nothing else matters).",
        best_first.1,
        best_first.2,
        100.0 * best_first.0
    );
    write(&out.join("attention.svg"), &attention::render_svg(&maps))?;

    // 2. The logit lens.
    let label = |id| embeddings::token_text(&tokenizer, id);
    let lens = lens::logit_lens(&model, &ids, labels.clone(), 1, label)?;
    println!("\n2. The logit lens: the model's guess for the next token after each block.");
    println!("  block  mean top probability  guess after {:?}", labels.last().unwrap());
    for (layer, row) in lens.top.iter().enumerate() {
        let mean = row.iter().map(|guesses| guesses[0].prob as f64).sum::<f64>() / row.len() as f64;
        let last = &row.last().unwrap()[0];
        println!("  {layer:>5}  {mean:>20.3}  {:?} ({:.2})", last.token, last.prob);
    }
    println!("  The last row is the model's own prediction; earlier rows are what the residual stream already says.");
    write(&out.join("lens.svg"), &lens::render_svg(&lens))?;

    // 3. The embedding map.
    let table = embeddings::token_table(&model, &tokenizer);
    let (chosen, rule) = embeddings::frequent_tokens(&tokenizer, 48)?;
    let chosen_ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
    let map = embeddings::embedding_map(&table, &chosen_ids);
    println!("\n3. Embeddings: {} tokens ({rule}) by PCA to 2-D;", chosen.len());
    println!(
        "  the two components hold {:.0}% and {:.0}% of the variance. Nearest neighbours by cosine:",
        100.0 * map.explained_ratio[0],
        100.0 * map.explained_ratio[1]
    );
    let neighbours = embeddings::nearest_neighbours(&table, &chosen_ids, 3);
    for (token, near) in chosen.iter().zip(&neighbours).take(8) {
        let near: Vec<String> = near.iter().map(|n| format!("{:?} {:.2}", label(n.id), n.cosine)).collect();
        println!("  {:>10?}: {}", token.token, near.join(", "));
    }
    let names: Vec<String> = chosen.iter().map(|c| c.token.clone()).collect();
    embeddings::plot_map(&names, &map, "token embeddings (PCA)", &out.join("embeddings.svg"))?;
    println!("  (picture: {})", out.join("embeddings.svg").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_scores_read_the_right_cells() {
        // A previous-token head: each query puts all its weight one back.
        let previous = vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]];
        assert_eq!(mean_weight_back(&previous, 1), 1.0);
        assert_eq!(mean_weight_on_first(&previous), 0.5);
        // A sink: everything on the first token.
        let sink = vec![vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0], vec![1.0, 0.0, 0.0]];
        assert_eq!(mean_weight_on_first(&sink), 1.0);
        assert_eq!(mean_weight_back(&sink, 1), 0.5);
        assert_eq!(mean_weight_back(&sink, 2), 1.0);
    }
}
