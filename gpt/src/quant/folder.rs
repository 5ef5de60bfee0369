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

use autograd::Var;
use half::{bf16, f16};
use safetensors::tensor::Dtype;
use serde_json::{json, Value};
use tensor::{DType, Tensor};

use tensor::quant::{QuantData, QuantMatrix, Scheme};

use super::embedding::QuantEmbedding;
use super::linear::QuantLinear;
use crate::atomic::{replace_dir, settle_dir, staging_dir, write_atomic};
use crate::model::build::{tensor_specs, Init, LayerSource};
use crate::model::{GPTConfig, GPTModel, Projection, TokenEmbedding};
use crate::output::{check_not_nested, folder_kind, resolved, FolderKind};
use crate::tokenizer::{CHAR_VOCAB_FILE, MERGES_FILE, TOKENIZER_JSON_FILE, VOCAB_FILE};
use crate::weights::hf::{hf_name, hf_shape, is_conv1d, load_config, stored_name, CONFIG_FILE, WEIGHTS_FILE};
use crate::weights::{save_raw_safetensors, RawTensor, WeightFiles, WeightsError};

/// The files a model folder's tokenizer, chat format and generation
/// settings live in, copied as they are into a quantized folder.
const TOKENIZER_FILES: [&str; 8] = [
    VOCAB_FILE,
    MERGES_FILE,
    CHAR_VOCAB_FILE,
    TOKENIZER_JSON_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// The `config.json` key that marks a quantized folder.
pub const CONFIG_KEY: &str = "scratchgpt_quantization";

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
    for spec in tensor_specs(&config) {
        let stored = stored_name(&file, &config, &spec.name)?;
        let out_name = hf_name(&config, &spec.name);
        if !spec.is_matrix() {
            let t = file.tensor_shaped(&stored, &spec.shape)?.to_dtype(DType::F32);
            float_parameters += t.numel();
            tensors.push((out_name, f32_raw(&t)));
            continue;
        }
        let (rows, cols) = (spec.shape[0], spec.shape[1]);
        let conv1d = is_conv1d(&config, spec.role);
        // Half floats keep the f32 folder's layout; integer formats store
        // rows `[out, in]`, the order the kernels stream.
        let keep_hf_layout = matches!(scheme, Scheme::F16 | Scheme::BF16) && conv1d;
        let mut w = file.tensor_shaped(&stored, &hf_shape(&config, &spec))?.to_dtype(DType::F32);
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
    settle_dir(out).map_err(|e| WeightsError::io(out, e))?;
    let tmp = staging_dir(out).map_err(|e| WeightsError::io(out, e))?;
    let written = (|| {
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        save_raw_safetensors(tmp.join(WEIGHTS_FILE), &tensors, Some(metadata))?;
        write_config(src, &tmp, scheme)?;
        for name in TOKENIZER_FILES {
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
/// Every tensor is read and checked before the model is built.
pub fn load_quantized(dir: &Path, config: GPTConfig, scheme: Scheme) -> Result<GPTModel, WeightsError> {
    let file = WeightFiles::open(dir)?;
    let reader = Reader { file: &file, scheme, config: &config };
    let mut source = QuantSource { floats: HashMap::new(), matrices: HashMap::new() };
    for spec in tensor_specs(&config) {
        if spec.is_matrix() {
            let q = reader.matrix(&spec.name, spec.shape[0], spec.shape[1], is_conv1d(&config, spec.role))?;
            source.matrices.insert(spec.name, q);
        } else {
            let t = file.tensor_shaped(&stored_name(&file, &config, &spec.name)?, &spec.shape)?.to_dtype(DType::F32);
            source.floats.insert(spec.name, t);
        }
    }
    let Ok(model) = GPTModel::build(config, &mut source);
    Ok(model)
}

/// The layers of a quantized folder, read and checked beforehand: packed
/// projections and token table, f32 norms and biases.
struct QuantSource {
    floats: HashMap<String, Tensor>,
    matrices: HashMap<String, QuantMatrix>,
}

impl QuantSource {
    fn float_tensor(&mut self, name: &str) -> Tensor {
        self.floats.remove(name).expect("every tensor the model asks for was read")
    }
}

impl LayerSource for QuantSource {
    type Error = std::convert::Infallible;

    fn projection(
        &mut self,
        name: &str,
        _: usize,
        _: usize,
        bias: bool,
        _: f64,
    ) -> Result<Box<dyn Projection>, Self::Error> {
        let weight = self.matrices.remove(&format!("{name}.weight")).expect("read above");
        let bias = bias.then(|| self.float_tensor(&format!("{name}.bias")));
        Ok(Box::new(QuantLinear { weight, bias }))
    }

    fn token_embedding(&mut self, name: &str, _: usize, _: usize) -> Result<Box<dyn TokenEmbedding>, Self::Error> {
        Ok(Box::new(QuantEmbedding { table: self.matrices.remove(&format!("{name}.weight")).expect("read above") }))
    }

    fn float(&mut self, name: &str, _: &[usize], _: Init) -> Result<Var, Self::Error> {
        Ok(Var::parameter(self.float_tensor(name)))
    }
}

/// Reads packed matrices of one scheme from a file, checking each.
struct Reader<'a> {
    file: &'a WeightFiles,
    scheme: Scheme,
    config: &'a GPTConfig,
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
        let name = stored_name(self.file, self.config, ours)?;
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
