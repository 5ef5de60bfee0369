//! Causal multi-head self-attention (GPT-2's `attn`).
//!
//! x `[B, T, C]` → one projection to queries, keys and values `[B, T, 3C]`
//! (`c_attn`) → split into H heads of size D = C/H, `[B, H, T, D]` each →
//! causal scaled dot-product attention per head (fused, see
//! `kernels::cpu::attention`) → heads concatenated back to `[B, T, C]` →
//! output projection (`c_proj`).
//!
//! With a KV cache, the keys and values of earlier positions are kept, so a
//! new token computes only its own row: its query attends to every cached
//! key.
//!
//! One simplification against PyTorch's GPT-2: dropout is not applied to the
//! attention weights (the fused kernel never materialises them as a
//! separate op); residual and embedding dropout are.

use autograd::{causal_attention, causal_self_attention, Var};
use tensor::Generator;

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
        let (b, t, c) = (x.dim(0), x.dim(1), x.dim(2));
        let (h, d) = (self.n_heads, c / self.n_heads);
        let qkv = self.c_attn.forward(x);
        if cache.is_none() {
            // Training and evaluation: the heads are read where the
            // projection left them.
            return self.c_proj.forward(&causal_self_attention(&qkv, h));
        }
        // [B, T, C] → [B, T, H, D] → [B, H, T, D]
        let heads = |i: usize| {
            qkv.narrow(-1, i * c, c).reshape(&[b as isize, t as isize, h as isize, d as isize]).transpose(1, 2)
        };
        let (q, mut k, mut v) = (heads(0), heads(1), heads(2));
        if let Some(cache) = cache {
            let (all_k, all_v) = cache.append(&k.data(), &v.data());
            k = Var::constant(all_k);
            v = Var::constant(all_v);
        }
        let y = causal_attention(&q, &k, &v);
        // [B, H, T, D] → [B, T, H, D] → [B, T, C]
        let y = y.transpose(1, 2).reshape(&[b as isize, t as isize, c as isize]);
        self.c_proj.forward(&y)
    }

    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.c_attn.visit_parameters(&format!("{prefix}.c_attn"), f);
        self.c_proj.visit_parameters(&format!("{prefix}.c_proj"), f);
    }
}
