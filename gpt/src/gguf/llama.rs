//! The Llama family in GGUF: llama.cpp's `llama`, `qwen2` and `qwen3`
//! architectures (Mistral is written as `llama`, as llama.cpp's converter
//! does).
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

use tensor::rope::RopeScaling;

use super::arch::{self, Architecture};
use super::error::GgufError;
use super::reader::GgufFile;
use super::value::Value;
use super::writer::GgufWriter;
use crate::model::{GPTConfig, ModelType, Rotary};

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

/// Writes the hyper-parameters of a Llama-family `config`, or says why
/// llama.cpp could not run it the same way.
pub fn write_hyperparameters(w: &mut GgufWriter, arch: &Architecture, config: &GPTConfig) -> Result<(), String> {
    let Some(Rotary { theta, scaling, partial }) = config.rope.clone() else {
        return Err("a Llama-family model without rotary embeddings cannot be written".into());
    };
    if partial != 1.0 {
        return Err(format!(
            "the model turns {partial} of each head (partial rotary); llama.cpp's {} turns all",
            arch.name
        ));
    }
    if let Some(window) = config.sliding_window.filter(|&w| w < config.context_length) {
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
    w.set(&arch::key(arch, "rope.dimension_count"), u32_of(config.head_dim()));
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
        RopeScaling::Dynamic { .. } | RopeScaling::Llama3 { .. } => {
            return Err(format!("{scaling:?} rope scaling has no GGUF form here yet (none and linear do)"));
        }
    }
    Ok(())
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
fn real(file: &GgufFile, arch: &Architecture, suffix: &str) -> Result<Option<f64>, GgufError> {
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
    if file.tensor("rope_freqs.weight").is_some() {
        return Err(file.error("rope_freqs.weight (llama3-style frequency factors) is not read yet"));
    }
    let scaling = match file.get(&arch::key(arch, "rope.scaling.type")).and_then(Value::as_str) {
        None | Some("none") => RopeScaling::None,
        Some("linear") => RopeScaling::Linear {
            factor: real(file, arch, "rope.scaling.factor")?
                .ok_or_else(|| file.error(format!("{} is missing", arch::key(arch, "rope.scaling.factor"))))?,
        },
        Some(other) => return Err(file.error(format!("rope scaling type {other:?} is not supported (none, linear)"))),
    };
    let head_dim = optional(file, arch, "attention.key_length")?.or(optional(file, arch, "rope.dimension_count")?);
    let model_type = match arch.name {
        "qwen2" => ModelType::Qwen2,
        "qwen3" => ModelType::Qwen3,
        _ => ModelType::Llama,
    };
    let config = GPTConfig {
        model_type,
        vocab_size: table.shape()[0],
        context_length: required(file, arch, "context_length")?,
        n_layers: required(file, arch, "block_count")?,
        n_kv_heads: optional(file, arch, "attention.head_count_kv")?,
        head_size: head_dim.filter(|&d| d.checked_mul(n_heads) != Some(emb_dim)),
        intermediate_size: Some(required(file, arch, "feed_forward_length")?),
        layer_norm_eps: real(file, arch, "attention.layer_norm_rms_epsilon")?.unwrap_or(1e-5),
        rope: Some(Rotary::new(real(file, arch, "rope.freq_base")?.unwrap_or(10_000.0), scaling)),
        qkv_bias: file.tensor("blk.0.attn_q.bias").is_some(),
        qk_norm: file.tensor("blk.0.attn_q_norm.weight").is_some(),
        tie_embeddings: file.tensor("output.weight").is_none(),
        ..GPTConfig::llama(emb_dim, 1, n_heads, 1)
    };
    config.validate().map_err(|reason| file.error(reason))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

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
