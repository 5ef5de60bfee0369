//! Hugging Face GPT-2 folders: `config.json` + `model.safetensors` (+ the
//! tokenizer's `vocab.json` and `merges.txt`).
//!
//! Two things differ from our layout:
//! - GPT-2's projections are `Conv1D` modules whose weight is stored
//!   `[in, out]` (y = x·W + b); our `Linear` stores `[out, in]` as PyTorch's
//!   `nn.Linear`. Those four weights per block are transposed on the way in
//!   and out.
//! - Names: `save_pretrained` writes `transformer.h.0.attn.c_attn.weight`
//!   and omits the tied `lm_head.weight`; the hub's original `gpt2` files
//!   have no `transformer.` prefix and carry `h.N.attn.bias` causal-mask
//!   buffers. Both load; the buffers are not parameters and are ignored.
//!
//! Every tensor's name and shape is checked against the config in the
//! file's header before anything is allocated; then the model is built
//! from the file's tensors (no random initialisation first), so a bad file
//! leaves the caller with an error, not half a model, and a config that
//! describes more than the file holds costs nothing.

use std::collections::HashMap;
use std::path::Path;

use autograd::nn::{Embedding, LayerNorm, Linear, Module};
use autograd::Var;
use tensor::{DType, Tensor};

use super::error::WeightsError;
use super::shards::{remove_replaced_weights, save_sharded, WeightFiles};
use crate::atomic::write_atomic;
use crate::model::attention::CausalSelfAttention;
use crate::model::block::{Block, Mlp};
use crate::model::{GPTConfig, GPTModel, Projection};
use crate::tokenizer::{AnyTokenizer, CHAR_VOCAB_FILE, MERGES_FILE, TOKENIZER_JSON_FILE, VOCAB_FILE};

pub const CONFIG_FILE: &str = "config.json";
pub use super::shards::WEIGHTS_FILE;

/// The largest shard [`save_model`] writes, `transformers`' default
/// `max_shard_size` (5 GB): GPT-2 XL's 6.2 GB of f32 weights become two.
pub const DEFAULT_MAX_SHARD_BYTES: usize = 5_000_000_000;

/// Whether our parameter `name` is a Conv1D weight in GPT-2's files.
fn is_conv1d_weight(name: &str) -> bool {
    name.ends_with(".weight")
        && (name.contains(".attn.c_attn")
            || name.contains(".attn.c_proj")
            || name.contains(".mlp.c_fc")
            || name.contains(".mlp.c_proj"))
}

/// Reads and validates `config.json`.
pub fn load_config(dir: &Path) -> Result<GPTConfig, WeightsError> {
    let path = dir.join(CONFIG_FILE);
    let text =
        crate::input::read_capped_string(&path, crate::input::JSON_LIMIT).map_err(|e| WeightsError::io(&path, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| WeightsError::Config { path: path.clone(), reason: e.to_string() })?;
    GPTConfig::from_hf_json(&value).map_err(|reason| WeightsError::Config { path, reason })
}

/// Loads a GPT-2 model from a Hugging Face folder, a quantized folder
/// written by `quant::quantize_folder` (its `config.json` says which), or
/// a GGUF file (`crate::gguf`).
pub fn load_model(dir: impl AsRef<Path>) -> Result<GPTModel, WeightsError> {
    let dir = dir.as_ref();
    if crate::gguf::is_model_file(dir) {
        let file = crate::gguf::GgufFile::open(dir)?;
        return Ok(crate::gguf::gpt2::model_from(&file)?);
    }
    if !dir.is_dir() {
        return Err(WeightsError::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found")));
    }
    let config = load_config(dir)?;
    if let Some(scheme) = crate::quant::folder_scheme(dir)? {
        return crate::quant::load_quantized(dir, config, scheme);
    }
    let file = WeightFiles::open(dir)?;
    // Names and shapes are checked against the file's header before the
    // model is built: the header is checked against the file's size, so a
    // config that describes more than the file holds fails here instead of
    // allocating a model of the config's size.
    for entry in crate::quant::folder::inventory(&config) {
        let stored = crate::quant::folder::stored_name(&file, &entry.name)?;
        let (expected, actual) = (entry.hf_shape(), file.shape(&stored)?);
        if actual != expected {
            return Err(WeightsError::Shape { path: file.path().into(), name: stored, expected, actual });
        }
    }
    model_from_file(config, &file)
}

/// Builds the model from the file's tensors, with no random initialisation
/// first: loading needs the weights' memory and one tensor's more, and a
/// file that lacks a tensor or holds a NaN fails before a model exists.
fn model_from_file(config: GPTConfig, file: &WeightFiles) -> Result<GPTModel, WeightsError> {
    let read = |name: &str, shape: &[usize]| -> Result<Tensor, WeightsError> {
        let stored = crate::quant::folder::stored_name(file, name)?;
        let t = file.tensor_shaped(&stored, shape)?.to_dtype(DType::F32);
        // A NaN or an infinity would silently turn every output into NaN.
        if let Some(bad) = t.contiguous_data::<f32>().iter().find(|v| !v.is_finite()) {
            let reason = format!("holds a non-finite value ({bad}); the weights are damaged");
            return Err(WeightsError::Values { path: file.path().into(), name: stored, reason });
        }
        Ok(t)
    };
    let param = |name: &str, shape: &[usize]| read(name, shape).map(Var::parameter);
    // GPT-2's projections are Conv1D, stored [in, out]; ours are [out, in].
    let linear = |name: &str, input: usize, output: usize, bias: bool| -> Result<Box<dyn Projection>, WeightsError> {
        let weight = Var::parameter(read(&format!("{name}.weight"), &[input, output])?.t().contiguous());
        let bias = if bias { Some(param(&format!("{name}.bias"), &[output])?) } else { None };
        Ok(Box::new(Linear::from_weights(weight, bias)))
    };
    let c = config.emb_dim;
    let norm = |name: &str| -> Result<LayerNorm, WeightsError> {
        let (weight, bias) = (param(&format!("{name}.weight"), &[c])?, param(&format!("{name}.bias"), &[c])?);
        Ok(LayerNorm { weight, bias, eps: config.layer_norm_eps })
    };
    let wte = Box::new(Embedding { weight: param("wte.weight", &[config.vocab_size, c])? });
    let wpe = Embedding { weight: param("wpe.weight", &[config.context_length, c])? };
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let h = format!("h.{i}");
        let attn = CausalSelfAttention::from_parts(
            linear(&format!("{h}.attn.c_attn"), c, 3 * c, config.qkv_bias)?,
            linear(&format!("{h}.attn.c_proj"), c, c, true)?,
            config.n_heads,
        );
        let mlp = Mlp {
            c_fc: linear(&format!("{h}.mlp.c_fc"), c, 4 * c, true)?,
            c_proj: linear(&format!("{h}.mlp.c_proj"), 4 * c, c, true)?,
        };
        blocks.push(Block::from_parts(norm(&format!("{h}.ln_1"))?, attn, norm(&format!("{h}.ln_2"))?, mlp, &config));
    }
    let ln_f = norm("ln_f")?;
    Ok(GPTModel::from_parts(config, wte, wpe, blocks, ln_f))
}

/// Loads the tokenizer saved beside a model, if there is one.
pub fn load_tokenizer(dir: impl AsRef<Path>) -> Result<Option<AnyTokenizer>, WeightsError> {
    let dir = dir.as_ref();
    let has_files =
        [TOKENIZER_JSON_FILE, VOCAB_FILE, MERGES_FILE, CHAR_VOCAB_FILE].iter().any(|f| dir.join(f).exists());
    if !has_files {
        return Ok(None);
    }
    Ok(Some(AnyTokenizer::load(dir)?))
}

/// The tensor saved for parameter `name`: a projection's as the plain
/// Linear it amounts to (`Projection::to_linear`), so a model saved with
/// LoRA adapters attached is saved merged, as it computes; `None` for a
/// parameter that layer folds away (an adapter's own matrices).
fn saved_tensor(name: &str, param: &Var, plain: &HashMap<String, Linear>) -> Option<Tensor> {
    let Some((layer, linear)) = name.rsplit_once('.').and_then(|(layer, _)| plain.get_key_value(layer)) else {
        return Some(param.data());
    };
    match &name[layer.len() + 1..] {
        "weight" => Some(linear.weight.data()),
        "bias" => linear.bias.as_ref().map(Var::data),
        _ => None,
    }
}

/// Saves `model` as a Hugging Face folder that `transformers` loads
/// (`GPT2LMHeadModel.from_pretrained(dir)`), plus the tokenizer if given.
/// Each file is written to a temporary name and renamed into place. LoRA
/// adapters, if any, are merged into the weights written. Weights over
/// [`DEFAULT_MAX_SHARD_BYTES`] are split into shards.
pub fn save_model(
    model: &GPTModel,
    dir: impl AsRef<Path>,
    tokenizer: Option<&AnyTokenizer>,
) -> Result<(), WeightsError> {
    save_model_sharded(model, dir, tokenizer, DEFAULT_MAX_SHARD_BYTES)
}

/// [`save_model`] with shards of at most `max_shard_bytes` (one
/// `model.safetensors` when the weights fit in one), indexed by
/// `model.safetensors.index.json`.
pub fn save_model_sharded(
    model: &GPTModel,
    dir: impl AsRef<Path>,
    tokenizer: Option<&AnyTokenizer>,
    max_shard_bytes: usize,
) -> Result<(), WeightsError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| WeightsError::io(dir, e))?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let plain: HashMap<String, Linear> =
        model.projections().filter_map(|(name, p)| Some((name, p.to_linear()?))).collect();
    for (name, param) in model.named_parameters() {
        let Some(t) = saved_tensor(&name, &param, &plain) else {
            continue;
        };
        let mut t = t.to_dtype(DType::F32);
        if is_conv1d_weight(&name) {
            t = t.t().contiguous();
        }
        tensors.push((format!("transformer.{name}"), t));
    }
    if !model.config.qkv_bias {
        // transformers always builds this bias; zeros make it a no-op.
        for i in 0..model.config.n_layers {
            tensors.push((
                format!("transformer.h.{i}.attn.c_attn.bias"),
                Tensor::zeros([3 * model.config.emb_dim], DType::F32),
            ));
        }
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let written = save_sharded(dir, &tensors, metadata, max_shard_bytes)?;
    // The config is written after the weights and the layout they replace
    // is removed before it: a crash leaves the old config beside weights
    // whose names and shapes the loader checks against it.
    remove_replaced_weights(dir, &written)?;
    // The end-of-text id must exist in this vocabulary, or transformers
    // rejects it: the tokenizer's, else GPT-2's when the vocabulary has it.
    let eos = tokenizer.and_then(|t| t.eot_id()).or((model.config.vocab_size > 50256).then_some(50256));
    let config = serde_json::to_string_pretty(&model.config.to_hf_json(eos)).expect("JSON of a config");
    let config_path = dir.join(CONFIG_FILE);
    write_atomic(&config_path, config.as_bytes()).map_err(|e| WeightsError::io(&config_path, e))?;
    if let Some(tok) = tokenizer {
        tok.save(dir)?;
    }
    Ok(())
}
