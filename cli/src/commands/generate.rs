//! `scratchgpt generate`: continue a prompt, streaming tokens as they come.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::generate::{generate, GenerateOptions};
use gpt::tokenizer::{SpecialTokens, Utf8Stream};

use crate::common::{load_model_and_tokenizer, out, outln, print_json, stream_out};

#[derive(clap::Args)]
pub struct Args {
    /// A model folder (Hugging Face GPT-2 layout) or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 50)]
    max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object at the end instead of streaming.
    #[arg(long)]
    json: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(mut args: Args) -> Result<i32> {
    if args.temperature < 0.0 || !args.temperature.is_finite() {
        bail!("--temperature must be 0 or positive, got {}", args.temperature);
    }
    if let Some(p) = args.top_p {
        if !(p > 0.0 && p <= 1.0) {
            bail!("--top-p must be in (0, 1], got {p}");
        }
    }
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    let device = crate::common::device(&args.device)?;
    args.model = crate::hub::model_folder(&args.model)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    autograd::nn::Module::to_device(&model, device)?;
    // As `transformers`' `tokenizer(prompt)`: with the special tokens the
    // tokenizer adds (Llama's BOS); GPT-2's adds none.
    let prompt = tokenizer.encode_adding_special_tokens(&args.prompt, SpecialTokens::Allow)?;
    if prompt.is_empty() {
        bail!("--prompt is empty");
    }
    if prompt.len() > model.config.context_length {
        bail!("the prompt is {} tokens; the model's context holds {}", prompt.len(), model.config.context_length);
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        stop_token: None,
        stop_tokens: gpt::end_tokens::end_token_ids(&args.model, &tokenizer)?,
        use_cache: true,
        vocab_limit: Some(tokenizer.vocab_size()),
    };
    let mut stream = Utf8Stream::new();
    if !args.json {
        out!("{}", args.prompt)?;
    }
    let mut failed = None;
    let new = generate(&model, &prompt, &opts, |id| {
        if !args.json && !opts.is_stop(id) {
            stream_out(&stream.push(&tokenizer.decode_bytes(&[id]).unwrap_or_default()), &mut failed);
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    if args.json {
        let text = String::from_utf8_lossy(&tokenizer.decode_bytes(&new)?).into_owned();
        print_json(&serde_json::json!({ "prompt_ids": prompt, "new_ids": new, "text": text }))?;
    } else {
        outln!("{}", stream.finish())?;
    }
    Ok(0)
}
