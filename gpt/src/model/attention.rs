//! Causal multi-head self-attention (GPT-2's `attn`).
//!
//! x `[B, T, C]` → one projection to queries, keys and values `[B, T, 3C]`
//! (`c_attn`) → H heads of size D = C/H → causal scaled dot-product
//! attention per head → heads concatenated back to `[B, T, C]` → output
//! projection (`c_proj`).
//!
//! The middle three steps are one op, `autograd::attention`, given the
//! packed `[B, T, 3C]` projection: `tensor` reads each head's columns where
//! the projection left them (`split_heads` says where they are), so no
//! heads-first copy is made. Its backward is two files away: the op in
//! `autograd/src/ops/attention.rs` hands its saved state to
//! `Tensor::attention_backward` in `tensor/src/ops/attention.rs`, which
//! calls the kernel.
//!
//! With a KV cache, the keys and values of earlier positions are kept, so a
//! new token computes only its own row: its query attends to every cached
//! key. That route is for generation and records no gradient.
//!
//! One simplification against PyTorch's GPT-2: dropout is not applied to the
//! attention weights (the fused kernel never materialises them as a
//! separate op); residual and embedding dropout are.

use autograd::{attention, Var};
use tensor::{merge_heads, split_heads, AttentionOptions, Generator, Qkv, Tensor};

use super::config::GPTConfig;
use super::init::gpt2_linear;
use super::kv_cache::LayerCache;
use super::projection::Projection;

pub struct CausalSelfAttention {
    pub c_attn: Box<dyn Projection>,
    pub c_proj: Box<dyn Projection>,
    n_heads: usize,
}

impl CausalSelfAttention {
    pub fn new(config: &GPTConfig, gen: &mut Generator) -> Self {
        let c = config.emb_dim;
        // GPT-2 scales the residual projections by 1/√(2·layers) at init so
        // the residual stream's variance does not grow with depth.
        let proj_std = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        CausalSelfAttention {
            c_attn: Box::new(gpt2_linear(c, 3 * c, config.qkv_bias, 0.02, gen)),
            c_proj: Box::new(gpt2_linear(c, c, true, proj_std, gen)),
            n_heads: config.n_heads,
        }
    }

    /// From existing projections (a loader that builds layers itself).
    pub fn from_parts(c_attn: Box<dyn Projection>, c_proj: Box<dyn Projection>, n_heads: usize) -> Self {
        CausalSelfAttention { c_attn, c_proj, n_heads }
    }

    /// `[B, T, C]` → `[B, T, C]`, optionally extending a KV cache.
    pub fn forward(&self, x: &Var, cache: Option<&mut LayerCache>) -> Var {
        let qkv = self.c_attn.forward(x);
        let options = AttentionOptions::new(self.n_heads);
        let y = match cache {
            // Training and evaluation.
            None => attention(Qkv::Packed(&qkv), &options),
            // Generation: the new positions' keys and values join the cache
            // and their queries attend to it, each up to its own position.
            // The cache holds plain tensors, so this runs outside the graph.
            Some(cache) => {
                let [q, k, v] = split_heads(&qkv.data(), &options);
                let (keys, values) = cache.append(&k, &v);
                let heads = Tensor::attention(Qkv::Heads { q: &q, k: &keys, v: &values }, &options);
                Var::constant(merge_heads(&heads.out))
            }
        };
        self.c_proj.forward(&y)
    }

    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.c_attn.visit_parameters(&format!("{prefix}.c_attn"), f);
        self.c_proj.visit_parameters(&format!("{prefix}.c_proj"), f);
    }
}
