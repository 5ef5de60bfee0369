//! `scratchgpt export`: a model in another program's file format. One
//! format so far: GGUF, llama.cpp's (`gpt::gguf`).
//!
//! The output is one file, so `gpt::output`'s rules for folders apply to
//! it as to a file: it must not be, hold or lie inside the input; it is
//! locked against a second writer; it is written under a temporary name
//! and renamed into place; and an existing file is replaced only if this
//! program wrote it (a GGUF file carrying `scratchgpt.exporter`), unless
//! `--force`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use gpt::gguf::{GgmlType, GgufFile};
use gpt::output::{check_not_nested, OutputLock};

use crate::common::{human_bytes, load_model_and_tokenizer, outln, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// The model: a folder, a .gguf file, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// The file format: gguf.
    #[arg(long)]
    format: String,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// How the weight matrices are stored: f32, f16, bf16, q8_0 or q4_0
    /// (norms, biases and position embeddings stay f32).
    #[arg(long, default_value = "f32")]
    to: String,
    /// Replace --out even if this program did not write it.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

fn matrix_type(name: &str) -> Result<GgmlType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "f32" => GgmlType::F32,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        "q8_0" => GgmlType::Q8_0,
        "q4_0" => GgmlType::Q4_0,
        _ => bail!("--to must be f32, f16, bf16, q8_0 or q4_0, got {name:?}"),
    })
}

/// Refuses an output this command must not write (see the module doc).
fn check_out(out: &Path, model: &Path, force: bool) -> Result<()> {
    check_not_nested(out, &[model])
        .map_err(|reason| anyhow::anyhow!("{}: {}", out.display(), reason.replace("output folder", "output file")))?;
    let Ok(meta) = std::fs::symlink_metadata(out) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        bail!("{}: is a symbolic link; give the file itself", out.display());
    }
    if meta.is_dir() {
        bail!("{}: is a folder; --out names the file to write", out.display());
    }
    let ours = GgufFile::open(out).is_ok_and(|f| f.get(gpt::gguf::gpt2::EXPORTER_KEY).is_some());
    if !ours && !force {
        bail!(
            "{}: exists and is not a file this program exported; choose another --out, or pass --force to replace it",
            out.display()
        );
    }
    Ok(())
}

pub fn run(mut args: Args) -> Result<i32> {
    if args.format != "gguf" {
        bail!("--format must be gguf, got {:?}", args.format);
    }
    let to = matrix_type(&args.to)?;
    args.model = crate::hub::model_folder(&args.model)?;
    let _lock = OutputLock::acquire(&args.out).map_err(anyhow::Error::msg)?;
    check_out(&args.out, &args.model, args.force)?;
    let (model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    let name = args.model.file_stem().map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    let report = gpt::gguf::export(&model, &tokenizer, to, &name, &args.out)?;
    if args.json {
        print_json(&report)?;
    } else {
        outln!(
            "{}: {} {} with {} tensors ({} weights as {}, {} f32), {}",
            args.out.display(),
            report.architecture,
            args.format,
            report.tensors,
            report.matrix_parameters,
            report.matrix_type,
            report.f32_parameters,
            human_bytes(report.bytes)
        )?;
    }
    Ok(0)
}
