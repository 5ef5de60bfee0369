//! The model's hyper-parameters: the book's `GPT_CONFIG_124M` fields, and
//! the options that turn GPT-2's block into the Llama family's.
//!
//! One decoder serves every model here; its config says which block to
//! build. `model_type` picks the block's parts the way `transformers`
//! does: GPT-2 has LayerNorm, learned positions, a GELU MLP 4× wide and
//! one packed q/k/v projection; the Llama family (`llama`, `mistral`,
//! `qwen2`, `qwen3`) has RMSNorm, rotary positions, a SwiGLU MLP and
//! separate q, k and v projections; Phi-3 (`phi3`) is the Llama block with
//! q/k/v in one projection (`qkv_proj`), gate and up in one
//! (`gate_up_proj`), and rotary positions that may turn only part of each
//! head (`partial_rotary_factor`). Within a family the options are fields:
//! fewer key/value heads (grouped-query attention), a head size of its own,
//! biases, per-head norms on q and k, a sliding window, a tied head, and a
//! mixture of experts in place of the MLP (`mixtral`, `qwen3_moe`; see `moe`).
//! The Gemma family (`gemma`, `gemma2`, `gemma3_text`) is the Llama block
//! with Gemma's parts (see `gemma`): a GeGLU MLP, norms that scale by
//! 1 + w, a scaled embedding, and options of its own here: soft-capped
//! scores and logits, an attention scale, per-layer sliding or full
//! attention, and a second rotary base for the sliding layers.
//! Presets live in `presets`, and the `config.json` mapping in `hf_config`.

use serde::{Deserialize, Serialize};
use tensor::{RopeConfig, RopeScaling};

pub use super::moe::MoeConfig;

/// Which family's block the model builds (`config.json`'s `model_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    #[default]
    Gpt2,
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Phi3,
    Gemma,
    Gemma2,
    #[serde(rename = "gemma3_text")]
    Gemma3Text,
    /// Mistral's block with a mixture of experts (`moe`).
    Mixtral,
    /// Qwen3's block with a mixture of experts.
    #[serde(rename = "qwen3_moe")]
    Qwen3Moe,
}

impl ModelType {
    pub const ALL: [ModelType; 11] = [
        ModelType::Gpt2,
        ModelType::Llama,
        ModelType::Mistral,
        ModelType::Qwen2,
        ModelType::Qwen3,
        ModelType::Phi3,
        ModelType::Gemma,
        ModelType::Gemma2,
        ModelType::Gemma3Text,
        ModelType::Mixtral,
        ModelType::Qwen3Moe,
    ];

    /// The name `config.json` uses.
    pub fn name(self) -> &'static str {
        match self {
            ModelType::Gpt2 => "gpt2",
            ModelType::Llama => "llama",
            ModelType::Mistral => "mistral",
            ModelType::Qwen2 => "qwen2",
            ModelType::Qwen3 => "qwen3",
            ModelType::Phi3 => "phi3",
            ModelType::Gemma => "gemma",
            ModelType::Gemma2 => "gemma2",
            ModelType::Gemma3Text => "gemma3_text",
            ModelType::Mixtral => "mixtral",
            ModelType::Qwen3Moe => "qwen3_moe",
        }
    }

    pub fn parse(name: &str) -> Option<ModelType> {
        ModelType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The `transformers` class of the language model.
    pub fn architecture(self) -> &'static str {
        match self {
            ModelType::Gpt2 => "GPT2LMHeadModel",
            ModelType::Llama => "LlamaForCausalLM",
            ModelType::Mistral => "MistralForCausalLM",
            ModelType::Qwen2 => "Qwen2ForCausalLM",
            ModelType::Qwen3 => "Qwen3ForCausalLM",
            ModelType::Phi3 => "Phi3ForCausalLM",
            ModelType::Gemma => "GemmaForCausalLM",
            ModelType::Gemma2 => "Gemma2ForCausalLM",
            ModelType::Gemma3Text => "Gemma3ForCausalLM",
            ModelType::Mixtral => "MixtralForCausalLM",
            ModelType::Qwen3Moe => "Qwen3MoeForCausalLM",
        }
    }

    /// The Gemma family: GeGLU, norms scaling by 1 + w, a scaled embedding.
    pub fn is_gemma(self) -> bool {
        matches!(self, ModelType::Gemma | ModelType::Gemma2 | ModelType::Gemma3Text)
    }

    /// Gemma 2 and 3 also norm each branch's output before the residual
    /// sum (`post_attention_layernorm`, `post_feedforward_layernorm`).
    pub fn has_post_norms(self) -> bool {
        matches!(self, ModelType::Gemma2 | ModelType::Gemma3Text)
    }

    /// Phi-3's fused projections: q, k and v as one `qkv_proj` (rows q,
    /// then k, then v) and gate and up as one `gate_up_proj` (rows gate,
    /// then up), stored fused as transformers stores them.
    pub fn fuses_projections(self) -> bool {
        self == ModelType::Phi3
    }

    /// Whether the family's MLP is a mixture of experts.
    pub fn is_moe(self) -> bool {
        matches!(self, ModelType::Mixtral | ModelType::Qwen3Moe)
    }

    /// GPT-2's block (LayerNorm, learned positions, GELU MLP, packed
    /// q/k/v) rather than the Llama family's.
    pub fn is_gpt2(self) -> bool {
        self == ModelType::Gpt2
    }
}

/// What a layer attends to when the model mixes kinds (`layer_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerType {
    /// Every earlier key (`full_attention`).
    FullAttention,
    /// The last `sliding_window` keys (`sliding_attention`).
    SlidingAttention,
}

/// Rotary position embedding's settings (`rope_theta`, `rope_scaling`,
/// `partial_rotary_factor`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rotary {
    pub theta: f64,
    pub scaling: RopeScaling,
    /// The fraction of each head that turns, its first
    /// ⌊head_dim · fraction⌋ elements (1: all; Phi-3 mini: 1, Phi-4 mini:
    /// 0.75); the rest passes through unturned.
    pub partial: f64,
}

impl Rotary {
    /// Rotation of whole heads with base `theta`.
    pub fn new(theta: f64, scaling: RopeScaling) -> Rotary {
        Rotary { theta, scaling, partial: 1.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GPTConfig {
    /// Tokens in the vocabulary (50,257 for GPT-2's BPE).
    pub vocab_size: usize,
    /// The longest sequence the model is made for: the position table's
    /// rows with learned positions, `max_position_embeddings` with rotary.
    pub context_length: usize,
    /// Width of every token's vector, C.
    pub emb_dim: usize,
    /// Query heads per layer, H.
    pub n_heads: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Dropout on embeddings and residual branches during training.
    pub drop_rate: f64,
    /// Whether the query/key/value projections have a bias (GPT-2, Qwen2:
    /// yes; Llama: no).
    pub qkv_bias: bool,
    /// The ε every norm adds (GPT-2's LayerNorm: 1e-5; `rms_norm_eps`).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// The family whose block this is.
    #[serde(default)]
    pub model_type: ModelType,
    /// Key/value heads Hkv, dividing H (`None`: H, plain multi-head).
    #[serde(default)]
    pub n_kv_heads: Option<usize>,
    /// The head size D when it is not C/H (Qwen3, Gemma).
    #[serde(default)]
    pub head_size: Option<usize>,
    /// The MLP's hidden width (`None`: 4·C, GPT-2's).
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    /// Rotary positions (the Llama family); `None`: a learned position
    /// table (GPT-2).
    #[serde(default, with = "crate::model::hf_config::rotary_serde")]
    pub rope: Option<Rotary>,
    /// RMSNorm over each head's q and k before the rotation (Qwen3).
    #[serde(default)]
    pub qk_norm: bool,
    /// Each query sees at most this many keys (Mistral).
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// The layers before this one attend to everything even with a window
    /// (Qwen2's `max_window_layers`; 0 for Mistral).
    #[serde(default)]
    pub full_attention_layers: usize,
    /// The output head is the token embedding (GPT-2, small Llamas).
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
    /// Whether the attention's output projection has a bias.
    #[serde(default = "yes")]
    pub out_bias: bool,
    /// Whether the MLP's projections have biases.
    #[serde(default = "yes")]
    pub mlp_bias: bool,
    /// The ids `config.json` names, kept to write them back.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_ids: Vec<u32>,
    /// Attention scores squashed to cap · tanh(s / cap) before the softmax
    /// (Gemma 2's `attn_logit_softcapping`).
    #[serde(default)]
    pub attn_softcap: Option<f64>,
    /// Logits squashed the same way (`final_logit_softcapping`).
    #[serde(default)]
    pub final_softcap: Option<f64>,
    /// Scores scaled by 1/√this instead of 1/√D (`query_pre_attn_scalar`).
    #[serde(default)]
    pub query_pre_attn_scalar: Option<f64>,
    /// Each layer's kind (Gemma 2 and 3's `layer_types`); empty: the
    /// window applies from `full_attention_layers` on.
    #[serde(default)]
    pub layer_types: Vec<LayerType>,
    /// The sliding layers' own rotary settings (Gemma 3's local base,
    /// `rope_local_base_freq`); `None`: every layer turns by `rope`.
    #[serde(default, with = "crate::model::hf_config::rotary_serde")]
    pub rope_local: Option<Rotary>,
    /// A mixture of experts in place of the MLP (Mixtral, Qwen3-MoE).
    #[serde(default)]
    pub moe: Option<MoeConfig>,
}

fn default_layer_norm_eps() -> f64 {
    1e-5
}

fn yes() -> bool {
    true
}

/// The largest size each field may have. Far above any model here (152k
/// tokens, 128k positions, width 8,192, 80 layers), these keep a config
/// file's typo from sizing a model no machine holds, and keep parameter
/// counts well inside 64 bits.
pub const LIMITS: [(&str, usize); 5] = [
    ("vocab_size", 1 << 24),
    ("context_length", 1 << 24),
    ("emb_dim", 1 << 16),
    ("n_layers", 1024),
    ("intermediate_size", 1 << 20),
];

impl GPTConfig {
    /// GPT-2's block with these sizes (every new option off).
    pub fn gpt2(emb_dim: usize, n_layers: usize, n_heads: usize) -> Self {
        GPTConfig {
            vocab_size: 50257,
            context_length: 1024,
            emb_dim,
            n_heads,
            n_layers,
            drop_rate: 0.1,
            qkv_bias: true,
            layer_norm_eps: default_layer_norm_eps(),
            model_type: ModelType::Gpt2,
            n_kv_heads: None,
            head_size: None,
            intermediate_size: None,
            rope: None,
            qk_norm: false,
            sliding_window: None,
            full_attention_layers: 0,
            tie_embeddings: true,
            out_bias: true,
            mlp_bias: true,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            attn_softcap: None,
            final_softcap: None,
            query_pre_attn_scalar: None,
            layer_types: Vec::new(),
            rope_local: None,
            moe: None,
        }
    }

    /// The Llama block: RMSNorm (ε 1e-5), RoPE (θ 10,000), SwiGLU of
    /// `intermediate` width, no biases, untied head, plain multi-head.
    pub fn llama(emb_dim: usize, n_layers: usize, n_heads: usize, intermediate: usize) -> Self {
        GPTConfig {
            model_type: ModelType::Llama,
            drop_rate: 0.0,
            qkv_bias: false,
            out_bias: false,
            mlp_bias: false,
            intermediate_size: Some(intermediate),
            rope: Some(Rotary::new(10_000.0, RopeScaling::None)),
            tie_embeddings: false,
            ..Self::gpt2(emb_dim, n_layers, n_heads)
        }
    }

    /// A named configuration (see `presets`).
    pub fn preset(name: &str) -> Option<GPTConfig> {
        super::presets::preset(name)
    }

    /// The size D of one head.
    pub fn head_dim(&self) -> usize {
        self.head_size.unwrap_or(self.emb_dim / self.n_heads.max(1))
    }

    /// Key/value heads, Hkv.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    /// The MLP's hidden width.
    pub fn mlp_width(&self) -> usize {
        self.intermediate_size.unwrap_or(4 * self.emb_dim)
    }

    /// Widths of the query and of the key (= value) projections, H·D and
    /// Hkv·D.
    pub fn q_width(&self) -> usize {
        self.n_heads * self.head_dim()
    }
    pub fn kv_width(&self) -> usize {
        self.kv_heads() * self.head_dim()
    }

    /// The window layer `layer` attends through, if any.
    pub fn window_of(&self, layer: usize) -> Option<usize> {
        match self.layer_types.get(layer) {
            Some(kind) => self.sliding_window.filter(|_| *kind == LayerType::SlidingAttention),
            None => self.sliding_window.filter(|_| layer >= self.full_attention_layers),
        }
    }

    /// What rotary embedding needs, with rotary positions. Its `head_dim`
    /// is the turned part of a head (as transformers: int(D · fraction)).
    pub fn rope_config(&self) -> Option<RopeConfig> {
        self.rope.as_ref().map(|r| self.rope_config_of(r))
    }

    /// The sliding layers' rotary settings, when they have their own.
    pub fn local_rope_config(&self) -> Option<RopeConfig> {
        self.rope_local.as_ref().map(|r| self.rope_config_of(r))
    }

    /// What the rope op needs for `rotary`: the turned part of a head is
    /// int(D · fraction), as transformers computes it.
    fn rope_config_of(&self, rotary: &Rotary) -> RopeConfig {
        RopeConfig {
            theta: rotary.theta,
            head_dim: (self.head_dim() as f64 * rotary.partial) as usize,
            scaling: rotary.scaling.clone(),
        }
    }

    /// Whether layer `layer` turns q and k by `rope_local` (a sliding layer
    /// of a model that has one) rather than `rope`.
    pub fn uses_local_rope(&self, layer: usize) -> bool {
        self.rope_local.is_some() && self.layer_types.get(layer) == Some(&LayerType::SlidingAttention)
    }

    /// Checks the numbers fit together; a one-line reason when they don't.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
            ("emb_dim", self.emb_dim),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("n_kv_heads", self.kv_heads()),
            ("head_dim", self.head_size.unwrap_or(1)),
            ("intermediate_size", self.mlp_width()),
            ("sliding_window", self.sliding_window.unwrap_or(1)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        let sizes = [self.vocab_size, self.context_length, self.emb_dim, self.n_layers, self.mlp_width()];
        if let Some(((name, limit), size)) = LIMITS.iter().zip(sizes).find(|((_, limit), size)| size > limit) {
            return Err(format!("{name} {size} is larger than the limit of {limit}"));
        }
        if self.head_size.is_none() && self.emb_dim % self.n_heads != 0 {
            return Err(format!("emb_dim {} is not divisible by n_heads {}", self.emb_dim, self.n_heads));
        }
        if self.q_width() > 1 << 17 {
            return Err(format!("heads × head_dim {} is larger than the limit of {}", self.q_width(), 1 << 17));
        }
        if self.n_heads % self.kv_heads() != 0 {
            return Err(format!(
                "num_key_value_heads {} does not divide num_attention_heads {}",
                self.kv_heads(),
                self.n_heads
            ));
        }
        if !(0.0..1.0).contains(&self.drop_rate) {
            return Err(format!("drop_rate {} must be in [0, 1)", self.drop_rate));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(format!("layer_norm_epsilon {} must be in (0, 1)", self.layer_norm_eps));
        }
        match (self.model_type.is_gpt2(), self.rope_config()) {
            (true, Some(_)) => return Err("GPT-2's block has learned positions, not rotary ones".into()),
            (false, None) => return Err(format!("{} needs rotary positions (rope_theta)", self.model_type.name())),
            (false, Some(rope)) => rope.check()?,
            (true, None) => {}
        }
        for r in self.rope.iter().chain(&self.rope_local) {
            if !(r.partial > 0.0 && r.partial <= 1.0) {
                return Err(format!("partial_rotary_factor {} must be in (0, 1]", r.partial));
            }
            // Gemma turns whole heads; a fraction would be ours alone.
            if self.model_type.is_gemma() && r.partial != 1.0 {
                return Err(format!("partial_rotary_factor {} is not read for {}", r.partial, self.model_type.name()));
            }
        }
        if !self.layer_types.is_empty() && self.layer_types.len() != self.n_layers {
            return Err(format!(
                "layer_types names {} layers, the model has {}",
                self.layer_types.len(),
                self.n_layers
            ));
        }
        let positive = [
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
            ("query_pre_attn_scalar", self.query_pre_attn_scalar),
        ];
        for (name, value) in positive {
            if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(format!("{name} {v} must be a positive number"));
            }
        }
        if let Some(local) = self.local_rope_config() {
            local.check()?;
        }
        match (self.model_type.is_moe(), &self.moe) {
            (true, None) => return Err(format!("{} needs its experts' settings", self.model_type.name())),
            (false, Some(_)) => return Err(format!("{} has no mixture of experts", self.model_type.name())),
            (true, Some(moe)) => {
                moe.validate(self.n_layers)?;
                // Mixtral's config.json has one width, `intermediate_size`,
                // its experts' (it has no dense MLP): a model whose experts
                // are of another width could not be saved as Mixtral.
                if self.model_type == ModelType::Mixtral && moe.expert_width != self.mlp_width() {
                    return Err(format!(
                        "Mixtral's experts are intermediate_size ({}) wide, not {}",
                        self.mlp_width(),
                        moe.expert_width
                    ));
                }
            }
            (false, None) => {}
        }
        if self.model_type.is_gpt2() && (self.qk_norm || self.n_kv_heads.is_some_and(|k| k != self.n_heads)) {
            return Err("GPT-2's block has neither QK-norm nor grouped-query attention".into());
        }
        Ok(())
    }

    /// The parameters counting `experts` experts in each routed layer
    /// (`None`: all).
    fn parameters_with_experts(&self, experts: Option<usize>) -> usize {
        let (v, t, c, l) = (self.vocab_size, self.context_length, self.emb_dim, self.n_layers);
        let (q, kv, f, d) = (self.q_width(), self.kv_width(), self.mlp_width(), self.head_dim());
        let gpt2 = self.model_type.is_gpt2();
        let norm = if gpt2 { 2 * c } else { c }; // LayerNorm has a bias, RMSNorm not
                                                 // Gemma 2 and 3 norm each branch's output too: four norms a block.
        let block_norms = if self.model_type.has_post_norms() { 4 * norm } else { 2 * norm };
        let attention = c * (q + 2 * kv)
            + if self.qkv_bias { q + 2 * kv } else { 0 }
            + q * c
            + if self.out_bias { c } else { 0 }
            + if self.qk_norm { 2 * d } else { 0 };
        let mlp = if gpt2 {
            2 * c * f + if self.mlp_bias { f + c } else { 0 } // up and down
        } else {
            3 * c * f + if self.mlp_bias { 2 * f + c } else { 0 } // gate, up and down
        };
        let positions = if self.rope.is_none() { t * c } else { 0 };
        let head = if self.tie_embeddings { 0 } else { v * c };
        let mlps: usize = (0..l).map(|layer| self.routed_mlp_parameters(layer, experts).unwrap_or(mlp)).sum();
        v * c + positions + l * (block_norms + attention) + mlps + norm + head
    }

    /// The parameters of layer `layer`'s routed MLP counting `experts` of
    /// its experts, and its router; `None` for a dense MLP.
    fn routed_mlp_parameters(&self, layer: usize, experts: Option<usize>) -> Option<usize> {
        let moe = self.moe.as_ref().filter(|m| m.is_sparse(layer))?;
        let c = self.emb_dim;
        Some(experts.unwrap_or(moe.n_experts) * 3 * c * moe.expert_width + moe.n_experts * c)
    }

    /// Parameters of the model this config builds, counted as
    /// `transformers` counts them (a tied head once).
    pub fn num_parameters(&self) -> usize {
        self.parameters_with_experts(None)
    }

    /// The parameters one token uses: with a mixture of experts, only the
    /// k experts it is routed to (and the whole router); else all of them.
    pub fn active_parameters(&self) -> usize {
        self.parameters_with_experts(self.moe.as_ref().map(|m| m.top_k))
    }

    /// Floating-point operations to train on one token with `context`
    /// tokens per sequence: 6 per parameter the token uses (2 for the forward multiply-add,
    /// 4 for the backward's two products) plus attention's two T-long
    /// products per layer, 12·L·T·(H·D) (PaLM's accounting, counting the
    /// masked half too).
    pub fn train_flops_per_token(&self, context: usize) -> f64 {
        6.0 * self.active_parameters() as f64 + 12.0 * (self.n_layers * context * self.q_width()) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_small_has_124m_parameters() {
        assert_eq!(GPTConfig::preset("gpt2-small").unwrap().num_parameters(), 124_439_808);
        assert_eq!(GPTConfig::preset("gpt2-xl").unwrap().num_parameters(), 1_557_611_200);
    }
}
