//! The Gemma family (`gemma`, `gemma2`, `gemma3_text`) as options of the
//! one decoder, and their `config.json` keys.
//!
//! Gemma is the Llama block with different parts, each switched on by the
//! model type or a config field and built where its kind is built:
//! - the MLP is GeGLU, `down(gelu_tanh(gate(x)) ⊙ up(x))` (`block`);
//! - every RMSNorm scales by 1 + w, its weight stored around 0 (`norm`);
//! - the token embeddings `[B, T, C]` are multiplied by √C before the first
//!   block, rounded to the embedding's dtype as `transformers` does
//!   ([`embedding_scale`]): the tied table is also the output head, whose
//!   rows are small, and the scale brings the inputs back to unit size;
//! - the head size D is its own (256 in the published models), and one
//!   key/value head serves every query head in `gemma-2b` (multi-query).
//!
//! Gemma 2 adds:
//! - soft-capping, cap · tanh(s / cap), of the attention scores (inside the
//!   fused attention op, `AttentionOptions::softcap`) and of the final
//!   logits `[B, T, V]` ([`soft_cap`]): values stay inside (−cap, cap), a
//!   smooth clip that keeps gradients everywhere;
//! - a norm after each branch as well as before it (`block`: four a block);
//! - the scores scaled by 1/√`query_pre_attn_scalar` rather than 1/√D
//!   ([`query_scale`]);
//! - sliding-window attention on alternate layers (`layer_types`).
//!
//! Gemma 3 drops the score cap (keeping the logits' one) and adds QK-norm
//! (the 1 + w norm over each head's q and k), a pattern of five sliding
//! layers to one full one, and a rotary base of
//! its own for the sliding layers (`rope_local`), the full layers keeping
//! `rope` with its scaling.
//!
//! In `config.json`, Gemma 3's rotary settings come as `rope_parameters`
//! keyed by layer type (`full_attention`, `sliding_attention`), or the
//! older `rope_theta`, `rope_scaling` and `rope_local_base_freq`. Options
//! that change what the model computes and that are not built here are
//! refused with their names: another activation than the tanh GELU,
//! bidirectional attention, and a score cap on Gemma 3 (whose attention in
//! `transformers` keeps `attn_logit_softcapping` but never applies it).

use autograd::Var;
use serde_json::{json, Map, Value};
use tensor::RopeScaling;

use super::config::{GPTConfig, LayerType, ModelType, Rotary};
use super::hf_config::{read_rotary, rope_parameters};

/// The factor of the token embeddings: √C rounded to f32, the embedding's
/// dtype, as `transformers` casts its `normalizer`.
pub fn embedding_scale(emb_dim: usize) -> f64 {
    (emb_dim as f64).sqrt() as f32 as f64
}

/// cap · tanh(x / cap): x where |x| ≪ cap, ±cap at most. A composition of
/// differentiable ops (scale, tanh, scale), so it needs no kernel of its own.
pub fn soft_cap(x: &Var, cap: f64) -> Var {
    x.div_scalar(cap).tanh().mul_scalar(cap)
}

/// What to multiply the queries by so that the attention op's 1/√D scale
/// becomes 1/√`query_pre_attn_scalar`: √D / √s, `None` when that is 1.
/// Scaling q is exact in real arithmetic (the scores are linear in q) and
/// leaves the fused kernels, CPU and CUDA, as they are.
pub fn query_scale(config: &GPTConfig) -> Option<f64> {
    let s = config.query_pre_attn_scalar?;
    let d = config.head_dim() as f64;
    (s != d).then(|| (d / s).sqrt())
}

/// The activation key of each Gemma's `config.json`.
fn activation_key(t: ModelType) -> &'static str {
    if t == ModelType::Gemma {
        "hidden_act"
    } else {
        "hidden_activation"
    }
}

/// Reads the Gemma keys of `v` into `c`, whose Llama-family fields are
/// already read.
pub(super) fn read_options(v: &Value, c: &mut GPTConfig) -> Result<(), String> {
    let t = c.model_type;
    let name = t.name();
    let key = activation_key(t);
    if let Some(act) = v.get(key).and_then(Value::as_str) {
        if !matches!(act, "gelu_pytorch_tanh" | "gelu_new") {
            return Err(format!("{key} \"{act}\" is not supported ({name} is built with gelu_pytorch_tanh)"));
        }
    }
    if v.get("use_bidirectional_attention").and_then(Value::as_bool) == Some(true) {
        return Err("\"use_bidirectional_attention\": true (attention to later tokens) is not supported".into());
    }
    c.tie_embeddings = v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(true);
    c.qk_norm = t == ModelType::Gemma3Text;
    if t == ModelType::Gemma {
        return Ok(());
    }
    let number = |key: &str| -> Result<Option<f64>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("\"{key}\" is {x}, not a number")),
        }
    };
    // transformers' defaults where a key is absent.
    let (attn_cap, final_cap) = if t == ModelType::Gemma2 { (Some(50.0), Some(30.0)) } else { (None, None) };
    let capping = |key: &str, default: Option<f64>| -> Result<Option<f64>, String> {
        match v.get(key) {
            None => Ok(default),
            Some(_) => number(key),
        }
    };
    c.attn_softcap = capping("attn_logit_softcapping", attn_cap)?;
    // transformers' Gemma 3 keeps the key but its attention never applies
    // it: a value would mean one thing there and another here.
    if let (ModelType::Gemma3Text, Some(cap)) = (t, c.attn_softcap) {
        return Err(format!(
            "attn_logit_softcapping {cap} is not supported for gemma3_text (transformers' Gemma 3 does not apply it)"
        ));
    }
    c.final_softcap = capping("final_logit_softcapping", final_cap)?;
    c.query_pre_attn_scalar = Some(number("query_pre_attn_scalar")?.unwrap_or(256.0));
    c.sliding_window = match v.get("sliding_window") {
        None => Some(4096),
        Some(Value::Null) => None,
        Some(x) => Some(x.as_u64().ok_or_else(|| format!("\"sliding_window\" is {x}, not a whole number"))? as usize),
    };
    c.layer_types = match v.get("layer_types") {
        Some(Value::Array(kinds)) => kinds
            .iter()
            .map(|k| match k.as_str() {
                Some("full_attention") => Ok(LayerType::FullAttention),
                Some("sliding_attention") => Ok(LayerType::SlidingAttention),
                _ => Err(format!("layer_types holds {k} (supported: \"full_attention\", \"sliding_attention\")")),
            })
            .collect::<Result<_, _>>()?,
        // Gemma 2 alternates, sliding first; Gemma 3 slides on all but
        // every `sliding_window_pattern`-th layer.
        _ => {
            let pattern = if t == ModelType::Gemma2 {
                2
            } else {
                number("sliding_window_pattern")?.map_or(6, |p| p as usize).max(1)
            };
            (0..c.n_layers)
                .map(|i| if (i + 1) % pattern != 0 { LayerType::SlidingAttention } else { LayerType::FullAttention })
                .collect()
        }
    };
    if t == ModelType::Gemma3Text {
        let (global, local) = gemma3_rotary(v, c.context_length)?;
        c.rope = Some(global);
        c.rope_local = Some(local);
    }
    Ok(())
}

/// Gemma 3's two rotary settings (full layers, sliding layers).
fn gemma3_rotary(v: &Value, max_positions: usize) -> Result<(Rotary, Rotary), String> {
    let by_type = v.get("rope_parameters").and_then(Value::as_object);
    let keyed = by_type.filter(|p| p.contains_key("full_attention") || p.contains_key("sliding_attention"));
    if let Some(params) = keyed {
        let read = |kind: &str, theta: f64| -> Result<Rotary, String> {
            let mut p = params.get(kind).and_then(Value::as_object).cloned().unwrap_or_default();
            p.entry("rope_theta").or_insert(json!(theta));
            read_rotary(&json!({ "rope_parameters": p }), max_positions)
        };
        return Ok((read("full_attention", 1e6)?, read("sliding_attention", 1e4)?));
    }
    // The older keys: rope_theta and rope_scaling for the full layers,
    // rope_local_base_freq for the sliding ones.
    let mut legacy = v.clone();
    let o = legacy.as_object_mut().ok_or("config.json is not an object")?;
    o.remove("rope_parameters");
    o.entry("rope_theta").or_insert(json!(1e6));
    let global = read_rotary(&legacy, max_positions)?;
    let local_theta = match v.get("rope_local_base_freq") {
        None | Some(Value::Null) => 1e4,
        Some(x) => x.as_f64().ok_or_else(|| format!("\"rope_local_base_freq\" is {x}, not a number"))?,
    };
    Ok((global, Rotary::new(local_theta, RopeScaling::None)))
}

/// Writes the Gemma keys of `c` into `o`, a Llama-family `config.json`.
pub(super) fn write_options(c: &GPTConfig, o: &mut Map<String, Value>) {
    let t = c.model_type;
    o.remove("hidden_act");
    o.insert(activation_key(t).into(), json!("gelu_pytorch_tanh"));
    o.insert("attention_bias".into(), json!(c.qkv_bias));
    if t == ModelType::Gemma {
        return;
    }
    o.insert("attn_logit_softcapping".into(), json!(c.attn_softcap));
    o.insert("final_logit_softcapping".into(), json!(c.final_softcap));
    o.insert("query_pre_attn_scalar".into(), json!(c.query_pre_attn_scalar));
    o.insert("sliding_window".into(), json!(c.sliding_window));
    o.insert("layer_types".into(), json!(c.layer_types));
    if let (ModelType::Gemma3Text, Some(global), Some(local)) = (t, &c.rope, &c.rope_local) {
        let by_type = json!({
            "full_attention": rope_parameters(global),
            "sliding_attention": rope_parameters(local),
        });
        o.insert("rope_parameters".into(), by_type);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemma_presets_round_trip_through_config_json() {
        for name in ["gemma-2b", "gemma-2-2b", "gemma-3-270m", "gemma-3-1b"] {
            let c = GPTConfig::preset(name).unwrap();
            assert_eq!(GPTConfig::from_hf_json(&c.to_hf_json(None)).unwrap(), c, "{name}");
        }
    }

    #[test]
    fn gemma3_reads_the_older_rope_keys_and_the_pattern() {
        let mut v = GPTConfig::preset("gemma-3-1b").unwrap().to_hf_json(None);
        let o = v.as_object_mut().unwrap();
        o.remove("rope_parameters");
        o.remove("layer_types");
        o.insert("rope_theta".into(), json!(1e6));
        o.insert("rope_local_base_freq".into(), json!(1e4));
        o.insert("rope_scaling".into(), json!({"rope_type": "linear", "factor": 8.0}));
        o.insert("sliding_window_pattern".into(), json!(6));
        let c = GPTConfig::from_hf_json(&v).unwrap();
        assert_eq!(c.rope.as_ref().unwrap().scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!(c.rope_local.clone().unwrap(), Rotary::new(1e4, RopeScaling::None));
        let full: Vec<usize> = (0..c.n_layers).filter(|&i| c.window_of(i).is_none()).collect();
        assert_eq!(full, [5, 11, 17, 23]);
        assert!(c.uses_local_rope(0) && !c.uses_local_rope(5));
    }

    #[test]
    fn options_not_built_are_refused_by_name() {
        let v = GPTConfig::preset("gemma-2-2b").unwrap().to_hf_json(None);
        for (key, value, words) in [
            ("hidden_activation", json!("gelu"), "hidden_activation \"gelu\" is not supported"),
            ("use_bidirectional_attention", json!(true), "use_bidirectional_attention"),
            ("layer_types", json!(["chunked_attention"]), "layer_types holds"),
            ("attn_logit_softcapping", json!(-1.0), "attn_logit_softcapping -1 must be a positive number"),
            ("partial_rotary_factor", json!(0.5), "partial_rotary_factor 0.5 is not read for gemma2"),
        ] {
            let mut bad = v.clone();
            bad[key] = value;
            let err = GPTConfig::from_hf_json(&bad).unwrap_err();
            assert!(err.contains(words), "{key}: {err}");
        }
        let mut capped = GPTConfig::preset("gemma-3-1b").unwrap().to_hf_json(None);
        capped["attn_logit_softcapping"] = json!(50.0);
        let err = GPTConfig::from_hf_json(&capped).unwrap_err();
        assert!(err.contains("attn_logit_softcapping 50 is not supported for gemma3_text"), "{err}");
    }
}
