//! `scratchgpt inspect`: pictures of what a model computes, one subcommand
//! each (the library side is `gpt::inspect`).
//!
//! - `inspect attention`: each head's attention weights over a prompt;
//! - `inspect lens`: the logit lens, the model's guess after each layer;
//! - `inspect embeddings`: the token embeddings on a 2-D map
//!   (`inspect_embeddings.rs`).
//!
//! Each writes an SVG to `--out`; `--json` also prints the numbers.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gpt::inspect::{attention, lens};
use gpt::model::GPTModel;
use gpt::tokenizer::{AnyTokenizer, SpecialTokens};

use crate::common::{load_model_and_tokenizer, print_json};

#[derive(clap::Subcommand)]
pub enum InspectCommand {
    /// Each head's attention weights over a prompt: a heatmap per head,
    /// query tokens down, key tokens across.
    Attention(AttentionArgs),
    /// The logit lens: after each layer, the next token the model would
    /// predict at each position, and its probability.
    Lens(LensArgs),
    /// The token embeddings on a 2-D map (PCA), with nearest neighbours.
    Embeddings(super::inspect_embeddings::Args),
}

/// What every inspect subcommand reads and writes.
#[derive(clap::Args)]
pub struct Common {
    /// A model folder (Hugging Face layout) or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    /// Where to write the SVG picture.
    #[arg(long)]
    out: PathBuf,
    /// Also print the numbers as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    common: Common,
    /// Only this layer (from 0). Default: every layer, one row of heatmaps each.
    #[arg(long)]
    layer: Option<usize>,
    /// Only this head (from 0). Default: every head, one column each.
    #[arg(long)]
    head: Option<usize>,
}

#[derive(clap::Args)]
pub struct LensArgs {
    #[command(flatten)]
    common: Common,
    /// How many of the likeliest tokens --json lists per layer and position
    /// (the picture shows the first).
    #[arg(long, default_value_t = 5)]
    top: usize,
}

pub fn run(cmd: InspectCommand) -> Result<i32> {
    match cmd {
        InspectCommand::Embeddings(args) => return super::inspect_embeddings::run(args),
        InspectCommand::Attention(args) => {
            let prompt = Prompt::load(&args.common)?;
            let selection = attention::Selection { layer: args.layer, head: args.head };
            let maps = attention::attention_maps(&prompt.model, &prompt.ids, prompt.tokens(), selection)?;
            write_svg(&args.common.out, &attention::render_svg(&maps))?;
            if args.common.json {
                print_json(&maps)?;
            }
        }
        InspectCommand::Lens(args) => {
            let prompt = Prompt::load(&args.common)?;
            let label = |id| prompt.label(id);
            let lens = lens::logit_lens(&prompt.model, &prompt.ids, prompt.tokens(), args.top, label)?;
            write_svg(&args.common.out, &lens::render_svg(&lens))?;
            if args.common.json {
                print_json(&lens)?;
            }
        }
    }
    Ok(0)
}

/// A model with its tokenizer and the prompt's ids.
struct Prompt {
    model: GPTModel,
    tokenizer: AnyTokenizer,
    ids: Vec<u32>,
}

impl Prompt {
    fn load(common: &Common) -> Result<Prompt> {
        let dir = crate::hub::model_folder(&common.model)?;
        let (model, tokenizer) = load_model_and_tokenizer(&dir)?;
        // As `generate`: with the special tokens the tokenizer adds (Llama's BOS).
        let ids = tokenizer.encode_adding_special_tokens(&common.prompt, SpecialTokens::Allow)?;
        gpt::inspect::check_prompt(&model, &ids)?;
        Ok(Prompt { model, tokenizer, ids })
    }

    /// One token's text (bytes that are not whole UTF-8 shown as `�`); an id
    /// the tokenizer does not know (a padded vocabulary) as `<id N>`.
    fn label(&self, id: u32) -> String {
        match self.tokenizer.decode_bytes(&[id]) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(_) => format!("<id {id}>"),
        }
    }

    fn tokens(&self) -> Vec<String> {
        self.ids.iter().map(|&id| self.label(id)).collect()
    }
}

fn write_svg(path: &Path, svg: &str) -> Result<()> {
    gpt::atomic::write_atomic(path, svg.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}
