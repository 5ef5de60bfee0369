//! `scratchgpt info`: what a model is made of and what it costs to hold.
//!
//! Memory for the weights is parameters × bytes per parameter: 4 for f32, 2
//! for f16/bf16, 1 for int8 and ½ for int4 (plus their scales). The usual
//! rule of thumb adds 20% for what else a running model holds; the exact
//! figure beside it counts what `quantize` actually stores. Training
//! with AdamW keeps two more f32 numbers per parameter (the moment
//! estimates) and a gradient, so f32 training needs about 16 bytes per
//! parameter before counting activations.
//!
//! Compute: training costs about 6 FLOPs per parameter per token (2 for
//! the forward's multiply-add, 4 for the backward), plus attention. With
//! `--train-tokens D` the total is divided by the GFLOP/s this machine
//! reached in `bench train`: GPT-3 (175B parameters, 300B tokens) is
//! 3·10²³ FLOPs, the `tiny` preset on a million tokens about 2·10¹³.

use std::path::PathBuf;

use anyhow::{bail, Result};
use autograd::nn::Module;
use gpt::model::{GPTConfig, PRESETS};
use serde::Serialize;

use crate::common::{human_bytes, outln, print_json};
use gpt::quant::memory::{kv_cache_bytes_per_token, rule_of_thumb_bytes, weight_bytes, RULE_OF_THUMB_OVERHEAD};
use gpt::quant::Scheme;

#[derive(clap::Args)]
pub struct Args {
    /// A model folder, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long, conflicts_with = "preset")]
    model: Option<PathBuf>,
    /// A preset: GPT-2's (gpt2-small … gpt2-xl, tiny, tiny-char, nano), a
    /// small one of each open family to train from scratch (nano-llama,
    /// nano-gemma, nano-phi3, nano-moe), or an open model's published
    /// configuration (llama-3.1-8b, qwen3-0.6b,
    /// gemma-3-1b, phi-3-mini-4k, mixtral-8x7b, …); an unknown name lists them.
    #[arg(long)]
    preset: Option<String>,
    /// Also show the compute and time to train on this many tokens
    /// (e.g. 300e9), at the speed `bench train` measured on this machine.
    #[arg(long)]
    train_tokens: Option<String>,
    #[arg(long)]
    json: bool,
}

fn parse_tokens(s: &str) -> Result<f64> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => bail!("--train-tokens {s:?} is not a positive number of tokens (e.g. 2e9)"),
    }
}

/// What training on `tokens` tokens costs: ≈ 6·N·D FLOPs plus attention.
#[derive(Serialize)]
struct TrainingCost {
    tokens: f64,
    flops: f64,
    /// The speed the estimate uses, and where it came from.
    gflops: f64,
    speed_source: String,
    threads: usize,
    seconds: f64,
}

#[derive(Serialize)]
struct Info {
    config: GPTConfig,
    parameters: usize,
    /// The parameters one token uses: with a mixture of experts, its k
    /// experts (and the router) of each routed layer; else all of them.
    active_parameters: usize,
    trainable_parameters: usize,
    embedding_parameters: usize,
    embedding_share: f64,
    /// Bytes for the weights alone, per storage format, exactly as stored
    /// (null where the format cannot hold this model).
    weight_bytes: Memory,
    /// Parameters × bytes per parameter × (1 + overhead): the rule of thumb.
    rule_of_thumb_bytes: Memory,
    rule_of_thumb_overhead: f64,
    /// The format of the model folder given, when it is quantized
    /// (`"int8"`, …).
    quantization: Option<&'static str>,
    /// Weights + gradients + AdamW's two f32 moments, training in f32.
    training_bytes_f32_adamw: u64,
    /// The KV cache in f32 and f16: per token, and with the whole context
    /// cached; and what full multi-head attention (one K/V head per query
    /// head) would take, to show grouped-query attention's saving.
    kv_cache: KvCacheBytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    training_cost: Option<TrainingCost>,
}

#[derive(Serialize)]
struct KvCacheBytes {
    per_token_f32: u64,
    per_token_f16: u64,
    full_context_f32: u64,
    full_context_f16: u64,
    /// With as many K/V heads as query heads, f16, full context.
    full_context_f16_multi_head: u64,
    /// The window every layer keeps, when every layer has one (`None`:
    /// some or all layers hold the whole context).
    window: Option<usize>,
    /// How many layers keep only a window.
    windowed_layers: usize,
}

impl KvCacheBytes {
    fn of(config: &GPTConfig) -> Self {
        let per_token = |bytes| kv_cache_bytes_per_token(config, bytes);
        // A sliding-window layer's rolling cache holds at most its window,
        // however long the text; a full layer the whole context. Layers
        // may differ (Gemma 2 and 3 alternate, Qwen2's first layers are
        // full), so the positions held are summed layer by layer.
        let ctx = config.context_length;
        let held_by_layer = |layer| config.window_of(layer).unwrap_or(ctx).min(ctx) as u64;
        let positions: u64 = (0..config.n_layers).map(held_by_layer).sum();
        let layers = config.n_layers.max(1) as u64;
        let all_windowed = (0..config.n_layers).all(|layer| config.window_of(layer).is_some());
        let window = config.sliding_window.filter(|_| all_windowed);
        let multi_head = GPTConfig { n_kv_heads: None, ..config.clone() };
        // Per token is every layer's K and V; divide by the layers to
        // weigh each layer by the positions it holds.
        let held = |per_token: u64| per_token / layers * positions;
        KvCacheBytes {
            per_token_f32: per_token(4),
            per_token_f16: per_token(2),
            full_context_f32: held(per_token(4)),
            full_context_f16: held(per_token(2)),
            full_context_f16_multi_head: held(kv_cache_bytes_per_token(&multi_head, 2)),
            window,
            windowed_layers: (0..config.n_layers).filter(|&layer| config.window_of(layer).is_some()).count(),
        }
    }
}

#[derive(Serialize)]
struct Memory {
    f32: Option<u64>,
    f16: Option<u64>,
    bf16: Option<u64>,
    int8: Option<u64>,
    int4: Option<u64>,
}

impl Memory {
    fn by_scheme(f: impl Fn(Option<Scheme>) -> Option<u64>) -> Self {
        Memory {
            f32: f(None),
            f16: f(Some(Scheme::F16)),
            bf16: f(Some(Scheme::BF16)),
            int8: f(Some(Scheme::Int8)),
            int4: f(Some(Scheme::Int4)),
        }
    }

    fn rows(&self) -> [(&'static str, Option<u64>); 5] {
        [("f32", self.f32), ("f16", self.f16), ("bf16", self.bf16), ("int8", self.int8), ("int4", self.int4)]
    }
}

pub fn run(mut args: Args) -> Result<i32> {
    if let Some(model) = &args.model {
        args.model = Some(crate::hub::model_folder(model)?);
    }
    let (config, trainable, quantization) = match (&args.model, &args.preset) {
        (Some(dir), None) => {
            let model = gpt::weights::load_model(dir)?;
            // A quantized model is for inference: nothing in it trains.
            let scheme = gpt::quant::scheme_of(&model);
            let trainable = if scheme.is_some() { 0 } else { model.num_trainable_parameters() };
            (model.config.clone(), Some(trainable), scheme.map(Scheme::name))
        }
        (None, Some(name)) => match GPTConfig::preset(name) {
            Some(c) => (c, None, None),
            None => bail!("unknown preset {name:?}; choose one of {}", PRESETS.join(", ")),
        },
        _ => bail!("give --model DIR or --preset NAME"),
    };
    let n = config.num_parameters();
    // The token table, the position table (learned positions only) and an
    // untied head.
    let positions = if config.rope.is_none() { config.context_length } else { 0 };
    let head = if config.tie_embeddings { 0 } else { config.vocab_size };
    let embedding = (config.vocab_size + positions + head) * config.emb_dim;
    let info = Info {
        weight_bytes: Memory::by_scheme(|s| weight_bytes(&config, s)),
        rule_of_thumb_bytes: Memory::by_scheme(|s| Some(rule_of_thumb_bytes(&config, s))),
        rule_of_thumb_overhead: RULE_OF_THUMB_OVERHEAD,
        quantization,
        parameters: n,
        active_parameters: config.active_parameters(),
        trainable_parameters: trainable.unwrap_or(n),
        embedding_parameters: embedding,
        embedding_share: embedding as f64 / n as f64,
        training_bytes_f32_adamw: 16 * n as u64,
        kv_cache: KvCacheBytes::of(&config),
        training_cost: args.train_tokens.as_deref().map(parse_tokens).transpose()?.map(|d| training_cost(&config, d)),
        config,
    };
    if args.json {
        print_json(&info)?;
        return Ok(0);
    }
    let c = &info.config;
    outln!(
        "{} architecture: {} layers, {} heads, width {}, context {}, vocabulary {}",
        c.model_type.name(),
        c.n_layers,
        c.n_heads,
        c.emb_dim,
        c.context_length,
        c.vocab_size
    )?;
    if !c.model_type.is_gpt2() {
        let window = c.sliding_window.map_or(String::new(), |w| format!(", sliding window {w}"));
        let mlp = if c.model_type.is_gemma() { "GeGLU" } else { "SwiGLU" };
        // A mixture of experts uses the dense width only on its dense layers,
        // if it has any (Qwen3-MoE's `mlp_only_layers`).
        let dense_layers = match &c.moe {
            Some(moe) => (0..c.n_layers).filter(|&layer| !moe.is_sparse(layer)).count(),
            None => c.n_layers,
        };
        let dense = match dense_layers {
            0 => String::new(),
            n if n == c.n_layers => format!("{mlp} width {}, ", c.mlp_width()),
            1 => format!("{mlp} width {} on its one dense layer, ", c.mlp_width()),
            n => format!("{mlp} width {} on {n} dense layers, ", c.mlp_width()),
        };
        outln!(
            "  {} key/value heads of size {}, {dense}{} head{window}",
            c.kv_heads(),
            c.head_dim(),
            if c.tie_embeddings { "tied" } else { "untied" }
        )?;
    }
    if let Some(moe) = &c.moe {
        outln!(
            "  mixture of experts: {} SwiGLU experts of width {}, {} per token{}",
            moe.n_experts,
            moe.expert_width,
            moe.top_k,
            if moe.norm_topk_prob { ", weights renormalised" } else { "" }
        )?;
    }
    outln!("parameters:           {:>15}  ({})", group(info.parameters), human_count(info.parameters))?;
    if c.moe.is_some() {
        let active = c.active_parameters();
        outln!("  active per token:   {:>15}  ({})", group(active), human_count(active))?;
    }
    outln!("  trainable:          {:>15}", group(info.trainable_parameters))?;
    let tied = if info.config.tie_embeddings { "(tied)" } else { "(+ head)" };
    outln!("  embeddings {tied:<8} {:>15}  ({:.1}% of the total)", group(embedding), 100.0 * info.embedding_share)?;
    if let Some(scheme) = info.quantization {
        outln!("this folder holds {scheme} weights (for inference only)")?;
    }
    outln!("weights in memory   rule of thumb¹         exact²")?;
    for ((name, thumb), (_, exact)) in info.rule_of_thumb_bytes.rows().into_iter().zip(info.weight_bytes.rows()) {
        let exact = exact.map_or_else(|| "n/a (width not a multiple of 32)".to_string(), human_bytes);
        let this = args.model.as_ref().map(|_| info.quantization.unwrap_or("f32"));
        let marker = if this == Some(name) { "  ← this folder" } else { "" };
        outln!("  {name:<9} {:>16} {:>16}{marker}", human_bytes(thumb.unwrap_or(0)), exact)?;
    }
    outln!(
        "  ¹ parameters × bytes per parameter (4, 2, 2, 1, ½) + {:.0}% for activations and buffers",
        100.0 * info.rule_of_thumb_overhead
    )?;
    outln!("  ² as `quantize` stores them: packed weights with their scales; f32 norms, biases, positions")?;
    outln!(
        "training in f32 with AdamW (weights + gradients + 2 moments = 16 B/param): {} plus activations",
        human_bytes(info.training_bytes_f32_adamw)
    )?;
    let kv = &info.kv_cache;
    let held = match (kv.window, kv.windowed_layers) {
        (Some(w), _) => format!("its window ({w}) cached"),
        (None, 0) => format!("the full context ({}) cached", c.context_length),
        (None, n) => format!(
            "the full context ({}) cached on {} layers and a window ({}) on {n}",
            c.context_length,
            c.n_layers - n,
            c.sliding_window.unwrap_or(c.context_length)
        ),
    };
    outln!(
        "KV cache: {} per token in f32, {} in f16; {} in f16 with {held}",
        human_bytes(kv.per_token_f32),
        human_bytes(kv.per_token_f16),
        human_bytes(kv.full_context_f16)
    )?;
    if c.kv_heads() < c.n_heads {
        outln!(
            "  grouped-query attention ({} K/V heads for {} query heads) saves {:.0}×: full multi-head would take {}",
            c.kv_heads(),
            c.n_heads,
            kv.full_context_f16_multi_head as f64 / kv.full_context_f16.max(1) as f64,
            human_bytes(kv.full_context_f16_multi_head)
        )?;
    }
    if let Some(cost) = &info.training_cost {
        outln!(
            "training on {:.3e} tokens: ≈ 6 × parameters × tokens + attention = {:.2e} FLOPs",
            cost.tokens,
            cost.flops
        )?;
        let how =
            if cost.speed_source == "brief" { "measured just now on `tiny`" } else { "from the last `bench train`" };
        outln!("  at {:.1} GFLOP/s ({how}, {} threads): {}", cost.gflops, cost.threads, human_duration(cost.seconds))?;
    }
    Ok(0)
}

fn training_cost(config: &GPTConfig, tokens: f64) -> TrainingCost {
    let speed = crate::train_speed::last().unwrap_or_else(crate::train_speed::measure_briefly);
    let flops = tokens * config.train_flops_per_token(config.context_length);
    TrainingCost {
        tokens,
        flops,
        gflops: speed.gflops,
        speed_source: speed.source,
        threads: speed.threads,
        seconds: flops / (speed.gflops * 1e9),
    }
}

fn human_duration(seconds: f64) -> String {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 60.0 * MINUTE;
    const DAY: f64 = 24.0 * HOUR;
    const YEAR: f64 = 365.25 * DAY;
    match seconds {
        s if s >= YEAR => format!("{:.1} years", s / YEAR),
        s if s >= DAY => format!("{:.1} days", s / DAY),
        s if s >= HOUR => format!("{:.1} hours", s / HOUR),
        s if s >= MINUTE => format!("{:.1} minutes", s / MINUTE),
        s => format!("{s:.1} seconds"),
    }
}

fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}
