//! Our models to and from GGUF: GPT-2 in llama.cpp's `gpt2` layout, as
//! below, and the Llama family as `llama`, `qwen2`, `qwen3`, `qwen3moe`,
//! `phi3` or `gemma` (`gguf::llama` says what differs). A mixture of
//! experts' matrices are stacked, expert by expert, into one `[E, out, in]`
//! tensor per projection and block (`arch::ExpertNames`); each expert's
//! rows are stored and quantized as a matrix's, so loading takes each
//! expert's slice of the bytes as a matrix of its own.
//!
//! Tensors: our parameters under llama.cpp's names (`arch::GPT2`), plus
//! `output.weight`, the tied head written out as a copy of
//! `token_embd.weight`. Our `Linear` weights are `[out, in]` in memory
//! (GPT-2's Conv1D files store `[in, out]`; `weights::hf` transposes them
//! on the way in), which is what GGUF wants: `ne = [in, out]`, the rows
//! of `[out, in]` one after another, so nothing is transposed here.
//!
//! Storage types on export: f32 keeps everything f32; f16, bf16, q8_0 and
//! q4_0 store the 2-D weight matrices (token table, head, the four
//! projections per block) in that type and keep 1-D tensors (norms,
//! biases) and the position table f32, as llama.cpp's converter does. A
//! matrix whose rows are not whole 32-weight blocks stays f32.
//!
//! Loading takes any type `dequant` reads and builds the model in f32,
//! except Q4_0 matrices, which are exactly our packed int4 (see
//! `quantize`) and are loaded as such, without rounding anything again.

use std::collections::HashMap;
use std::path::Path;

use autograd::nn::{Embedding, Linear, Module};
use autograd::Var;
use half::f16;
use tensor::quant::{QuantData, QuantMatrix};
use tensor::{DType, Tensor};

use super::arch::{self, Architecture, GPT2};
use super::error::GgufError;
use super::ggml_type::GgmlType;
use super::llama;
use super::quantize::quantize;
use super::reader::{GgufFile, TensorInfo};
use super::tokenizer;
use super::value::Value;
use super::writer::GgufWriter;
use crate::model::build::{tensor_specs, Init, LayerSource};
use crate::model::{GPTConfig, GPTModel, Projection, TokenEmbedding};
use crate::quant::{QuantEmbedding, QuantLinear};
use crate::tokenizer::AnyTokenizer;

/// A key only files this program wrote carry: `--out` replaces an
/// existing file only when it has it (`gpt::output`'s rule for folders).
pub const EXPORTER_KEY: &str = "scratchgpt.exporter";

/// What [`export`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExportReport {
    pub architecture: &'static str,
    /// The type of the weight matrices.
    pub matrix_type: &'static str,
    pub tensors: usize,
    /// Weights stored in `matrix_type`, and kept f32 (the tied head's copy
    /// not counted).
    pub matrix_parameters: usize,
    pub f32_parameters: usize,
    pub bytes: u64,
}

/// llama.cpp's `general.file_type` (`enum llama_ftype`) for files whose
/// matrices are `ty`.
fn file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q8_0 => 7,
        GgmlType::BF16 => 32,
        GgmlType::Q4_K => 15, // MOSTLY_Q4_K_M
        GgmlType::Q6_K => 18,
    }
}

/// Our f32 parameters by name, projections as the plain Linear they
/// amount to (a LoRA adapter merged in). A packed model has none to give.
fn f32_parameters(model: &GPTModel) -> Result<HashMap<String, Tensor>, String> {
    let refuse = || "the model is quantized; export the f32 model it was made from".to_string();
    if model.wte.downcast_ref::<Embedding>().is_none() {
        return Err(refuse());
    }
    let mut params: HashMap<String, Tensor> =
        model.named_parameters().into_iter().map(|(n, v)| (n, v.data())).collect();
    for (name, projection) in model.projections() {
        let linear = projection.to_linear().ok_or_else(refuse)?;
        params.insert(format!("{name}.weight"), linear.weight.data());
        if let Some(bias) = &linear.bias {
            params.insert(format!("{name}.bias"), bias.data());
        }
    }
    Ok(params)
}

/// Writes `model` and `tokenizer` to `path` as a GGUF file whose weight
/// matrices are `matrices` (F32, F16, BF16, Q8_0 or Q4_0), atomically.
pub fn export(
    model: &GPTModel,
    tokenizer: &AnyTokenizer,
    matrices: GgmlType,
    name: &str,
    path: &Path,
) -> Result<ExportReport, GgufError> {
    let fail = |reason: String| GgufError::new(path, reason);
    if matches!(matrices, GgmlType::Q4_K | GgmlType::Q6_K) {
        return Err(fail(format!("{matrices} is read but not written; export f32, f16, bf16, q8_0 or q4_0")));
    }
    let config = &model.config;
    let arch = arch::of_model(config).map_err(fail)?;
    let params = f32_parameters(model).map_err(fail)?;
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String(arch.name.into()));
    w.set("general.name", Value::String(name.into()));
    w.set("general.file_type", Value::U32(file_type(matrices)));
    w.set("general.quantization_version", Value::U32(2));
    w.set(EXPORTER_KEY, Value::String(format!("scratchgpt {}", env!("CARGO_PKG_VERSION"))));
    if config.model_type.is_gpt2() {
        let u32_of = |n: usize| Value::U32(n as u32);
        w.set(&arch::key(arch, "context_length"), u32_of(config.context_length));
        w.set(&arch::key(arch, "embedding_length"), u32_of(config.emb_dim));
        w.set(&arch::key(arch, "feed_forward_length"), u32_of(4 * config.emb_dim));
        w.set(&arch::key(arch, "block_count"), u32_of(config.n_layers));
        w.set(&arch::key(arch, "attention.head_count"), u32_of(config.n_heads));
        w.set(&arch::key(arch, "attention.layer_norm_epsilon"), Value::F32(config.layer_norm_eps as f32));
    } else {
        llama::write_hyperparameters(&mut w, arch, config).map_err(fail)?;
    }
    for (key, value) in tokenizer::to_metadata(tokenizer, config.vocab_size).map_err(fail)? {
        w.set(key, value);
    }
    // The model's own start token, where its config names one, over the
    // tokenizer's end-of-text default.
    if let Some(bos) = config.bos_token_id {
        w.set(tokenizer::BOS_KEY, Value::U32(bos));
    }
    let mut report = ExportReport {
        architecture: arch.name,
        matrix_type: matrices.name(),
        tensors: 0,
        matrix_parameters: 0,
        f32_parameters: 0,
        bytes: 0,
    };
    let mut head = None;
    // Experts' matrices gathered into their stacked tensor, by GGUF name:
    // its per-expert shape, type, bytes so far and the experts in them.
    let mut stacks: HashMap<String, (Vec<usize>, GgmlType, Vec<u8>, usize)> = HashMap::new();
    for entry in tensor_specs(config) {
        let stacked = arch.stacked_name(&entry.name);
        let gguf_name = match &stacked {
            Some((name, _)) => name.clone(),
            None => arch.gguf_name(&entry.name).expect("every parameter has a GGUF name"),
        };
        let t = params.get(&entry.name).ok_or_else(|| fail(format!("the model has no parameter {}", entry.name)))?;
        let mut values = t.to_dtype(DType::F32).contiguous_data::<f32>().to_vec();
        if arch.norms_shifted && llama::is_norm_weight(&entry.name) {
            values.iter_mut().for_each(|v| *v += 1.0);
        }
        let shape = entry.shape.clone();
        let cols = *shape.last().expect("no scalars");
        let ty = if entry.is_matrix() && cols.is_multiple_of(matrices.block_size()) { matrices } else { GgmlType::F32 };
        if ty == GgmlType::F16 {
            if let Some(big) = values.iter().find(|v| v.abs() > f16::MAX.to_f32()) {
                return Err(fail(format!("tensor {} holds {big}, beyond f16's largest value 65504", entry.name)));
            }
        }
        if entry.is_matrix() && ty == matrices {
            report.matrix_parameters += values.len();
        } else {
            report.f32_parameters += values.len();
        }
        let mut bytes = quantize(ty, &values);
        if arch.rope_interleaved && llama::is_rotated_weight(&entry.name) {
            bytes = llama::to_interleaved(&bytes, shape[0], config.head_dim());
        }
        if Some(gguf_name.as_str()) == arch.tied_head.map(|(_, embedding)| embedding) {
            head = Some((shape.clone(), ty, bytes.clone()));
        }
        if let (Some((_, expert)), Some(moe)) = (stacked, &config.moe) {
            // Experts come in order, so expert e's rows follow e - 1's:
            // the stack is `[E, out, in]`, each expert's blocks whole.
            let stack = stacks.entry(gguf_name.clone()).or_insert_with(|| (shape, ty, Vec::new(), 0));
            assert_eq!(stack.3, expert, "{}: experts out of order", entry.name);
            stack.2.extend_from_slice(&bytes);
            stack.3 += 1;
            if stack.3 == moe.n_experts {
                let (shape, ty, bytes, _) = stacks.remove(&gguf_name).expect("just filled");
                w.add_tensor(&gguf_name, &[&[moe.n_experts][..], &shape].concat(), ty, bytes);
                report.tensors += 1;
            }
            continue;
        }
        w.add_tensor(&gguf_name, &shape, ty, bytes);
        report.tensors += 1;
        if entry.name.ends_with(".attn.c_attn.weight") && !config.qkv_bias {
            let bias_name = gguf_name.replace(".weight", ".bias");
            // llama.cpp's GPT-2 always has this bias; zeros make it a no-op.
            w.add_tensor(&bias_name, &[3 * config.emb_dim], GgmlType::F32, vec![0u8; 4 * 3 * config.emb_dim]);
            report.tensors += 1;
        }
    }
    if let (Some((output, _)), Some((shape, ty, bytes))) = (arch.tied_head, head) {
        w.add_tensor(output, &shape, ty, bytes);
        report.tensors += 1;
    }
    // llama3 rope scaling: its per-frequency factors, in f32 as the
    // converter writes them.
    if let Some(rope) = &config.rope {
        if let Some(factors) = llama::llama3_rope_factors(config.head_dim(), rope.theta, &rope.scaling) {
            report.f32_parameters += factors.len();
            w.add_tensor(llama::ROPE_FREQS, &[factors.len()], GgmlType::F32, quantize(GgmlType::F32, &factors));
            report.tensors += 1;
        }
    }
    w.write(path)?;
    report.bytes = std::fs::metadata(path).map_err(|e| GgufError::io(path, e))?.len();
    Ok(report)
}

/// A required whole-number hyper-parameter `ARCH.suffix`.
fn hyper(file: &GgufFile, arch: &Architecture, suffix: &str) -> Result<usize, GgufError> {
    let key = arch::key(arch, suffix);
    let value = file.get(&key).ok_or_else(|| file.error(format!("{key} is missing")))?;
    let n = value.as_u64().ok_or_else(|| file.error(format!("{key} is {value:?}, not a whole number")))?;
    usize::try_from(n).map_err(|_| file.error(format!("{key} is {n}, too large")))
}

/// The config a GPT-2 file describes; the vocabulary is the token table's
/// row count.
fn config_of(file: &GgufFile, arch: &Architecture) -> Result<GPTConfig, GgufError> {
    let emb_dim = hyper(file, arch, "embedding_length")?;
    let ff = hyper(file, arch, "feed_forward_length")?;
    if ff != 4 * emb_dim {
        return Err(file.error(format!(
            "{} is {ff}; this GPT-2 has a feed-forward width of 4 × {emb_dim}",
            arch::key(arch, "feed_forward_length")
        )));
    }
    let embedding = arch.tied_head.map_or("token_embd.weight", |(_, e)| e);
    let table = file.tensor(embedding).ok_or_else(|| file.error(format!("missing tensor {embedding}")))?;
    let eps_key = arch::key(arch, "attention.layer_norm_epsilon");
    let eps = match file.get(&eps_key) {
        // An f32 ε as the decimal it was written from (1e-5, not
        // 9.99999974e-6), as llama.cpp's converter wrote it.
        Some(Value::F32(e)) => e.to_string().parse().expect("an f32 prints as a number"),
        Some(v) => v.as_f64().ok_or_else(|| file.error(format!("{eps_key} is {v:?}, not a number")))?,
        None => 1e-5,
    };
    let config = GPTConfig {
        vocab_size: table.shape()[0],
        context_length: hyper(file, arch, "context_length")?,
        emb_dim,
        n_heads: hyper(file, arch, "attention.head_count")?,
        n_layers: hyper(file, arch, "block_count")?,
        drop_rate: 0.0,
        qkv_bias: file.tensor("blk.0.attn_qkv.bias").is_some(),
        layer_norm_eps: eps,
        ..GPTConfig::gpt2(1, 1, 1)
    };
    config.validate().map_err(|reason| file.error(reason))?;
    Ok(config)
}

/// A weight as loaded: f32, or a Q4_0 matrix kept packed.
enum Loaded {
    Dense(Tensor),
    Packed(QuantMatrix),
}

/// A Q4_0 `[rows, cols]` tensor as our int4: the same nibbles, the f16
/// scales gathered into their own array.
fn q4_0_as_int4(
    file: &GgufFile,
    info: &TensorInfo,
    data: &[u8],
    rows: usize,
    cols: usize,
) -> Result<QuantMatrix, GgufError> {
    let block = GgmlType::Q4_0.block_bytes();
    let mut packed = Vec::with_capacity(data.len() / block * 16);
    let mut scales = Vec::with_capacity(data.len() / block);
    for b in data.chunks_exact(block) {
        let d = f16::from_le_bytes([b[0], b[1]]);
        if !d.is_finite() {
            return Err(file.error(format!("tensor {} holds the scale {d}; the weights are damaged", info.name)));
        }
        scales.push(d);
        packed.extend_from_slice(&b[2..]);
    }
    Ok(QuantMatrix::from_parts(rows, cols, QuantData::Int4 { packed, scales }))
}

/// Tensor `info`, whose bytes (in row order) are `data`.
fn load_tensor(file: &GgufFile, info: &TensorInfo, data: &[u8], matrix: bool) -> Result<Loaded, GgufError> {
    let shape = info.shape();
    if matrix && info.ty == GgmlType::Q4_0 {
        return q4_0_as_int4(file, info, data, shape[0], shape[1]).map(Loaded::Packed);
    }
    let values = super::dequant::dequantize(info.ty, data);
    // A NaN or an infinity would silently turn every output into NaN.
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(
            file.error(format!("tensor {} holds a non-finite value ({bad}); the weights are damaged", info.name))
        );
    }
    Ok(Loaded::Dense(Tensor::from_vec(values, shape).expect("numel matches the shape")))
}

/// Loads a GGUF file: its model (GPT-2 or the Llama family; other
/// architectures are refused by name) and the tokenizer in its metadata.
pub fn load(path: &Path) -> Result<(GPTModel, AnyTokenizer), GgufError> {
    let file = GgufFile::open(path)?;
    let model = model_from(&file)?;
    let tokenizer = tokenizer::from_metadata(&file)?;
    Ok((model, tokenizer))
}

/// The model of an opened file.
pub fn model_from(file: &GgufFile) -> Result<GPTModel, GgufError> {
    let arch_name = file
        .get("general.architecture")
        .ok_or_else(|| file.error("general.architecture is missing"))?
        .as_str()
        .ok_or_else(|| file.error("general.architecture is not a string"))?;
    let arch =
        arch::find(arch_name).ok_or_else(|| file.error(arch::not_imported(&format!("architecture {arch_name:?}"))))?;
    let config = if arch.name == GPT2.name { config_of(file, arch)? } else { llama::config_of(file, arch)? };
    // Every tensor is looked up and its shape checked before any is read;
    // an expert's matrix is its slice of the stacked tensor.
    let mut expected: Vec<(String, TensorInfo, bool)> = Vec::new();
    for entry in tensor_specs(&config) {
        let stacked = arch.stacked_name(&entry.name);
        let name = match &stacked {
            Some((name, _)) => name.clone(),
            None => arch.gguf_name(&entry.name).expect("every parameter has a GGUF name"),
        };
        let info = file.tensor(&name).ok_or_else(|| file.error(format!("missing tensor {name}")))?;
        let n_experts = config.moe.as_ref().map_or(0, |m| m.n_experts);
        let want = match stacked {
            Some(_) => [&[n_experts][..], &entry.shape].concat(),
            None => entry.shape.clone(),
        };
        if info.shape() != want {
            return Err(file
                .error(format!("tensor {name} has shape {:?}, but the metadata's sizes need {want:?}", info.shape())));
        }
        let info = match stacked {
            Some((_, expert)) => expert_slice(info, expert, n_experts),
            None => info.clone(),
        };
        expected.push((entry.name.clone(), info, entry.is_matrix()));
    }
    for info in file.tensors() {
        let tied = arch.tied_head.is_some_and(|(head, _)| head == info.name);
        // Checked as llama3 rope scaling by `llama::config_of`; GPT-2 has
        // no rotation for it to scale.
        let rope_factors = info.name == llama::ROPE_FREQS && arch.name != arch::GPT2.name;
        if !tied && !rope_factors && !expected.iter().any(|(_, e, _)| e.name == info.name) {
            return Err(file.error(format!("tensor {} is not part of a {} model of this size", info.name, arch.name)));
        }
    }
    if let Some((head, embedding)) = arch.tied_head {
        if let (Some(h), Some(e)) = (file.tensor(head), file.tensor(embedding)) {
            // Our GPT-2 ties its head to the token table: a head of the
            // same type must be the same bytes. (A quantizer may store
            // the head in another type; the table is used then.)
            if h.shape() != e.shape() || (h.ty == e.ty && file.data(h) != file.data(e)) {
                return Err(file.error(format!(
                    "tensor {head} differs from {embedding}; this GPT-2 ties its output head to its token table"
                )));
            }
        }
    }
    let mut loaded: HashMap<String, Loaded> = HashMap::new();
    for (ours, info, matrix) in expected {
        let bytes = match arch.rope_interleaved && llama::is_rotated_weight(&ours) {
            true => {
                std::borrow::Cow::Owned(llama::from_interleaved(file.data(&info), info.shape()[0], config.head_dim()))
            }
            false => std::borrow::Cow::Borrowed(file.data(&info)),
        };
        let tensor = match load_tensor(file, &info, &bytes, matrix)? {
            Loaded::Dense(t) if arch.norms_shifted && llama::is_norm_weight(&ours) => Loaded::Dense(t.add_scalar(-1.0)),
            other => other,
        };
        loaded.insert(ours, tensor);
    }
    Ok(assemble(config, loaded))
}

/// Expert `expert`'s matrix in the stacked `[E, out, in]` tensor `info`:
/// the `[out, in]` at its E-th of the bytes (rows are whole blocks of any
/// type, so each expert's are).
fn expert_slice(info: &TensorInfo, expert: usize, n_experts: usize) -> TensorInfo {
    let bytes = info.bytes / n_experts as u64;
    TensorInfo {
        name: info.name.clone(),
        ne: info.ne[..2].to_vec(),
        ty: info.ty,
        offset: info.offset + expert as u64 * bytes,
        bytes,
    }
}

/// Builds the model from tensors every one of which is present and shaped.
fn assemble(config: GPTConfig, loaded: HashMap<String, Loaded>) -> GPTModel {
    let Ok(model) = GPTModel::build(config, &mut LoadedSource(loaded));
    model
}

/// The tensors read from the file, by our name: matrices dense or packed.
struct LoadedSource(HashMap<String, Loaded>);

impl LoadedSource {
    fn take(&mut self, name: &str) -> Loaded {
        self.0.remove(name).unwrap_or_else(|| panic!("{name} was loaded"))
    }

    fn dense(&mut self, name: &str) -> Tensor {
        match self.take(name) {
            Loaded::Dense(t) => t,
            Loaded::Packed(_) => unreachable!("only matrices are kept packed"),
        }
    }
}

impl LayerSource for LoadedSource {
    type Error = std::convert::Infallible;

    fn projection(
        &mut self,
        name: &str,
        _: usize,
        _: usize,
        bias: bool,
        _: f64,
    ) -> Result<Box<dyn Projection>, Self::Error> {
        let bias = bias.then(|| self.dense(&format!("{name}.bias")));
        Ok(match self.take(&format!("{name}.weight")) {
            Loaded::Dense(w) => Box::new(Linear::from_weights(Var::parameter(w), bias.map(Var::parameter))),
            Loaded::Packed(weight) => Box::new(QuantLinear { weight, bias }),
        })
    }

    fn token_embedding(&mut self, name: &str, _: usize, _: usize) -> Result<Box<dyn TokenEmbedding>, Self::Error> {
        Ok(match self.take(&format!("{name}.weight")) {
            Loaded::Dense(t) => Box::new(Embedding { weight: Var::parameter(t) }),
            Loaded::Packed(table) => Box::new(QuantEmbedding { table }),
        })
    }

    fn float(&mut self, name: &str, _: &[usize], _: Init) -> Result<Var, Self::Error> {
        Ok(Var::parameter(self.dense(name)))
    }
}
