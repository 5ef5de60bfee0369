//! The model's hyper-parameters, the book's `GPT_CONFIG_124M` fields, and
//! the mapping to and from Hugging Face's GPT-2 `config.json`.
//!
//! Presets: the four GPT-2 sizes, and small ones that train on a 2-core
//! laptop in minutes (`tiny`, `tiny-char`, and `nano` for tests).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GPTConfig {
    /// Tokens in the vocabulary (50,257 for GPT-2's BPE).
    pub vocab_size: usize,
    /// The longest sequence the position embedding covers.
    pub context_length: usize,
    /// Width of every token's vector, C.
    pub emb_dim: usize,
    /// Attention heads per layer; emb_dim / n_heads is the head size.
    pub n_heads: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Dropout on embeddings and residual branches during training.
    pub drop_rate: f64,
    /// Whether the query/key/value projection has a bias (GPT-2: yes).
    pub qkv_bias: bool,
    /// The ε every LayerNorm adds to the variance (GPT-2: 1e-5).
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
}

fn default_layer_norm_eps() -> f64 {
    1e-5
}

/// The largest size each field may have. Far above any GPT-2 (50,257
/// tokens, 1,024 positions, width 1,600, 48 layers), these keep a config
/// file's typo from sizing a model no machine holds, and keep parameter
/// counts well inside 64 bits.
pub const LIMITS: [(&str, usize); 4] =
    [("vocab_size", 1 << 24), ("context_length", 1 << 20), ("emb_dim", 1 << 16), ("n_layers", 1024)];

/// Names accepted by [`GPTConfig::preset`].
pub const PRESETS: &[&str] = &["gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny", "tiny-char", "nano"];

impl GPTConfig {
    fn gpt2(emb_dim: usize, n_layers: usize, n_heads: usize) -> Self {
        GPTConfig {
            vocab_size: 50257,
            context_length: 1024,
            emb_dim,
            n_heads,
            n_layers,
            drop_rate: 0.1,
            qkv_bias: true,
            layer_norm_eps: default_layer_norm_eps(),
        }
    }

    /// A named configuration. The char preset's vocabulary size is a
    /// placeholder the training command replaces with the corpus's.
    pub fn preset(name: &str) -> Option<GPTConfig> {
        Some(match name {
            "gpt2-small" | "gpt2" => Self::gpt2(768, 12, 12),
            "gpt2-medium" => Self::gpt2(1024, 24, 16),
            "gpt2-large" => Self::gpt2(1280, 36, 20),
            "gpt2-xl" => Self::gpt2(1600, 48, 25),
            "tiny" => GPTConfig { context_length: 128, drop_rate: 0.0, ..Self::gpt2(256, 4, 4) },
            "tiny-char" => GPTConfig { vocab_size: 65, context_length: 256, drop_rate: 0.0, ..Self::gpt2(384, 6, 6) },
            "nano" => GPTConfig { vocab_size: 512, context_length: 64, drop_rate: 0.0, ..Self::gpt2(64, 2, 2) },
            _ => return None,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.emb_dim / self.n_heads
    }

    /// Checks the numbers fit together; a one-line reason when they don't.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
            ("emb_dim", self.emb_dim),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        let sizes = [self.vocab_size, self.context_length, self.emb_dim, self.n_layers];
        if let Some(((name, limit), size)) = LIMITS.iter().zip(sizes).find(|((_, limit), size)| size > limit) {
            return Err(format!("{name} {size} is larger than the limit of {limit}"));
        }
        if self.emb_dim % self.n_heads != 0 {
            return Err(format!("emb_dim {} is not divisible by n_heads {}", self.emb_dim, self.n_heads));
        }
        if !(0.0..1.0).contains(&self.drop_rate) {
            return Err(format!("drop_rate {} must be in [0, 1)", self.drop_rate));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(format!("layer_norm_epsilon {} must be in (0, 1)", self.layer_norm_eps));
        }
        Ok(())
    }

    /// Parameters of the model this config builds (the head is tied).
    pub fn num_parameters(&self) -> usize {
        let (v, t, c, l) = (self.vocab_size, self.context_length, self.emb_dim, self.n_layers);
        let block = 2 * 2 * c            // two layer norms
            + c * 3 * c + 3 * c          // qkv projection (GPT-2 always has its bias)
            + c * c + c                  // attention output projection
            + c * 4 * c + 4 * c          // MLP up
            + 4 * c * c + c; // MLP down
        v * c + t * c + l * block + 2 * c
    }

    /// Floating-point operations to train on one token with `context`
    /// tokens per sequence: 6 per parameter (2 for the forward multiply-add,
    /// 4 for the backward's two products) plus attention's two T-long
    /// products per layer, 12·L·T·C (PaLM's accounting, counting the masked
    /// half too).
    pub fn train_flops_per_token(&self, context: usize) -> f64 {
        6.0 * self.num_parameters() as f64 + 12.0 * (self.n_layers * context * self.emb_dim) as f64
    }

    /// Hugging Face's `config.json` for `GPT2LMHeadModel`. `eos` is the
    /// end-of-text id, when the vocabulary has one (GPT-2's is 50256).
    pub fn to_hf_json(&self, eos: Option<u32>) -> Value {
        json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_positions": self.context_length,
            "n_ctx": self.context_length,
            "n_embd": self.emb_dim,
            "n_layer": self.n_layers,
            "n_head": self.n_heads,
            "n_inner": null,
            "activation_function": "gelu_new",
            "resid_pdrop": self.drop_rate,
            "embd_pdrop": self.drop_rate,
            "attn_pdrop": self.drop_rate,
            "layer_norm_epsilon": self.layer_norm_eps,
            "initializer_range": 0.02,
            "bos_token_id": eos,
            "eos_token_id": eos,
            "tie_word_embeddings": true,
            "scratchgpt_qkv_bias": self.qkv_bias,
        })
    }

    /// Reads a Hugging Face GPT-2 `config.json` value.
    pub fn from_hf_json(v: &Value) -> Result<GPTConfig, String> {
        let get = |key: &str| -> Result<usize, String> {
            v.get(key)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| format!("missing or non-integer \"{key}\""))
        };
        if let Some(t) = v.get("model_type").and_then(Value::as_str) {
            if t != "gpt2" {
                return Err(format!("model_type is \"{t}\", expected \"gpt2\""));
            }
        }
        if let Some(act) = v.get("activation_function").and_then(Value::as_str) {
            if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
                return Err(format!("activation_function \"{act}\" is not supported (GPT-2 uses gelu_new)"));
            }
        }
        // Options of transformers' GPT-2 that change what the model computes
        // and that this model does not have: refused, not ignored.
        let unsupported = [
            ("tie_word_embeddings", json!(false), "an lm_head separate from wte; this GPT-2 ties them"),
            ("scale_attn_weights", json!(false), "attention scores without the 1/√d scale"),
            ("scale_attn_by_inverse_layer_idx", json!(true), "attention scores scaled by 1/(layer + 1)"),
            ("add_cross_attention", json!(true), "cross-attention to an encoder"),
        ];
        for (key, value, meaning) in unsupported {
            if v.get(key) == Some(&value) {
                return Err(format!("\"{key}\": {value} ({meaning}) is not supported"));
            }
        }
        if let Some(inner) = v.get("n_inner").and_then(Value::as_u64) {
            if Some(inner as usize) != get("n_embd")?.checked_mul(4) {
                return Err(format!("n_inner {inner} is not 4 × n_embd"));
            }
        }
        let config = GPTConfig {
            vocab_size: get("vocab_size")?,
            context_length: get("n_positions").or_else(|_| get("n_ctx"))?,
            emb_dim: get("n_embd")?,
            n_heads: get("n_head")?,
            n_layers: get("n_layer")?,
            drop_rate: v.get("resid_pdrop").and_then(Value::as_f64).unwrap_or(0.1),
            qkv_bias: v.get("scratchgpt_qkv_bias").and_then(Value::as_bool).unwrap_or(true),
            layer_norm_eps: match v.get("layer_norm_epsilon") {
                None | Some(Value::Null) => default_layer_norm_eps(),
                Some(eps) => eps.as_f64().ok_or("\"layer_norm_epsilon\" is not a number")?,
            },
        };
        config.validate()?;
        Ok(config)
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

    #[test]
    fn hf_config_round_trips() {
        let c = GPTConfig::preset("tiny").unwrap();
        assert_eq!(GPTConfig::from_hf_json(&c.to_hf_json(Some(50256))).unwrap(), c);
        let bad = json!({"vocab_size": 10, "n_positions": 8, "n_embd": 6, "n_head": 4, "n_layer": 1});
        assert_eq!(GPTConfig::from_hf_json(&bad).unwrap_err(), "emb_dim 6 is not divisible by n_heads 4");
        let huge = json!({"vocab_size": 10_000_000u64, "n_positions": 8, "n_embd": 1_000_000_000u64, "n_head": 4, "n_layer": 10_000});
        assert_eq!(GPTConfig::from_hf_json(&huge).unwrap_err(), "emb_dim 1000000000 is larger than the limit of 65536");
    }

    #[test]
    fn fields_that_change_the_math_are_read_or_refused() {
        let mut v = GPTConfig::preset("nano").unwrap().to_hf_json(None);
        v["layer_norm_epsilon"] = json!(1e-3);
        let c = GPTConfig::from_hf_json(&v).unwrap();
        assert_eq!(c.layer_norm_eps, 1e-3);
        assert_eq!(GPTConfig::from_hf_json(&c.to_hf_json(None)).unwrap(), c);
        v["layer_norm_epsilon"] = json!(0.0);
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("layer_norm_epsilon 0 must be in (0, 1)"));
        v["layer_norm_epsilon"] = json!(1e-5);
        for (key, value) in [
            ("tie_word_embeddings", json!(false)),
            ("scale_attn_weights", json!(false)),
            ("scale_attn_by_inverse_layer_idx", json!(true)),
            ("add_cross_attention", json!(true)),
        ] {
            let mut bad = v.clone();
            bad[key] = value;
            let err = GPTConfig::from_hf_json(&bad).unwrap_err();
            assert!(err.contains(key) && err.contains("is not supported"), "{err}");
        }
        // transformers' defaults are accepted.
        for (key, value) in [("scale_attn_weights", json!(true)), ("add_cross_attention", json!(false))] {
            let mut fine = v.clone();
            fine[key] = value;
            GPTConfig::from_hf_json(&fine).unwrap();
        }
    }
}
