//! How many bytes a model's weights take in each format, exactly, and by
//! the usual rule of thumb.
//!
//! The rule of thumb for serving a model: parameters × bytes per parameter
//! (4 for f32, 2 for f16/bf16, 1 for int8, ½ for int4), plus about 20% for
//! what else a running model holds (activations, the KV cache, buffers).
//! The exact figure counts what is actually stored: the quantized matrices
//! (linear weights and the token embedding) with their scales, and the
//! tensors that stay f32 (position embeddings, LayerNorms, biases).

use tensor::quant::Scheme;

use crate::model::build::{tensor_specs, Role};
use crate::model::GPTConfig;

/// The rule of thumb's overhead on top of the weights.
pub const RULE_OF_THUMB_OVERHEAD: f64 = 0.2;

/// The matrices a scheme quantizes, as `(rows, cols)` = `(out, in)`.
pub fn quantized_matrices(config: &GPTConfig) -> Vec<(usize, usize)> {
    tensor_specs(config)
        .into_iter()
        .filter(|s| matches!(s.role, Role::ProjectionWeight | Role::TokenTable))
        .map(|s| (s.shape[0], s.shape[1]))
        .collect()
}

/// Bytes of one `[rows, cols]` matrix stored as `scheme` (`None`: f32).
/// `None` when int4 cannot hold it (cols not a multiple of the group).
pub fn matrix_bytes(rows: usize, cols: usize, scheme: Option<Scheme>) -> Option<u64> {
    let n = (rows * cols) as u64;
    Some(match scheme {
        None => 4 * n,
        Some(Scheme::F16 | Scheme::BF16) => 2 * n,
        Some(Scheme::Int8) => n + 4 * rows as u64,
        Some(Scheme::Int4) => {
            let group = Scheme::Int4.group_size().expect("int4 is grouped");
            if !cols.is_multiple_of(group) {
                return None;
            }
            n / 2 + 2 * (n / group as u64)
        }
    })
}

/// Exact bytes of every weight of a model stored as `scheme` (`None`:
/// f32), or `None` when the scheme cannot hold this model.
pub fn weight_bytes(config: &GPTConfig, scheme: Option<Scheme>) -> Option<u64> {
    let mut total = 0;
    let mut quantized_params = 0;
    for (rows, cols) in quantized_matrices(config) {
        total += matrix_bytes(rows, cols, scheme)?;
        quantized_params += rows * cols;
    }
    let float_params = config.num_parameters() - quantized_params;
    Some(total + 4 * float_params as u64)
}

/// Bytes one decoding step reads with `cached` positions in the KV cache:
/// every weight once (the token embedding as the tied head's matrix), but
/// of the position table only its one row, and of an untied model's token
/// table (its head is a separate matrix) only its one row, plus the cached
/// keys and values (f32) that attention reads in every layer. With a
/// mixture of experts, a token is routed to k of the E experts of each
/// routed layer: the router is read whole, but only k experts' matrices
/// (which k depends on the token, so this is the bytes one token reads, not
/// what a batch of tokens reads together). Decoding a single sequence does
/// so little arithmetic per byte that this, over the memory's read speed,
/// bounds its tokens per second. `None` as for [`weight_bytes`].
pub fn decode_bytes_per_token(config: &GPTConfig, scheme: Option<Scheme>, cached: usize) -> Option<u64> {
    let c = config.emb_dim as u64;
    let positions_unread = if config.rope.is_none() { 4 * (config.context_length as u64 - 1) * c } else { 0 };
    let token_rows_unread = if config.tie_embeddings {
        0
    } else {
        let table = matrix_bytes(config.vocab_size, config.emb_dim, scheme)?;
        table - table / config.vocab_size as u64
    };
    let kv_cache = kv_cache_bytes_per_token(config, 4) * cached as u64;
    let experts_unread = unrouted_expert_bytes(config, scheme)?;
    Some(weight_bytes(config, scheme)? - positions_unread - token_rows_unread - experts_unread + kv_cache)
}

/// Bytes of the E − k experts a token is not routed to, over every routed
/// layer: each expert is a gate and an up matrix `[F, C]` and a down
/// matrix `[C, F]`. 0 without a mixture of experts.
fn unrouted_expert_bytes(config: &GPTConfig, scheme: Option<Scheme>) -> Option<u64> {
    let Some(moe) = &config.moe else { return Some(0) };
    let (c, f) = (config.emb_dim, moe.expert_width);
    let expert = 2 * matrix_bytes(f, c, scheme)? + matrix_bytes(c, f, scheme)?;
    let routed_layers = (0..config.n_layers).filter(|&layer| moe.is_sparse(layer)).count() as u64;
    Some(routed_layers * (moe.n_experts - moe.top_k) as u64 * expert)
}

/// Bytes the KV cache holds per position, at `bytes_per_value` (4 for
/// f32, 2 for f16): a key and a value of every K/V head in every layer,
/// 2·L·Hkv·D values. Grouped-query attention divides it by H/Hkv.
pub fn kv_cache_bytes_per_token(config: &GPTConfig, bytes_per_value: u64) -> u64 {
    2 * (config.n_layers * config.kv_width()) as u64 * bytes_per_value
}

/// Parameters × bytes per parameter × (1 + overhead).
pub fn rule_of_thumb_bytes(config: &GPTConfig, scheme: Option<Scheme>) -> u64 {
    let bits = scheme.map_or(32, Scheme::bits) as f64;
    (config.num_parameters() as f64 * bits / 8.0 * (1.0 + RULE_OF_THUMB_OVERHEAD)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_figures() {
        let c = GPTConfig::preset("gpt2-small").unwrap();
        let n = c.num_parameters() as u64;
        assert_eq!(weight_bytes(&c, None), Some(4 * n));
        // Quantized matrices hold all but 0.1% of the parameters.
        let matrices: usize = quantized_matrices(&c).iter().map(|(r, k)| r * k).sum();
        assert!(matrices as f64 / n as f64 > 0.99, "{matrices} of {n}");
        let int8 = weight_bytes(&c, Some(Scheme::Int8)).unwrap() as f64;
        let int4 = weight_bytes(&c, Some(Scheme::Int4)).unwrap() as f64;
        assert!((int8 / (4 * n) as f64) < 0.26 && (int4 / (4 * n) as f64) < 0.15, "{int8} {int4}");
        assert_eq!(rule_of_thumb_bytes(&c, Some(Scheme::Int8)), (n as f64 * 1.2).round() as u64);
        // f32 decoding reads ~502 MB a token: 494.6 MB of weights (all but
        // 1,023 rows of the position table) and 7.4 MB of cache, 12 layers ×
        // (K, V) × 100 positions × 768 floats.
        let decode = decode_bytes_per_token(&c, None, 100).unwrap();
        assert_eq!(decode, 4 * n - 4 * 1023 * 768 + 4 * 2 * 12 * 100 * 768);
        assert!((501e6..503e6).contains(&(decode as f64)), "{decode}");
        let odd = GPTConfig { emb_dim: 48, n_heads: 4, ..c };
        assert_eq!(weight_bytes(&odd, Some(Scheme::Int4)), None);
    }

    #[test]
    fn llama_decoding_reads_one_row_of_an_untied_token_table_and_grouped_kv() {
        // Llama 3.1 8B: untied head, 8 of 32 heads hold K/V, no position table.
        let c = GPTConfig::preset("llama-3.1-8b").unwrap();
        assert!(!c.tie_embeddings && c.rope.is_some());
        let n = c.num_parameters() as u64;
        let (v, width) = (c.vocab_size as u64, c.emb_dim as u64);
        let decode = decode_bytes_per_token(&c, None, 10).unwrap();
        // 32 layers × (K, V) × 10 positions × 8 heads × 128 floats.
        assert_eq!(decode, 4 * n - 4 * (v - 1) * width + 4 * 2 * 32 * 10 * 8 * 128);
        // Tied (SmolLM2): the table is the head, read whole.
        let tied = GPTConfig::preset("smollm2-135m").unwrap();
        assert!(tied.tie_embeddings);
        assert_eq!(decode_bytes_per_token(&tied, None, 0), weight_bytes(&tied, None));
    }

    #[test]
    fn a_routed_token_reads_only_its_top_k_experts() {
        // Mixtral 8x7B, counted by hand: vocabulary 32,000, width 4,096, 32
        // layers, 32 query heads and 8 K/V heads of 128, untied head, 8
        // experts of width 14,336 with 2 per token.
        let c = GPTConfig::preset("mixtral-8x7b").unwrap();
        let (v, w, l, kv, f) = (32_000u64, 4096u64, 32u64, 8 * 128u64, 14_336u64);
        let attention = w * (w + 2 * kv) + w * w;
        let router = 8 * w;
        let expert = 3 * w * f;
        let norms = 2 * w;
        // The token's row of the input table, the whole head, the final norm.
        let active = w + v * w + w + l * (norms + attention + router + 2 * expert);
        assert_eq!(decode_bytes_per_token(&c, None, 0), Some(4 * active));
        // 12.9B parameters used per token (its model card's figure), less the
        // 131M of the token table's unread rows.
        assert_eq!(active, 12_748_857_344);
        assert_eq!(active as usize + (v as usize - 1) * w as usize, c.active_parameters());
        // int8: each row of each matrix adds one f32 scale.
        let int8 = decode_bytes_per_token(&c, Some(Scheme::Int8), 0).unwrap();
        let expert_int8 = 2 * (w * f + 4 * f) + (f * w + 4 * w);
        let unread_int8 = l * 6 * expert_int8 + (v - 1) * (w + 4);
        assert_eq!(int8, weight_bytes(&c, Some(Scheme::Int8)).unwrap() - unread_int8);
    }
}
