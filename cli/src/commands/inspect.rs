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

use anyhow::{bail, Context, Result};
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
    #[command(flatten)]
    picture: Picture,
}

/// Where a picture goes, and whether its numbers are printed too (every
/// inspect subcommand has these).
#[derive(clap::Args)]
pub struct Picture {
    /// Where to write the SVG picture.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace --out even if this program did not draw it.
    #[arg(long)]
    pub force: bool,
    /// Also print the numbers as one JSON object.
    #[arg(long)]
    pub json: bool,
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
            write_svg(&args.common.picture.out, &attention::render_svg(&maps))?;
            if args.common.picture.json {
                print_json(&maps)?;
            }
        }
        InspectCommand::Lens(args) => {
            let prompt = Prompt::load(&args.common)?;
            let label = |id| prompt.label(id);
            let lens = lens::logit_lens(&prompt.model, &prompt.ids, prompt.tokens(), args.top, label)?;
            write_svg(&args.common.picture.out, &lens::render_svg(&lens))?;
            if args.common.picture.json {
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
        check_svg_out(&common.picture.out, &dir, common.picture.force)?;
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

/// The comment every picture of ours carries, so that `--out` replaces
/// only a file this program drew (`gpt::output`'s rule for folders).
const DRAWN_BY: &str = "<!-- drawn by scratchgpt inspect -->";

/// Refuses an `--out` this command must not write: not an `.svg` name, a
/// folder or a link, the model folder or a file inside it, or an existing
/// file this program did not draw (unless `force`).
pub(crate) fn check_svg_out(out: &Path, model: &Path, force: bool) -> Result<()> {
    if out.extension().is_none_or(|e| !e.eq_ignore_ascii_case("svg")) {
        bail!("{}: --out names the SVG file to write, FILE.svg", out.display());
    }
    gpt::output::check_not_nested(out, &[model])
        .map_err(|reason| anyhow::anyhow!("{}: {}", out.display(), reason.replace("output folder", "output file")))?;
    let Ok(meta) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    if meta.is_dir() || meta.file_type().is_symlink() {
        bail!("{}: is a folder or a link; --out names the SVG file to write", out.display());
    }
    let head = std::fs::read(out).map(|bytes| String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned());
    if !force && !head.is_ok_and(|text| text.contains(DRAWN_BY)) {
        bail!(
            "{}: exists and is not a picture this program drew; choose another --out, or pass --force",
            out.display()
        );
    }
    Ok(())
}

/// Writes `svg` to `path` atomically, marked as ours (after the XML
/// declaration, where a comment may stand).
pub(crate) fn write_svg(path: &Path, svg: &str) -> Result<()> {
    let marked = match svg.strip_prefix("<?xml").and_then(|rest| rest.split_once("?>")) {
        Some((declaration, body)) => format!("<?xml{declaration}?>\n{DRAWN_BY}{body}"),
        None => format!("{DRAWN_BY}\n{svg}"),
    };
    gpt::atomic::write_atomic(path, marked.as_bytes()).with_context(|| format!("{}: cannot write", path.display()))
}
