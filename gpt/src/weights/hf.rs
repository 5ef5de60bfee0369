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

use std::collections::{HashMap, HashSet};
use std::path::Path;

use autograd::nn::{Embedding, Linear, Module};
use autograd::Var;
use tensor::{DType, Tensor};

use super::error::WeightsError;
use super::shards::{remove_replaced_weights, save_sharded, WeightFiles};
use crate::atomic::write_atomic;
use crate::model::build::{tensor_specs, Init, LayerSource, Role, TensorSpec};
use crate::model::{GPTConfig, GPTModel, Projection, TokenEmbedding};
use crate::tokenizer::{AnyTokenizer, CHAR_VOCAB_FILE, MERGES_FILE, TOKENIZER_JSON_FILE, VOCAB_FILE};

pub const CONFIG_FILE: &str = "config.json";
pub use super::shards::WEIGHTS_FILE;

/// The largest shard [`save_model`] writes, `transformers`' default
/// `max_shard_size` (5 GB): GPT-2 XL's 6.2 GB of f32 weights become two.
pub const DEFAULT_MAX_SHARD_BYTES: usize = 5_000_000_000;

/// The name `transformers`' `save_pretrained` gives our tensor `name`:
/// under `transformer.` (GPT-2) or `model.` (the Llama family), except the
/// Llama family's `lm_head`, which sits beside the model.
pub fn hf_name(config: &GPTConfig, name: &str) -> String {
    match (config.model_type.is_gpt2(), name.starts_with("lm_head.")) {
        (true, _) => format!("transformer.{name}"),
        (false, true) => name.to_string(),
        (false, false) => format!("model.{name}"),
    }
}

/// The name tensor `name` has in `file`: as `save_pretrained` writes it,
/// or without the prefix (the Hub's original `gpt2` files have none).
pub(crate) fn stored_name(file: &WeightFiles, config: &GPTConfig, name: &str) -> Result<String, WeightsError> {
    let hf = hf_name(config, name);
    [hf.clone(), name.to_string()]
        .into_iter()
        .find(|n| file.contains(n))
        .ok_or_else(|| WeightsError::Missing { path: file.path().into(), name: hf })
}

/// Whether a tensor is stored transposed in Hugging Face's files: GPT-2's
/// projections are `Conv1D` modules, weight `[in, out]`.
pub(crate) fn is_conv1d(config: &GPTConfig, role: Role) -> bool {
    config.model_type.is_gpt2() && role == Role::ProjectionWeight
}

/// A tensor's shape in Hugging Face's files.
pub(crate) fn hf_shape(config: &GPTConfig, spec: &TensorSpec) -> Vec<usize> {
    match spec.shape.as_slice() {
        [rows, cols] if is_conv1d(config, spec.role) => vec![*cols, *rows],
        shape => shape.to_vec(),
    }
}

/// Tensors a file may hold beyond the model's, which loading ignores: the
/// causal-mask buffers of the Hub's `gpt2` files, the rotary frequencies
/// of older Llama files, the zero q/k/v bias written for a GPT-2 without
/// one, and a tied head written out anyway.
fn ignorable(config: &GPTConfig, name: &str) -> bool {
    let name = name.strip_prefix("transformer.").or_else(|| name.strip_prefix("model.")).unwrap_or(name);
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with(".rotary_emb.inv_freq")
        || (config.model_type.is_gpt2() && !config.qkv_bias && name.ends_with(".attn.c_attn.bias"))
        || (config.tie_embeddings && name == "lm_head.weight")
}

/// Checks that `file` holds every tensor of the model `config` describes,
/// each with its shape, and nothing else: a missing, extra or misshapen
/// tensor is an error naming it.
pub(crate) fn check_file(config: &GPTConfig, file: &WeightFiles) -> Result<(), WeightsError> {
    let mut expected = HashSet::new();
    for spec in tensor_specs(config) {
        let stored = stored_name(file, config, &spec.name)?;
        let (want, actual) = (hf_shape(config, &spec), file.shape(&stored)?);
        if actual != want {
            return Err(WeightsError::Shape { path: file.path().into(), name: stored, expected: want, actual });
        }
        expected.insert(stored);
    }
    let mut extra: Vec<&str> = file.names().filter(|n| !expected.contains(*n) && !ignorable(config, n)).collect();
    extra.sort();
    if let Some(first) = extra.first() {
        return Err(WeightsError::Config {
            path: file.path().into(),
            reason: format!(
                "holds tensor {first}{}, which a {} model with this config.json does not have",
                if extra.len() > 1 { format!(" (and {} more)", extra.len() - 1) } else { String::new() },
                config.model_type.name()
            ),
        });
    }
    Ok(())
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

/// Loads a model from a Hugging Face folder (GPT-2 or the Llama family,
/// one file or shards, f32, f16 or bf16 weights converted to f32), a
/// quantized folder written by `quant::quantize_folder` (its `config.json`
/// says which), or a GGUF file (`crate::gguf`). A folder whose replacement
/// a crash interrupted is read where it was left (`crate::atomic`), so
/// every command that reads a model sees the old folder or the new one.
pub fn load_model(dir: impl AsRef<Path>) -> Result<GPTModel, WeightsError> {
    let dir = dir.as_ref();
    if crate::gguf::is_model_file(dir) {
        let file = crate::gguf::GgufFile::open(dir)?;
        return Ok(crate::gguf::gpt2::model_from(&file)?);
    }
    let dir = &crate::atomic::readable_dir(dir, CONFIG_FILE);
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
    check_file(&config, &file)?;
    GPTModel::build(config.clone(), &mut FileSource { file: &file, config: &config })
}

/// The layers of a Hugging Face file, each tensor read when the builder
/// asks for it: no random initialisation first, so loading needs the
/// weights' memory and one tensor's more, and a file that holds a NaN
/// fails before a model exists.
struct FileSource<'a> {
    file: &'a WeightFiles,
    config: &'a GPTConfig,
}

impl FileSource<'_> {
    /// Tensor `name` as f32 in our layout, `shape`.
    fn read(&self, name: &str, shape: &[usize], role: Role) -> Result<Tensor, WeightsError> {
        let stored = stored_name(self.file, self.config, name)?;
        let spec = TensorSpec { name: name.into(), shape: shape.to_vec(), role };
        let mut t = self.file.tensor_shaped(&stored, &hf_shape(self.config, &spec))?.to_dtype(DType::F32);
        // A NaN or an infinity would silently turn every output into NaN.
        if let Some(bad) = t.contiguous_data::<f32>().iter().find(|v| !v.is_finite()) {
            let reason = format!("holds a non-finite value ({bad}); the weights are damaged");
            return Err(WeightsError::Values { path: self.file.path().into(), name: stored, reason });
        }
        if is_conv1d(self.config, role) {
            t = t.t().contiguous();
        }
        Ok(t)
    }
}

impl LayerSource for FileSource<'_> {
    type Error = WeightsError;

    fn projection(
        &mut self,
        name: &str,
        i: usize,
        o: usize,
        bias: bool,
        _: f64,
    ) -> Result<Box<dyn Projection>, WeightsError> {
        let weight = Var::parameter(self.read(&format!("{name}.weight"), &[o, i], Role::ProjectionWeight)?);
        let bias = match bias {
            true => Some(Var::parameter(self.read(&format!("{name}.bias"), &[o], Role::Float)?)),
            false => None,
        };
        Ok(Box::new(Linear::from_weights(weight, bias)))
    }

    fn token_embedding(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Box<dyn TokenEmbedding>, WeightsError> {
        let weight = Var::parameter(self.read(&format!("{name}.weight"), &[rows, cols], Role::TokenTable)?);
        Ok(Box::new(Embedding { weight }))
    }

    fn float(&mut self, name: &str, shape: &[usize], _: Init) -> Result<Var, WeightsError> {
        Ok(Var::parameter(self.read(name, shape, Role::Float)?))
    }
}

/// Loads the tokenizer saved beside a model, if there is one (read where
/// `load_model` reads the model).
pub fn load_tokenizer(dir: impl AsRef<Path>) -> Result<Option<AnyTokenizer>, WeightsError> {
    let dir = &crate::atomic::readable_dir(dir.as_ref(), CONFIG_FILE);
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
    let config = &model.config;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let plain: HashMap<String, Linear> =
        model.projections().filter_map(|(name, p)| Some((name, p.to_linear()?))).collect();
    let roles: HashMap<String, Role> = tensor_specs(config).into_iter().map(|s| (s.name, s.role)).collect();
    for (name, param) in model.named_parameters() {
        let Some(t) = saved_tensor(&name, &param, &plain) else {
            continue;
        };
        let mut t = t.to_dtype(DType::F32);
        if roles.get(&name).is_some_and(|&role| is_conv1d(config, role)) {
            t = t.t().contiguous();
        }
        tensors.push((hf_name(config, &name), t));
    }
    if config.model_type.is_gpt2() && !config.qkv_bias {
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
