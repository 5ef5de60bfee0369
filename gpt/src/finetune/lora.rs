//! LoRA on a GPT: choosing layers, freezing, and PEFT-compatible files.
//!
//! The chapter-4 model knows nothing of LoRA. It holds each block's four
//! projections as a `Box<dyn Projection>` (`model::projection`); this
//! module makes [`LoraLinear`] (see `autograd::nn::lora` for the math) one
//! such projection and swaps it into the slots from outside, as the book's
//! `replace_linear_with_lora` does. [`apply_lora`] wraps the chosen
//! projections of every block and freezes every other parameter, so an
//! optimizer built from the trainable parameters updates only the adapters
//! (plus whatever the caller unfreezes, such as a new classification head);
//! [`merge_lora`] swaps each back for the plain Linear it amounts to.
//! Targets use PEFT's module names. GPT-2's: `c_attn` (the qkv
//! projection), `c_proj` (both output projections: attention's and the
//! MLP's, as PEFT's suffix match does) and `c_fc` (the MLP's up
//! projection). The Llama family's: `q_proj`, `k_proj`, `v_proj`, `o_proj`,
//! `gate_proj`, `up_proj`, `down_proj`. No targets means all of them.
//!
//! Saved adapters follow Hugging Face PEFT, so `PeftModel.from_pretrained`
//! loads them onto GPT-2:
//!
//! ```text
//! adapter_config.json        {"peft_type": "LORA", "r": 8, "lora_alpha": 16,
//!                             "target_modules": ["c_attn", "c_proj", "c_fc"],
//!                             "fan_in_fan_out": model.config.model_type.is_gpt2(), ...}
//! adapter_model.safetensors  base_model.model.transformer.h.0.attn.c_attn.lora_A.weight  [r, in]
//!                            base_model.model.transformer.h.0.attn.c_attn.lora_B.weight  [out, r]
//! ```
//!
//! and for the Llama family `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`.
//!
//! A mixture of experts is adapted expert by expert, each expert's gate, up
//! and down projection an adapter of its own under the name the checkpoint
//! gives its weight (`…layers.0.block_sparse_moe.experts.3.w1.lora_A.weight`
//! for Mixtral, `…layers.0.mlp.experts.3.gate_proj.lora_A.weight` for
//! Qwen3-MoE). transformers 5 holds the experts fused instead, one
//! parameter `experts.gate_up_proj` `[E, 2F, C]` and one `experts.down_proj`
//! `[E, C, F]` a layer, and PEFT (0.21) adapts those through
//! `target_parameters`: loading a per-expert adapter, it converts it, the
//! gate's and up's A stacked and their B's block-diagonal into one adapter
//! of rank 2·r·E on `gate_up_proj` (a `rank_pattern` of 2r per expert), the
//! down's into one of rank r·E on `down_proj`; the model computes the same
//! (`tests/llama_parity.rs` checks our logits against PEFT's with such an
//! adapter). An adapter PEFT trains on the fused parameters is saved fused
//! (`…mlp.experts.base_layer.lora_A.weight` `[2r·E, C]`,
//! `…mlp.experts.lora_A.weight` `[r·E, F]`, `target_parameters`), and is
//! not read here: its gate-and-up part is one rank-2r adapter over both
//! projections of an expert, which per-expert adapters of rank r on each
//! cannot hold in general. One difference remains: Qwen3-MoE's dense
//! layers (`mlp_only_layers`) have an MLP under the experts' names
//! (`mlp.gate_proj`, …), which these targets adapt here, as PEFT does with
//! transformers 4; PEFT with transformers 5 maps those names to the fused
//! expert parameters only and leaves the dense MLP unadapted, ignoring an
//! adapter's tensors for it.
//!
//! PEFT's `lora_A`/`lora_B` are `nn.Linear`s, so their weights are our A and
//! B transposed. `fan_in_fan_out` tells PEFT that GPT-2's `Conv1D` stores
//! its weight `[in, out]`, so the merged ΔW must be transposed to match
//! (the Llama family's projections are `nn.Linear`s: false there).

use std::collections::HashMap;
use std::path::Path;

use autograd::nn::{Linear, LoraLinear, Module};
use serde_json::{json, Value};
use tensor::{DType, Generator, Tensor};

use super::FinetuneError;
use crate::atomic::write_atomic;
use crate::model::{GPTModel, ModelType, Projection};
use crate::quant::scheme_of;
use crate::weights::hf::hf_name;
use crate::weights::{save_safetensors, SafetensorsFile};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's names for the projections GPT-2 can adapt.
pub const TARGETS: [&str; 3] = ["c_attn", "c_proj", "c_fc"];
/// And those of the Llama family.
pub const LLAMA_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
/// And Phi-3's, whose q/k/v and gate/up projections are fused: an adapter
/// on `qkv_proj` adapts all three at once.
pub const PHI3_TARGETS: [&str; 4] = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"];
/// And Mixtral's, whose experts name their gate, down and up projections
/// `w1`, `w2` and `w3` (as PEFT targets them); Qwen3-MoE's experts use the
/// Llama names.
pub const MIXTRAL_TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"];

/// The projections a model of this type can adapt.
pub fn targets_of(model_type: ModelType) -> &'static [&'static str] {
    if model_type.is_gpt2() {
        &TARGETS
    } else if model_type.fuses_projections() {
        &PHI3_TARGETS
    } else if model_type == ModelType::Mixtral {
        &MIXTRAL_TARGETS
    } else {
        &LLAMA_TARGETS
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Any of the model's [`targets_of`]; empty: all of them.
    pub targets: Vec<String>,
}

impl LoraConfig {
    /// All projections, α = 2r (a common choice: scaling 2).
    pub fn new(rank: usize) -> Self {
        LoraConfig { rank, alpha: 2.0 * rank as f64, targets: Vec::new() }
    }

    /// The targets on a model of this type: those named, or all.
    fn targets_for(&self, model_type: ModelType) -> Vec<String> {
        match self.targets.is_empty() {
            true => targets_of(model_type).iter().map(|s| s.to_string()).collect(),
            false => self.targets.clone(),
        }
    }
}

/// Trainable versus total parameter elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ParamReport {
    pub trainable: usize,
    pub total: usize,
}

impl ParamReport {
    pub fn of(model: &impl Module) -> Self {
        ParamReport { trainable: model.num_trainable_parameters(), total: model.num_parameters() }
    }
    pub fn percent(&self) -> f64 {
        100.0 * self.trainable as f64 / self.total.max(1) as f64
    }
}

impl std::fmt::Display for ParamReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trainable {} of {} parameters ({:.2}%)", self.trainable, self.total, self.percent())
    }
}

/// A LoRA-wrapped layer is a model projection: the plain Linear it
/// amounts to is its base with ΔW folded in.
impl Projection for LoraLinear {
    fn to_linear(&self) -> Option<Linear> {
        Some(self.merged())
    }
}

/// The adapter in a projection slot, if there is one.
fn adapter(p: &dyn Projection) -> Option<&LoraLinear> {
    p.downcast_ref::<LoraLinear>()
}

/// The pretrained layer an adapter goes on, sharing its parameters: a
/// plain Linear itself, or the base under an adapter already there (which
/// the new one replaces). `None` for a layer with no f32 weight.
fn base_layer(p: &dyn Projection) -> Option<Linear> {
    match adapter(p) {
        Some(lora) => Some(Linear::from_weights(lora.base.weight.clone(), lora.base.bias.clone())),
        None => p.to_linear(),
    }
}

/// PEFT's name for a projection (`h.3.mlp.c_proj` → `c_proj`).
fn target_of(name: &str) -> &str {
    name.rsplit('.').next().expect("a projection name")
}

fn check_targets(targets: &[String], model_type: ModelType) -> Result<(), FinetuneError> {
    let known = targets_of(model_type);
    if let Some(bad) = targets.iter().find(|t| !known.contains(&t.as_str())) {
        return Err(FinetuneError::Config(format!(
            "unknown LoRA target {bad:?}; {}'s are {}",
            model_type.name(),
            known.join(", ")
        )));
    }
    Ok(())
}

/// Freezes every parameter of `model`.
pub fn freeze(model: &impl Module) {
    model.parameters().iter().for_each(|p| p.set_requires_grad(false));
}

/// Wraps the targeted projections of every block with fresh adapters and
/// freezes everything else. Checks every layer before changing any.
pub fn apply_lora(
    model: &mut GPTModel,
    config: &LoraConfig,
    gen: &mut Generator,
) -> Result<ParamReport, FinetuneError> {
    let targets = config.targets_for(model.config.model_type);
    check_targets(&targets, model.config.model_type)?;
    if let Some(scheme) = scheme_of(model) {
        return Err(FinetuneError::Config(format!(
            "adapters attach to an f32 model, and this one is quantized ({scheme})"
        )));
    }
    let targeted = |name: &str| targets.iter().any(|t| t == target_of(name));
    for (_, p) in model.projections().filter(|(name, _)| targeted(name)) {
        let l = base_layer(p).expect("an f32 model's projections have f32 weights");
        autograd::nn::check_rank(config.rank, l.in_features(), l.out_features())?;
    }
    freeze(model);
    for (_, p) in model.projections_mut().filter(|(name, _)| targeted(name)) {
        let base = base_layer(&**p).expect("checked above");
        *p = Box::new(LoraLinear::new(base, config.rank, config.alpha, gen)?);
    }
    Ok(ParamReport::of(model))
}

/// Folds every adapter into its base weight (then the model is plain
/// GPT-2 again, all parameters trainable copies).
pub fn merge_lora(model: &mut GPTModel) {
    for (_, p) in model.projections_mut() {
        if let Some(lora) = adapter(&**p) {
            *p = Box::new(lora.merged());
        }
    }
}

/// PEFT's name for an adapter matrix of projection `name` (`h.0.attn.c_attn`).
fn peft_name(model: &GPTModel, name: &str, which: &str) -> String {
    format!("base_model.model.{}.lora_{which}.weight", hf_name(&model.config, name))
}

/// Writes the adapters of `model` into folder `dir` in PEFT's layout.
/// `base` names the base model (`base_model_name_or_path`).
pub fn save_adapter(model: &GPTModel, dir: &Path, base: &str) -> Result<(), FinetuneError> {
    let mut tensors = Vec::new();
    let mut config: Option<(usize, f64)> = None;
    let mut targets: Vec<String> = Vec::new();
    for (name, p) in model.projections() {
        if let Some(l) = adapter(p) {
            tensors.push((peft_name(model, &name, "A"), l.a.data().t().contiguous()));
            tensors.push((peft_name(model, &name, "B"), l.b.data().t().contiguous()));
            config.get_or_insert((l.rank(), l.alpha));
            let target = target_of(&name).to_string();
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    let Some((rank, alpha)) = config else {
        return Err(FinetuneError::Config("the model has no LoRA adapters to save".into()));
    };
    std::fs::create_dir_all(dir).map_err(|e| FinetuneError::io(dir, e))?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors(dir.join(ADAPTER_WEIGHTS_FILE), &tensors, Some(meta))?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.0,
        "target_modules": targets,
        "fan_in_fan_out": model.config.model_type.is_gpt2(),
        "bias": "none",
        "inference_mode": true,
        "modules_to_save": null,
    });
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = serde_json::to_string_pretty(&config).expect("JSON of a config");
    write_atomic(&path, text.as_bytes()).map_err(|e| FinetuneError::io(&path, e))
}

/// Reads `adapter_config.json`.
pub fn load_adapter_config(dir: &Path) -> Result<LoraConfig, FinetuneError> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text =
        crate::input::read_capped_string(&path, crate::input::JSON_LIMIT).map_err(|e| FinetuneError::io(&path, e))?;
    let bad = |reason: String| FinetuneError::Adapter { path: path.clone(), reason };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v.get("peft_type").and_then(Value::as_str) != Some("LORA") {
        return Err(bad("peft_type is not \"LORA\"".into()));
    }
    let rank = v.get("r").and_then(Value::as_u64).ok_or_else(|| bad("missing or non-integer \"r\"".into()))?;
    let alpha = v.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0);
    let targets: Vec<String> = match v.get("target_modules") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => return Err(bad("missing \"target_modules\"".into())),
    };
    if targets.is_empty() {
        return Err(bad("\"target_modules\" is empty".into()));
    }
    if let Some(option) = unsupported_peft_option(&v) {
        return Err(bad(format!(
            "{option}, which this program does not implement; its outputs would differ from PEFT's"
        )));
    }
    Ok(LoraConfig { rank: rank as usize, alpha, targets })
}

/// The first option of a PEFT LoRA config that changes the computation in
/// a way [`LoraLinear`] does not (absent, false, null or empty means off).
fn unsupported_peft_option(v: &Value) -> Option<String> {
    let on = |key: &str| match v.get(key) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    let described = [
        ("use_rslora", "uses rank-stabilised scaling (use_rslora: α/√r instead of α/r)"),
        ("use_dora", "uses DoRA (use_dora: weight-decomposed adapters)"),
        ("alpha_pattern", "sets α per layer (alpha_pattern)"),
        ("rank_pattern", "sets the rank per layer (rank_pattern)"),
        ("layers_to_transform", "adapts only some layers (layers_to_transform)"),
        ("modules_to_save", "trains whole modules beside the adapters (modules_to_save)"),
        (
            "target_parameters",
            "adapts parameters directly (target_parameters, as PEFT does transformers 5's fused experts), not the \
             per-expert projections",
        ),
    ];
    if let Some((_, what)) = described.iter().find(|(key, _)| on(key)) {
        return Some(format!("the adapter {what}"));
    }
    match v.get("bias").and_then(Value::as_str) {
        None | Some("none") => None,
        Some(other) => Some(format!("the adapter trains biases (bias: {other:?})")),
    }
}

/// Loads the adapters saved in `dir` onto `model` (its base), checking
/// every tensor's presence and shape against the base before attaching
/// any. Freezes the base, as [`apply_lora`] does.
pub fn load_adapter(model: &mut GPTModel, dir: &Path) -> Result<LoraConfig, FinetuneError> {
    if let Some(scheme) = scheme_of(model) {
        return Err(FinetuneError::Adapter {
            path: dir.into(),
            reason: format!("adapters attach to an f32 model, and this base is quantized ({scheme})"),
        });
    }
    let config = load_adapter_config(dir)?;
    check_targets(&config.targets, model.config.model_type)
        .map_err(|e| FinetuneError::Adapter { path: dir.join(ADAPTER_CONFIG_FILE), reason: e.to_string() })?;
    let file = SafetensorsFile::open(dir.join(ADAPTER_WEIGHTS_FILE))?;
    let path = file.path().to_path_buf();
    let bad = |reason: String| FinetuneError::Adapter { path: path.clone(), reason };
    // Layers the file has beyond the model's are a different base.
    let n_layers = model.h.len();
    for name in file.names() {
        let block = ["base_model.model.transformer.h.", "base_model.model.model.layers."]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .and_then(|r| r.split('.').next());
        if let Some(i) = block.and_then(|b| b.parse::<usize>().ok()) {
            if i >= n_layers {
                return Err(bad(format!("has adapters for block {i}, but the base model has {n_layers} blocks")));
            }
        }
    }
    let mut loaded = HashMap::new();
    for (name, p) in model.projections() {
        if !config.targets.iter().any(|t| t == target_of(&name)) {
            continue;
        }
        let (a_name, b_name) = (peft_name(model, &name, "A"), peft_name(model, &name, "B"));
        let base = base_layer(p).expect("an f32 model's projections have f32 weights");
        let (din, dout) = (base.in_features(), base.out_features());
        let a = file.tensor(&a_name).map_err(|_| bad(format!("missing tensor {a_name}")))?;
        let b = file.tensor(&b_name).map_err(|_| bad(format!("missing tensor {b_name}")))?;
        let r = config.rank;
        if a.dims() != [r, din] || b.dims() != [dout, r] {
            return Err(bad(format!(
                "the adapter does not match the base model: {name} is {din} → {dout} with rank {r}, but lora_A is \
                 {:?} and lora_B is {:?}",
                a.dims(),
                b.dims()
            )));
        }
        loaded.insert(name, (a.to_dtype(DType::F32).t().contiguous(), b.to_dtype(DType::F32).t().contiguous()));
    }
    if loaded.is_empty() {
        return Err(bad("holds no LoRA weights for the targeted modules".into()));
    }
    freeze(model);
    for (name, p) in model.projections_mut() {
        if let Some((a, b)) = loaded.remove(&name) {
            let base = base_layer(&**p).expect("checked above");
            *p = Box::new(LoraLinear::from_parts(base, a, b, config.alpha)?);
        }
    }
    Ok(config)
}

/// The adapters' tensors as one flat list (for tests and reports).
pub fn adapter_tensors(model: &GPTModel) -> Vec<(String, Tensor)> {
    model.named_parameters().into_iter().filter(|(n, _)| n.contains(".lora_")).map(|(n, v)| (n, v.data())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::load_model;

    /// Mixtral's experts are adapted under PEFT's names for them (`w1`,
    /// `w2`, `w3`), beside the attention's four projections.
    #[test]
    fn lora_reaches_mixtrals_experts_by_their_names() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/llama_family/mixtral");
        let adapt = |targets: &[&str]| {
            let mut model = load_model(std::path::Path::new(folder)).unwrap();
            let config = LoraConfig { targets: targets.iter().map(|t| t.to_string()).collect(), ..LoraConfig::new(2) };
            apply_lora(&mut model, &config, &mut Generator::seed(1)).map(|report| report.trainable)
        };
        // Width 32, 4 query heads and 2 K/V heads of 8, 4 experts of width
        // 24, 2 layers; rank 2 adds 2·(in + out) per projection.
        let attention = 2 * (2 * 2 * (32 + 32) + 2 * 2 * (32 + 16)); // layers × (q, o; k, v)
        let experts = 2 * 4 * 3 * 2 * (32 + 24); // layers × experts × w1, w2, w3
        assert_eq!(adapt(&[]).unwrap(), attention + experts);
        assert_eq!(adapt(&["w1"]).unwrap(), 2 * 4 * 2 * (32 + 24));
        assert!(adapt(&["gate_proj"]).unwrap_err().to_string().contains("unknown LoRA target \"gate_proj\""));
    }

    /// PEFT's adapter on transformers 5's fused experts (`target_parameters`)
    /// is refused by name rather than loaded as attention alone.
    #[test]
    fn an_adapter_on_fused_expert_parameters_is_refused() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-lora-fused-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = json!({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
                            "target_parameters": ["down_proj"]});
        std::fs::write(dir.join(ADAPTER_CONFIG_FILE), config.to_string()).unwrap();
        let err = load_adapter_config(&dir).unwrap_err().to_string();
        assert!(err.contains("target_parameters"), "{err}");
        let config = json!({"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"], "target_parameters": null});
        std::fs::write(dir.join(ADAPTER_CONFIG_FILE), config.to_string()).unwrap();
        assert_eq!(load_adapter_config(&dir).unwrap().targets, ["q_proj"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
