//! `scratchgpt inspect`: pictures of what a model computes, one subcommand
//! each (the library side is `gpt::inspect`).
//!
//! - `inspect attention`: each head's attention weights over a prompt;
//! - `inspect lens`: the logit lens, the model's guess after each layer;
//! - `inspect embeddings`: the token embeddings on a 2-D map
//!   (`inspect_embeddings.rs`).
//!
//! Each writes a picture to `--out`, SVG or PNG (`Picture`); `--json`
//! also prints the numbers.

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

/// Where a picture goes, in which format, and whether its numbers are
/// printed too (every inspect subcommand has these).
#[derive(clap::Args)]
pub struct Picture {
    /// Where to write the picture, FILE.svg or FILE.png.
    #[arg(long)]
    pub out: PathBuf,
    /// svg (text stays text; opens in any browser) or png (drawn with the
    /// DejaVu Sans font this program carries). Default: --out's extension.
    #[arg(long, value_enum)]
    pub format: Option<PictureFormat>,
    /// The PNG's width in pixels; its height follows the picture's
    /// proportions. Default: twice the SVG's own width.
    #[arg(long)]
    pub width: Option<u32>,
    /// Replace --out even if this program did not draw it.
    #[arg(long)]
    pub force: bool,
    /// Also print the numbers as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PictureFormat {
    Svg,
    Png,
}

impl PictureFormat {
    fn extension(self) -> &'static str {
        match self {
            PictureFormat::Svg => "svg",
            PictureFormat::Png => "png",
        }
    }
}

impl Picture {
    /// The format asked for, or the one --out's extension names; refuses an
    /// extension that says otherwise, and --width for an SVG.
    fn format(&self) -> Result<PictureFormat> {
        let extension = self.out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        let by_name = match extension.as_deref() {
            Some("svg") => Some(PictureFormat::Svg),
            Some("png") => Some(PictureFormat::Png),
            _ => None,
        };
        let format = match (self.format, by_name) {
            (Some(asked), Some(named)) if asked != named => bail!(
                "{}: --format {} but the file's name ends in .{}",
                self.out.display(),
                asked.extension(),
                named.extension()
            ),
            (Some(format), _) | (None, Some(format)) => format,
            (None, None) => bail!("{}: --out names the picture to write, FILE.svg or FILE.png", self.out.display()),
        };
        if format == PictureFormat::Svg && self.width.is_some() {
            bail!("{}: --width sets a PNG's size; an SVG scales to any size", self.out.display());
        }
        if let Some(width) = self.width.filter(|&w| w == 0 || w > gpt::inspect::png::MAX_SIDE) {
            bail!("--width {width}: a PNG is from 1 to {} pixels wide", gpt::inspect::png::MAX_SIDE);
        }
        Ok(format)
    }

    /// Refuses an `--out` this command must not write: a bad format or
    /// size (see [`Picture::format`]), a folder or a link, the model folder
    /// or a file inside it, or an existing file this program did not draw
    /// (unless --force). Called before the model loads, so a mistake costs
    /// nothing.
    pub(crate) fn check(&self, model: &Path) -> Result<()> {
        self.format()?;
        let out = &self.out;
        gpt::output::check_not_nested(out, &[model]).map_err(|reason| {
            anyhow::anyhow!("{}: {}", out.display(), reason.replace("output folder", "output file"))
        })?;
        let Ok(meta) = std::fs::symlink_metadata(out) else {
            return Ok(());
        };
        if meta.is_dir() || meta.file_type().is_symlink() {
            bail!("{}: is a folder or a link; --out names the picture file to write", out.display());
        }
        // An SVG of ours carries the mark in a comment near its top, a PNG
        // in a text chunk right after its header: both in the first 4 KiB.
        let head =
            std::fs::read(out).map(|bytes| String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned());
        if !self.force && !head.is_ok_and(|text| text.contains(DRAWN_BY)) {
            bail!(
                "{}: exists and is not a picture this program drew; choose another --out, or pass --force",
                out.display()
            );
        }
        Ok(())
    }

    /// Writes the picture `svg` to --out atomically, in its format, marked
    /// as ours.
    pub(crate) fn write(&self, svg: &str) -> Result<()> {
        let bytes = match self.format()? {
            // The mark goes after the XML declaration, where a comment may stand.
            PictureFormat::Svg => match svg.strip_prefix("<?xml").and_then(|rest| rest.split_once("?>")) {
                Some((declaration, body)) => format!("<?xml{declaration}?>\n<!-- {DRAWN_BY} -->{body}"),
                None => format!("<!-- {DRAWN_BY} -->\n{svg}"),
            }
            .into_bytes(),
            PictureFormat::Png => {
                gpt::inspect::png::svg_to_png(svg, self.width, DRAWN_BY).map_err(anyhow::Error::msg)?
            }
        };
        let out = &self.out;
        gpt::atomic::write_atomic(out, &bytes).with_context(|| format!("{}: cannot write", out.display()))
    }
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
            args.common.picture.write(&attention::render_svg(&maps))?;
            if args.common.picture.json {
                print_json(&maps)?;
            }
        }
        InspectCommand::Lens(args) => {
            let prompt = Prompt::load(&args.common)?;
            let label = |id| prompt.label(id);
            let lens = lens::logit_lens(&prompt.model, &prompt.ids, prompt.tokens(), args.top, label)?;
            args.common.picture.write(&lens::render_svg(&lens))?;
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
        common.picture.check(&dir)?;
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

/// The words every picture of ours carries (an SVG comment, a PNG text
/// chunk), so that --out replaces only a file this program drew
/// (`gpt::output`'s rule for folders).
const DRAWN_BY: &str = "drawn by scratchgpt inspect";
