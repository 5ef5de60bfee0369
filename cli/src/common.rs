//! What several commands share: loading a model folder with its tokenizer,
//! choosing a tokenizer by name, reading data, printing JSON.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gpt::model::GPTModel;
use gpt::tokenizer::AnyTokenizer;
use serde::Serialize;

/// A model folder's model and tokenizer (GPT-2's when the folder has none),
/// checked to fit together.
pub fn load_model_and_tokenizer(dir: &Path) -> Result<(GPTModel, AnyTokenizer)> {
    let model = gpt::weights::load_model(dir)?;
    let tokenizer = gpt::weights::load_tokenizer(dir)?.unwrap_or_else(AnyTokenizer::gpt2);
    check_vocab(&tokenizer, &model, dir)?;
    Ok((model, tokenizer))
}

/// Like [`load_model_and_tokenizer`], for commands that train: refuses a
/// quantized folder, whose packed weights have no gradients.
pub fn load_trainable_model_and_tokenizer(dir: &Path) -> Result<(GPTModel, AnyTokenizer)> {
    refuse_quantized(dir)?;
    load_model_and_tokenizer(dir)
}

/// An error for a quantized model folder given to a command that trains.
pub fn refuse_quantized(dir: &Path) -> Result<()> {
    if dir.join(gpt::weights::hf::CONFIG_FILE).exists() {
        if let Some(scheme) = gpt::quant::folder_scheme(dir)? {
            bail!(
                "{}: the model is quantized ({scheme}), which is for inference only; train or fine-tune the f32 model it was made from",
                dir.display()
            );
        }
    }
    Ok(())
}

pub fn check_vocab(tokenizer: &AnyTokenizer, model: &GPTModel, dir: &Path) -> Result<()> {
    if tokenizer.vocab_size() > model.config.vocab_size {
        bail!(
            "{}: the tokenizer has {} tokens but the model's vocabulary holds {}",
            dir.display(),
            tokenizer.vocab_size(),
            model.config.vocab_size
        );
    }
    Ok(())
}

/// `gpt2`, or a folder / file holding a tokenizer.
pub fn tokenizer_by_name(name: &str) -> Result<AnyTokenizer> {
    if name == "gpt2" {
        return Ok(AnyTokenizer::gpt2());
    }
    Ok(AnyTokenizer::load(name)?)
}

/// Reads a UTF-8 text file, refusing an empty one.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = gpt::input::read_capped(path, gpt::input::TEXT_LIMIT)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if bytes.is_empty() {
        bail!("{}: the file is empty", path.display());
    }
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text (byte {})", path.display(), e.utf8_error().valid_up_to()))
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    outln!("{}", serde_json::to_string(value)?)?;
    Ok(())
}

/// Writes to stdout and flushes, returning what `print!` would panic on: a
/// reader that has gone away (`| head`), which `main` ends on quietly, or
/// a full disk (`> /dev/full`), which it reports in one line. The error
/// keeps its kind, so `main` can tell the two apart.
pub fn write_out(args: std::fmt::Arguments) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot write to stdout: {e}")))
}

/// `print!` through [`write_out`]: an `io::Result` to `?`.
macro_rules! out {
    ($($arg:tt)*) => { $crate::common::write_out(format_args!($($arg)*)) };
}

/// `println!` through [`write_out`]: an `io::Result` to `?`.
macro_rules! outln {
    () => { $crate::common::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::common::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use {out, outln};

/// Streams a piece of generated text from a callback that cannot return an
/// error. When the reader has gone away nothing is left to do, so the
/// program ends at once, quietly; another error is kept in `failed` for
/// the caller to return, and later pieces are dropped.
pub fn stream_out(piece: &str, failed: &mut Option<std::io::Error>) {
    if failed.is_some() {
        return;
    }
    if let Err(e) = out!("{piece}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        *failed = Some(e);
    }
}

/// The `--device` flag: `cpu`, `cuda` or `cuda:N`. A GPU is checked (and
/// every kernel compiled) here, so a machine without one fails before any
/// work with the driver's reason, e.g. "no CUDA device: libcuda.so.1 not
/// found".
pub fn device(spec: &str) -> Result<tensor::Device> {
    let Some(device) = tensor::Device::parse(spec) else {
        bail!("--device must be cpu, cuda or cuda:N, got {spec:?}");
    };
    tensor::cuda::ensure_available(device)?;
    Ok(device)
}

/// The `--precision` flag: `f32`, or `bf16` for mixed precision on a GPU
/// (bf16 matrix products with f32 accumulation; weights, gradients and the
/// optimizer stay f32).
pub fn set_precision(spec: &str, device: tensor::Device) -> Result<()> {
    match spec {
        "f32" => tensor::autocast::set_autocast(None),
        "bf16" if device.is_cuda() => tensor::autocast::set_autocast(Some(tensor::DType::BF16)),
        "bf16" => bail!("--precision bf16 needs --device cuda (the CPU multiplies in f32)"),
        other => bail!("--precision must be f32 or bf16, got {other:?}"),
    }
    Ok(())
}

/// Where a command's data comes from, for messages and checkpoints.
pub fn data_name(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "built-in stories".to_string(), |p| p.display().to_string())
}

/// Bytes in binary units: `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    match b {
        b if b >= 1024f64.powi(3) => format!("{:.2} GiB", b / 1024f64.powi(3)),
        b if b >= 1024f64.powi(2) => format!("{:.1} MiB", b / 1024f64.powi(2)),
        b if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        b => format!("{b} B"),
    }
}
