//! What several commands share: loading a model folder with its tokenizer,
//! choosing a tokenizer by name, reading data, printing JSON, claiming an
//! output folder, and stopping on Ctrl-C.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Context, Result};
use gpt::model::GPTModel;
use gpt::output::{check_not_nested, folder_kind, FolderKind, OutputLock};
use gpt::tokenizer::AnyTokenizer;
use serde::Serialize;

/// A model folder's model and tokenizer (GPT-2's when the folder has none),
/// checked to fit together.
pub fn load_model_and_tokenizer(dir: &Path) -> Result<(GPTModel, AnyTokenizer)> {
    if gpt::gguf::is_model_file(dir) {
        // A GGUF file carries its tokenizer in its metadata.
        let (model, tokenizer) = gpt::gguf::load(dir)?;
        check_vocab(&tokenizer, &model, dir)?;
        return Ok((model, tokenizer));
    }
    // A folder whose replacement a crash interrupted is read from where it
    // was left (`gpt::atomic`); the loaders below do the same, and `dir`
    // names that place in the messages.
    let dir = &gpt::atomic::readable_dir(dir, gpt::weights::hf::CONFIG_FILE);
    let model = gpt::weights::load_model(dir)?;
    let tokenizer = gpt::weights::load_tokenizer(dir)?.unwrap_or_else(AnyTokenizer::gpt2);
    check_vocab(&tokenizer, &model, dir)?;
    Ok((model, tokenizer))
}

/// Like [`load_model_and_tokenizer`], for commands that train: refuses a
/// quantized folder, whose packed weights have no gradients.
pub fn load_trainable_model_and_tokenizer(dir: &Path) -> Result<(GPTModel, AnyTokenizer)> {
    refuse_quantized(dir)?;
    let (model, tokenizer) = load_model_and_tokenizer(dir)?;
    // A GGUF file says what it holds only in its tensors' types.
    if let Some(scheme) = gpt::quant::scheme_of(&model) {
        bail!(
            "{}: the model is quantized ({scheme}), which is for inference only; train or fine-tune an f32 model",
            dir.display()
        );
    }
    Ok((model, tokenizer))
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
    device.ensure_available()?;
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

/// An output folder a command has checked and locked; the lock is released
/// when this is dropped (or the process ends).
pub struct Output {
    pub dir: PathBuf,
    _lock: Option<OutputLock>,
}

impl Output {
    /// `dir` without a claim: for the ranks of a data-parallel run other
    /// than rank 0, which claims and alone writes the folder.
    pub fn unclaimed(dir: &Path) -> Output {
        Output { dir: dir.to_path_buf(), _lock: None }
    }
}

/// Claims `out` for a command that reads `inputs` (`gpt::output` has the
/// rules): refuses an output that is, holds or lies inside an input, one
/// that another process is writing, and, unless `force`, one whose kind is
/// not in `allow`. `hint` ends the refusal of an existing training run
/// (e.g. how to continue it). Leftovers of an interrupted swap are put in
/// order first (`gpt::atomic::settle_dir`).
pub fn claim_output(out: &Path, inputs: &[&Path], allow: &[FolderKind], force: bool, run_hint: &str) -> Result<Output> {
    // `.` or `dir/..` has no name to put a sibling beside: spell it out.
    let spelled_out;
    let out = if out.file_name().is_none() {
        spelled_out = gpt::output::resolved(out)?;
        spelled_out.as_path()
    } else {
        out
    };
    // Missing inputs too: one a crash left beside its name mid-swap is
    // put back by `settle_dir` below.
    check_not_nested(out, inputs).map_err(|reason| anyhow::anyhow!("{}: {reason}", out.display()))?;
    if std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!("{}: is a symbolic link; give the folder itself", out.display());
    }
    if let Some(above) = OutputLock::held_above(out) {
        bail!("{}: is inside {}, which another scratchgpt process is writing", out.display(), above.display());
    }
    let lock = OutputLock::acquire(out).map_err(anyhow::Error::msg)?;
    gpt::atomic::settle_dir(out).with_context(|| format!("{}: cannot tidy an interrupted save", out.display()))?;
    let kind = folder_kind(out).with_context(|| format!("{}: cannot read", out.display()))?;
    if !force && !allow.contains(&kind) {
        let replace = "choose another --out, or pass --force to replace it";
        match kind {
            FolderKind::Run if !run_hint.is_empty() => bail!("{}: {}; {run_hint}", out.display(), kind.describe()),
            _ => bail!("{}: {}; {replace}", out.display(), kind.describe()),
        }
    }
    Ok(Output { dir: out.to_path_buf(), _lock: Some(lock) })
}

/// Writes the whole of a claimed output folder: `fill` writes the new
/// contents into a hidden staging folder beside it, which then replaces the
/// folder in one swap (`gpt::atomic`). A failure or crash before the swap
/// leaves the old folder as it was.
pub fn write_folder(out: &Output, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = &out.dir;
    let stage = gpt::atomic::staging_dir(dir)
        .with_context(|| format!("{}: cannot create a folder beside it", dir.display()))?;
    let written = fill(&stage).and_then(|()| {
        gpt::atomic::replace_dir(&stage, dir).map_err(|(path, e)| anyhow::anyhow!("{}: {e}", path.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    written
}

/// Set by Ctrl-C (SIGINT) or SIGTERM: long commands check it between steps,
/// save what they have and exit with 130. A second signal exits at once
/// (130); whatever was saved last stays loadable, since every save is
/// atomic.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let seen = flag.clone();
        let _ = ctrlc::set_handler(move || {
            use std::io::Write;
            // Not eprintln!: it panics if stderr is gone, and this thread
            // must live to see the second signal.
            if seen.swap(true, Ordering::SeqCst) {
                let _ = writeln!(std::io::stderr(), "\ninterrupted again: stopping now");
                std::process::exit(INTERRUPTED);
            }
            let message = "\ninterrupted: saving at the end of this step (interrupt again to stop at once)";
            let _ = writeln!(std::io::stderr(), "{message}");
        });
        flag
    })
    .clone()
}

/// The exit code of a command stopped by Ctrl-C or SIGTERM (128 + SIGINT,
/// as shells report it).
pub const INTERRUPTED: i32 = 130;
