//! `scratchgpt quantize`: store a model's weights in fewer bits.
//!
//! Reads an f32 model folder and writes a new folder whose linear weights
//! and token embedding are f16, bf16, int8 (one scale per row) or int4 (one
//! scale per 32 weights). `generate`, `eval`, `chat`, `info` and
//! `bench generate` load the result like any model folder.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::output::{resolved, FolderKind};
use gpt::quant::{quantize_folder, Scheme};

use crate::common::{claim_output, human_bytes, outln, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// The f32 model folder to read, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// f16, bf16, int8 or int4.
    #[arg(long)]
    to: Scheme,
    /// The folder to write: new, empty, or holding a model (replaced whole
    /// once the new one is complete).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even if it holds something other than a model.
    #[arg(long)]
    force: bool,
    #[arg(long)]
    json: bool,
}

pub fn run(mut args: Args) -> Result<i32> {
    args.model = crate::hub::model_folder(&args.model)?;
    if gpt::gguf::is_model_file(&args.model) {
        bail!(
            "{}: quantize reads a model folder; a GGUF file is quantized by exporting its f32 source with `export --format gguf --to q8_0|q4_0`",
            args.model.display()
        );
    }
    if resolved(&args.model)? == resolved(&args.out)? {
        bail!("{}: is the model being quantized; write the quantized model to another folder", args.out.display());
    }
    let allow = [FolderKind::Missing, FolderKind::Empty, FolderKind::Model];
    let out = claim_output(&args.out, &[&args.model], &allow, args.force, "")?;
    // A source a crash left beside its name mid-swap is read where it is.
    let source = gpt::atomic::readable_dir(&args.model, gpt::weights::hf::CONFIG_FILE);
    let report = quantize_folder(&source, args.to, &out.dir, args.force)?;
    if args.json {
        print_json(&report)?;
    } else {
        outln!(
            "{}: {} weights as {}, {} kept f32; model.safetensors {} → {} ({:.1}%); relative RMS rounding error {:.2e}",
            args.out.display(),
            report.quantized_parameters,
            report.scheme,
            report.float_parameters,
            human_bytes(report.source_bytes),
            human_bytes(report.output_bytes),
            100.0 * report.output_bytes as f64 / report.source_bytes as f64,
            report.relative_rms_error
        )?;
    }
    Ok(0)
}
