//! `scratchgpt eval`: loss and perplexity of a model on a text file.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::tokenizer::SpecialTokens;

use crate::common::{load_model_and_tokenizer, outln, print_json, read_text};

/// The largest `--batch-size`.
const MAX_BATCH: usize = 1024;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    data: PathBuf,
    /// Tokens of context per prediction window (default: the model's).
    #[arg(long)]
    context: Option<usize>,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long)]
    json: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(mut args: Args) -> Result<i32> {
    // Each row of a batch holds context × vocabulary logits (200 MB for
    // GPT-2), so a batch past a thousand rows cannot fit anywhere.
    if args.batch_size == 0 || args.batch_size > MAX_BATCH {
        bail!("--batch-size must be between 1 and {MAX_BATCH}");
    }
    let device = crate::common::device(&args.device)?;
    args.model = crate::hub::model_folder(&args.model)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    autograd::nn::Module::to_device(&model, device)?;
    let context = args.context.unwrap_or(model.config.context_length);
    if context == 0 || context > model.config.context_length {
        bail!("--context must be between 1 and the model's context length {}", model.config.context_length);
    }
    let text = read_text(&args.data)?;
    // As `transformers`' `tokenizer(text)`: with the special tokens the
    // tokenizer adds (Llama's BOS in front); GPT-2's adds none.
    let tokens = tokenizer.encode_adding_special_tokens(&text, SpecialTokens::Allow)?;
    let Some(result) = gpt::eval::evaluate(&model, &tokens, context, args.batch_size) else {
        bail!("{}: has {} token(s); evaluation needs at least 2", args.data.display(), tokens.len());
    };
    if args.json {
        print_json(
            &serde_json::json!({"loss": result.loss, "perplexity": result.perplexity, "tokens": result.tokens}),
        )?;
    } else {
        outln!(
            "loss {:.4}  perplexity {:.2}  over {} predicted tokens",
            result.loss,
            result.perplexity,
            result.tokens
        )?;
    }
    Ok(0)
}
