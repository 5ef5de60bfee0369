//! `config.json` as `transformers` reads and writes it, for every
//! `model_type` here.
//!
//! GPT-2's keys are its own (`n_embd`, `n_layer`, `n_head`, `n_positions`);
//! the Llama family shares one vocabulary of keys (`hidden_size`,
//! `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`,
//! `head_dim`, `intermediate_size`, `max_position_embeddings`,
//! `rms_norm_eps`, `rope_parameters`), with a few that belong to one member:
//! Mistral's `sliding_window`, Qwen2's q/k/v bias and `use_sliding_window`,
//! Qwen3's per-head q/k norms, Phi-3's `original_max_position_embeddings`
//! and `partial_rotary_factor` (its fused projections change tensor names,
//! not keys), the experts of Mixtral and Qwen3-MoE (`num_local_experts` /
//! `num_experts`, `num_experts_per_tok`, …); the Gemma family's keys are
//! read and written in `gemma`. Rotary settings are read from
//! `transformers` 5's `rope_parameters` or from the older `rope_theta` plus
//! `rope_scaling`, and written as `rope_parameters`. An option that would
//! change what the model computes and that we do not build is refused with
//! its name, never ignored.

use serde_json::{json, Map, Value};
use tensor::RopeScaling;

use super::config::{GPTConfig, ModelType, Rotary};
use super::moe::MoeConfig;

impl GPTConfig {
    /// The `config.json` value `transformers` writes for this model. `eos`
    /// is the end-of-text id to record when the config names none.
    pub fn to_hf_json(&self, eos: Option<u32>) -> Value {
        if self.model_type.is_gpt2() {
            return self.gpt2_to_hf_json(self.eos_token_ids.first().copied().or(eos));
        }
        self.llama_to_hf_json(eos)
    }

    /// Reads a `config.json` value of any supported `model_type` (GPT-2's
    /// when the key is missing, as the oldest GPT-2 files have it).
    pub fn from_hf_json(v: &Value) -> Result<GPTConfig, String> {
        let model_type = match v.get("model_type") {
            None | Some(Value::Null) => ModelType::Gpt2,
            Some(t) => {
                let name = t.as_str().ok_or("\"model_type\" is not a string")?;
                ModelType::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = ModelType::ALL.iter().map(|t| t.name()).collect();
                    format!("model_type \"{name}\" is not supported (supported: {})", known.join(", "))
                })?
            }
        };
        if model_type.is_gpt2() {
            Self::gpt2_from_hf_json(v)
        } else {
            Self::llama_from_hf_json(v, model_type)
        }
    }

    fn llama_to_hf_json(&self, eos: Option<u32>) -> Value {
        let t = self.model_type;
        let mut v = json!({
            "architectures": [t.architecture()],
            "model_type": t.name(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.emb_dim,
            "intermediate_size": self.mlp_width(),
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.kv_heads(),
            "head_dim": self.head_dim(),
            "max_position_embeddings": self.context_length,
            "rms_norm_eps": self.layer_norm_eps,
            "rope_parameters": rope_parameters(self.rope.as_ref().expect("validated: the Llama family has rotary positions")),
            "hidden_act": "silu",
            "attention_dropout": 0.0,
            "initializer_range": 0.02,
            "tie_word_embeddings": self.tie_embeddings,
            "use_cache": true,
            "dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [] => json!(eos),
                [one] => json!(one),
                many => json!(many),
            },
        });
        let o = v.as_object_mut().expect("an object");
        match t {
            ModelType::Llama => {
                o.insert("attention_bias".into(), json!(self.qkv_bias));
                o.insert("mlp_bias".into(), json!(self.mlp_bias));
            }
            ModelType::Qwen3 | ModelType::Qwen3Moe => {
                o.insert("attention_bias".into(), json!(self.qkv_bias));
            }
            _ => {}
        }
        match t {
            ModelType::Mistral | ModelType::Mixtral => {
                o.insert("sliding_window".into(), json!(self.sliding_window));
            }
            ModelType::Qwen2 | ModelType::Qwen3 | ModelType::Qwen3Moe => {
                o.insert("use_sliding_window".into(), json!(self.sliding_window.is_some()));
                o.insert("sliding_window".into(), json!(self.sliding_window));
                o.insert("max_window_layers".into(), json!(self.full_attention_layers));
            }
            ModelType::Phi3 => {
                o.insert("sliding_window".into(), json!(self.sliding_window));
                let original = match self.rope.as_ref().map(|r| &r.scaling) {
                    Some(RopeScaling::LongRope { original_max, .. }) => *original_max,
                    _ => self.context_length,
                };
                o.insert("original_max_position_embeddings".into(), json!(original));
                o.insert("resid_pdrop".into(), json!(0.0));
                o.insert("embd_pdrop".into(), json!(0.0));
            }
            _ => {}
        }
        if t.is_gemma() {
            super::gemma::write_options(self, o);
        }
        if let Some(moe) = &self.moe {
            let mut set = |key: &str, value: Value| {
                o.insert(key.into(), value);
            };
            set("num_experts_per_tok", json!(moe.top_k));
            set("router_aux_loss_coef", json!(moe.router_aux_loss_coef));
            set("output_router_logits", json!(moe.output_router_logits));
            if t == ModelType::Mixtral {
                set("num_local_experts", json!(moe.n_experts));
                set("router_jitter_noise", json!(0.0));
            } else {
                set("num_experts", json!(moe.n_experts));
                set("moe_intermediate_size", json!(moe.expert_width));
                set("norm_topk_prob", json!(moe.norm_topk_prob));
                set("decoder_sparse_step", json!(moe.sparse_step));
                set("mlp_only_layers", json!(moe.dense_layers));
            }
        }
        v
    }

    fn llama_from_hf_json(v: &Value, model_type: ModelType) -> Result<GPTConfig, String> {
        let get = |key: &str| -> Result<usize, String> {
            v.get(key)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| format!("missing or non-integer \"{key}\""))
        };
        // A key that may be absent or null (then `None`), else a whole number.
        let optional = |key: &str| -> Result<Option<usize>, String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => {
                    x.as_u64().map(|x| Some(x as usize)).ok_or_else(|| format!("\"{key}\" is {x}, not a whole number"))
                }
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool, String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x.as_bool().ok_or_else(|| format!("\"{key}\" is {x}, not true or false")),
            }
        };
        let name = model_type.name();
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str).filter(|_| !model_type.is_gemma()) {
            if act != "silu" {
                return Err(format!("hidden_act \"{act}\" is not supported ({name} uses silu)"));
            }
        }
        if model_type == ModelType::Phi3 {
            // Phi-3's dropouts have no place here: a model read from a file
            // trains without dropout, as the Llama family does.
            for key in ["resid_pdrop", "embd_pdrop", "attention_dropout"] {
                if let Some(p) = v.get(key).and_then(Value::as_f64).filter(|&p| p != 0.0) {
                    return Err(format!("{key} {p} is not supported (phi3 is read without dropout; set it to 0)"));
                }
            }
        }
        let emb_dim = get("hidden_size")?;
        let n_heads = get("num_attention_heads")?;
        let context_length = get("max_position_embeddings")?;
        let attention_bias = flag("attention_bias", false)?;
        let (qkv_bias, out_bias) = match model_type {
            ModelType::Qwen2 => (true, false),
            ModelType::Mistral | ModelType::Phi3 | ModelType::Mixtral => (false, false),
            _ => (attention_bias, attention_bias),
        };
        let (sliding_window, full_attention_layers) = match model_type {
            ModelType::Mistral | ModelType::Phi3 | ModelType::Mixtral => (optional("sliding_window")?, 0),
            ModelType::Qwen2 | ModelType::Qwen3 | ModelType::Qwen3Moe if flag("use_sliding_window", false)? => {
                (optional("sliding_window")?, optional("max_window_layers")?.unwrap_or(28))
            }
            _ => (None, 0),
        };
        let config = GPTConfig {
            vocab_size: get("vocab_size")?,
            context_length,
            emb_dim,
            n_heads,
            n_layers: get("num_hidden_layers")?,
            drop_rate: 0.0,
            qkv_bias,
            layer_norm_eps: match v.get("rms_norm_eps") {
                None | Some(Value::Null) => 1e-6,
                Some(eps) => eps.as_f64().ok_or("\"rms_norm_eps\" is not a number")?,
            },
            model_type,
            n_kv_heads: Some(optional("num_key_value_heads")?.unwrap_or(n_heads)),
            // A head_dim that is hidden/heads is the default, kept as such.
            head_size: optional("head_dim")?.filter(|&d| d * n_heads != emb_dim),
            intermediate_size: Some(get("intermediate_size")?),
            rope: Some(read_rotary(v, context_length)?),
            qk_norm: matches!(model_type, ModelType::Qwen3 | ModelType::Qwen3Moe),
            sliding_window,
            full_attention_layers,
            tie_embeddings: flag("tie_word_embeddings", false)?,
            out_bias,
            mlp_bias: model_type == ModelType::Llama && flag("mlp_bias", false)?,
            bos_token_id: token_ids(v, "bos_token_id")?.first().copied(),
            eos_token_ids: token_ids(v, "eos_token_id")?,
            attn_softcap: None,
            final_softcap: None,
            query_pre_attn_scalar: None,
            layer_types: Vec::new(),
            rope_local: None,
            moe: if model_type.is_moe() { Some(read_moe(v, model_type)?) } else { None },
        };
        let mut config = config;
        if model_type.is_gemma() {
            super::gemma::read_options(v, &mut config)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Hugging Face's `config.json` for `GPT2LMHeadModel`. `eos` is the
    /// end-of-text id, when the vocabulary has one (GPT-2's is 50256).
    pub(crate) fn gpt2_to_hf_json(&self, eos: Option<u32>) -> Value {
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
    pub(crate) fn gpt2_from_hf_json(v: &Value) -> Result<GPTConfig, String> {
        let get = |key: &str| -> Result<usize, String> {
            v.get(key)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| format!("missing or non-integer \"{key}\""))
        };
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
                None | Some(Value::Null) => 1e-5,
                Some(eps) => eps.as_f64().ok_or("\"layer_norm_epsilon\" is not a number")?,
            },
            bos_token_id: None,
            eos_token_ids: Vec::new(),
            ..GPTConfig::gpt2(1, 1, 1)
        };
        config.validate()?;
        Ok(config)
    }
}

/// The experts' settings of a Mixtral or Qwen3-MoE `config.json`, with
/// `transformers`' defaults for absent keys.
fn read_moe(v: &Value, model_type: ModelType) -> Result<MoeConfig, String> {
    let count = |key: &str, default: usize| -> Result<usize, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x.as_u64().map(|x| x as usize).ok_or_else(|| format!("\"{key}\" is {x}, not a whole number")),
        }
    };
    let flag = |key: &str, default: bool| -> Result<bool, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x.as_bool().ok_or_else(|| format!("\"{key}\" is {x}, not true or false")),
        }
    };
    let number = |key: &str, default: f64| -> Result<f64, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(x) => x.as_f64().ok_or_else(|| format!("\"{key}\" is {x}, not a number")),
        }
    };
    let intermediate = count("intermediate_size", 0)?;
    let top_k = count("num_experts_per_tok", if model_type == ModelType::Mixtral { 2 } else { 8 })?;
    let router_aux_loss_coef = number("router_aux_loss_coef", 0.001)?;
    let output_router_logits = flag("output_router_logits", false)?;
    if model_type == ModelType::Mixtral {
        // Training-time noise on the router's input: not built here.
        let jitter = number("router_jitter_noise", 0.0)?;
        if jitter != 0.0 {
            return Err(format!("router_jitter_noise {jitter} is not supported (only 0)"));
        }
        return Ok(MoeConfig {
            n_experts: count("num_local_experts", 8)?,
            top_k,
            norm_topk_prob: true,
            expert_width: intermediate,
            router_aux_loss_coef,
            output_router_logits,
            dense_layers: Vec::new(),
            sparse_step: 1,
        });
    }
    let dense_layers = match v.get("mlp_only_layers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|x| {
                x.as_u64().map(|l| l as usize).ok_or_else(|| format!("\"mlp_only_layers\" holds {x}, not a layer"))
            })
            .collect::<Result<_, _>>()?,
        Some(x) => return Err(format!("\"mlp_only_layers\" is {x}, not a list of layers")),
    };
    Ok(MoeConfig {
        // transformers 5 writes Qwen3-MoE's `num_experts` as `num_local_experts`.
        n_experts: match v.get("num_experts") {
            None | Some(Value::Null) => count("num_local_experts", 128)?,
            Some(_) => count("num_experts", 128)?,
        },
        top_k,
        norm_topk_prob: flag("norm_topk_prob", false)?,
        expert_width: count("moe_intermediate_size", 768)?,
        router_aux_loss_coef,
        output_router_logits,
        dense_layers,
        sparse_step: count("decoder_sparse_step", 1)?,
    })
}

/// A token id key: absent, null, a number or a list of numbers.
fn token_ids(v: &Value, key: &str) -> Result<Vec<u32>, String> {
    let id = |x: &Value| x.as_u64().filter(|&i| i <= u32::MAX as u64).map(|i| i as u32);
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => {
            list.iter().map(|x| id(x).ok_or_else(|| format!("\"{key}\" holds {x}, not a token id"))).collect()
        }
        Some(x) => id(x).map(|i| vec![i]).ok_or_else(|| format!("\"{key}\" is {x}, not a token id")),
    }
}

/// The rotary settings of a Llama-family `config.json`: `rope_parameters`
/// (transformers 5), else `rope_theta` and `rope_scaling`;
/// `original_max_position_embeddings` and `partial_rotary_factor` also
/// from the top level, where Phi-3 keeps them.
pub(super) fn read_rotary(v: &Value, max_positions: usize) -> Result<Rotary, String> {
    let empty = Map::new();
    let (params, legacy) = match v.get("rope_parameters") {
        Some(Value::Object(p)) => (p, None),
        _ => (v.get("rope_scaling").and_then(Value::as_object).unwrap_or(&empty), Some(v)),
    };
    let top_level = |key: &str| {
        let phi3_keeps_it = matches!(key, "original_max_position_embeddings" | "partial_rotary_factor");
        v.get(key).filter(|_| legacy.is_some() || phi3_keeps_it)
    };
    let number = |key: &str| -> Result<Option<f64>, String> {
        match params.get(key).filter(|x| !x.is_null()).or_else(|| top_level(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("rope \"{key}\" is {x}, not a number")),
        }
    };
    let factors = |key: &str| -> Result<Vec<f64>, String> {
        let list = params
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| format!("rope scaling \"longrope\" needs a list \"{key}\""))?;
        list.iter().map(|x| x.as_f64().ok_or_else(|| format!("rope \"{key}\" holds {x}, not a number"))).collect()
    };
    let theta = number("rope_theta")?.unwrap_or(10_000.0);
    let kind = params.get("rope_type").or_else(|| params.get("type")).and_then(Value::as_str).unwrap_or("default");
    let need = |key: &str| number(key)?.ok_or_else(|| format!("rope scaling \"{kind}\" needs \"{key}\""));
    let original_max = || -> Result<usize, String> {
        Ok(number("original_max_position_embeddings")?.map_or(max_positions, |n| n as usize))
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: need("factor")? },
        "dynamic" => RopeScaling::Dynamic { factor: need("factor")?, original_max: original_max()? },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max: original_max()?,
        },
        "longrope" => {
            let original_max = need("original_max_position_embeddings")? as usize;
            // transformers: the stretch is max/original positions unless a
            // factor is given, and the attention factor follows from it.
            let factor = number("factor")?.unwrap_or(max_positions as f64 / original_max.max(1) as f64);
            let attention_factor = match number("attention_factor")? {
                Some(a) => a,
                None if factor <= 1.0 => 1.0,
                None => (1.0 + factor.ln() / (original_max as f64).ln()).sqrt(),
            };
            RopeScaling::LongRope {
                short_factor: factors("short_factor")?,
                long_factor: factors("long_factor")?,
                original_max,
                attention_factor,
            }
        }
        other => {
            return Err(format!(
                "rope scaling type \"{other}\" is not supported (supported: default, linear, dynamic, llama3, longrope)"
            ))
        }
    };
    let partial = number("partial_rotary_factor")?.unwrap_or(1.0);
    Ok(Rotary { theta, scaling, partial })
}

/// `rope_parameters` as transformers 5 writes them.
pub(super) fn rope_parameters(rotary: &Rotary) -> Value {
    let mut p = json!({"rope_theta": rotary.theta});
    let o = p.as_object_mut().expect("an object");
    let mut set = |key: &str, value: Value| {
        o.insert(key.into(), value);
    };
    if rotary.partial != 1.0 {
        set("partial_rotary_factor", json!(rotary.partial));
    }
    match &rotary.scaling {
        RopeScaling::None => set("rope_type", json!("default")),
        RopeScaling::Linear { factor } => {
            set("rope_type", json!("linear"));
            set("factor", json!(factor));
        }
        RopeScaling::Dynamic { factor, original_max } => {
            set("rope_type", json!("dynamic"));
            set("factor", json!(factor));
            set("original_max_position_embeddings", json!(original_max));
        }
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max } => {
            set("rope_type", json!("llama3"));
            set("factor", json!(factor));
            set("low_freq_factor", json!(low_freq_factor));
            set("high_freq_factor", json!(high_freq_factor));
            set("original_max_position_embeddings", json!(original_max));
        }
        RopeScaling::LongRope { short_factor, long_factor, original_max, attention_factor } => {
            set("rope_type", json!("longrope"));
            set("short_factor", json!(short_factor));
            set("long_factor", json!(long_factor));
            set("original_max_position_embeddings", json!(original_max));
            set("attention_factor", json!(attention_factor));
        }
    }
    p
}

/// Serde for `GPTConfig::rope` (checkpoints and `info --json`): the same
/// `rope_parameters` object, or null for learned positions.
pub(crate) mod rotary_serde {
    use super::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(rope: &Option<Rotary>, s: S) -> Result<S::Ok, S::Error> {
        rope.as_ref().map(rope_parameters).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Rotary>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(params) => {
                read_rotary(&json!({ "rope_parameters": params }), 0).map(Some).map_err(serde::de::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Phi-3 mini 128k's way of writing it: `rope_scaling` with
    /// `"type": "longrope"`, the original length and the partial factor at
    /// the top level. Read, written as `rope_parameters`, read back alike.
    #[test]
    fn phi3_reads_partial_rotary_and_longrope_and_refuses_dropout() {
        let c = GPTConfig::preset("phi-3-mini-4k").unwrap();
        let mut v = c.to_hf_json(None);
        assert_eq!(GPTConfig::from_hf_json(&v).unwrap(), c);
        v.as_object_mut().unwrap().remove("rope_parameters");
        v["max_position_embeddings"] = json!(131072);
        v["original_max_position_embeddings"] = json!(4096);
        v["rope_theta"] = json!(10000.0);
        v["partial_rotary_factor"] = json!(0.75);
        v["rope_scaling"] = json!({"type": "longrope", "short_factor": vec![1.0; 36], "long_factor": vec![2.0; 36]});
        let long = GPTConfig::from_hf_json(&v).unwrap();
        let rope = long.rope_config().unwrap();
        assert_eq!(rope.head_dim, 72, "three quarters of 96 turn");
        let RopeScaling::LongRope { original_max, attention_factor, .. } = rope.scaling else { panic!("longrope") };
        // transformers: √(1 + ln(131072 / 4096) / ln 4096).
        assert_eq!(original_max, 4096);
        assert!((attention_factor - (1.0 + 32f64.ln() / 4096f64.ln()).sqrt()).abs() < 1e-12);
        assert_eq!(GPTConfig::from_hf_json(&long.to_hf_json(None)).unwrap(), long);
        v["rope_scaling"]["short_factor"] = json!(vec![1.0; 48]);
        let err = GPTConfig::from_hf_json(&v).unwrap_err();
        assert!(err.contains("short_factor has 48 values, the rotated size 72 needs 36"), "{err}");
        v["rope_scaling"]["short_factor"] = json!(vec![1.0; 36]);
        v["resid_pdrop"] = json!(0.1);
        let err = GPTConfig::from_hf_json(&v).unwrap_err();
        assert_eq!(err, "resid_pdrop 0.1 is not supported (phi3 is read without dropout; set it to 0)");
        v["resid_pdrop"] = json!(0.0);
        v["rope_scaling"]["type"] = json!("yarn");
        assert!(GPTConfig::from_hf_json(&v).unwrap_err().contains("\"yarn\" is not supported"));
    }
}
