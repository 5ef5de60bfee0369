//! `scratchgpt inspect embeddings`: the token embedding table as a map.
//!
//! The chosen tokens' rows of `wte` `[N, C]` go through PCA to `[N, 2]` and
//! are drawn as a labelled scatter (SVG); with `--json`, each token's
//! coordinates, each component's explained variance and each token's five
//! nearest neighbours by cosine similarity over the whole vocabulary.
//! A word the tokenizer splits is shown by its first token, with a note on
//! stderr. The work is `gpt::inspect::embeddings`'.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::inspect::embeddings::{
    embedding_map, frequent_tokens, nearest_neighbours, pick_words, render_map, token_table, token_text, ChosenToken,
};
use gpt::tokenizer::AnyTokenizer;
use serde_json::json;

use crate::common::{load_model_and_tokenizer, outln, print_json};

/// Neighbours listed per token.
const NEIGHBOURS: usize = 5;
/// Tokens on the map when neither --words nor --top is given (a character
/// vocabulary is drawn whole).
const DEFAULT_TOP: usize = 64;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated words to place on the map (each by its first token).
    #[arg(long, conflicts_with = "top")]
    words: Option<String>,
    /// Map the N most frequent tokens instead (default: 64; a character
    /// vocabulary: all of it).
    #[arg(long)]
    top: Option<usize>,
    /// --out, --force, and --json: coordinates, explained variance and
    /// nearest neighbours as one JSON object on stdout.
    #[command(flatten)]
    picture: super::inspect::Picture,
}

pub fn run(mut args: Args) -> Result<i32> {
    if args.top == Some(0) {
        bail!("--top must be at least 1");
    }
    args.model = crate::hub::model_folder(&args.model)?;
    args.picture.check(&args.model)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    let (chosen, chosen_by) = choose(&args, &tokenizer)?;
    for c in chosen.iter().filter(|c| c.tokens_in_word > 1) {
        eprintln!(
            "note: {:?} is {} tokens; the map shows its first, {:?} (id {})",
            c.word, c.tokens_in_word, c.token, c.id
        );
    }
    let table = token_table(&model, &tokenizer);
    let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
    if let Some(c) = chosen.iter().find(|c| c.id as usize >= table.dims()[0]) {
        bail!(
            "{}: token {} ({:?}) is past the model's table of {} rows",
            args.model.display(),
            c.id,
            c.word,
            table.dims()[0]
        );
    }
    let map = embedding_map(&table, &ids);
    let labels: Vec<String> = chosen.iter().map(|c| c.word.clone()).collect();
    let title = format!("token embeddings of {} (PCA)", args.model.display());
    args.picture.write(&render_map(&labels, &map, &title).map_err(anyhow::Error::msg)?)?;
    let neighbours = nearest_neighbours(&table, &ids, NEIGHBOURS);
    let vocabulary = table.dims()[0];
    if args.picture.json {
        let tokens: Vec<_> = chosen
            .iter()
            .zip(&map.points)
            .zip(&neighbours)
            .map(|((c, &(x, y)), near)| {
                let near: Vec<_> = near
                    .iter()
                    .map(|n| json!({ "id": n.id, "token": token_text(&tokenizer, n.id), "cosine": n.cosine }))
                    .collect();
                json!({
                    "word": c.word, "id": c.id, "token": c.token, "tokens_in_word": c.tokens_in_word,
                    "x": x, "y": y, "neighbours": near,
                })
            })
            .collect();
        print_json(&json!({
            "model": args.model,
            "chosen_by": chosen_by,
            "explained_variance": map.explained_variance,
            "explained_ratio": map.explained_ratio,
            "total_variance": map.total_variance,
            "neighbours_over": format!("the whole vocabulary ({vocabulary} tokens)"),
            "tokens": tokens,
            "out": args.picture.out,
        }))?;
    } else {
        let share = |i: usize| map.explained_ratio.get(i).map_or(0.0, |r| 100.0 * r);
        outln!(
            "{} tokens ({chosen_by}) mapped to {}: component 1 explains {:.1}% of their variance, component 2 {:.1}%",
            chosen.len(),
            args.picture.out.display(),
            share(0),
            share(1)
        )?;
        outln!("nearest neighbours by cosine similarity over the whole vocabulary ({vocabulary} tokens):")?;
        for (c, near) in chosen.iter().zip(&neighbours) {
            let list: Vec<String> =
                near.iter().map(|n| format!("{} {:.3}", token_text(&tokenizer, n.id), n.cosine)).collect();
            outln!("  {}: {}", c.word, list.join(", "))?;
        }
    }
    Ok(0)
}

/// The tokens to map and how they were chosen.
fn choose(args: &Args, tokenizer: &AnyTokenizer) -> Result<(Vec<ChosenToken>, String)> {
    if let Some(words) = &args.words {
        let words: Vec<String> = words.split(',').map(|w| w.trim().to_string()).collect();
        let chosen = pick_words(tokenizer, &words).map_err(anyhow::Error::msg)?;
        return Ok((chosen, "the words given".into()));
    }
    let n = args.top.unwrap_or(match tokenizer {
        AnyTokenizer::Char(_) => tokenizer.vocab_size(),
        _ => DEFAULT_TOP,
    });
    frequent_tokens(tokenizer, n).map_err(anyhow::Error::msg)
}
