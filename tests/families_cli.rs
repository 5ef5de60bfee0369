//! Every command that takes `--model DIR` on a folder of each open family
//! beyond Llama, through the binary: Gemma 3 (`nano-gemma`: GeGLU, QK-norm,
//! a sliding layer with a 16-key window and a global one), Phi-3
//! (`nano-phi3`: fused q/k/v and gate/up projections) and a Mixtral-style
//! mixture of experts (`nano-moe`: 4 experts, 2 per token). Each folder is
//! made the way a user makes one, `train --preset nano-…` on a small corpus
//! of instruction records with a learned BPE, once, and shared; a test that
//! changes a folder works on its own copy or output.
//!
//! What each check would catch: `info`'s figures recomputed from the config
//! (the KV cache layer by layer, the parameters a token uses); greedy
//! decoding with the KV cache (past the sliding window) against recomputing
//! the whole sequence; `eval` against the loss training reported; int8 and
//! int4 folders against f32; a LoRA fine-tune's adapter against PEFT's names
//! for the family and its merge against base + (α/r)·B·A.

mod common;

use std::sync::OnceLock;

use common::trained_folder::{
    eval_loss, finetune_instruct_rank2, greedy, json, s, tensors, train_instruct_folder, Trained,
};
use common::{scratch_dir, scratchgpt};
use scratchgpt::autograd::nn::Module;
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::tokenizer::SpecialTokens;
use scratchgpt::gpt::weights::{load_model, load_tokenizer};
use scratchgpt::tensor::Tensor;
use serde_json::Value;

const STEPS: usize = 100;
/// Greedy tokens to generate: with the prompt, past `nano-gemma`'s window.
const NEW_TOKENS: usize = 24;

/// The families here: the preset and how PEFT names what LoRA adapts.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    Gemma,
    Phi3,
    Moe,
}

const FAMILIES: [Family; 3] = [Family::Gemma, Family::Phi3, Family::Moe];

impl Family {
    fn preset(self) -> &'static str {
        match self {
            Family::Gemma => "nano-gemma",
            Family::Phi3 => "nano-phi3",
            Family::Moe => "nano-moe",
        }
    }

    fn model_type(self) -> &'static str {
        match self {
            Family::Gemma => "gemma3_text",
            Family::Phi3 => "phi3",
            Family::Moe => "mixtral",
        }
    }

    /// PEFT's `target_modules` for all of the family's projections.
    fn targets(self) -> &'static [&'static str] {
        match self {
            Family::Gemma => &["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            Family::Phi3 => &["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
            Family::Moe => &["q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"],
        }
    }

    /// The adapted modules of layer `layer`, as PEFT names them
    /// (`model.layers.0.self_attn.q_proj`): 4 experts on the MoE.
    fn adapted_modules(self, layer: usize) -> Vec<String> {
        let attention: &[&str] = match self {
            Family::Phi3 => &["qkv_proj", "o_proj"],
            _ => &["q_proj", "k_proj", "v_proj", "o_proj"],
        };
        let mut names: Vec<String> = attention.iter().map(|p| format!("model.layers.{layer}.self_attn.{p}")).collect();
        match self {
            Family::Gemma => {
                names.extend(["gate_proj", "up_proj", "down_proj"].map(|p| format!("model.layers.{layer}.mlp.{p}")))
            }
            Family::Phi3 => {
                names.extend(["gate_up_proj", "down_proj"].map(|p| format!("model.layers.{layer}.mlp.{p}")))
            }
            Family::Moe => {
                for e in 0..4 {
                    names.extend(
                        ["w1", "w2", "w3"].map(|p| format!("model.layers.{layer}.block_sparse_moe.experts.{e}.{p}")),
                    );
                }
            }
        }
        names
    }

    /// Rank-2 adapters' parameters, 2·(in + out) a projection, over the
    /// 2 layers (width 64, 4 query heads and 2 K/V heads of 16, MLP 192,
    /// experts 96).
    fn rank2_parameters(self) -> usize {
        let attention = 2 * (64 + 64) + 2 * 2 * (64 + 32) + 2 * (64 + 64); // q; k, v; o
        2 * match self {
            Family::Gemma => attention + 3 * 2 * (64 + 192),
            Family::Phi3 => 2 * (64 + 128) + 2 * (64 + 64) + 2 * (64 + 384) + 2 * (192 + 64),
            Family::Moe => attention + 4 * 3 * 2 * (64 + 96),
        }
    }
}

/// The family's folder, trained once for every test here.
fn trained(family: Family) -> &'static Trained {
    static TRAINED: [OnceLock<Trained>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = FAMILIES.iter().position(|&f| f == family).unwrap();
    TRAINED[slot]
        .get_or_init(|| train_instruct_folder(&format!("families-cli-{}", family.preset()), family.preset(), STEPS))
}

fn info_shows_the_block_and_the_kv_cache(family: Family) {
    let t = trained(family);
    let v = json(&["info", "--model", s(&t.run), "--json"]);
    let c = &v["config"];
    assert_eq!(c["model_type"], family.model_type());
    let model = load_model(&t.run).unwrap();
    let counted: usize = model.parameters().iter().map(|p| p.data().numel()).sum();
    assert_eq!(v["parameters"], counted);
    // Per token: K and V of 2 K/V heads of 16 in each of 2 layers.
    let per_token = 2 * 2 * 2 * 16u64;
    let cache = &v["kv_cache"];
    assert_eq!(cache["per_token_f32"], 4 * per_token);
    // The whole 64-token context: Gemma's sliding layer holds its 16.
    let held = if family == Family::Gemma { 16 + 64 } else { 2 * 64 };
    assert_eq!(cache["full_context_f16"], 2 * per_token / 2 * held);
    assert_eq!(cache["windowed_layers"], if family == Family::Gemma { 1 } else { 0 });
    // A token uses 2 of the 4 experts (3 matrices 64 × 96 each) per layer.
    let unused = if family == Family::Moe { 2 * 2 * 3 * 64 * 96 } else { 0 };
    assert_eq!(v["active_parameters"], counted - unused);
    let text = String::from_utf8(scratchgpt(&["info", "--model", s(&t.run)]).stdout).unwrap();
    let header = format!("{} architecture: 2 layers, 4 heads, width 64, context 64", family.model_type());
    let needles: Vec<String> = match family {
        Family::Gemma => vec![
            header,
            "2 key/value heads of size 16, GeGLU width 192, tied head, sliding window 16".into(),
            "the full context (64) cached on 1 layers and a window (16) on 1".into(),
        ],
        Family::Phi3 => vec![header, "2 key/value heads of size 16, SwiGLU width 192, tied head".into()],
        Family::Moe => vec![
            header,
            "mixture of experts: 4 SwiGLU experts of width 96, 2 per token, weights renormalised".into(),
            format!("active per token:   {:>15}", group(counted - unused)),
        ],
    };
    for needle in needles {
        assert!(text.contains(&needle), "{family:?}: {needle:?} not in:\n{text}");
    }
}

/// `n` with thousands separators, as `info` prints counts.
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn greedy_generation_is_repeatable_and_the_kv_cache_changes_nothing(family: Family) {
    let t = trained(family);
    let (prompt, new, text) = greedy(&t.run, "Below is", NEW_TOKENS);
    assert_eq!(new.len(), NEW_TOKENS, "{family:?}");
    assert_eq!(greedy(&t.run, "Below is", NEW_TOKENS), (prompt.clone(), new.clone(), text.clone()), "{family:?}");
    // The binary decodes with the KV cache (Gemma's local layer rolling
    // past its window); recomputing the whole sequence must agree.
    let model = load_model(&t.run).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: NEW_TOKENS,
        use_cache: false,
        stop_token: None,
        ..GenerateOptions::default()
    };
    assert_eq!(generate(&model, &prompt, &opts, |_| {}), new, "{family:?}");
    // Ids hide small differences; the logits of every step fed through the
    // cache, one token at a time past the window, equal the whole
    // sequence's.
    let all: Vec<u32> = prompt.iter().chain(&new).copied().collect();
    assert!(all.len() > 16 + 4, "{family:?}: {} tokens do not pass the window", all.len());
    let tensor =
        |ids: &[u32]| Tensor::from_vec(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, ids.len()]).unwrap();
    let full = model.forward(&tensor(&all)).data().to_vec::<f32>();
    let mut cache = model.new_cache();
    let mut stepped = model.forward_cached(&tensor(&all[..prompt.len()]), &mut cache).data().to_vec::<f32>();
    for t in prompt.len()..all.len() {
        stepped.extend(model.forward_cached(&tensor(&all[t..t + 1]), &mut cache).data().to_vec::<f32>());
    }
    let worst = full.iter().zip(&stepped).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "{family:?}: cached logits differ from the whole sequence's by {worst}");
}

fn eval_gives_the_loss_training_reported(family: Family) {
    let t = trained(family);
    let val = t.summary["val_loss"].as_f64().unwrap();
    // Training held out the last tenth of the corpus's tokens.
    let tokenizer = load_tokenizer(&t.run).unwrap().unwrap();
    let tokens = tokenizer.encode(&std::fs::read_to_string(&t.corpus).unwrap(), SpecialTokens::Allow).unwrap();
    let cut = (tokens.len() as f64 * 0.9).round() as usize;
    let held_out = scratch_dir(&format!("families-cli-eval-{}", family.preset())).join("held-out.txt");
    std::fs::write(&held_out, tokenizer.decode(&tokens[cut..]).unwrap()).unwrap();
    let loss = eval_loss(&t.run, &held_out);
    assert!((loss - val).abs() < 0.02, "{family:?}: eval {loss} vs training's validation loss {val}");
    // Untrained, the loss is about ln(vocabulary) ≈ 6.
    assert!(loss < 2.0, "{family:?}: {loss}");
}

fn quantized_folders_generate_and_evaluate_close_to_f32(family: Family) {
    let t = trained(family);
    let f32_loss = eval_loss(&t.run, &t.corpus);
    let (_, f32_ids, _) = greedy(&t.run, "Below is", 6);
    let dir = scratch_dir(&format!("families-cli-quant-{}", family.preset()));
    for (scheme, tolerance) in [("int8", 0.02), ("int4", 0.1)] {
        let out = dir.join(scheme);
        let report = json(&["quantize", "--model", s(&t.run), "--to", scheme, "--out", s(&out), "--json"]);
        assert!(report["output_bytes"].as_u64().unwrap() < report["source_bytes"].as_u64().unwrap(), "{report}");
        let loss = eval_loss(&out, &t.corpus);
        assert!((loss / f32_loss - 1.0).abs() < tolerance, "{family:?} {scheme}: loss {loss} vs f32 {f32_loss}");
        let (_, new, _) = greedy(&out, "Below is", 6);
        assert_eq!(new.len(), 6, "{family:?} {scheme}");
        if scheme == "int8" {
            assert_eq!(new, f32_ids, "{family:?} {scheme}: greedy ids differ from f32's");
        }
        assert_eq!(json(&["info", "--model", s(&out), "--json"])["quantization"], scheme);
    }
}

fn lora_instruction_tuning_with_peft_names(family: Family) {
    let t = trained(family);
    let (tuned, summary) =
        finetune_instruct_rank2(&t.run, &format!("families-cli-instruct-{}", family.preset()), 2, 1, 2);
    assert_eq!(summary["trainable_parameters"], family.rank2_parameters(), "{family:?}");

    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(tuned.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!((&config["peft_type"], &config["r"]), (&Value::from("LORA"), &Value::from(2)));
    let mut targets: Vec<&str> =
        config["target_modules"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    targets.sort();
    let mut want = family.targets().to_vec();
    want.sort();
    assert_eq!(targets, want, "{family:?}");
    let scale = config["lora_alpha"].as_f64().unwrap() as f32 / 2.0;

    let adapter = tensors(&tuned.join("adapter/adapter_model.safetensors"));
    let mut want_names: Vec<String> = (0..2)
        .flat_map(|layer| family.adapted_modules(layer))
        .flat_map(|m| ["A", "B"].map(|ab| format!("base_model.model.{m}.lora_{ab}.weight")))
        .collect();
    want_names.sort();
    let names: Vec<&str> = adapter.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, want_names, "{family:?}");

    // The merged folder is base + (α/r)·B·A on exactly the adapted weights.
    let base_w = tensors(&t.run.join("model.safetensors"));
    let merged_w = tensors(&tuned.join("model.safetensors"));
    let lookup = |name: &str| adapter.iter().find(|(n, _, _)| n == name).map(|(_, d, v)| (d.clone(), v.clone()));
    let mut merged_count = 0;
    assert_eq!(base_w.len(), merged_w.len());
    for ((name, dims, base_v), (merged_name, _, merged_v)) in base_w.iter().zip(&merged_w) {
        assert_eq!(name, merged_name);
        let stem = name.strip_suffix(".weight").unwrap_or(name);
        let a = lookup(&format!("base_model.model.{stem}.lora_A.weight"));
        let b = lookup(&format!("base_model.model.{stem}.lora_B.weight"));
        let Some(((a_dims, a), (b_dims, b))) = a.zip(b) else {
            assert_eq!(base_v, merged_v, "{family:?}: {name} is not adapted, yet the merge changed it");
            continue;
        };
        let (out_f, in_f) = (dims[0], dims[1]);
        assert_eq!((a_dims, b_dims), (vec![2, in_f], vec![out_f, 2]), "{family:?}: {name}");
        let mut worst = 0.0f32;
        for o in 0..out_f {
            for i in 0..in_f {
                let delta: f32 = (0..2).map(|k| b[o * 2 + k] * a[k * in_f + i]).sum();
                worst = worst.max((merged_v[o * in_f + i] - (base_v[o * in_f + i] + scale * delta)).abs());
            }
        }
        assert!(worst < 1e-5, "{family:?}: {name} differs from base + (α/r)·B·A by {worst}");
        merged_count += 1;
    }
    assert_eq!(merged_count, want_names.len() / 2, "{family:?}");
    // The merged folder loads and generates.
    let (_, new, _) = greedy(&tuned, "Below is", 4);
    assert_eq!(new.len(), 4, "{family:?}");
}

/// Each check as one test per family, so that the families train side by side.
macro_rules! tests_for {
    ($module:ident, $family:expr) => {
        mod $module {
            use super::Family;

            #[test]
            fn info_shows_the_block_and_the_kv_cache() {
                super::info_shows_the_block_and_the_kv_cache($family);
            }

            #[test]
            fn greedy_generation_is_repeatable_and_the_kv_cache_changes_nothing() {
                super::greedy_generation_is_repeatable_and_the_kv_cache_changes_nothing($family);
            }

            #[test]
            fn eval_gives_the_loss_training_reported() {
                super::eval_gives_the_loss_training_reported($family);
            }

            #[test]
            fn quantized_folders_generate_and_evaluate_close_to_f32() {
                super::quantized_folders_generate_and_evaluate_close_to_f32($family);
            }

            #[test]
            fn lora_instruction_tuning_with_peft_names() {
                super::lora_instruction_tuning_with_peft_names($family);
            }
        }
    };
}

tests_for!(gemma, Family::Gemma);
tests_for!(phi3, Family::Phi3);
tests_for!(moe, Family::Moe);
