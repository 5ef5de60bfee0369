//! Quantized model folders: `quantize_folder` writes one from an f32
//! folder, `load_quantized` reads it back into a model that runs on the
//! packed weights.
//!
//! The folder keeps the Hugging Face layout (`config.json`,
//! `model.safetensors`, tokenizer files). `config.json` gains one key,
//!
//! ```json
//! "scratchgpt_quantization": {"scheme": "int4", "group_size": 32, "weight_layout": "[out, in]"}
//! ```
//!
//! which is how loaders know what they are reading. In `model.safetensors`
//! the quantized tensors keep their usual names:
//! - f16/bf16: `X.weight` as F16/BF16 in the same layout as an f32 folder
//!   (Hugging Face's `[in, out]` for the Conv1D projections), with
//!   `torch_dtype` set, as a half-precision export would be;
//! - int8: `X.weight` as I8 `[out, in]` and `X.weight_scale` as F32
//!   `[out]` (one scale per row);
//! - int4: `X.weight` as U8 `[out, in/2]` (two weights per byte, see
//!   `kernels::cpu::quant::int4`) and `X.weight_scale` as F16
//!   `[out, in/32]` (one scale per group of 32).
//!
//! Position embeddings, LayerNorms and biases stay F32. Loading checks
//! every tensor's dtype and shape, and every scale against its weight,
//! before it builds anything; the model it builds never holds an f32 copy
//! of a quantized matrix.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use autograd::nn::{Embedding, LayerNorm};
use autograd::Var;
use half::{bf16, f16};
use safetensors::tensor::Dtype;
use serde_json::{json, Value};
use tensor::{DType, Tensor};

use tensor::quant::{QuantData, QuantMatrix, Scheme};

use super::embedding::QuantEmbedding;
use super::linear::QuantLinear;
use crate::atomic::{replace_dir, settle_dir, staging_dir, write_atomic};
use crate::model::block::{Block, Mlp};
use crate::model::{attention::CausalSelfAttention, GPTConfig, GPTModel, Projection};
use crate::output::{check_not_nested, folder_kind, resolved, FolderKind};
use crate::tokenizer::{CHAR_VOCAB_FILE, MERGES_FILE, VOCAB_FILE};
use crate::weights::hf::{load_config, CONFIG_FILE, WEIGHTS_FILE};
use crate::weights::{save_raw_safetensors, RawTensor, WeightFiles, WeightsError};

/// The `config.json` key that marks a quantized folder.
pub const CONFIG_KEY: &str = "scratchgpt_quantization";

/// One tensor of a GPT-2 model, by our name (no `transformer.` prefix).
pub(crate) struct Entry {
    pub(crate) name: String,
    kind: Kind,
}

impl Entry {
    /// The shape an f32 Hugging Face file stores (Conv1D weights
    /// transposed).
    pub(crate) fn hf_shape(&self) -> Vec<usize> {
        match &self.kind {
            Kind::Matrix { rows, cols, conv1d: true } => vec![*cols, *rows],
            Kind::Matrix { rows, cols, conv1d: false } => vec![*rows, *cols],
            Kind::Float { shape } => shape.clone(),
        }
    }

    /// The shape in our model: a matrix `[out, in]`.
    pub(crate) fn shape(&self) -> Vec<usize> {
        match &self.kind {
            Kind::Matrix { rows, cols, .. } => vec![*rows, *cols],
            Kind::Float { shape } => shape.clone(),
        }
    }

    /// Whether quantization packs it (a projection's weight or the token
    /// table) rather than keeping it f32.
    pub(crate) fn is_matrix(&self) -> bool {
        matches!(self.kind, Kind::Matrix { .. })
    }
}

enum Kind {
    /// A `[rows, cols]` = `[out, in]` matrix that gets quantized; `conv1d`
    /// when Hugging Face stores it transposed.
    Matrix { rows: usize, cols: usize, conv1d: bool },
    /// Stays f32.
    Float { shape: Vec<usize> },
}

/// Every tensor of a model with this config, in file order.
pub(crate) fn inventory(config: &GPTConfig) -> Vec<Entry> {
    let (c, v, t) = (config.emb_dim, config.vocab_size, config.context_length);
    let matrix = |name: String, rows, cols, conv1d| Entry { name, kind: Kind::Matrix { rows, cols, conv1d } };
    let float = |name: String, shape: &[usize]| Entry { name, kind: Kind::Float { shape: shape.to_vec() } };
    let mut out = vec![matrix("wte.weight".into(), v, c, false), float("wpe.weight".into(), &[t, c])];
    for i in 0..config.n_layers {
        let p = format!("h.{i}");
        out.push(float(format!("{p}.ln_1.weight"), &[c]));
        out.push(float(format!("{p}.ln_1.bias"), &[c]));
        out.push(matrix(format!("{p}.attn.c_attn.weight"), 3 * c, c, true));
        if config.qkv_bias {
            out.push(float(format!("{p}.attn.c_attn.bias"), &[3 * c]));
        }
        out.push(matrix(format!("{p}.attn.c_proj.weight"), c, c, true));
        out.push(float(format!("{p}.attn.c_proj.bias"), &[c]));
        out.push(float(format!("{p}.ln_2.weight"), &[c]));
        out.push(float(format!("{p}.ln_2.bias"), &[c]));
        out.push(matrix(format!("{p}.mlp.c_fc.weight"), 4 * c, c, true));
        out.push(float(format!("{p}.mlp.c_fc.bias"), &[4 * c]));
        out.push(matrix(format!("{p}.mlp.c_proj.weight"), c, 4 * c, true));
        out.push(float(format!("{p}.mlp.c_proj.bias"), &[c]));
    }
    out.push(float("ln_f.weight".into(), &[c]));
    out.push(float("ln_f.bias".into(), &[c]));
    out
}

/// The scheme a folder's `config.json` records, `None` for an f32 folder.
pub fn folder_scheme(dir: &Path) -> Result<Option<Scheme>, WeightsError> {
    let path = dir.join(CONFIG_FILE);
    let text =
        crate::input::read_capped_string(&path, crate::input::JSON_LIMIT).map_err(|e| WeightsError::io(&path, e))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| WeightsError::Config { path: path.clone(), reason: e.to_string() })?;
    scheme_in_config(&value).map_err(|reason| WeightsError::Config { path, reason })
}

fn scheme_in_config(config: &Value) -> Result<Option<Scheme>, String> {
    let Some(q) = config.get(CONFIG_KEY) else {
        return Ok(None);
    };
    let name = q.get("scheme").and_then(Value::as_str).ok_or(format!("\"{CONFIG_KEY}\" has no \"scheme\""))?;
    let scheme: Scheme = name.parse()?;
    let group = match q.get("group_size") {
        None | Some(Value::Null) => None,
        Some(g) => Some(g.as_u64().ok_or(format!("\"group_size\" is {g}, not a whole number"))? as usize),
    };
    if group != scheme.group_size() {
        let want = scheme.group_size().map_or("no group_size".to_string(), |g| format!("group_size {g}"));
        let got = group.map_or("none".to_string(), |g| format!("group_size {g}"));
        return Err(format!("{scheme} needs {want}, the config says {got}"));
    }
    Ok(Some(scheme))
}

/// What `quantize_folder` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuantizeReport {
    #[serde(serialize_with = "scheme_name")]
    pub scheme: Scheme,
    /// Parameters stored in the quantized format, and those kept f32.
    pub quantized_parameters: usize,
    pub float_parameters: usize,
    /// Sizes of `model.safetensors` before and after.
    pub source_bytes: u64,
    pub output_bytes: u64,
    /// √(Σ(w − ŵ)² / Σw²) over every quantized weight: the rounding error
    /// relative to the weights' own size.
    pub relative_rms_error: f64,
}

/// A scheme in JSON: its name, `"int8"`.
fn scheme_name<S: serde::Serializer>(scheme: &Scheme, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(scheme.name())
}

/// Reads the f32 folder `src`, quantizes its linear weights and token
/// embedding to `scheme`, and writes a complete folder to `out` (with the
/// tokenizer files). The folder is assembled under a temporary name and
/// swapped in whole, so `out` is never left half-written. `out` must not be
/// or hold the source, and must be missing, empty or a model folder unless
/// `force` (`crate::output`).
pub fn quantize_folder(src: &Path, scheme: Scheme, out: &Path, force: bool) -> Result<QuantizeReport, WeightsError> {
    let config_path = src.join(CONFIG_FILE);
    if let Some(existing) = folder_scheme(src)? {
        return Err(WeightsError::Config {
            path: config_path,
            reason: format!("the model is already quantized ({existing}); quantize the f32 model it was made from"),
        });
    }
    check_destination(src, out, force)?;
    let config = load_config(src)?;
    let file = WeightFiles::open(src)?;
    let source_bytes = file.total_bytes();
    let mut tensors = Vec::new();
    let (mut quantized_parameters, mut float_parameters) = (0, 0);
    let (mut error_sq, mut weight_sq) = (0.0f64, 0.0f64);
    for entry in inventory(&config) {
        let stored = stored_name(&file, &entry.name)?;
        let out_name = format!("transformer.{}", entry.name);
        match entry.kind {
            Kind::Float { shape } => {
                let t = file.tensor_shaped(&stored, &shape)?.to_dtype(DType::F32);
                float_parameters += t.numel();
                tensors.push((out_name, f32_raw(&t)));
            }
            Kind::Matrix { rows, cols, conv1d } => {
                // Half floats keep the f32 folder's layout; integer formats
                // store rows `[out, in]`, the order the kernels stream.
                let keep_hf_layout = matches!(scheme, Scheme::F16 | Scheme::BF16) && conv1d;
                let file_shape = if conv1d { vec![cols, rows] } else { vec![rows, cols] };
                let mut w = file.tensor_shaped(&stored, &file_shape)?.to_dtype(DType::F32);
                if conv1d && !keep_hf_layout {
                    w = w.t().contiguous();
                }
                let (r, k) = (w.dim(0), w.dim(1));
                let values = w.contiguous_data::<f32>();
                let q = QuantMatrix::quantize(&values, r, k, scheme).map_err(|e| WeightsError::Quantized {
                    path: file.path().into(),
                    name: stored.clone(),
                    reason: e.to_string(),
                })?;
                let back = q.dequantize();
                for (&a, &b) in values.iter().zip(back.contiguous_data::<f32>().iter()) {
                    error_sq += ((a - b) as f64).powi(2);
                    weight_sq += (a as f64).powi(2);
                }
                quantized_parameters += rows * cols;
                push_quantized(&mut tensors, out_name, q);
            }
        }
    }
    settle_dir(out).map_err(|e| WeightsError::io(out, e))?;
    let tmp = staging_dir(out).map_err(|e| WeightsError::io(out, e))?;
    let written = (|| {
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        save_raw_safetensors(tmp.join(WEIGHTS_FILE), &tensors, Some(metadata))?;
        write_config(src, &tmp, scheme)?;
        for name in [VOCAB_FILE, MERGES_FILE, CHAR_VOCAB_FILE] {
            if src.join(name).exists() {
                std::fs::copy(src.join(name), tmp.join(name)).map_err(|e| WeightsError::io(src.join(name), e))?;
            }
        }
        replace_dir(&tmp, out).map_err(|(path, e)| WeightsError::io(path, e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;
    let size = |p: PathBuf| std::fs::metadata(&p).map(|m| m.len()).map_err(|e| WeightsError::io(p, e));
    Ok(QuantizeReport {
        scheme,
        quantized_parameters,
        float_parameters,
        source_bytes,
        output_bytes: size(out.join(WEIGHTS_FILE))?,
        relative_rms_error: if weight_sq > 0.0 { (error_sq / weight_sq).sqrt() } else { 0.0 },
    })
}

/// Refuses an output that is the source, lies inside it or holds it (it
/// would be deleted while being read), and, unless `force`, a folder
/// holding anything but a model (it is replaced whole).
fn check_destination(src: &Path, out: &Path, force: bool) -> Result<(), WeightsError> {
    let refuse = |reason: String| WeightsError::Config { path: out.into(), reason };
    let same = match (resolved(src), resolved(out)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(refuse("is the model being quantized; write the quantized model to another folder".into()));
    }
    check_not_nested(out, &[src]).map_err(refuse)?;
    let kind = folder_kind(out).map_err(|e| WeightsError::io(out, e))?;
    match kind {
        FolderKind::Missing | FolderKind::Empty | FolderKind::Model => Ok(()),
        _ if force => Ok(()),
        FolderKind::Run => Err(refuse(
            "holds a training run; quantizing into it would replace its checkpoint and optimizer state \
             (choose another --out, or pass --force to replace it)"
                .into(),
        )),
        other => Err(refuse(format!(
            "exists and is not a model folder: it {}; refusing to replace it (--force would)",
            other.describe()
        ))),
    }
}

/// The source's `config.json` plus the quantization record.
fn write_config(src: &Path, dir: &Path, scheme: Scheme) -> Result<(), WeightsError> {
    let path = src.join(CONFIG_FILE);
    let text =
        crate::input::read_capped_string(&path, crate::input::JSON_LIMIT).map_err(|e| WeightsError::io(&path, e))?;
    let mut value: Value =
        serde_json::from_str(&text).map_err(|e| WeightsError::Config { path: path.clone(), reason: e.to_string() })?;
    let layout = match scheme {
        Scheme::F16 | Scheme::BF16 => "as the f32 folder",
        Scheme::Int8 | Scheme::Int4 => "[out, in]",
    };
    value[CONFIG_KEY] = json!({"scheme": scheme.name(), "group_size": scheme.group_size(), "weight_layout": layout});
    match scheme {
        Scheme::F16 => value["torch_dtype"] = json!("float16"),
        Scheme::BF16 => value["torch_dtype"] = json!("bfloat16"),
        _ => {}
    }
    let out = dir.join(CONFIG_FILE);
    let text = serde_json::to_string_pretty(&value).expect("JSON of a config");
    write_atomic(&out, text.as_bytes()).map_err(|e| WeightsError::io(&out, e))
}

/// The name a tensor has in `file`: with or without `transformer.`.
pub(crate) fn stored_name(file: &WeightFiles, name: &str) -> Result<String, WeightsError> {
    [format!("transformer.{name}"), name.to_string()]
        .into_iter()
        .find(|n| file.contains(n))
        .ok_or_else(|| WeightsError::Missing { path: file.path().into(), name: format!("transformer.{name}") })
}

fn f32_raw(t: &Tensor) -> RawTensor {
    let data = t.contiguous_data::<f32>().iter().flat_map(|v| v.to_le_bytes()).collect();
    RawTensor { dtype: Dtype::F32, shape: t.dims().to_vec(), data }
}

fn u16_bytes(values: impl Iterator<Item = u16>) -> Vec<u8> {
    values.flat_map(u16::to_le_bytes).collect()
}

/// Appends a quantized matrix (and its scales) under `name`.
fn push_quantized(tensors: &mut Vec<(String, RawTensor)>, name: String, q: QuantMatrix) {
    let (rows, cols) = (q.rows(), q.cols());
    let scale_name = format!("{name}_scale");
    match q.data() {
        QuantData::F16(w) => {
            let data = u16_bytes(w.iter().map(|h| h.to_bits()));
            tensors.push((name, RawTensor { dtype: Dtype::F16, shape: vec![rows, cols], data }));
        }
        QuantData::BF16(w) => {
            let data = u16_bytes(w.iter().map(|h| h.to_bits()));
            tensors.push((name, RawTensor { dtype: Dtype::BF16, shape: vec![rows, cols], data }));
        }
        QuantData::Int8 { values, scales } => {
            let data = values.iter().map(|&v| v as u8).collect();
            tensors.push((name, RawTensor { dtype: Dtype::I8, shape: vec![rows, cols], data }));
            let data = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            tensors.push((scale_name, RawTensor { dtype: Dtype::F32, shape: vec![rows], data }));
        }
        QuantData::Int4 { packed, scales } => {
            tensors.push((name, RawTensor { dtype: Dtype::U8, shape: vec![rows, cols / 2], data: packed.clone() }));
            let data = u16_bytes(scales.iter().map(|h| h.to_bits()));
            let groups = cols / Scheme::Int4.group_size().expect("int4 is grouped");
            tensors.push((scale_name, RawTensor { dtype: Dtype::F16, shape: vec![rows, groups], data }));
        }
    }
}

/// Loads a folder written by [`quantize_folder`] into a model that runs on
/// the packed weights. `config` and `scheme` come from its `config.json`.
pub fn load_quantized(dir: &Path, config: GPTConfig, scheme: Scheme) -> Result<GPTModel, WeightsError> {
    let file = WeightFiles::open(dir)?;
    let reader = Reader { file: &file, scheme };
    let mut floats: HashMap<String, Tensor> = HashMap::new();
    let mut matrices: HashMap<String, QuantMatrix> = HashMap::new();
    for entry in inventory(&config) {
        match entry.kind {
            Kind::Float { shape } => {
                let t = file.tensor_shaped(&stored_name(&file, &entry.name)?, &shape)?.to_dtype(DType::F32);
                floats.insert(entry.name, t);
            }
            Kind::Matrix { rows, cols, conv1d } => {
                matrices.insert(entry.name.clone(), reader.matrix(&entry.name, rows, cols, conv1d)?);
            }
        }
    }
    // Everything is read and checked; now assemble.
    let mut float = |name: &str| floats.remove(name).expect("read above");
    let mut take = |name: &str| matrices.remove(name).expect("read above");
    let ln = |float: &mut dyn FnMut(&str) -> Tensor, p: &str| LayerNorm {
        weight: Var::parameter(float(&format!("{p}.weight"))),
        bias: Var::parameter(float(&format!("{p}.bias"))),
        eps: 1e-5,
    };
    let wte = Box::new(QuantEmbedding { table: take("wte.weight") });
    let wpe = Embedding { weight: Var::parameter(float("wpe.weight")) };
    let mut blocks = Vec::with_capacity(config.n_layers);
    for i in 0..config.n_layers {
        let p = format!("h.{i}");
        let mut proj = |name: &str, bias: bool| -> Box<dyn Projection> {
            let weight = take(&format!("{p}.{name}.weight"));
            let bias = bias.then(|| float(&format!("{p}.{name}.bias")));
            Box::new(QuantLinear { weight, bias })
        };
        let c_attn = proj("attn.c_attn", config.qkv_bias);
        let c_proj = proj("attn.c_proj", true);
        let mlp = Mlp { c_fc: proj("mlp.c_fc", true), c_proj: proj("mlp.c_proj", true) };
        let attn = CausalSelfAttention::from_parts(c_attn, c_proj, config.n_heads);
        let ln_1 = ln(&mut float, &format!("{p}.ln_1"));
        let ln_2 = ln(&mut float, &format!("{p}.ln_2"));
        blocks.push(Block::from_parts(ln_1, attn, ln_2, mlp, &config));
    }
    let ln_f = ln(&mut float, "ln_f");
    Ok(GPTModel::from_parts(config, wte, wpe, blocks, ln_f))
}

/// Reads packed matrices of one scheme from a file, checking each.
struct Reader<'a> {
    file: &'a WeightFiles,
    scheme: Scheme,
}

impl<'a> Reader<'a> {
    fn error(&self, name: &str, reason: String) -> WeightsError {
        WeightsError::Quantized { path: self.file.path().into(), name: name.into(), reason }
    }

    /// The stored bytes of `name`, which must have `dtype` and `shape`.
    fn raw(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8], WeightsError> {
        let raw = self.file.raw(name)?;
        if raw.dtype != dtype {
            return Err(
                self.error(name, format!("is {:?}, but a {} model stores it as {dtype:?}", raw.dtype, self.scheme))
            );
        }
        if raw.shape != shape {
            return Err(WeightsError::Shape {
                path: self.file.path().into(),
                name: name.into(),
                expected: shape.to_vec(),
                actual: raw.shape,
            });
        }
        Ok(raw.data)
    }

    /// The scales of `weight`, as f32: `shape`, each finite and ≥ 0.
    fn scales(&self, weight: &str, dtype: Dtype, shape: &[usize], what: &str) -> Result<Vec<f32>, WeightsError> {
        let name = format!("{weight}_scale");
        let raw = self.file.raw(&name)?;
        if raw.shape != shape || raw.dtype != dtype {
            return Err(self.error(
                &name,
                format!(
                    "does not match its weight {weight}: it is {:?} {:?}, but {what} needs {dtype:?} {shape:?}",
                    raw.dtype, raw.shape
                ),
            ));
        }
        let values: Vec<f32> = match dtype {
            Dtype::F16 => raw.data.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => raw.data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        };
        if let Some(bad) = values.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
            return Err(self.error(&name, format!("holds the scale {bad}; scales must be finite and ≥ 0")));
        }
        Ok(values)
    }

    fn matrix(&self, ours: &str, rows: usize, cols: usize, conv1d: bool) -> Result<QuantMatrix, WeightsError> {
        let name = stored_name(self.file, ours)?;
        // 16-bit values in our `[rows, cols]` order (the file may hold the
        // transpose).
        let halves = |bytes: &[u8]| -> Vec<u16> {
            let v = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]));
            if conv1d {
                transpose(&v.collect::<Vec<_>>(), cols, rows)
            } else {
                v.collect()
            }
        };
        let hf_shape = if conv1d { [cols, rows] } else { [rows, cols] };
        let data = match self.scheme {
            Scheme::F16 => {
                let bits = halves(self.raw(&name, Dtype::F16, &hf_shape)?);
                QuantData::F16(bits.into_iter().map(f16::from_bits).collect())
            }
            Scheme::BF16 => {
                let bits = halves(self.raw(&name, Dtype::BF16, &hf_shape)?);
                QuantData::BF16(bits.into_iter().map(bf16::from_bits).collect())
            }
            Scheme::Int8 => {
                let values = self.raw(&name, Dtype::I8, &[rows, cols])?.iter().map(|&b| b as i8).collect();
                let what = format!("one scale per row of [{rows}, {cols}]");
                let scales = self.scales(&name, Dtype::F32, &[rows], &what)?;
                QuantData::Int8 { values, scales }
            }
            Scheme::Int4 => {
                let group = Scheme::Int4.group_size().expect("int4 is grouped");
                if !cols.is_multiple_of(group) {
                    return Err(
                        self.error(&name, format!("has {cols} columns, not a multiple of int4's group {group}"))
                    );
                }
                let packed = self.raw(&name, Dtype::U8, &[rows, cols / 2])?.to_vec();
                let what = format!("one scale per {group} weights of [{rows}, {cols}]");
                let scales = self.scales(&name, Dtype::F16, &[rows, cols / group], &what)?;
                QuantData::Int4 { packed, scales: scales.into_iter().map(f16::from_f32).collect() }
            }
        };
        Ok(QuantMatrix::from_parts(rows, cols, data))
    }
}

/// `[rows, cols]` → `[cols, rows]`.
fn transpose(v: &[u16], rows: usize, cols: usize) -> Vec<u16> {
    let mut out = vec![0u16; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}
