//! Parity with `transformers` for the Llama family: one small random model
//! per `model_type`, each with the options that matter switched on, saved by
//! `transformers` in `tests/fixtures/llama_family/<case>/` with what PyTorch
//! computed with it (`expected.safetensors`). Regenerate them with
//! `python3 scripts/make_llama_family_fixtures.py`.
//!
//! - `llama`: grouped-query attention (4 query heads, 2 K/V heads), `llama3`
//!   rope scaling, an untied head;
//! - `mistral`: a sliding window of 4, shorter than the sequence and than the
//!   generated text (so the rolling KV cache drops keys);
//! - `qwen2`: q/k/v biases, a tied head, rope θ = 10⁶;
//! - `qwen3`: per-head RMSNorm of q and k, a head size (16) that is not
//!   hidden/heads (8), a tied head;
//! - `phi3`: fused `qkv_proj` and `gate_up_proj`, grouped-query attention,
//!   half of each head turning (`partial_rotary_factor` 0.5), `longrope`
//!   with an original length of 8: the 12-token batch and the eval windows
//!   use the long factors, generation starts on the short ones and
//!   switches past 8 tokens (the cached keys keep their short turn).
//! - `gemma`: GeGLU, norms scaling by 1 + w, the √C embedding scale,
//!   multi-query attention (one K/V head), a head size of 16;
//! - `gemma2`: soft-capped scores (3) and logits (5), four norms a block,
//!   the attention scale 1/√10, a window of 4 on the sliding layer;
//! - `gemma3_text`: Gemma 2's options but the score cap (logits capped at
//!   4), with QK-norm and rotary bases of their own for the sliding and the
//!   full layer (the latter with linear scaling).
//! - `mixtral`: a mixture of 4 experts, 2 per token, weights renormalised,
//!   the load-balancing loss (coefficient 0.1) in the loss, Mistral's window;
//! - `qwen3_moe`: 4 experts of width 24, 2 per token, weights not
//!   renormalised, layer 1 a dense MLP of width 48, Qwen3's QK-norm.
//!
//! Every norm weight and bias is perturbed away from its initial value so a
//! norm or bias read from the wrong tensor shows. Checked for each: logits,
//! the causal-LM loss, the gradient of every parameter, ten AdamW steps,
//! greedy generation with and without the KV cache, and the windowed
//! evaluation loss of a stream longer than the context; and a folder saved here
//! loads back with the same config and logits.
//!
//! LoRA on a mixture of experts (`tests/fixtures/moe_lora/<case>/`, made by
//! `python3 scripts/make_moe_lora_fixtures.py`): a PEFT adapter in the
//! per-expert layout on the `mixtral` and `qwen3_moe` models, on the
//! attention and every expert's three projections, with PEFT's logits. Ours
//! must give them, and save the same adapter under the same names and shapes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

mod common;
use common::parity::{assert_close, assert_scalar_close, read_fixture};

use scratchgpt::autograd::loss::cross_entropy;
use scratchgpt::autograd::nn::Module;
use scratchgpt::autograd::no_grad;
use scratchgpt::autograd::optim::{AdamW, Optimizer};
use scratchgpt::autograd::Var;
use scratchgpt::gpt::eval::evaluate;
use scratchgpt::gpt::finetune::lora::{load_adapter, save_adapter, ADAPTER_WEIGHTS_FILE};
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::model::{GPTConfig, GPTModel, PRESETS};
use scratchgpt::gpt::weights::{hf::hf_name, load_config, load_model, save_model};
use scratchgpt::tensor::Tensor;

const CASES: [&str; 10] =
    ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text", "mixtral", "qwen3_moe"];

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_family")
}

fn model(case: &str) -> GPTModel {
    let dir = fixtures_dir().join(case);
    let mut model = load_model(&dir).unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()));
    model.eval();
    model
}

/// Every tensor of the case's `expected.safetensors` by name.
fn reference(case: &str) -> BTreeMap<String, Tensor> {
    read_fixture(&fixtures_dir().join(case).join("expected.safetensors"), "scripts/make_llama_family_fixtures.py")
}

fn get<'a>(r: &'a BTreeMap<String, Tensor>, name: &str) -> &'a Tensor {
    r.get(name).unwrap_or_else(|| panic!("expected.safetensors has no tensor `{name}`"))
}

/// transformers' causal-LM loss with `labels = ids`: position t predicts
/// id t + 1.
fn causal_loss(logits: &Var, ids: &Tensor) -> Var {
    let t = ids.dim(1);
    cross_entropy(&logits.narrow(1, 0, t - 1), &ids.narrow(1, 1, t - 1).contiguous())
}

/// The logits and the loss transformers reports with `labels = ids`: the
/// causal-LM loss, plus the weighted load-balancing loss of a mixture of
/// experts whose config has `output_router_logits`.
fn logits_and_loss(model: &GPTModel, ids: &Tensor) -> (Var, Var) {
    let (logits, aux) = model.forward_with_aux(ids);
    let loss = causal_loss(&logits, ids);
    let loss = aux.map_or(loss.clone(), |aux| loss.add(&aux));
    (logits, loss)
}

fn ids_of(t: &Tensor) -> Vec<u32> {
    t.to_vec::<i64>().iter().map(|&i| i as u32).collect()
}

// ----- the checks ------------------------------------------------------------------

#[test]
fn logits_and_loss_match_transformers() {
    for case in CASES {
        let (model, r) = (model(case), reference(case));
        let ids = get(&r, "ids");
        let (logits, loss) = logits_and_loss(&model, ids);
        let d = assert_close(&format!("{case} logits"), &logits.data(), get(&r, "logits"), 1e-4, 1e-5);
        let loss = loss.item();
        let want = get(&r, "loss").to_f64_vec()[0];
        assert_scalar_close(&format!("{case} loss"), loss, want, 1e-4 * want);
        // longrope's short factors: the batch cut to the original length.
        if let Some(short) = r.get("short.logits") {
            let short_ids = ids.narrow(1, 0, short.dim(1)).contiguous();
            assert_close(
                &format!("{case} logits within the original length"),
                &model.forward(&short_ids).data(),
                short,
                1e-4,
                1e-5,
            );
        }
        println!("{case}: logits max |diff| {d:.3e}, loss {loss:.6}");
    }
}

#[test]
fn every_gradient_matches_transformers() {
    for case in CASES {
        let (model, r) = (model(case), reference(case));
        logits_and_loss(&model, get(&r, "ids")).1.backward();
        let theirs: BTreeSet<String> = r.keys().filter_map(|k| k.strip_prefix("grad.")).map(String::from).collect();
        let mut ours = BTreeSet::new();
        for (name, param) in model.named_parameters() {
            let hf = hf_name(&model.config, &name);
            let got = param.grad().unwrap_or_else(|| panic!("{case}: {name} has no gradient"));
            assert_close(&format!("{case}: d loss / d {hf}"), &got, get(&r, &format!("grad.{hf}")), 1e-3, 1e-5);
            ours.insert(hf);
        }
        assert_eq!(ours, theirs, "{case}: parameter names, ours (left) and transformers' (right)");
    }
}

#[test]
fn ten_adamw_steps_follow_transformers() {
    for case in CASES {
        let (mut model, r) = (model(case), reference(case));
        model.train();
        let ids = get(&r, "ids");
        // The settings scripts/make_llama_family_fixtures.py gave torch.optim.AdamW.
        let mut opt = AdamW::with_options(model.parameters(), 1e-2, (0.9, 0.999), 1e-8, 0.1);
        let want = get(&r, "adamw_losses").to_f64_vec();
        for (step, w) in want.iter().enumerate() {
            opt.zero_grad();
            let loss = logits_and_loss(&model, ids).1;
            loss.backward();
            opt.step();
            // Ten steps of f32 rounding in a different order (QK-norm's
            // reductions most) drift the loss by ~1e-4 by the last step.
            assert_scalar_close(&format!("{case}: loss before AdamW step {step}"), loss.item(), *w, 3e-4);
        }
        let logits = no_grad(|| model.forward(ids)).data();
        // The same drift, through the logits of weights moved ten times.
        assert_close(&format!("{case}: logits after ten steps"), &logits, get(&r, "adamw_logits"), 1e-2, 2e-3);
    }
}

/// `gpt::eval::evaluate` over a stream longer than the context, in windows
/// of context + 1 tokens (Mistral's sliding window of 4 inside each), as the
/// script computed it with transformers; batching windows changes nothing.
#[test]
fn windowed_eval_loss_matches_transformers() {
    for case in CASES {
        let (model, r) = (model(case), reference(case));
        let stream = ids_of(get(&r, "eval.stream"));
        let want = get(&r, "eval.loss").item_f64();
        for batch_size in [1, 2] {
            let got = evaluate(&model, &stream, model.config.context_length, batch_size).expect("a long enough stream");
            assert_eq!(got.tokens as i64, get(&r, "eval.count").to_vec::<i64>()[0], "{case}: tokens predicted");
            assert_scalar_close(&format!("{case}: windowed eval loss, batch {batch_size}"), got.loss, want, 1e-4);
        }
    }
}

#[test]
fn greedy_generation_matches_transformers_with_and_without_cache() {
    for case in CASES {
        let (model, r) = (model(case), reference(case));
        let prompt = ids_of(get(&r, "prompt"));
        let want = ids_of(get(&r, "greedy_cached"));
        assert_eq!(want, ids_of(get(&r, "greedy_uncached")));
        for use_cache in [true, false] {
            let opts = GenerateOptions {
                max_new_tokens: want.len() - prompt.len(),
                temperature: 0.0,
                use_cache,
                stop_token: None,
                ..GenerateOptions::default()
            };
            let new = generate(&model, &prompt, &opts, |_| {});
            let got: Vec<u32> = prompt.iter().chain(&new).copied().collect();
            assert_eq!(got, want, "{case}: greedy ids with use_cache {use_cache}");
        }
    }
}

#[test]
fn a_saved_folder_loads_back_with_the_same_config_and_logits() {
    for case in CASES {
        let (model, r) = (model(case), reference(case));
        let dir = std::env::temp_dir().join(format!("scratchgpt-llama-save-{case}-{}", std::process::id()));
        save_model(&model, &dir, None).unwrap();
        let (config, back) = (load_config(&dir).unwrap(), load_model(&dir).unwrap());
        assert_eq!(config, model.config, "{case}: config.json round trip");
        let ids = get(&r, "ids");
        let (a, b) = (no_grad(|| model.forward(ids)).data(), no_grad(|| back.forward(ids)).data());
        assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>(), "{case}: logits after a save and a load");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn presets_count_parameters_as_transformers_does() {
    let path = fixtures_dir().join("preset_parameters.json");
    let counts: BTreeMap<String, u64> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(counts.len(), 20);
    for (name, want) in counts {
        assert!(PRESETS.contains(&name.as_str()), "{name} is not a preset");
        let config = GPTConfig::preset(&name).unwrap();
        assert_eq!(config.num_parameters() as u64, want, "{name}");
        // And the preset's config.json reads back as the preset.
        assert_eq!(GPTConfig::from_hf_json(&config.to_hf_json(None)).unwrap(), config, "{name}");
    }
}

/// Writes our save of each fixture model to `target/llama-family-roundtrip/<case>`
/// for the Python side, which loads it with `transformers` and compares its
/// logits with the fixture's:
/// `python3 scripts/check_hf_roundtrip.py target/llama-family-roundtrip/llama tests/fixtures/llama_family/llama/expected.safetensors`.
#[test]
#[ignore = "writes target/llama-family-roundtrip/<case> for scripts/check_hf_roundtrip.py"]
fn save_for_transformers_roundtrip() {
    for case in CASES {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/llama-family-roundtrip").join(case);
        save_model(&model(case), &dir, None).unwrap();
        println!("saved {}", dir.display());
    }
}

/// A PEFT adapter on the attention and on every expert's gate, up and down
/// projections, loaded onto our model, gives PEFT's logits (transformers
/// runs the experts fused and PEFT converts the per-expert adapter to
/// that layout on loading; the fixture script checks the conversion against
/// merging by hand). Saved back, it has PEFT's per-expert names and shapes
/// and the same values.
#[test]
fn lora_on_the_experts_matches_peft() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/moe_lora");
    for case in ["mixtral", "qwen3_moe"] {
        let adapter = root.join(case);
        let r = read_fixture(&adapter.join("expected.safetensors"), "scripts/make_moe_lora_fixtures.py");
        let mut model = model(case);
        let base_logits = model.forward(get(&r, "ids")).data();
        let config = load_adapter(&mut model, &adapter).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(config.targets.len(), 7, "{case}: {:?}", config.targets);
        let logits = model.forward(get(&r, "ids")).data();
        let d = assert_close(&format!("{case} logits with the adapter"), &logits, get(&r, "logits"), 1e-4, 1e-5);
        // The adapter matters: without it the logits are far from PEFT's.
        let want = get(&r, "logits").to_f64_vec();
        let moved = base_logits.to_f64_vec().iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(moved > 0.1, "{case}: the adapter moves the logits by only {moved}");
        println!("{case}: logits with LoRA max |diff| {d:.3e} (the adapter moves them by {moved:.2})");

        let saved = std::env::temp_dir().join(format!("scratchgpt-moe-lora-{}-{case}", std::process::id()));
        save_adapter(&model, &saved, "base").unwrap();
        let tensors = |dir: &PathBuf| -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
            let file = scratchgpt::gpt::weights::SafetensorsFile::open(dir.join(ADAPTER_WEIGHTS_FILE)).unwrap();
            file.names()
                .into_iter()
                .map(|n| {
                    let t = file.tensor(&n).unwrap();
                    (n, (t.dims().to_vec(), t.to_vec::<f32>()))
                })
                .collect()
        };
        let (ours, peft) = (tensors(&saved), tensors(&adapter));
        assert_eq!(ours.keys().collect::<Vec<_>>(), peft.keys().collect::<Vec<_>>(), "{case}: names");
        for (name, (dims, values)) in &peft {
            assert_eq!(&ours[name].0, dims, "{case}: {name}");
            assert_eq!(&ours[name].1, values, "{case}: {name}");
        }
        let text = |dir: &PathBuf| std::fs::read_to_string(dir.join("adapter_config.json")).unwrap();
        let (ours, peft): (serde_json::Value, serde_json::Value) =
            (serde_json::from_str(&text(&saved)).unwrap(), serde_json::from_str(&text(&adapter)).unwrap());
        assert_eq!(ours["target_modules"], peft["target_modules"], "{case}");
        std::fs::remove_dir_all(&saved).unwrap();
    }
}
