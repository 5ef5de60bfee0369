//! `scratchgpt classify`: the class of a text, by a fine-tuned classifier.

use std::path::PathBuf;

use anyhow::Result;
use gpt::finetune::classify::GptClassifier;

use crate::common::{outln, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// A folder written by `scratchgpt finetune classify`.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    text: String,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<i32> {
    // A folder whose replacement a crash interrupted is read where it was left.
    let dir = gpt::atomic::readable_dir(&args.model, gpt::finetune::classify::CLASSIFIER_CONFIG_FILE);
    let model = GptClassifier::load(&dir)?;
    let tokenizer = gpt::weights::load_tokenizer(&dir)?.unwrap_or_else(gpt::tokenizer::AnyTokenizer::gpt2);
    crate::common::check_vocab(&tokenizer, &model.gpt, &args.model)?;
    let probs = model.predict(&tokenizer, &args.text)?;
    let best = (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
    let label = &model.config.classes[best];
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> =
            model.config.classes.iter().zip(&probs).map(|(c, p)| (c.clone(), serde_json::json!(p))).collect();
        print_json(&serde_json::json!({ "label": label, "probabilities": map }))?;
    } else {
        outln!("{label}")?;
        for (c, p) in model.config.classes.iter().zip(&probs) {
            outln!("  {c}: {p:.4}")?;
        }
    }
    Ok(0)
}
