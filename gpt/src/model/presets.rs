//! Named configurations: the four GPT-2 sizes, the published open models
//! of the Llama family (each as its `config.json` on the Hub describes
//! it), and small ones that train on a 2-core laptop in minutes.
//!
//! `tiny-llama` and `nano-llama` are `tiny` and `nano` with the Llama
//! block (RMSNorm, rotary positions, SwiGLU, two query heads per key/value
//! head), the SwiGLU width chosen as Llama does, about ⅔ of 4·C rounded up,
//! so that the MLP has GPT-2's parameter count: a learner trains the two side
//! by side on the same data and sees what the block alone changes.
//!
//! `nano-gemma`, `nano-phi3` and `nano-moe` are `nano-llama`'s sizes with
//! another family's block, to train one from scratch in seconds:
//! `nano-gemma` is Gemma 3's (GeGLU, QK-norm, norms after each branch too,
//! layer 0 sliding with a 16-key window inside the 64-token context and
//! layer 1 global, no soft-caps); `nano-phi3` is Phi-3's (fused q/k/v and
//! gate/up projections); `nano-moe` is Mixtral's, 4 experts of width 96 of
//! which each token uses 2.

use tensor::RopeScaling;

use super::config::{GPTConfig, LayerType, ModelType, Rotary};
use super::moe::MoeConfig;

/// Names accepted by [`preset`], in the order `info` lists them.
pub const PRESETS: &[&str] = &[
    "gpt2-small",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "tiny",
    "tiny-char",
    "nano",
    "tiny-llama",
    "nano-llama",
    "nano-gemma",
    "nano-phi3",
    "nano-moe",
    "llama-2-7b",
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.1-8b",
    "mistral-7b",
    "qwen2.5-0.5b",
    "qwen3-0.6b",
    "qwen3-1.7b",
    "smollm2-135m",
    "smollm2-360m",
    "tinyllama-1.1b",
    "deepseek-coder-1.3b",
    "codellama-7b",
    "phi-3-mini-4k",
    "gemma-2b",
    "gemma-2-2b",
    "gemma-3-270m",
    "gemma-3-1b",
    "mixtral-8x7b",
    "qwen3-30b-a3b",
];

/// The sizes of a Llama-family model as its `config.json` gives them.
struct Published {
    model_type: ModelType,
    vocab: usize,
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: Option<usize>,
    max_positions: usize,
    rms_eps: f64,
    theta: f64,
    scaling: RopeScaling,
    tied: bool,
}

impl Published {
    fn config(self) -> GPTConfig {
        let mut c = GPTConfig::llama(self.hidden, self.layers, self.heads, self.intermediate);
        c.model_type = self.model_type;
        c.vocab_size = self.vocab;
        c.n_kv_heads = Some(self.kv_heads);
        c.head_size = self.head_dim;
        c.context_length = self.max_positions;
        c.layer_norm_eps = self.rms_eps;
        c.rope = Some(Rotary::new(self.theta, self.scaling));
        c.tie_embeddings = self.tied;
        match self.model_type {
            ModelType::Qwen2 => c.qkv_bias = true,
            ModelType::Qwen3 | ModelType::Qwen3Moe => c.qk_norm = true,
            _ => {}
        }
        c
    }
}

/// E experts of width `width`, k per token, with the settings each
/// family's published config.json gives.
fn experts(model_type: ModelType, n_experts: usize, top_k: usize, width: usize) -> MoeConfig {
    let mixtral = model_type == ModelType::Mixtral;
    MoeConfig {
        n_experts,
        top_k,
        norm_topk_prob: true,
        expert_width: width,
        router_aux_loss_coef: if mixtral { 0.02 } else { 0.001 },
        output_router_logits: false,
        dense_layers: Vec::new(),
        sparse_step: 1,
    }
}

/// Llama 3's long-context scaling of an 8,192-token original.
fn llama3(factor: f64) -> RopeScaling {
    RopeScaling::Llama3 { factor, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max: 8192 }
}

const NONE: RopeScaling = RopeScaling::None;

/// Gemma 2 and 3's options on a published size: scores scaled by 1/√256, a
/// window of `window` keys on every layer but each `pattern`-th; Gemma 2's
/// soft-caps, Gemma 3's QK-norm and local rotary base.
fn gemma_layers(mut c: GPTConfig, window: usize, pattern: usize) -> GPTConfig {
    c.query_pre_attn_scalar = Some(256.0);
    c.sliding_window = Some(window);
    c.layer_types = (0..c.n_layers)
        .map(|i| if (i + 1) % pattern != 0 { LayerType::SlidingAttention } else { LayerType::FullAttention })
        .collect();
    match c.model_type {
        ModelType::Gemma2 => (c.attn_softcap, c.final_softcap) = (Some(50.0), Some(30.0)),
        ModelType::Gemma3Text => {
            c.qk_norm = true;
            c.rope_local = Some(Rotary::new(1e4, NONE));
        }
        _ => {}
    }
    c
}

/// A named configuration. The char preset's vocabulary size is a
/// placeholder the training command replaces with the corpus's.
pub fn preset(name: &str) -> Option<GPTConfig> {
    use ModelType::*;
    let published =
        |model_type, vocab, hidden, intermediate, layers, heads, kv_heads, max_positions, theta, tied| Published {
            model_type,
            vocab,
            hidden,
            intermediate,
            layers,
            heads,
            kv_heads,
            head_dim: None,
            max_positions,
            rms_eps: 1e-5,
            theta,
            scaling: NONE,
            tied,
        };
    let gpt2 = GPTConfig::gpt2;
    Some(match name {
        "gpt2-small" | "gpt2" => gpt2(768, 12, 12),
        "gpt2-medium" => gpt2(1024, 24, 16),
        "gpt2-large" => gpt2(1280, 36, 20),
        "gpt2-xl" => gpt2(1600, 48, 25),
        "tiny" => GPTConfig { context_length: 128, drop_rate: 0.0, ..gpt2(256, 4, 4) },
        "tiny-char" => GPTConfig { vocab_size: 65, context_length: 256, drop_rate: 0.0, ..gpt2(384, 6, 6) },
        "nano" => GPTConfig { vocab_size: 512, context_length: 64, drop_rate: 0.0, ..gpt2(64, 2, 2) },
        "tiny-llama" => GPTConfig {
            vocab_size: 50257,
            context_length: 128,
            n_kv_heads: Some(2),
            tie_embeddings: true,
            ..GPTConfig::llama(256, 4, 4, 704)
        },
        "nano-llama" => GPTConfig {
            vocab_size: 512,
            context_length: 64,
            n_kv_heads: Some(2),
            tie_embeddings: true,
            ..GPTConfig::llama(64, 2, 4, 192)
        },
        "nano-gemma" => {
            let c = GPTConfig { model_type: Gemma3Text, layer_norm_eps: 1e-6, ..preset("nano-llama")? };
            // Scores scaled by 1/√D as usual (D = 16), not Gemma's 1/√256.
            GPTConfig { query_pre_attn_scalar: Some(16.0), ..gemma_layers(c, 16, 2) }
        }
        "nano-phi3" => GPTConfig { model_type: Phi3, ..preset("nano-llama")? },
        // Mixtral's experts are `intermediate_size` wide.
        "nano-moe" => GPTConfig {
            model_type: Mixtral,
            intermediate_size: Some(96),
            moe: Some(experts(Mixtral, 4, 2, 96)),
            ..preset("nano-llama")?
        },
        "llama-2-7b" => published(Llama, 32000, 4096, 11008, 32, 32, 32, 4096, 1e4, false).config(),
        "llama-3.2-1b" => {
            Published { scaling: llama3(32.0), ..published(Llama, 128256, 2048, 8192, 16, 32, 8, 131072, 5e5, true) }
                .config()
        }
        "llama-3.2-3b" => {
            Published { scaling: llama3(32.0), ..published(Llama, 128256, 3072, 8192, 28, 24, 8, 131072, 5e5, true) }
                .config()
        }
        "llama-3.1-8b" => {
            Published { scaling: llama3(8.0), ..published(Llama, 128256, 4096, 14336, 32, 32, 8, 131072, 5e5, false) }
                .config()
        }
        "mistral-7b" => GPTConfig {
            sliding_window: Some(4096),
            ..published(Mistral, 32000, 4096, 14336, 32, 32, 8, 32768, 1e4, false).config()
        },
        "qwen2.5-0.5b" => {
            Published { rms_eps: 1e-6, ..published(Qwen2, 151936, 896, 4864, 24, 14, 2, 32768, 1e6, true) }.config()
        }
        "qwen3-0.6b" => Published {
            rms_eps: 1e-6,
            head_dim: Some(128),
            ..published(Qwen3, 151936, 1024, 3072, 28, 16, 8, 40960, 1e6, true)
        }
        .config(),
        "qwen3-1.7b" => {
            Published { rms_eps: 1e-6, ..published(Qwen3, 151936, 2048, 6144, 28, 16, 8, 40960, 1e6, true) }.config()
        }
        "smollm2-135m" => published(Llama, 49152, 576, 1536, 30, 9, 3, 8192, 1e5, true).config(),
        "smollm2-360m" => published(Llama, 49152, 960, 2560, 32, 15, 5, 8192, 1e5, true).config(),
        "tinyllama-1.1b" => published(Llama, 32000, 2048, 5632, 22, 32, 4, 2048, 1e4, false).config(),
        "deepseek-coder-1.3b" => Published {
            rms_eps: 1e-6,
            scaling: RopeScaling::Linear { factor: 4.0 },
            ..published(Llama, 32256, 2048, 5504, 24, 16, 16, 16384, 1e5, false)
        }
        .config(),
        "codellama-7b" => published(Llama, 32016, 4096, 11008, 32, 32, 32, 16384, 1e6, false).config(),
        // microsoft/Phi-3-mini-4k-instruct: whole-head rotation, no rope
        // scaling, a 2,047-token window.
        "phi-3-mini-4k" => GPTConfig {
            sliding_window: Some(2047),
            ..published(Phi3, 32064, 3072, 8192, 32, 32, 32, 4096, 1e4, false).config()
        },
        // Heads of 256 = 2048 / 8: the default head size.
        "gemma-2b" => {
            Published { rms_eps: 1e-6, ..published(Gemma, 256000, 2048, 16384, 18, 8, 1, 8192, 1e4, true) }.config()
        }
        "gemma-2-2b" => {
            let sizes = published(Gemma2, 256000, 2304, 9216, 26, 8, 4, 8192, 1e4, true);
            gemma_layers(Published { rms_eps: 1e-6, head_dim: Some(256), ..sizes }.config(), 4096, 2)
        }
        "gemma-3-270m" => {
            let sizes = published(Gemma3Text, 262144, 640, 2048, 18, 4, 1, 32768, 1e6, true);
            gemma_layers(Published { rms_eps: 1e-6, head_dim: Some(256), ..sizes }.config(), 512, 6)
        }
        "gemma-3-1b" => {
            let sizes = published(Gemma3Text, 262144, 1152, 6912, 26, 4, 1, 32768, 1e6, true);
            gemma_layers(Published { rms_eps: 1e-6, head_dim: Some(256), ..sizes }.config(), 512, 6)
        }
        // 46.7B parameters, 12.9B of them used per token.
        "mixtral-8x7b" => GPTConfig {
            moe: Some(experts(Mixtral, 8, 2, 14336)),
            ..published(Mixtral, 32000, 4096, 14336, 32, 32, 8, 32768, 1e6, false).config()
        },
        // 30.5B parameters, 3.3B of them used per token.
        "qwen3-30b-a3b" => GPTConfig {
            moe: Some(experts(Qwen3Moe, 128, 8, 768)),
            ..Published {
                rms_eps: 1e-6,
                head_dim: Some(128),
                ..published(Qwen3Moe, 151936, 2048, 6144, 48, 32, 4, 40960, 1e6, false)
            }
            .config()
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid() {
        for name in PRESETS {
            let c = preset(name).unwrap();
            c.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// A folder trained from a small preset saves its config.json and
    /// loads back as the preset.
    #[test]
    fn the_small_presets_round_trip_through_config_json() {
        for name in ["nano-llama", "nano-gemma", "nano-phi3", "nano-moe"] {
            let c = preset(name).unwrap();
            assert_eq!(GPTConfig::from_hf_json(&c.to_hf_json(None)).unwrap(), c, "{name}");
        }
    }
}
