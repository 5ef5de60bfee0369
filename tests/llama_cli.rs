//! Every command that takes `--model DIR` on a Llama folder, through the
//! binary. The folder is made the way a user makes one: `train --preset
//! nano-llama` (RMSNorm, rotary positions, SwiGLU, 4 query heads sharing 2
//! key/value heads) on a small corpus of Alpaca-style instruction records,
//! whose learned BPE packs the fixed prompt text into few tokens so that
//! `finetune instruct`'s prompts fit the preset's 64-token context. It is
//! trained once and shared; every test that changes a folder works on its own
//! copy or output.
//!
//! What each check would catch: `info`'s figures are recomputed from the
//! config; greedy decoding with the KV cache is compared with recomputing
//! the whole sequence; `eval` with the loss training reported; quantized
//! folders with f32; a LoRA merge with base + (α/r)·B·A computed here from
//! the PEFT-named adapter; `train --resume` with the step counter and loss
//! of the run it continues.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;

use common::trained_folder::{
    eval_loss, finetune_instruct_rank2, greedy, ids, json, s, tensors, train_instruct_folder, Trained, QUESTIONS,
};
use common::{binary, scratch_dir, scratchgpt};
use scratchgpt::gpt::generate::{generate, GenerateOptions};
use scratchgpt::gpt::model::GPTConfig;
use scratchgpt::gpt::tokenizer::SpecialTokens;
use scratchgpt::gpt::weights::{load_model, load_tokenizer};
use serde_json::Value;

const STEPS: usize = 150;
/// The Llama projections LoRA adapts, in PEFT's `target_modules` order.
const TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// nano-llama trained once for every test here.
fn trained() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| train_instruct_folder("llama-cli", "nano-llama", STEPS))
}

#[test]
fn info_shows_the_llama_block_and_the_grouped_query_kv_cache() {
    let t = trained();
    let v = json(&["info", "--model", s(&t.run), "--json"]);
    let c = &v["config"];
    assert_eq!(
        (c["model_type"].as_str(), c["n_heads"].as_u64(), c["n_kv_heads"].as_u64()),
        (Some("llama"), Some(4), Some(2))
    );
    // Counted here from the weights the folder holds (the tied head once).
    let model = load_model(&t.run).unwrap();
    let counted: usize = scratchgpt::autograd::nn::Module::parameters(&model).iter().map(|p| p.data().numel()).sum();
    assert_eq!(v["parameters"], counted);
    // K and V, per layer, for 2 K/V heads of 16 (not the 4 query heads).
    let (layers, kv_heads, head, context) = (2u64, 2u64, 16u64, 64u64);
    let per_token = 2 * layers * kv_heads * head;
    let cache = &v["kv_cache"];
    assert_eq!(cache["per_token_f32"], 4 * per_token);
    assert_eq!(cache["per_token_f16"], 2 * per_token);
    assert_eq!(cache["full_context_f16"], 2 * per_token * context);
    assert_eq!(cache["full_context_f16_multi_head"], 2 * 2 * per_token * context);
    let out = scratchgpt(&["info", "--model", s(&t.run)]);
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "llama architecture: 2 layers, 4 heads, width 64",
        "2 key/value heads of size 16, SwiGLU width 192",
        "grouped-query attention (2 K/V heads for 4 query heads) saves 2×",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}

#[test]
fn greedy_generation_is_repeatable_and_the_kv_cache_changes_nothing() {
    let t = trained();
    let (prompt, new, text) = greedy(&t.run, "Below is", 12);
    assert_eq!(greedy(&t.run, "Below is", 12), (prompt.clone(), new.clone(), text.clone()));
    // The model learned its corpus: it continues the preamble.
    assert!(text.starts_with(" an instruction"), "{text:?}");
    // The binary decodes with the KV cache; recomputing the whole sequence
    // for every token must pick the same ids.
    let model = load_model(&t.run).unwrap();
    let opts = GenerateOptions { max_new_tokens: 12, use_cache: false, stop_token: None, ..GenerateOptions::default() };
    assert_eq!(generate(&model, &prompt, &opts, |_| {}), new);
}

#[test]
fn eval_gives_the_loss_training_reported() {
    let t = trained();
    let val = t.summary["val_loss"].as_f64().unwrap();
    // Training held out the last tenth of the corpus's tokens: that text,
    // evaluated on its own, scores the validation loss training reported.
    let tokenizer = load_tokenizer(&t.run).unwrap().unwrap();
    let tokens = tokenizer.encode(&std::fs::read_to_string(&t.corpus).unwrap(), SpecialTokens::Allow).unwrap();
    let cut = (tokens.len() as f64 * 0.9).round() as usize;
    let held_out = scratch_dir("llama-cli-eval").join("held-out.txt");
    std::fs::write(&held_out, tokenizer.decode(&tokens[cut..]).unwrap()).unwrap();
    let loss = eval_loss(&t.run, &held_out);
    assert!((loss - val).abs() < 0.02, "eval {loss} vs training's validation loss {val}");
    // Untrained, the loss is about ln(vocabulary) ≈ 5.9.
    assert!(loss < 1.0, "{loss}");
}

#[test]
fn quantized_folders_generate_and_evaluate_close_to_f32() {
    let t = trained();
    let f32_loss = eval_loss(&t.run, &t.corpus);
    let (_, f32_ids, _) = greedy(&t.run, "Below is", 6);
    let dir = scratch_dir("llama-cli-quant");
    for (scheme, tolerance) in [("f16", 0.005), ("bf16", 0.01), ("int8", 0.01), ("int4", 0.05)] {
        let out = dir.join(scheme);
        let report = json(&["quantize", "--model", s(&t.run), "--to", scheme, "--out", s(&out), "--json"]);
        assert_eq!(report["scheme"], scheme);
        assert!(report["output_bytes"].as_u64().unwrap() < report["source_bytes"].as_u64().unwrap(), "{report}");
        let loss = eval_loss(&out, &t.corpus);
        assert!((loss / f32_loss - 1.0).abs() < tolerance, "{scheme}: loss {loss} vs f32 {f32_loss}");
        let (_, new, _) = greedy(&out, "Below is", 6);
        assert_eq!(new.len(), 6, "{scheme}");
        if scheme != "int4" {
            assert_eq!(new, f32_ids, "{scheme}: greedy ids differ from f32's");
        }
        assert_eq!(json(&["info", "--model", s(&out), "--json"])["quantization"], scheme);
    }
}

/// `chat` reading one instruction from stdin: its reply.
fn chat_stdin(model: &Path, line: &str) -> String {
    let mut child = std::process::Command::new(binary())
        .args(["chat", "--model", s(model), "--max-new-tokens", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{line}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let banner = "Type an instruction (/exit or Ctrl-D quits).\n> ";
    let reply = stdout.strip_prefix(banner).and_then(|r| r.strip_suffix("\n> "));
    reply.unwrap_or_else(|| panic!("unexpected chat output {stdout:?}")).to_string()
}

/// The adapter beside a LoRA fine-tune: PEFT's config and tensor names for
/// Llama, and the merged folder is base + (α/r)·B·A on exactly those.
fn check_peft_adapter_and_merge(base: &Path, tuned: &Path, rank: usize) {
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(tuned.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], rank);
    assert_eq!(config["target_modules"], serde_json::json!(TARGETS));
    let scale = config["lora_alpha"].as_f64().unwrap() / rank as f64;

    let adapter = tensors(&tuned.join("adapter/adapter_model.safetensors"));
    let mut want_names = Vec::new();
    for layer in 0..2 {
        for target in TARGETS {
            let block = if ["gate_proj", "up_proj", "down_proj"].contains(&target) { "mlp" } else { "self_attn" };
            for ab in ["A", "B"] {
                want_names.push(format!("base_model.model.model.layers.{layer}.{block}.{target}.lora_{ab}.weight"));
            }
        }
    }
    want_names.sort();
    let names: Vec<&str> = adapter.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, want_names);

    let base_w = tensors(&base.join("model.safetensors"));
    let merged_w = tensors(&tuned.join("model.safetensors"));
    assert_eq!(
        base_w.iter().map(|(n, d, _)| (n, d)).collect::<Vec<_>>(),
        merged_w.iter().map(|(n, d, _)| (n, d)).collect::<Vec<_>>()
    );
    let lookup = |name: &str| adapter.iter().find(|(n, _, _)| n == name).map(|(_, d, v)| (d.clone(), v.clone()));
    let mut merged_count = 0;
    for ((name, dims, base_v), (_, _, merged_v)) in base_w.iter().zip(&merged_w) {
        let stem = name.strip_suffix(".weight").unwrap();
        let a = lookup(&format!("base_model.model.{stem}.lora_A.weight"));
        let b = lookup(&format!("base_model.model.{stem}.lora_B.weight"));
        let Some(((a_dims, a), (b_dims, b))) = a.zip(b) else {
            assert_eq!(base_v, merged_v, "{name} is not adapted, yet the merge changed it");
            continue;
        };
        // PEFT's shapes: A is [r, in], B is [out, r], the weight [out, in].
        let (out_f, in_f) = (dims[0], dims[1]);
        assert_eq!((a_dims, b_dims), (vec![rank, in_f], vec![out_f, rank]), "{name}");
        let mut worst = 0.0f32;
        for o in 0..out_f {
            for i in 0..in_f {
                let delta: f32 = (0..rank).map(|k| b[o * rank + k] * a[k * in_f + i]).sum();
                let want = base_v[o * in_f + i] + scale as f32 * delta;
                worst = worst.max((merged_v[o * in_f + i] - want).abs());
            }
        }
        assert!(worst < 1e-5, "{name}: merged differs from base + (α/r)·B·A by {worst}");
        merged_count += 1;
    }
    assert_eq!(merged_count, 2 * TARGETS.len());
}

#[test]
fn chat_and_lora_instruction_tuning_with_peft_names() {
    let t = trained();
    // One turn through stdin is the reply `chat --prompt` gives (which
    // trims the whitespace the stream shows).
    let (question, _) = QUESTIONS[0];
    let reply = chat_stdin(&t.run, question);
    let once = json(&["chat", "--model", s(&t.run), "--prompt", question, "--max-new-tokens", "8", "--json"]);
    assert_eq!(once["response"], reply.trim());

    let (tuned, summary) = finetune_instruct_rank2(&t.run, "llama-cli-instruct", 12, 4, 4);
    // Rank 2 on q/k/v/o (64→64, 64→32, 64→32, 64→64) and gate/up/down
    // (64→192, 64→192, 192→64), two layers: 2·2·(128 + 96 + 96 + 128 + 3·256).
    assert_eq!(summary["trainable_parameters"], 2 * 2 * (128 + 96 + 96 + 128 + 3 * 256));
    assert!(summary["train_loss"].as_f64().unwrap().is_finite(), "{summary}");
    check_peft_adapter_and_merge(&t.run, &tuned, 2);
    // The merged folder loads and generates; the base with the adapter
    // answers as the merged folder does.
    let (_, new, _) = greedy(&tuned, "Below is", 4);
    assert_eq!(new.len(), 4);
    // Pretraining never showed an end token, so the base model runs on past
    // its answer; the tuned one has learned to end the reply after it.
    let answers: Vec<&str> = QUESTIONS.iter().map(|(_, a)| *a).collect();
    assert!(!answers.contains(&reply.trim()), "the base model stopped: {reply:?}");
    let merged = chat_stdin(&tuned, question);
    assert!(answers.contains(&merged.as_str()), "the tuned model's reply {merged:?}");
    let adapted = json(&[
        "chat",
        "--model",
        s(&t.run),
        "--adapter",
        s(&tuned.join("adapter")),
        "--prompt",
        question,
        "--max-new-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(adapted["response"], merged.as_str());
}

#[test]
fn lora_classification_with_peft_names() {
    let t = trained();
    let dir = scratch_dir("llama-cli-classify");
    // The class is the animal in the question; the classifier reads the
    // last token's vector, which is "?" in every text, so only a block that
    // attends back to the animal's sound can tell them apart (chance: 1/2).
    let lines: String = (0..48)
        .map(|i| {
            let (q, _) = QUESTIONS[i % 4];
            format!("{}\t{q}\n", if i % 4 < 2 { "farm" } else { "pet" })
        })
        .collect();
    let data = dir.join("animals.tsv");
    std::fs::write(&data, lines).unwrap();
    let out = dir.join("cls");
    let summary = json(&[
        "finetune",
        "classify",
        "--model",
        s(&t.run),
        "--data",
        s(&data),
        "--lora-rank",
        "2",
        "--epochs",
        "20",
        "--lr",
        "0.01",
        "--out",
        s(&out),
        "--json",
    ]);
    // The instruction-tuning adapters plus the 64→2 head.
    assert_eq!(summary["trainable_parameters"], 2 * 2 * (128 + 96 + 96 + 128 + 3 * 256) + 64 * 2 + 2);
    check_peft_adapter_and_merge(&t.run, &out, 2);
    for key in ["train_accuracy", "test_accuracy"] {
        assert!(summary[key].as_f64().unwrap() >= 0.9, "{key}: {summary}");
    }
    let c = json(&["classify", "--model", s(&out), "--text", QUESTIONS[2].0, "--json"]);
    assert_eq!(c["label"], "pet", "{c}");
    let probs = c["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 2, "{c}");
    assert!((probs.values().map(|p| p.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-5, "{c}");
}

#[test]
fn training_resumes_where_the_checkpoint_left_off() {
    let t = trained();
    let dir = scratch_dir("llama-cli-resume");
    let run = dir.join("run");
    // A copy, so that the shared folder stays as the other tests read it.
    let status = std::process::Command::new("cp").args(["-r", s(&t.run), s(&run)]).status().unwrap();
    assert!(status.success());
    let more = (STEPS + 8).to_string();
    let summary = json(&["train", "--resume", s(&run), "--data", s(&t.corpus), "--steps", &more, "--json"]);
    assert_eq!(summary["steps"], STEPS + 8);
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let train: Vec<(u64, f64)> = metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect();
    let steps: Vec<u64> = train.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (1..=STEPS as u64 + 8).collect::<Vec<_>>(), "the step counter continues");
    // The resumed steps start from the trained weights, not from scratch
    // (where the loss is ln(vocabulary) ≈ 5.9).
    let before = train[STEPS - 1].1;
    for &(step, loss) in &train[STEPS..] {
        assert!(loss.is_finite() && (loss - before).abs() < 0.3, "step {step}: loss {loss} after {before}");
    }
}

#[test]
fn bench_generate_and_train_run_on_llama() {
    let t = trained();
    let v = json(&["bench", "generate", "--model", s(&t.run), "--prompt-tokens", "4", "--new-tokens", "4", "--json"]);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["precision"], "f32");
    let v = json(&[
        "bench",
        "train",
        "--preset",
        "nano-llama",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    assert_eq!(v["params"], GPTConfig::preset("nano-llama").unwrap().num_parameters());
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn tokenizer_and_export_on_a_llama_folder() {
    let t = trained();
    // The folder's own tokenizer, as the library reads it.
    let tokenizer = load_tokenizer(&t.run).unwrap().unwrap();
    let want = tokenizer.encode("Which animal says moo?", SpecialTokens::Allow).unwrap();
    let v = json(&["tokenize", "--vocab", s(&t.run), "--text", "Which animal says moo?", "--json"]);
    assert_eq!(ids(&v["ids"]), want);
    // Exported as llama.cpp's `llama`, the file generates the folder's
    // tokens and scores the folder's loss; Q4_0 loads as int4, close.
    let dir = scratch_dir("llama-cli-gguf");
    let want = greedy(&t.run, "Which animal says moo?", 8);
    let loss = eval_loss(&t.run, &t.corpus);
    for (to, bound) in [("f32", 0.0), ("q4_0", 0.05)] {
        let gguf = dir.join(format!("m-{to}.gguf"));
        let out = json(&["export", "--model", s(&t.run), "--format", "gguf", "--out", s(&gguf), "--to", to, "--json"]);
        assert_eq!(out["architecture"], "llama", "{out}");
        if to == "f32" {
            assert_eq!(greedy(&gguf, "Which animal says moo?", 8), want, "{to}: greedy");
        }
        let got = eval_loss(&gguf, &t.corpus);
        assert!((got - loss).abs() <= bound * loss, "{to}: loss {got} against the folder's {loss}");
    }
}
