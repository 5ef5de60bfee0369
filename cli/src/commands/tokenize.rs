//! `scratchgpt tokenize`, `detokenize` and `tokenizer train`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::output::{folder_kind, FolderKind};
use gpt::tokenizer::{train_bpe, AnyTokenizer, SpecialTokens};

use crate::common::{claim_output, outln, print_json, read_text, tokenizer_by_name, write_folder};

#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// Text to encode.
    #[arg(long, conflicts_with = "file")]
    text: Option<String>,
    /// File to encode.
    #[arg(long)]
    file: Option<PathBuf>,
    /// `gpt2`, or a folder with vocab.json + merges.txt (or char_vocab.json).
    #[arg(long, default_value = "gpt2")]
    vocab: String,
    /// What `<|endoftext|>` in the text means: allow (its id), text (plain
    /// characters) or reject (an error).
    #[arg(long, default_value = "allow")]
    special: SpecialTokens,
    #[arg(long)]
    json: bool,
}

pub fn tokenize(args: TokenizeArgs) -> Result<i32> {
    let text = match (&args.text, &args.file) {
        (Some(t), None) => t.clone(),
        (None, Some(f)) => read_text(f)?,
        _ => bail!("give --text or --file"),
    };
    let tokenizer = tokenizer_by_name(&args.vocab)?;
    let ids = tokenizer.encode(&text, args.special)?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            ids: &'a [u32],
            count: usize,
        }
        print_json(&Out { ids: &ids, count: ids.len() })?;
    } else {
        outln!("{}", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))?;
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct DetokenizeArgs {
    /// Comma- or space-separated token ids, e.g. 15496,11
    #[arg(long)]
    ids: String,
    #[arg(long, default_value = "gpt2")]
    vocab: String,
}

pub fn detokenize(args: DetokenizeArgs) -> Result<i32> {
    let ids = args
        .ids
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().map_err(|_| anyhow::anyhow!("--ids: {s:?} is not a token id")))
        .collect::<Result<Vec<u32>>>()?;
    let tokenizer = tokenizer_by_name(&args.vocab)?;
    // Lossy on purpose: ids that split a character still print.
    let bytes = tokenizer.decode_bytes(&ids)?;
    outln!("{}", String::from_utf8_lossy(&bytes))?;
    Ok(0)
}

#[derive(clap::Args)]
pub struct TrainTokenizerArgs {
    /// Text file to learn merges from.
    #[arg(long)]
    data: PathBuf,
    /// Tokens in the final vocabulary (≥ 257: 256 bytes + <|endoftext|>).
    #[arg(long)]
    vocab_size: usize,
    /// Folder for vocab.json + merges.txt + tokenizer.json: new, empty, or holding only a
    /// tokenizer (a model folder's tokenizer must match its weights).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even if it holds something other than a tokenizer.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

pub fn train_tokenizer(args: TrainTokenizerArgs) -> Result<i32> {
    if !args.force && matches!(folder_kind(&args.out), Ok(FolderKind::Model | FolderKind::Run)) {
        bail!(
            "{}: holds a model, whose tokenizer must match its weights; write the tokenizer to another --out",
            args.out.display()
        );
    }
    let allow = [FolderKind::Missing, FolderKind::Empty, FolderKind::Tokenizer];
    let out = claim_output(&args.out, &[&args.data], &allow, args.force, "")?;
    let text = read_text(&args.data)?;
    let started = std::time::Instant::now();
    let tokenizer = train_bpe(&text, args.vocab_size)?;
    let seconds = started.elapsed().as_secs_f64();
    let tokenizer = AnyTokenizer::Bpe(tokenizer);
    write_folder(&out, |stage| Ok(tokenizer.save(stage)?))?;
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?.len();
    if args.json {
        print_json(
            &serde_json::json!({"vocab_size": tokenizer.vocab_size(), "seconds": seconds, "corpus_tokens": tokens}),
        )?;
    } else {
        outln!(
            "learned {} tokens in {seconds:.2} s; the corpus is {tokens} tokens ({:.2} bytes/token); wrote {}",
            tokenizer.vocab_size(),
            text.len() as f64 / tokens as f64,
            args.out.display()
        )?;
    }
    Ok(0)
}
