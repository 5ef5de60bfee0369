//! `scratchgpt bench generate`: greedy decoding with the KV cache at batch
//! 1, on f32 or quantized weights (a folder, or a preset quantized in
//! memory with `--quant`).
//!
//! Two speeds, medians over the timed repetitions: prompt processing (the
//! prompt's tokens through one forward that fills the cache, and the first
//! new token) and generation (one token per forward after it). Decoding one
//! token reads every weight once, so the report also gives the bytes a step
//! reads, that times tokens/s as GB/s, and the CPU's measured read
//! bandwidth beside it; and the resident memory with the model loaded and
//! at the last token.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use autograd::nn::Module;
use gpt::generate::{generate, GenerateOptions};
use gpt::model::GPTModel;
use gpt::quant::memory::{decode_bytes_per_token, weight_bytes};
use gpt::quant::{quantize_model, Scheme};
use serde::Serialize;
use tensor::Generator;

use super::bench::{median, with_threads, ModelShape, MAX_TOKENS};
use crate::common::{human_bytes, outln, print_json};
use crate::resident::{resident, Resident};

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    shape: ModelShape,
    /// A model folder (f32 or quantized), or a Hugging Face Hub model, ORG/NAME[@REVISION],
    /// instead of a randomly initialised preset.
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// Quantize the f32 model in memory first: f16, bf16, int8 or int4.
    #[arg(long)]
    quant: Option<Scheme>,
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 100)]
    new_tokens: usize,
    /// Timed repetitions.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct GenerateReport {
    tokens_per_s: f64,
    ms_per_token: f64,
    /// Prompt processing: the prompt's tokens over the time to run it
    /// through the model and pick the first new token (one forward of all
    /// of them, filling the KV cache), median of the repeats.
    prompt_tokens_per_s: f64,
    /// "f32", or the quantization of the weights.
    precision: String,
    /// Resident memory: with the model loaded, before decoding; at the last
    /// token decoded (the longest KV cache); and the process's peak
    /// (loading included). Absent where the OS does not say.
    rss_loaded_bytes: Option<u64>,
    rss_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    /// Of the memory resident with the model loaded, how much is on 2 MiB
    /// pages (`tensor::huge_pages`); absent where the OS does not say.
    huge_page_loaded_bytes: Option<u64>,
    /// Bytes a decoding step reads (weights and KV cache, at the average
    /// cache length of the run), and that times tokens/s in GB/s.
    bytes_per_token: Option<u64>,
    gb_per_s: Option<f64>,
    /// How fast the CPU's threads read memory at all (a parallel sum over
    /// as many bytes as the weights), for comparison; absent on a GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    read_gb_per_s: Option<f64>,
}

pub fn run(mut args: GenerateArgs) -> Result<i32> {
    let device = crate::common::device(&args.device)?;
    if args.prompt_tokens == 0 || args.new_tokens == 0 || args.repeats == 0 {
        bail!("--prompt-tokens, --new-tokens and --repeats must be at least 1");
    }
    let Some(total) = args.prompt_tokens.checked_add(args.new_tokens).filter(|&n| n <= MAX_TOKENS) else {
        bail!("--prompt-tokens + --new-tokens must be at most {MAX_TOKENS}");
    };
    if let Some(model) = &args.model {
        args.model = Some(crate::hub::model_folder(model)?);
    }
    let report = with_threads(args.threads, || {
        let mut model = match &args.model {
            Some(dir) => gpt::weights::load_model(dir)?,
            None => GPTModel::new(args.shape.config(total)?, &mut Generator::seed(0)),
        };
        if let Some(scheme) = args.quant {
            if let Some(existing) = gpt::quant::scheme_of(&model) {
                let dir = args.model.as_ref().map_or(String::new(), |d| format!("{}: ", d.display()));
                bail!("{dir}the model is already quantized ({existing}); drop --quant {scheme}");
            }
            model = quantize_model(&model, scheme)?;
        }
        // Buffers freed while loading or converting wait in the tensor pool
        // for reuse; release them so the memory figure is the model's.
        tensor::pool::clear();
        let loaded = resident().map(|r| r.rss_bytes);
        let loaded_on_huge_pages = tensor::huge_pages::resident_huge_page_bytes();
        if total > model.config.context_length {
            bail!(
                "{} prompt + {} new tokens exceed the context length {}",
                args.prompt_tokens,
                args.new_tokens,
                model.config.context_length
            );
        }
        model.to_device(device)?;
        let mut gen = Generator::seed(1);
        let prompt: Vec<u32> = (0..args.prompt_tokens).map(|_| gen.below(model.config.vocab_size) as u32).collect();
        let opts = GenerateOptions { max_new_tokens: args.new_tokens, ..Default::default() };
        let mut times = Vec::new();
        let mut prompt_times = Vec::new();
        let mut decoding = Resident::default();
        let prompt_only = GenerateOptions { max_new_tokens: 1, ..Default::default() };
        for _ in 0..args.repeats {
            let start = Instant::now();
            generate(&model, &prompt, &prompt_only, |_| {});
            prompt_times.push(start.elapsed().as_secs_f64());
            let start = Instant::now();
            let mut count = 0;
            // Generation is timed from the first new token (the prompt's
            // forward done) to the last: one forward per token, as
            // llama.cpp's figure is.
            let (mut first_token_at, mut last_token_at) = (start, start);
            let new = generate(&model, &prompt, &opts, |_| {
                count += 1;
                last_token_at = Instant::now();
                if count == 1 {
                    first_token_at = last_token_at;
                }
                // Sampled at the last token, when the KV cache is longest:
                // reading /proc on every token would slow small models.
                if count == args.new_tokens {
                    if let Some(r) = resident() {
                        decoding.rss_bytes = decoding.rss_bytes.max(r.rss_bytes);
                    }
                }
            });
            times.push(match new.len() {
                // One new token: the prompt's forward is all there is.
                0 | 1 => start.elapsed().as_secs_f64(),
                n => (last_token_at - first_token_at).as_secs_f64() / (n - 1) as f64,
            });
        }
        let per_token = median(times);
        // The kernel updates the high-water mark lazily; it is at least
        // what was seen resident.
        let peak = resident().map(|r| r.peak_bytes.max(decoding.rss_bytes));
        // Decoding is memory-bound: count what a step reads, and (after the
        // memory figures above) time a plain read of as many bytes.
        let scheme = gpt::quant::scheme_of(&model);
        let average_cached = args.prompt_tokens + (args.new_tokens - 1) / 2;
        let bytes_per_token = decode_bytes_per_token(&model.config, scheme, average_cached);
        let read_gb_per_s = match (device.is_cuda(), weight_bytes(&model.config, scheme)) {
            (false, Some(bytes)) => Some(tensor::device::cpu_read_bandwidth(bytes as usize) / 1e9),
            _ => None,
        };
        Ok(GenerateReport {
            tokens_per_s: 1.0 / per_token,
            ms_per_token: per_token * 1e3,
            prompt_tokens_per_s: args.prompt_tokens as f64 / median(prompt_times),
            precision: scheme.map_or("f32", Scheme::name).to_string(),
            rss_loaded_bytes: loaded,
            rss_bytes: peak.map(|_| decoding.rss_bytes),
            peak_rss_bytes: peak,
            huge_page_loaded_bytes: loaded_on_huge_pages,
            bytes_per_token,
            gb_per_s: bytes_per_token.map(|bytes| bytes as f64 / per_token / 1e9),
            read_gb_per_s,
        })
    })?;
    if args.json {
        print_json(&report)?;
    } else {
        let on_huge_pages = match report.huge_page_loaded_bytes {
            Some(bytes) => format!(" ({} on 2 MiB pages)", human_bytes(bytes)),
            None => String::new(),
        };
        let memory = match (report.rss_loaded_bytes, report.rss_bytes, report.peak_rss_bytes) {
            (Some(loaded), Some(rss), Some(peak)) => format!(
                "; resident {} loaded{on_huge_pages}, {} decoding (peak {})",
                human_bytes(loaded),
                human_bytes(rss),
                human_bytes(peak)
            ),
            _ => String::new(),
        };
        let traffic = match (report.bytes_per_token, report.gb_per_s, report.read_gb_per_s) {
            (Some(bytes), Some(rate), Some(read)) => format!(
                "\nreads {} a token: {rate:.1} GB/s, {:.0}% of a plain parallel read of memory ({read:.1} GB/s)",
                human_bytes(bytes),
                100.0 * rate / read
            ),
            (Some(bytes), Some(rate), None) => format!("\nreads {} a token: {rate:.1} GB/s", human_bytes(bytes)),
            _ => String::new(),
        };
        outln!(
            "greedy decode with KV cache, batch 1, {} weights: {:.1} tokens/s ({:.2} ms/token); \
             prompt of {} tokens: {:.1} tokens/s{memory}{traffic}",
            report.precision,
            report.tokens_per_s,
            report.ms_per_token,
            args.prompt_tokens,
            report.prompt_tokens_per_s
        )?;
    }
    Ok(0)
}
