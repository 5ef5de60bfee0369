//! `quantize` and the commands that read its folders, through the binary:
//! a quantized nano model generates, evaluates and reports itself, refuses
//! training, and `bench quant` reports every precision side by side.

mod common;

use std::path::{Path, PathBuf};

use common::{fails_with, scratch_dir, scratchgpt, train_char_nano_for};
use serde_json::Value;

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. ";

/// A nano model trained until it predicts its text well (perplexity far
/// below its alphabet's size, which is what uniform or constant logits
/// score), and a held-out text in its alphabet.
fn nano_model(tag: &str) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(&format!("quant-cli-{tag}"));
    let run = train_char_nano_for(&dir, TEXT, 120);
    let held_out = dir.join("held-out.txt");
    std::fs::write(&held_out, "the dog sat on the mat. the cat sat on the log. ".repeat(3)).unwrap();
    (run, held_out)
}

fn json(args: &[&str]) -> Value {
    let out = scratchgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn quantized_folders_generate_evaluate_and_report() {
    let (model, held_out) = nano_model("use");
    let eval = |dir: &Path| json(&["eval", "--model", s(dir), "--data", s(&held_out), "--json"]);
    let f32_ppl = eval(&model)["perplexity"].as_f64().unwrap();
    // The text has 14 distinct characters; a model that learned nothing
    // scores about that, so the 1-5% bounds below measure real predictions.
    assert!(f32_ppl < 4.0, "the f32 model did not learn its text: perplexity {f32_ppl}");
    for scheme in ["f16", "bf16", "int8", "int4"] {
        let out = model.with_file_name(format!("nano-{scheme}"));
        let report = json(&["quantize", "--model", s(&model), "--to", scheme, "--out", s(&out), "--json"]);
        assert_eq!(report["scheme"], scheme);
        assert!(report["output_bytes"].as_u64() < report["source_bytes"].as_u64(), "{report}");

        let ppl = eval(&out)["perplexity"].as_f64().unwrap();
        let tolerance = if scheme == "int4" { 0.05 } else { 0.01 };
        assert!((ppl / f32_ppl - 1.0).abs() < tolerance, "{scheme}: perplexity {ppl} vs f32 {f32_ppl}");

        let generated =
            json(&["generate", "--model", s(&out), "--prompt", "the cat", "--max-new-tokens", "5", "--json"]);
        assert_eq!(generated["new_ids"].as_array().unwrap().len(), 5);

        let info = json(&["info", "--model", s(&out), "--json"]);
        assert_eq!(info["quantization"], scheme);
        assert_eq!(info["trainable_parameters"], 0);
        let exact = info["weight_bytes"][scheme].as_u64().unwrap();
        assert!(exact < info["weight_bytes"]["f32"].as_u64().unwrap());

        let bench =
            json(&["bench", "generate", "--model", s(&out), "--prompt-tokens", "4", "--new-tokens", "4", "--json"]);
        assert_eq!(bench["precision"], scheme);
        if cfg!(target_os = "linux") {
            assert!(bench["rss_bytes"].as_u64().unwrap() > 0, "{bench}");
        }
    }
    let info = json(&["info", "--model", s(&model), "--json"]);
    assert_eq!(info["quantization"], Value::Null);
    let rule = info["rule_of_thumb_bytes"]["int8"].as_u64().unwrap();
    assert_eq!(rule, (info["parameters"].as_f64().unwrap() * 1.2).round() as u64);
    let text =
        String::from_utf8(scratchgpt(&["info", "--model", s(&model.with_file_name("nano-int4"))]).stdout).unwrap();
    assert!(text.contains("rule of thumb") && text.contains("int4") && text.contains("← this folder"), "{text}");

    let bench = json(&["bench", "generate", "--preset", "nano", "--quant", "int4", "--new-tokens", "4", "--json"]);
    assert_eq!(bench["precision"], "int4");
}

#[test]
fn quantized_folders_refuse_training_and_bad_requests() {
    let (model, _) = nano_model("refuse");
    let q = model.with_file_name("nano-int8");
    json(&["quantize", "--model", s(&model), "--to", "int8", "--out", s(&q), "--json"]);
    fails_with(
        &["quantize", "--model", s(&q), "--to", "int4", "--out", s(&q.with_file_name("x"))],
        "already quantized (int8)",
    );
    // Argument errors are clap's (a usage hint follows the error line).
    let out = scratchgpt(&["quantize", "--model", s(&model), "--to", "int3", "--out", s(&q)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown quantization \"int3\"; choose one of f16, bf16, int8, int4"));
    fails_with(&["quantize", "--model", s(&model), "--to", "int8", "--out", s(&model)], "is the model being quantized");
    fails_with(
        &["finetune", "instruct", "--model", s(&q), "--epochs", "1"],
        "quantized (int8), which is for inference only",
    );
    fails_with(&["finetune", "classify", "--model", s(&q), "--epochs", "1"], "for inference only");
    fails_with(&["train", "--resume", s(&q), "--steps", "1"], "for inference only");
    fails_with(&["chat", "--model", s(&q), "--adapter", s(&model), "--prompt", "hi"], "this base is quantized");
    fails_with(&["bench", "generate", "--model", s(&q), "--quant", "int4"], "already quantized (int8)");
}

#[test]
fn bench_quant_reports_every_precision() {
    let (model, held_out) = nano_model("bench");
    let v = json(&[
        "bench",
        "quant",
        "--model",
        s(&model),
        "--random-preset",
        "none",
        "--eval-data",
        s(&held_out),
        "--rounds",
        "1",
        "--repeats",
        "1",
        "--prompt-tokens",
        "4",
        "--new-tokens",
        "4",
        "--json",
    ]);
    let rows = v["models"][0]["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["precision"].as_str().unwrap()).collect();
    assert_eq!(names, ["f32", "f16", "bf16", "int8", "int4"]);
    assert_eq!(rows[0]["file_share"], 1.0);
    assert_eq!(rows[0]["speedup"], 1.0);
    assert_eq!(rows[0]["perplexity_change"], 0.0);
    let share = |i: usize| rows[i]["file_share"].as_f64().unwrap();
    // nano's f32 position embedding and norms weigh more than in GPT-2.
    assert!(share(1) < 0.6 && share(3) < 0.35 && share(4) < 0.25, "{v}");
    for r in rows {
        assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0 && r["perplexity"].as_f64().unwrap() > 1.0, "{r}");
    }
}
