//! Causal self-attention: GPT-2's `attn` and the Llama family's
//! `self_attn`, one module with the config's options.
//!
//! x `[B, T, C]` → queries `[B, T, H·D]`, keys and values `[B, T, Hkv·D]`
//! → causal scaled dot-product attention per head → heads concatenated
//! `[B, T, H·D]` → output projection → `[B, T, C]`.
//!
//! - GPT-2 makes q, k and v with one projection (`c_attn`, `[B, T, 3C]`)
//!   and hands it to `autograd::attention` as it is: `tensor` reads each
//!   head's columns where the projection left them (`split_heads` says
//!   where), so no heads-first copy is made.
//! - Phi-3 also makes them with one projection (`qkv_proj`), in the same
//!   packed layout `[B, T, (H + 2·Hkv)·D]` (q's H heads, then k's Hkv, then
//!   v's Hkv); its q and k are narrowed out of it to be turned as below.
//!   With partial rotary only the first part of each head turns (the
//!   tables are narrower than the head, see `tensor::ops::rope`).
//! - The Llama family has three projections (`q_proj`, `k_proj`,
//!   `v_proj`), and turns q and k by their position (rotary embedding,
//!   `Var::rope`) before attending; Qwen3 first normalises each head's q
//!   and k (`q_norm`, `k_norm`, RMSNorm over D). The turned pieces are laid
//!   side by side into the same packed `[B, T, (H + 2·Hkv)·D]` (one copy)
//!   and attention runs as for GPT-2.
//! - Grouped-query attention: Hkv < H key/value heads, each shared by H/Hkv
//!   query heads (the op reads the shared head in place; its backward sums
//!   the group's gradients). A sliding window limits each query to its
//!   last `window` keys.
//! - The Gemma family (see `gemma`): the q/k norms scale by 1 + w (Gemma 3),
//!   the scores are scaled by 1/√`query_pre_attn_scalar` (q multiplied by
//!   √D/√s before the op) and, in Gemma 2, soft-capped inside the op.
//!
//! The op's backward is two files away: `autograd/src/ops/attention.rs`
//! hands its saved state to `Tensor::attention_backward` in
//! `tensor/src/ops/attention.rs`, which calls the kernel.
//!
//! With a KV cache, the keys and values of earlier positions are kept, so a
//! new token computes only its own row: its query attends to every cached
//! key. That route is for generation and records no gradient.
//!
//! One simplification against PyTorch's GPT-2: dropout is not applied to the
//! attention weights (the fused kernel never materialises them as a
//! separate op); residual and embedding dropout are.

use autograd::nn::RmsNorm;
use autograd::{attention, attention_with_weights, Var};
use tensor::{merge_heads, split_heads, AttentionOptions, Qkv, RopeTables, Tensor};

use super::build::{Init, LayerSource};
use super::config::GPTConfig;
use super::kv_cache::LayerCache;
use super::norm::rms_scale;
use super::projection::{project_shared_input, Projection};
use super::trace::Trace;

/// How q, k and v are made from x.
pub enum QkvProjection {
    /// One projection C → (H + 2·Hkv)·D: GPT-2's `c_attn`, Phi-3's `qkv_proj`.
    Packed(Box<dyn Projection>),
    /// The Llama family's three (`q_proj`, `k_proj`, `v_proj`).
    Separate { q: Box<dyn Projection>, k: Box<dyn Projection>, v: Box<dyn Projection> },
}

pub struct CausalSelfAttention {
    pub qkv: QkvProjection,
    /// Back to the residual width (`c_proj`, `o_proj`).
    pub out: Box<dyn Projection>,
    /// Qwen3's RMSNorm of each head's query and key.
    pub qk_norm: Option<[RmsNorm; 2]>,
    /// Whether those norms scale by 1 + w (Gemma 3).
    qk_norm_one_plus: bool,
    /// The queries' factor that makes the op's 1/√D the model's scale.
    query_scale: Option<f64>,
    options: AttentionOptions,
    head_dim: usize,
    /// The names of the packed projection, if any, and of the output one
    /// (`c_attn`/`c_proj`, `qkv_proj`/`o_proj`).
    names: [&'static str; 2],
}

impl CausalSelfAttention {
    /// Layer `layer`'s attention, named `name` (`h.0.attn`, `layers.0.self_attn`).
    pub fn build<S: LayerSource>(config: &GPTConfig, layer: usize, name: &str, src: &mut S) -> Result<Self, S::Error> {
        let (c, q, kv, d) = (config.emb_dim, config.q_width(), config.kv_width(), config.head_dim());
        // GPT-2 scales the residual projections by 1/√(2·layers) at init so
        // the residual stream's variance does not grow with depth.
        let proj_std = 0.02 / (2.0 * config.n_layers as f64).sqrt();
        let mut proj = |part: &str, i, o, bias, std| src.projection(&format!("{name}.{part}"), i, o, bias, std);
        let names = if config.model_type.is_gpt2() { ["c_attn", "c_proj"] } else { ["qkv_proj", "o_proj"] };
        let (qkv, out) = if config.model_type.is_gpt2() || config.model_type.fuses_projections() {
            let packed = QkvProjection::Packed(proj(names[0], c, q + 2 * kv, config.qkv_bias, 0.02)?);
            (packed, proj(names[1], q, c, config.out_bias, proj_std)?)
        } else {
            let separate = QkvProjection::Separate {
                q: proj("q_proj", c, q, config.qkv_bias, 0.02)?,
                k: proj("k_proj", c, kv, config.qkv_bias, 0.02)?,
                v: proj("v_proj", c, kv, config.qkv_bias, 0.02)?,
            };
            (separate, proj("o_proj", q, c, config.out_bias, proj_std)?)
        };
        let qk_norm = if config.qk_norm {
            let init = if config.model_type.is_gemma() { Init::Zeros } else { Init::Ones };
            let mut norm = |part: &str| -> Result<RmsNorm, S::Error> {
                let weight = src.float(&format!("{name}.{part}.weight"), &[d], init)?;
                Ok(RmsNorm { weight, eps: config.layer_norm_eps })
            };
            Some([norm("q_norm")?, norm("k_norm")?])
        } else {
            None
        };
        let mut options = AttentionOptions::new(config.n_heads).with_kv_heads(config.kv_heads());
        if let Some(window) = config.window_of(layer) {
            options = options.with_window(window);
        }
        if let Some(cap) = config.attn_softcap {
            options = options.with_softcap(cap);
        }
        Ok(CausalSelfAttention {
            qkv,
            out,
            qk_norm,
            qk_norm_one_plus: config.model_type.is_gemma(),
            query_scale: super::gemma::query_scale(config),
            options,
            head_dim: d,
            names,
        })
    }

    /// `[B, T, C]` → `[B, T, C]`, optionally extending a KV cache. `rope`
    /// holds the rotation of these positions when the model has rotary ones.
    /// With a `trace` (and no cache), the attention weights `[B, H, T, T]`
    /// this call computed are pushed onto `trace.attention`.
    pub fn forward(
        &self,
        x: &Var,
        rope: Option<&RopeTables>,
        cache: Option<&mut LayerCache>,
        trace: Option<&mut Trace>,
    ) -> Var {
        let qkv = self.packed_qkv(x, rope);
        let y = match (cache, trace) {
            // Training and evaluation.
            (None, None) => attention(Qkv::Packed(&qkv), &self.options),
            // Inspection: the same op, on a route that keeps the weights
            // (the flash kernel never forms them).
            (None, Some(trace)) => {
                let options = AttentionOptions { flash: false, ..self.options };
                let (y, weights) = attention_with_weights(Qkv::Packed(&qkv), &options);
                trace.attention.push(weights.expect("every route but flash keeps the attention weights"));
                y
            }
            // Generation: the new positions' keys and values join the cache
            // and their queries attend to it, each up to its own position.
            // The cache holds plain tensors, so this runs outside the graph.
            (Some(cache), _) => {
                let [q, k, v] = split_heads(&qkv.data(), &self.options);
                let (keys, values) = cache.append(&k, &v);
                let heads = Tensor::attention(Qkv::Heads { q: &q, k: &keys, v: &values }, &self.options);
                Var::constant(merge_heads(&heads.out))
            }
        };
        self.out.forward(&y)
    }

    /// q, k and v side by side, `[B, T, (H + 2·Hkv)·D]`, each head normed
    /// and turned where the model does that.
    fn packed_qkv(&self, x: &Var, rope: Option<&RopeTables>) -> Var {
        let [q, k, v] = match &self.qkv {
            // GPT-2: the projection's output is already the packed layout.
            QkvProjection::Packed(c_attn) if rope.is_none() && self.qk_norm.is_none() && self.query_scale.is_none() => {
                return c_attn.forward(x)
            }
            QkvProjection::Packed(c_attn) => {
                let y = c_attn.forward(x);
                let (q, kv) = (self.options.n_heads * self.head_dim, self.options.n_kv_heads * self.head_dim);
                [y.narrow(-1, 0, q), y.narrow(-1, q, kv), y.narrow(-1, q + kv, kv)]
            }
            QkvProjection::Separate { q, k, v } => project_shared_input([&**q, &**k, &**v], x),
        };
        let (b, t, d) = (x.dims()[0] as isize, x.dims()[1] as isize, self.head_dim as isize);
        // [B, T, heads·D] → [B, T, heads, D]: a view, one row per head.
        let per_head = |y: &Var, heads: usize| y.reshape(&[b, t, heads as isize, d]);
        let mut q = per_head(&q, self.options.n_heads);
        let mut k = per_head(&k, self.options.n_kv_heads);
        if let Some([q_norm, k_norm]) = &self.qk_norm {
            let one_plus = self.qk_norm_one_plus;
            q = autograd::rms_norm(&q, Some(&rms_scale(&q_norm.weight, one_plus)), q_norm.eps);
            k = autograd::rms_norm(&k, Some(&rms_scale(&k_norm.weight, one_plus)), k_norm.eps);
        }
        if let Some(tables) = rope {
            q = q.rope(tables);
            k = k.rope(tables);
        }
        if let Some(factor) = self.query_scale {
            q = q.mul_scalar(factor);
        }
        let flat = |y: Var| y.reshape(&[b, t, -1]);
        Var::cat(&[flat(q), flat(k), v], 2)
    }

    /// The projections, named inside the attention (`c_attn`, `q_proj`,
    /// `qkv_proj`, …).
    pub fn projections(&self) -> Vec<(&'static str, &dyn Projection)> {
        let [packed, out] = self.names;
        match &self.qkv {
            QkvProjection::Packed(qkv) => vec![(packed, &**qkv), (out, &*self.out)],
            QkvProjection::Separate { q, k, v } => {
                vec![("q_proj", &**q), ("k_proj", &**k), ("v_proj", &**v), ("o_proj", &*self.out)]
            }
        }
    }

    /// As [`CausalSelfAttention::projections`], each slot open to a
    /// replacement.
    pub fn projections_mut(&mut self) -> Vec<(&'static str, &mut Box<dyn Projection>)> {
        let [packed, out] = self.names;
        match &mut self.qkv {
            QkvProjection::Packed(qkv) => vec![(packed, qkv), (out, &mut self.out)],
            QkvProjection::Separate { q, k, v } => {
                vec![("q_proj", q), ("k_proj", k), ("v_proj", v), ("o_proj", &mut self.out)]
            }
        }
    }

    pub fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        for (name, p) in self.projections() {
            p.visit_parameters(&format!("{prefix}.{name}"), f);
        }
        if let Some([q_norm, k_norm]) = &self.qk_norm {
            f(format!("{prefix}.q_norm.weight"), &q_norm.weight);
            f(format!("{prefix}.k_norm.weight"), &k_norm.weight);
        }
    }
}
