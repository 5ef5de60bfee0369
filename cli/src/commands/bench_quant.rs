//! `scratchgpt bench quant`: what each precision saves and what it costs.
//!
//! For one or two models — one trained here (by default the tiny preset,
//! trained for a few minutes on the built-in stories) and a randomly
//! initialised GPT-2 small — it writes the f32 folder, quantizes it to f16,
//! bf16, int8 and int4, and measures each folder side by side in one run:
//! - file size of `model.safetensors`, and its share of the f32 file;
//! - resident memory (`VmRSS`) with the model loaded and at the end of
//!   decoding, and the exact bytes of the weights as held;
//! - greedy decode speed with the KV cache at batch 1, and its ratio to f32;
//! - perplexity on held-out text (built-in stories from a seed training
//!   never saw), and its change from f32.
//!
//! Each measurement runs the ordinary commands in a fresh process
//! (`bench generate --model DIR --json`, `eval --model DIR --json`), so the
//! memory figure is one model's alone and the numbers are what a user of
//! those commands would see. Decode timings alternate between precisions
//! for `--rounds` rounds (each the median of `--repeats` generations) and
//! keep each one's median, so a machine busy with other work slows all of
//! them alike.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use gpt::model::{GPTConfig, GPTModel};
use gpt::quant::memory::weight_bytes;
use gpt::quant::{quantize_folder, Scheme};
use serde::Serialize;
use serde_json::Value;
use tensor::Generator;

use super::bench::median;
use crate::common::{human_bytes, outln, print_json};

/// The seed of the held-out stories (training uses `DEFAULT_SEED`).
const HELD_OUT_SEED: u64 = 7;

#[derive(clap::Args)]
pub struct QuantArgs {
    /// A trained f32 model folder (default: train the tiny preset on the
    /// built-in stories first).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training steps for that default model.
    #[arg(long, default_value_t = 200)]
    train_steps: usize,
    /// Also measure a randomly initialised model of this preset, with
    /// GPT-2's 50,257-token vocabulary ("none" to skip).
    #[arg(long, default_value = "gpt2-small")]
    random_preset: String,
    /// Held-out text for perplexity (default: built-in stories from a seed
    /// training never saw).
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Bytes of built-in held-out stories.
    #[arg(long, default_value_t = 20_000)]
    eval_bytes: usize,
    /// Tokens of context per evaluation window (at most the model's).
    #[arg(long, default_value_t = 256)]
    eval_context: usize,
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Decode timings per precision, taken in alternation.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Generations per timing (their median is the round's figure).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Worker threads for every measurement (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Keep the model folders here (default: a temporary folder, removed).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    precision: String,
    file_bytes: u64,
    /// file_bytes ÷ the f32 file's.
    file_share: f64,
    /// Exact bytes of the weights as held in memory.
    weight_bytes: Option<u64>,
    /// Resident memory with the model loaded, at the last token decoded,
    /// and at the peak (loading included).
    rss_loaded_bytes: Option<u64>,
    rss_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    tokens_per_s: f64,
    /// tokens_per_s ÷ f32's, measured in the same rounds.
    speedup: f64,
    perplexity: f64,
    /// perplexity ÷ f32's − 1.
    perplexity_change: f64,
}

#[derive(Serialize)]
struct ModelReport {
    name: String,
    parameters: usize,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Report {
    /// The SIMD instruction set the quantized kernels used.
    kernels: String,
    threads: usize,
    models: Vec<ModelReport>,
}

pub fn run(args: QuantArgs) -> Result<i32> {
    let counts = [args.rounds, args.repeats, args.prompt_tokens, args.new_tokens, args.eval_context];
    if counts.contains(&0) {
        bail!("--rounds, --repeats, --prompt-tokens, --new-tokens and --eval-context must be at least 1");
    }
    super::bench::check_threads(args.threads)?;
    let random = match args.random_preset.as_str() {
        "none" => None,
        name => Some(GPTConfig::preset(name).with_context(|| format!("--random-preset: unknown preset {name:?}"))?),
    };
    let temporary = args.work_dir.is_none();
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("scratchgpt-bench-quant-{}", std::process::id())));
    std::fs::create_dir_all(&work).with_context(|| format!("{}: cannot create", work.display()))?;
    let result = run_in(&args, random, &work);
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
    }
    let report = result?;
    if args.json {
        print_json(&report)?;
    } else {
        print_table(&report)?;
    }
    Ok(0)
}

fn run_in(args: &QuantArgs, random: Option<GPTConfig>, work: &Path) -> Result<Report> {
    let eval_data = match &args.eval_data {
        Some(path) => path.clone(),
        None => {
            let path = work.join("held-out.txt");
            std::fs::write(&path, gpt::data::generate_stories(HELD_OUT_SEED, args.eval_bytes))?;
            path
        }
    };
    let mut models = Vec::new();
    let (trained, name) = match &args.model {
        Some(dir) => (dir.clone(), dir.display().to_string()),
        None => (train_tiny(args, work)?, format!("tiny, trained {} steps on the built-in stories", args.train_steps)),
    };
    models.push(measure(args, &name, &trained, work, &eval_data)?);
    if let Some(mut config) = random {
        eprintln!("writing a randomly initialised {} …", args.random_preset);
        config.vocab_size = 50257; // the GPT-2 tokenizer the folder falls back to
        config.drop_rate = 0.0;
        let dir = work.join(format!("{}-random", args.random_preset));
        let model = GPTModel::new(config, &mut Generator::seed(0));
        gpt::weights::save_model(&model, &dir, None)?;
        drop(model);
        let name = format!("{}, random init", args.random_preset);
        models.push(measure(args, &name, &dir, work, &eval_data)?);
    }
    let threads = args.threads.unwrap_or_else(rayon::current_num_threads);
    Ok(Report { kernels: format!("{:?}", gpt::quant::Isa::detect()).to_lowercase(), threads, models })
}

/// The ordinary binary, run as a child with the same thread setting.
fn scratchgpt(args: &QuantArgs, cmd: &[&str]) -> Result<Value> {
    let exe = std::env::current_exe().context("cannot find the scratchgpt binary")?;
    let mut child = Command::new(exe);
    child.args(cmd);
    if let Some(n) = args.threads {
        child.env("RAYON_NUM_THREADS", n.to_string());
    }
    let out = child.output().context("cannot run the scratchgpt binary")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("`scratchgpt {}` failed: {}", cmd.join(" "), stderr.lines().last().unwrap_or("").trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("`scratchgpt {}` printed no JSON", cmd.join(" ")))
}

fn train_tiny(args: &QuantArgs, work: &Path) -> Result<PathBuf> {
    let out = work.join("tiny-trained");
    eprintln!("training the tiny preset for {} steps on the built-in stories …", args.train_steps);
    let steps = args.train_steps.to_string();
    // The work folder is the bench's own: a rerun replaces its earlier run.
    let cmd = ["train", "--steps", &steps, "--eval-every", "0", "--sample-every", "0", "--force", "--json"];
    scratchgpt(args, &[&cmd[..], &["--out", out.to_str().context("a UTF-8 work folder")?]].concat())?;
    Ok(out)
}

fn number(v: &Value, key: &str) -> Result<f64> {
    v[key].as_f64().with_context(|| format!("no \"{key}\" in {v}"))
}

fn file_size(dir: &Path) -> Result<u64> {
    let path = dir.join(gpt::weights::hf::WEIGHTS_FILE);
    Ok(std::fs::metadata(&path).with_context(|| format!("{}: cannot read", path.display()))?.len())
}

/// Quantizes `f32_dir` every way and measures all five folders.
fn measure(args: &QuantArgs, name: &str, f32_dir: &Path, work: &Path, eval_data: &Path) -> Result<ModelReport> {
    let config = gpt::weights::load_config(f32_dir)?;
    let tag = f32_dir.file_name().map_or("model".into(), |n| n.to_string_lossy().into_owned());
    let mut folders: Vec<(Option<Scheme>, PathBuf)> = vec![(None, f32_dir.to_path_buf())];
    for scheme in Scheme::ALL {
        let out = work.join(format!("{tag}-{scheme}"));
        eprintln!("{name}: quantizing to {scheme} …");
        quantize_folder(f32_dir, scheme, &out, false)?;
        folders.push((Some(scheme), out));
    }
    let dir_str = |d: &Path| d.to_str().map(str::to_string).context("a UTF-8 folder name");
    let context = args.eval_context.min(config.context_length).to_string();
    let data = dir_str(eval_data)?;
    let mut perplexity = Vec::new();
    for (scheme, dir) in &folders {
        eprintln!("{name}: perplexity of {} …", scheme.map_or("f32", Scheme::name));
        let v =
            scratchgpt(args, &["eval", "--model", &dir_str(dir)?, "--data", &data, "--context", &context, "--json"])?;
        perplexity.push(number(&v, "perplexity")?);
    }
    let (prompt, new) = (args.prompt_tokens.to_string(), args.new_tokens.to_string());
    let repeats = args.repeats.to_string();
    let mut speeds = vec![Vec::new(); folders.len()];
    let mut memory = vec![(None, None, None); folders.len()];
    for round in 0..args.rounds {
        eprintln!("{name}: decode timing, round {} of {} …", round + 1, args.rounds);
        for (i, (_, dir)) in folders.iter().enumerate() {
            let v = scratchgpt(
                args,
                &[
                    "bench",
                    "generate",
                    "--model",
                    &dir_str(dir)?,
                    "--prompt-tokens",
                    &prompt,
                    "--new-tokens",
                    &new,
                    "--repeats",
                    &repeats,
                    "--json",
                ],
            )?;
            speeds[i].push(number(&v, "tokens_per_s")?);
            memory[i] = (v["rss_loaded_bytes"].as_u64(), v["rss_bytes"].as_u64(), v["peak_rss_bytes"].as_u64());
        }
    }
    let speeds: Vec<f64> = speeds.into_iter().map(median).collect();
    let base_file = file_size(f32_dir)? as f64;
    let mut rows = Vec::new();
    for (i, (scheme, dir)) in folders.iter().enumerate() {
        let file_bytes = file_size(dir)?;
        rows.push(Row {
            precision: scheme.map_or("f32", Scheme::name).to_string(),
            file_bytes,
            file_share: file_bytes as f64 / base_file,
            weight_bytes: weight_bytes(&config, *scheme),
            rss_loaded_bytes: memory[i].0,
            rss_bytes: memory[i].1,
            peak_rss_bytes: memory[i].2,
            tokens_per_s: speeds[i],
            speedup: speeds[i] / speeds[0],
            perplexity: perplexity[i],
            perplexity_change: perplexity[i] / perplexity[0] - 1.0,
        });
    }
    Ok(ModelReport { name: name.to_string(), parameters: config.num_parameters(), rows })
}

fn print_table(report: &Report) -> Result<()> {
    outln!("quantized kernels: {}, {} threads", report.kernels, report.threads)?;
    for m in &report.models {
        outln!()?;
        outln!("{} ({:.1}M parameters)", m.name, m.parameters as f64 / 1e6)?;
        outln!(
            "{:<9} {:>11} {:>7} {:>11} {:>11} {:>11} {:>9} {:>7} {:>11} {:>8}",
            "precision",
            "file",
            "of f32",
            "weights",
            "loaded",
            "decoding",
            "tokens/s",
            "× f32",
            "perplexity",
            "vs f32"
        )?;
        for r in &m.rows {
            let opt = |b: Option<u64>| b.map_or_else(|| "n/a".to_string(), human_bytes);
            outln!(
                "{:<9} {:>11} {:>6.1}% {:>11} {:>11} {:>11} {:>9.1} {:>6.2}× {:>11.3} {:>+7.2}%",
                r.precision,
                human_bytes(r.file_bytes),
                100.0 * r.file_share,
                opt(r.weight_bytes),
                opt(r.rss_loaded_bytes),
                opt(r.rss_bytes),
                r.tokens_per_s,
                r.speedup,
                r.perplexity,
                100.0 * r.perplexity_change
            )?;
        }
    }
    Ok(())
}
