//! Gemma 2 and Gemma 3 (text) in GGUF: llama.cpp's `gemma2` and `gemma3`.
//!
//! Their tensors are named in `arch` (four norms a block, stored as 1 + w
//! as Gemma's); what is left are the parts llama.cpp partly fixes by
//! architecture rather than reading from the file, so that export writes
//! what it reads and refuses, in one line, a model it would run otherwise:
//!
//! - the caps: `attn_logit_softcapping` (`gemma2` always caps the scores,
//!   50 when the key is absent; `gemma3` never does) and
//!   `final_logit_softcapping` (`gemma2`: always, 30 by default; `gemma3`:
//!   when the key is there);
//! - the sliding window, `attention.sliding_window`, over a fixed pattern
//!   of layers: `gemma2` slides on even layers (one in 2), `gemma3` on all
//!   but every sixth; our `layer_types` must be that pattern;
//! - the rotary bases: `rope.freq_base` for every `gemma2` layer and for
//!   `gemma3`'s full layers (with its scaling), a fixed 10000 unscaled for
//!   `gemma3`'s sliding ones;
//! - the query scale: 1/√`attention.key_length`, except in the 27B models
//!   (`gemma2` with 46 blocks, `gemma3` with 62), where it is
//!   1/√(width ÷ heads); our `query_pre_attn_scalar` must be that number.

use tensor::rope::RopeScaling;

use super::arch::{self, Architecture};
use super::error::GgufError;
use super::llama::real;
use super::reader::GgufFile;
use super::value::Value;
use super::writer::GgufWriter;
use crate::model::{GPTConfig, LayerType, ModelType, Rotary};

/// The rotary base llama.cpp's `gemma3` gives its sliding layers.
const GEMMA3_LOCAL_THETA: f64 = 10_000.0;

/// The layer kinds llama.cpp's `arch` has over `n_layers`: sliding on all
/// but every `pattern`-th (2 for `gemma2`, 6 for `gemma3`).
fn layer_pattern(arch: &Architecture, n_layers: usize) -> Vec<LayerType> {
    let pattern = if arch.name == arch::GEMMA2.name { 2 } else { 6 };
    (0..n_layers)
        .map(|i| if (i + 1) % pattern != 0 { LayerType::SlidingAttention } else { LayerType::FullAttention })
        .collect()
}

/// The `query_pre_attn_scalar` llama.cpp's `arch` uses: the head size,
/// or width ÷ heads in the 27B models, which it knows by their depth.
fn query_scalar(arch: &Architecture, config: &GPTConfig) -> usize {
    let depth_27b = if arch.name == arch::GEMMA2.name { 46 } else { 62 };
    match config.n_layers == depth_27b {
        true => config.emb_dim / config.n_heads,
        false => config.head_dim(),
    }
}

/// Writes Gemma 2 or 3's keys of `config` beyond the Llama family's, or
/// says why llama.cpp would run the model otherwise.
pub fn write_options(w: &mut GgufWriter, arch: &Architecture, config: &GPTConfig) -> Result<(), String> {
    let name = arch.name;
    let Some(window) = config.sliding_window else {
        return Err(format!("the model has no sliding window; llama.cpp's {name} is read with one"));
    };
    if config.layer_types != layer_pattern(arch, config.n_layers) {
        return Err(format!(
            "the model's layer_types are not llama.cpp's {name} pattern (sliding on all but every {})",
            if name == arch::GEMMA2.name { "second" } else { "sixth" }
        ));
    }
    let scalar = query_scalar(arch, config);
    if config.query_pre_attn_scalar != Some(scalar as f64) {
        return Err(format!(
            "query_pre_attn_scalar {:?} is not the {scalar} llama.cpp's {name} scales the scores by",
            config.query_pre_attn_scalar
        ));
    }
    if name == arch::GEMMA2.name {
        let (Some(attn_cap), Some(final_cap)) = (config.attn_softcap, config.final_softcap) else {
            return Err("llama.cpp's gemma2 always caps the scores and the logits; the model does not".into());
        };
        if config.rope_local.is_some() {
            return Err("llama.cpp's gemma2 turns every layer by one rotary base; the model has two".into());
        }
        if !config.tie_embeddings {
            return Err("llama.cpp's gemma2 ties the output head to the token table; the model's is its own".into());
        }
        w.set(&arch::key(arch, "attn_logit_softcapping"), Value::F32(attn_cap as f32));
        w.set(&arch::key(arch, "final_logit_softcapping"), Value::F32(final_cap as f32));
    } else {
        if config.attn_softcap.is_some() {
            return Err("llama.cpp's gemma3 does not cap the attention scores; the model does".into());
        }
        let local = Rotary::new(GEMMA3_LOCAL_THETA, RopeScaling::None);
        if config.rope_local.as_ref() != Some(&local) {
            return Err(format!(
                "the sliding layers turn by {:?}; llama.cpp's gemma3 turns them by base 10000 unscaled",
                config.rope_local
            ));
        }
        if let Some(cap) = config.final_softcap {
            w.set(&arch::key(arch, "final_logit_softcapping"), Value::F32(cap as f32));
        }
    }
    w.set(&arch::key(arch, "attention.sliding_window"), Value::U32(window as u32));
    Ok(())
}

/// Fills Gemma 2 or 3's options into `config`, whose Llama-family fields
/// `file` gave, as llama.cpp reads them.
pub fn read_options(file: &GgufFile, arch: &Architecture, config: &mut GPTConfig) -> Result<(), GgufError> {
    let window_key = arch::key(arch, "attention.sliding_window");
    let window = match file.get(&window_key) {
        Some(v) => v.as_u64().ok_or_else(|| file.error(format!("{window_key} is {v:?}, not a whole number")))?,
        None if arch.name == arch::GEMMA2.name => 4096,
        None => return Err(file.error(format!("{window_key} is missing (a gemma3 without one is not read)"))),
    };
    config.sliding_window = Some(window as usize);
    config.layer_types = layer_pattern(arch, config.n_layers);
    config.query_pre_attn_scalar = Some(query_scalar(arch, config) as f64);
    let final_cap = real(file, arch, "final_logit_softcapping")?;
    if arch.name == arch::GEMMA2.name {
        config.model_type = ModelType::Gemma2;
        config.attn_softcap = Some(real(file, arch, "attn_logit_softcapping")?.unwrap_or(50.0));
        config.final_softcap = Some(final_cap.unwrap_or(30.0));
    } else {
        config.model_type = ModelType::Gemma3Text;
        config.final_softcap = final_cap.filter(|&cap| cap != 0.0);
        config.rope_local = Some(Rotary::new(GEMMA3_LOCAL_THETA, RopeScaling::None));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each of Gemma 2 and 3's keys is written as, and every part
    /// llama.cpp fixes refused when the model has it otherwise.
    #[test]
    fn what_llama_cpp_fixes_is_written_or_refused() {
        let gemma2 = GPTConfig::preset("gemma-2-2b").unwrap();
        let gemma3 = GPTConfig::preset("gemma-3-1b").unwrap();
        let written = |arch, config: &GPTConfig| {
            let mut w = GgufWriter::new();
            write_options(&mut w, arch, config).map(|()| w)
        };
        let w = written(&arch::GEMMA2, &gemma2).unwrap();
        assert_eq!(w.get("gemma2.attn_logit_softcapping"), Some(&Value::F32(50.0)));
        assert_eq!(w.get("gemma2.final_logit_softcapping"), Some(&Value::F32(30.0)));
        assert_eq!(w.get("gemma2.attention.sliding_window"), Some(&Value::U32(4096)));
        let w = written(&arch::GEMMA3, &gemma3).unwrap();
        assert_eq!(w.get("gemma3.attention.sliding_window"), Some(&Value::U32(512)));
        assert_eq!(w.get("gemma3.attn_logit_softcapping"), None);
        // Gemma 2 27B: 46 blocks, scores scaled by width ÷ heads (144), not the head (128).
        let big = GPTConfig {
            n_layers: 46,
            emb_dim: 4608,
            n_heads: 32,
            head_size: Some(128),
            query_pre_attn_scalar: Some(144.0),
            layer_types: layer_pattern(&arch::GEMMA2, 46),
            ..gemma2.clone()
        };
        assert!(written(&arch::GEMMA2, &big).is_ok());
        let scaled_by_head = GPTConfig { query_pre_attn_scalar: Some(128.0), ..big };
        let Err(err) = written(&arch::GEMMA2, &scaled_by_head) else { panic!("written") };
        assert!(err.contains("not the 144"), "{err}");
        let mut every_second = gemma3.layer_types.clone();
        every_second
            .iter_mut()
            .enumerate()
            .for_each(|(i, t)| *t = if i % 2 == 0 { LayerType::SlidingAttention } else { LayerType::FullAttention });
        let refused = [
            (&arch::GEMMA2, GPTConfig { attn_softcap: None, ..gemma2.clone() }, "always caps"),
            (&arch::GEMMA2, GPTConfig { final_softcap: None, ..gemma2.clone() }, "always caps"),
            (&arch::GEMMA2, GPTConfig { sliding_window: None, ..gemma2.clone() }, "has no sliding window"),
            (
                &arch::GEMMA2,
                GPTConfig { query_pre_attn_scalar: Some(224.0), ..gemma2.clone() },
                "query_pre_attn_scalar",
            ),
            (&arch::GEMMA2, GPTConfig { tie_embeddings: false, ..gemma2.clone() }, "ties the output head"),
            (
                &arch::GEMMA2,
                GPTConfig { layer_types: gemma3.layer_types[..26].to_vec(), ..gemma2.clone() },
                "every second",
            ),
            (&arch::GEMMA3, GPTConfig { layer_types: every_second, ..gemma3.clone() }, "every sixth"),
            (&arch::GEMMA3, GPTConfig { attn_softcap: Some(50.0), ..gemma3.clone() }, "does not cap"),
            (
                &arch::GEMMA3,
                GPTConfig { rope_local: Some(Rotary::new(5e4, RopeScaling::None)), ..gemma3.clone() },
                "base 10000",
            ),
        ];
        for (arch, config, words) in refused {
            let Err(err) = written(arch, &config) else { panic!("{words}: written") };
            assert!(err.contains(words) && !err.contains('\n'), "{words}: {err}");
        }
    }
}
