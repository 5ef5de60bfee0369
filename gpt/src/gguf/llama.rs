//! The Llama family in GGUF: llama.cpp's `llama`, `qwen2`, `qwen3`,
//! `qwen3moe`, `phi3`, `gemma`, `gemma2` and `gemma3` architectures (Mistral and Mixtral are
//! written as `llama`, as llama.cpp's converter does, Mixtral with its
//! experts counted in `llama.expert_count`; `arch::ExpertNames` says how
//! the experts' matrices are stacked; Phi-3's fused projections are named in `arch`, and its
//! `rope.dimension_count` may be less than the head: the part that turns;
//! Gemma's norms are stored as 1 + w, see `Architecture::norms_shifted`;
//! Gemma 2 and 3's caps, windows and query scale are `gguf::gemma`'s).
//!
//! The hyper-parameters sit under the architecture's prefix
//! (`llama.attention.head_count_kv`, `qwen3.rope.freq_base`, ...); the head
//! size, when it is not width ÷ heads (Qwen3), is `attention.key_length`.
//! A tied head has no `output.weight`: llama.cpp then uses the token table.
//!
//! The one twist is the rotary embedding's pairing. Hugging Face's Llama
//! rotates element j of a head with element j + D/2 (the two halves); the
//! `llama` architecture in llama.cpp rotates neighbours 2j and 2j + 1. So
//! the converter reorders the rows of `q_proj` and `k_proj` within each
//! head, row `i·D/2 + j` (half i, index j) becoming row `2j + i`, which
//! makes the two computations the same. [`to_interleaved`] is that
//! reordering and [`from_interleaved`] undoes it on loading. The `qwen2`
//! and `qwen3` architectures rotate halves as Hugging Face does and store
//! the rows as they are.
//!
//! Llama 3.x's `llama3` rope scaling has no metadata of its own: the
//! converter writes `rope_freqs.weight`, one factor per rotated pair
//! (`[D/2]`), that divides each rotary frequency (1 for fast ones, `factor`
//! for slow ones, a smooth blend between). [`llama3_rope_factors`] computes
//! them as the converter does; reading recovers the parameters from the
//! vector and checks every element (see [`llama3_scaling_of`]).

use tensor::rope::RopeScaling;

use super::arch::{self, Architecture};
use super::error::GgufError;
use super::reader::GgufFile;
use super::value::Value;
use super::writer::GgufWriter;
use crate::model::{GPTConfig, ModelType, MoeConfig, Rotary};

/// The position of each row of a `[heads·D, in]` query or key weight in
/// llama.cpp's `llama` order: row `h·D + i·D/2 + j` of Hugging Face's
/// layout goes to `h·D + 2j + i`.
fn interleaved_row(row: usize, head_dim: usize) -> usize {
    let (head, within) = (row / head_dim, row % head_dim);
    let half = head_dim / 2;
    let (i, j) = (within / half, within % half);
    head * head_dim + 2 * j + i
}

/// Rows of `bytes` (`rows` equal rows, any storage type) moved from
/// Hugging Face's order to llama.cpp's (see the module doc).
pub fn to_interleaved(bytes: &[u8], rows: usize, head_dim: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0u8; bytes.len()];
    for (row, src) in bytes.chunks_exact(row_bytes).enumerate() {
        let to = interleaved_row(row, head_dim);
        out[to * row_bytes..(to + 1) * row_bytes].copy_from_slice(src);
    }
    out
}

/// The inverse of [`to_interleaved`].
pub fn from_interleaved(bytes: &[u8], rows: usize, head_dim: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0u8; bytes.len()];
    for row in 0..rows {
        let from = interleaved_row(row, head_dim);
        out[row * row_bytes..(row + 1) * row_bytes].copy_from_slice(&bytes[from * row_bytes..(from + 1) * row_bytes]);
    }
    out
}

/// Whether our parameter `name` is a query or key weight or bias, whose
/// rows (a bias: its elements) a rope-interleaving architecture reorders.
pub fn is_rotated_weight(name: &str) -> bool {
    [".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.q_proj.bias", ".self_attn.k_proj.bias"]
        .iter()
        .any(|end| name.ends_with(end))
}

/// Whether our parameter `name` is an RMSNorm weight (which Gemma's
/// architecture stores as 1 + w), by the converter's test.
pub fn is_norm_weight(name: &str) -> bool {
    name.ends_with("norm.weight")
}

/// Writes the hyper-parameters of a Llama-family `config`, or says why
/// llama.cpp could not run it the same way.
pub fn write_hyperparameters(w: &mut GgufWriter, arch: &Architecture, config: &GPTConfig) -> Result<(), String> {
    let Some(Rotary { theta, scaling, partial }) = config.rope.clone() else {
        return Err("a Llama-family model without rotary embeddings cannot be written".into());
    };
    // Phi-3 (Phi-4 mini) may turn only the first part of each head; its
    // `rope.dimension_count` is that part, as llama.cpp's `n_rot`.
    let rotated = (config.head_dim() as f64 * partial).floor() as usize;
    if partial != 1.0 && arch.name != arch::PHI3.name {
        return Err(format!(
            "the model turns {partial} of each head (partial rotary); llama.cpp's {} turns all",
            arch.name
        ));
    }
    let gemma_2_or_3 = arch.name == arch::GEMMA2.name || arch.name == arch::GEMMA3.name;
    if gemma_2_or_3 {
        super::gemma::write_options(w, arch, config)?;
    } else if let Some(window) = config.sliding_window.filter(|&w| w < config.context_length) {
        return Err(format!(
            "the model attends within a sliding window of {window}; llama.cpp's {} attends to the whole context",
            arch.name
        ));
    }
    if config.out_bias || config.mlp_bias {
        return Err("llama.cpp's Llama family has no attention-output or MLP biases".into());
    }
    let u32_of = |n: usize| Value::U32(n as u32);
    w.set(&arch::key(arch, "context_length"), u32_of(config.context_length));
    w.set(&arch::key(arch, "embedding_length"), u32_of(config.emb_dim));
    w.set(&arch::key(arch, "feed_forward_length"), u32_of(config.mlp_width()));
    w.set(&arch::key(arch, "block_count"), u32_of(config.n_layers));
    w.set(&arch::key(arch, "attention.head_count"), u32_of(config.n_heads));
    w.set(&arch::key(arch, "attention.head_count_kv"), u32_of(config.kv_heads()));
    w.set(&arch::key(arch, "attention.layer_norm_rms_epsilon"), Value::F32(config.layer_norm_eps as f32));
    w.set(&arch::key(arch, "rope.freq_base"), Value::F32(theta as f32));
    w.set(&arch::key(arch, "rope.dimension_count"), u32_of(rotated));
    if let Some(moe) = &config.moe {
        write_experts(w, arch, moe)?;
    }
    if config.head_size.is_some_and(|d| d * config.n_heads != config.emb_dim) {
        w.set(&arch::key(arch, "attention.key_length"), u32_of(config.head_dim()));
        w.set(&arch::key(arch, "attention.value_length"), u32_of(config.head_dim()));
    }
    match scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            w.set(&arch::key(arch, "rope.scaling.type"), Value::String("linear".into()));
            w.set(&arch::key(arch, "rope.scaling.factor"), Value::F32(factor as f32));
        }
        RopeScaling::LongRope { .. } => return Err("longrope rope scaling has no GGUF form here".into()),
        RopeScaling::Llama3 { low_freq_factor, high_freq_factor, original_max, .. } => {
            if arch.name != arch::LLAMA.name {
                return Err(format!("llama.cpp's {} reads no rope_freqs.weight, so llama3 rope scaling", arch.name)
                    + " cannot be written for it");
            }
            if (low_freq_factor, high_freq_factor) != PUBLISHED_LLAMA3_FREQ_FACTORS {
                return Err(format!(
                    "llama3 rope scaling with low_freq_factor {low_freq_factor} and high_freq_factor \
                     {high_freq_factor} is not written: GGUF keeps only rope_freqs.weight, read back with Llama \
                     3's published 1 and 4"
                ));
            }
            // Not read by llama.cpp outside YaRN; it lets the reader check
            // the factors against the context they were made for.
            w.set(&arch::key(arch, "rope.scaling.original_context_length"), u32_of(original_max));
        }
        RopeScaling::Dynamic { .. } => {
            return Err(format!("{scaling:?} rope scaling has no GGUF form here (none, linear and llama3 do)"));
        }
    }
    Ok(())
}

/// A mixture of experts' hyper-parameters, or why llama.cpp would run it
/// otherwise: its `llama` and `qwen3moe` route every block, always
/// renormalise the k chosen probabilities, and take the experts' width
/// from `feed_forward_length` (`llama`, which Mixtral's config ensures)
/// or `expert_feed_forward_length` (`qwen3moe`).
fn write_experts(w: &mut GgufWriter, arch: &Architecture, moe: &MoeConfig) -> Result<(), String> {
    if !moe.norm_topk_prob {
        return Err(format!(
            "the model weights its experts by unnormalised probabilities (norm_topk_prob false); llama.cpp's {} \
             renormalises them",
            arch.name
        ));
    }
    if !moe.dense_layers.is_empty() || moe.sparse_step != 1 {
        return Err(format!(
            "the model has dense layers among its mixtures of experts (mlp_only_layers {:?}, decoder_sparse_step \
             {}); llama.cpp's {} routes every layer",
            moe.dense_layers, moe.sparse_step, arch.name
        ));
    }
    let u32_of = |n: usize| Value::U32(n as u32);
    w.set(&arch::key(arch, "expert_count"), u32_of(moe.n_experts));
    w.set(&arch::key(arch, "expert_used_count"), u32_of(moe.top_k));
    if arch.name == arch::QWEN3MOE.name {
        w.set(&arch::key(arch, "expert_feed_forward_length"), u32_of(moe.expert_width));
    }
    Ok(())
}

/// The mixture of experts a file describes, `None` for a dense model.
/// Training's options, which GGUF does not keep, are the defaults
/// `config.json` gets (no load-balancing loss, its weight 0.001).
fn experts_of(file: &GgufFile, arch: &Architecture, feed_forward: usize) -> Result<Option<MoeConfig>, GgufError> {
    let n_experts = optional(file, arch, "expert_count")?.filter(|&n| n > 0);
    let Some(n_experts) = n_experts else {
        if arch.experts.is_some_and(|_| arch.name != arch::LLAMA.name) {
            return Err(file.error(format!("{} is missing", arch::key(arch, "expert_count"))));
        }
        return Ok(None);
    };
    if arch.experts.is_none() {
        return Err(file.error(arch::not_imported(&format!("architecture {:?} with experts", arch.name))));
    }
    let expert_width = match arch.name == arch::LLAMA.name {
        true => feed_forward,
        false => required(file, arch, "expert_feed_forward_length")?,
    };
    Ok(Some(MoeConfig::new(n_experts, required(file, arch, "expert_used_count")?, expert_width)))
}

/// The tensor holding llama3 rope scaling's per-frequency factors.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Llama 3's `low_freq_factor` and `high_freq_factor`, the values every
/// published Llama 3.x model uses.
const PUBLISHED_LLAMA3_FREQ_FACTORS: (f64, f64) = (1.0, 4.0);

/// The original context a file's factors are tried against when its
/// metadata names none: the converter's default.
const DEFAULT_LLAMA3_ORIGINAL_CONTEXT: usize = 8192;

/// `rope_freqs.weight` for a head of `head_dim` with base `theta`, as
/// llama.cpp's converter computes it in f32: for each frequency
/// `f = 1 / theta^(2i/D)` of wavelength `2π / f`, 1 when the wavelength is
/// under `original / high`, `factor` when over `original / low`, else
/// `1 / ((1 - s) / factor + s)` with `s = (original / wavelength - low) /
/// (high - low)`. llama.cpp divides frequency i by element i, which gives
/// Hugging Face's llama3 frequencies.
pub fn llama3_rope_factors(head_dim: usize, theta: f64, scaling: &RopeScaling) -> Option<Vec<f32>> {
    let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max } = *scaling else {
        return None;
    };
    let (factor, low, high, old) =
        (factor as f32, low_freq_factor as f32, high_freq_factor as f32, original_max as f32);
    let (low_wavelen, high_wavelen) = (old / low, old / high);
    let factors = (0..head_dim / 2)
        .map(|i| {
            let freq = 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f32::consts::PI / freq;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                1.0 / ((1.0 - smooth) / factor + smooth)
            }
        })
        .collect();
    Some(factors)
}

/// The llama3 scaling whose factors are `stored`: `factor` is the largest
/// element, `low_freq_factor` and `high_freq_factor` Llama 3's published
/// 1 and 4, the original context the metadata's (else 8192); every element
/// must then match the converter's within f32 rounding, or the error names
/// the first that does not.
pub fn llama3_scaling_of(
    stored: &[f32],
    head_dim: usize,
    theta: f64,
    original_context: Option<usize>,
) -> Result<RopeScaling, String> {
    if stored.len() != head_dim / 2 {
        return Err(format!(
            "{ROPE_FREQS} has {} values; a head of {head_dim} turns {} frequencies",
            stored.len(),
            head_dim / 2
        ));
    }
    let largest = stored.iter().copied().fold(f32::NAN, f32::max);
    if !(largest.is_finite() && largest >= 1.0) {
        return Err(format!("{ROPE_FREQS} holds no factor of at least 1 (largest {largest}); llama3 scaling's are"));
    }
    // The shortest decimal that is this f32 (8 for 8.0, 1.1 for 1.1f32).
    let factor: f64 = largest.to_string().parse().expect("an f32 prints as a number");
    let original_max = original_context.unwrap_or(DEFAULT_LLAMA3_ORIGINAL_CONTEXT);
    let (low_freq_factor, high_freq_factor) = PUBLISHED_LLAMA3_FREQ_FACTORS;
    let scaling = RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max };
    let expected = llama3_rope_factors(head_dim, theta, &scaling).expect("llama3 scaling");
    for (i, (&got, &want)) in stored.iter().zip(&expected).enumerate() {
        // Written so that a NaN fails too.
        if !((got - want).abs() <= 1e-5 * want.abs()) {
            return Err(format!(
                "{ROPE_FREQS}[{i}] is {got}, but llama3 scaling with factor {factor}, low 1, high 4 and original \
                 context {original_max} gives {want}"
            ));
        }
    }
    Ok(scaling)
}

/// A whole-number hyper-parameter `ARCH.suffix`, `None` when absent.
fn optional(file: &GgufFile, arch: &Architecture, suffix: &str) -> Result<Option<usize>, GgufError> {
    let key = arch::key(arch, suffix);
    let Some(value) = file.get(&key) else { return Ok(None) };
    let n = value.as_u64().ok_or_else(|| file.error(format!("{key} is {value:?}, not a whole number")))?;
    usize::try_from(n).map(Some).map_err(|_| file.error(format!("{key} is {n}, too large")))
}

fn required(file: &GgufFile, arch: &Architecture, suffix: &str) -> Result<usize, GgufError> {
    optional(file, arch, suffix)?.ok_or_else(|| file.error(format!("{} is missing", arch::key(arch, suffix))))
}

/// A real-valued hyper-parameter, as the decimal an f32 was written from.
pub(super) fn real(file: &GgufFile, arch: &Architecture, suffix: &str) -> Result<Option<f64>, GgufError> {
    let key = arch::key(arch, suffix);
    Ok(match file.get(&key) {
        Some(Value::F32(x)) => Some(x.to_string().parse().expect("an f32 prints as a number")),
        Some(v) => Some(v.as_f64().ok_or_else(|| file.error(format!("{key} is {v:?}, not a number")))?),
        None => None,
    })
}

/// The config a Llama-family file describes; the vocabulary is the token
/// table's row count, the head tied when there is no `output.weight`.
pub fn config_of(file: &GgufFile, arch: &Architecture) -> Result<GPTConfig, GgufError> {
    let emb_dim = required(file, arch, "embedding_length")?;
    let n_heads = required(file, arch, "attention.head_count")?;
    let table = file.tensor("token_embd.weight").ok_or_else(|| file.error("missing tensor token_embd.weight"))?;
    let feed_forward = required(file, arch, "feed_forward_length")?;
    // Mixtral is written as `llama` with its experts counted.
    let moe = experts_of(file, arch, feed_forward)?;
    let rotated = optional(file, arch, "rope.dimension_count")?;
    // Phi-3's rotated part may be less than the head.
    let head_dim = optional(file, arch, "attention.key_length")?.or(rotated.filter(|_| arch.name != arch::PHI3.name));
    let theta = real(file, arch, "rope.freq_base")?.unwrap_or(10_000.0);
    let rope_freqs = file.tensor(ROPE_FREQS);
    let scaling = match file.get(&arch::key(arch, "rope.scaling.type")).and_then(Value::as_str) {
        None | Some("none") if rope_freqs.is_some() => {
            if arch.name != arch::LLAMA.name {
                return Err(file.error(format!("{ROPE_FREQS} in a {} file is not read", arch.name)));
            }
            let stored = file.dequantize(rope_freqs.expect("checked"));
            let original = optional(file, arch, "rope.scaling.original_context_length")?;
            let d = head_dim.unwrap_or(emb_dim / n_heads.max(1));
            llama3_scaling_of(&stored, d, theta, original).map_err(|e| file.error(e))?
        }
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: real(file, arch, "rope.scaling.factor")?
                .ok_or_else(|| file.error(format!("{} is missing", arch::key(arch, "rope.scaling.factor"))))?,
        },
        Some(other) => return Err(file.error(format!("rope scaling type {other:?} is not supported (none, linear)"))),
    };
    if rope_freqs.is_some() && !matches!(scaling, RopeScaling::Llama3 { .. }) {
        return Err(file.error(format!("{ROPE_FREQS} comes with rope scaling type {scaling:?}; only llama3's has it")));
    }
    // Phi-3's 128k models scale by per-frequency factors of their own.
    if let Some(t) = ["rope_factors_long.weight", "rope_factors_short.weight"].iter().find(|t| file.tensor(t).is_some())
    {
        return Err(file.error(format!("{t} (longrope scaling) is not read")));
    }
    // The part of each head that turns (Phi-3 may turn less than all);
    // llama.cpp's Phi-3 ignores `attention.sliding_window`, and so do we.
    let full_head = head_dim.unwrap_or(emb_dim / n_heads.max(1));
    let partial = match rotated {
        Some(r) if arch.name == arch::PHI3.name && r != full_head => {
            if r == 0 || r > full_head || r % 2 != 0 {
                return Err(
                    file.error(format!("rope.dimension_count {r} is not an even part of the head of {full_head}"))
                );
            }
            // The config turns (head × partial) truncated, as transformers
            // does; r / head can land a hair below, so take the next float
            // up when it does (30 / 44 × 44 is 29.999…).
            let partial = r as f64 / full_head as f64;
            if (full_head as f64 * partial) as usize == r {
                partial
            } else {
                partial.next_up()
            }
        }
        _ => 1.0,
    };
    let model_type = match arch.name {
        "qwen2" => ModelType::Qwen2,
        "qwen3" => ModelType::Qwen3,
        "qwen3moe" => ModelType::Qwen3Moe,
        "llama" if moe.is_some() => ModelType::Mixtral,
        "phi3" => ModelType::Phi3,
        "gemma" => ModelType::Gemma,
        _ => ModelType::Llama,
    };
    let mut config = GPTConfig {
        model_type,
        vocab_size: table.shape()[0],
        context_length: required(file, arch, "context_length")?,
        n_layers: required(file, arch, "block_count")?,
        n_kv_heads: optional(file, arch, "attention.head_count_kv")?,
        head_size: head_dim.filter(|&d| d.checked_mul(n_heads) != Some(emb_dim)),
        intermediate_size: Some(feed_forward),
        layer_norm_eps: real(file, arch, "attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        rope: Some(Rotary { partial, ..Rotary::new(theta, scaling) }),
        qkv_bias: file.tensor("blk.0.attn_q.bias").is_some(),
        qk_norm: file.tensor("blk.0.attn_q_norm.weight").is_some(),
        tie_embeddings: file.tensor("output.weight").is_none(),
        moe,
        ..GPTConfig::llama(emb_dim, 1, n_heads, 1)
    };
    if arch.name == arch::GEMMA2.name || arch.name == arch::GEMMA3.name {
        super::gemma::read_options(file, arch, &mut config)?;
    }
    config.validate().map_err(|reason| file.error(reason))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama 3.1 8B's `rope_freqs.weight` (head 128, base 500000, factor 8,
    /// original context 8192) as the converter's formula gives it in torch.
    #[test]
    fn llama3_factors_are_the_converters_and_read_back_to_their_scaling() {
        let scaling =
            RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max: 8192 };
        let factors = llama3_rope_factors(128, 500_000.0, &scaling).unwrap();
        let middle = [
            1.2074838876724243,
            1.5534145832061768,
            2.026313066482544,
            2.6945300102233887,
            3.684253215789795,
            5.257327079772949,
        ];
        assert_eq!(factors.len(), 64);
        assert!(factors[..29].iter().all(|&f| f == 1.0) && factors[35..].iter().all(|&f| f == 8.0), "{factors:?}");
        for (got, want) in factors[29..35].iter().zip(middle) {
            assert!((got - want).abs() <= 1e-6 * want, "{got} vs {want}");
        }
        assert_eq!(llama3_scaling_of(&factors, 128, 500_000.0, None), Ok(scaling.clone()));
        assert_eq!(llama3_scaling_of(&factors, 128, 500_000.0, Some(8192)), Ok(scaling));
        // Another original context, a nudged element, the wrong length: refused.
        let err = llama3_scaling_of(&factors, 128, 500_000.0, Some(4096)).unwrap_err();
        assert!(err.contains("original context 4096") && !err.contains('\n'), "{err}");
        let mut nudged = factors.clone();
        nudged[31] *= 1.001;
        let err = llama3_scaling_of(&nudged, 128, 500_000.0, None).unwrap_err();
        assert!(err.starts_with("rope_freqs.weight[31] is "), "{err}");
        assert!(llama3_scaling_of(&factors[1..], 128, 500_000.0, None).unwrap_err().contains("has 63 values"));
        assert!(llama3_rope_factors(128, 500_000.0, &RopeScaling::None).is_none());
    }

    /// llama.cpp's converter: `w.reshape(heads, 2, D/2, in).swapaxes(1, 2)`.
    #[test]
    fn rows_interleave_as_the_converter_permutes_them() {
        // Two heads of size 4, one byte per row: halves (0 1 | 2 3) become
        // pairs (0 2 1 3).
        let rows: Vec<u8> = (0..8).collect();
        assert_eq!(to_interleaved(&rows, 8, 4), vec![0, 2, 1, 3, 4, 6, 5, 7]);
        // Head size 8: (0 1 2 3 | 4 5 6 7) -> 0 4 1 5 2 6 3 7; rows of 3 bytes move whole.
        let wide: Vec<u8> = (0..8).flat_map(|r| [r, r, r]).collect();
        let moved = to_interleaved(&wide, 8, 8);
        let firsts: Vec<u8> = moved.chunks(3).map(|c| c[0]).collect();
        assert_eq!(firsts, vec![0, 4, 1, 5, 2, 6, 3, 7]);
        assert_eq!(from_interleaved(&moved, 8, 8), wide);
    }
}
