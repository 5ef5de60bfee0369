//! Fine-tuning through the binary: the commands run end to end on tiny
//! built-in data and print the JSON they promise; bad input is one line on
//! stderr and exit code 2.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{fails_with, scratch_dir, scratchgpt};

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A nano model with a small learned BPE (which has `<|endoftext|>`).
fn nano_model(tag: &str, emb: usize) -> PathBuf {
    let dir = scratch_dir(&format!("ft-model-{tag}"));
    let data = dir.join("data.txt");
    std::fs::write(&data, "the cat sat on the mat. the dog sat on the log. ".repeat(40)).unwrap();
    let config = dir.join("config.json");
    let c = format!(
        r#"{{"vocab_size": 300, "n_positions": 256, "n_embd": {emb}, "n_head": 2, "n_layer": 2, "resid_pdrop": 0.0}}"#
    );
    std::fs::write(&config, c).unwrap();
    let out = scratchgpt(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--tokenizer",
        "bpe:280",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--context",
        "16",
        "--eval-every",
        "0",
        "--sample-every",
        "0",
        "--out",
        dir.join("run").to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("run")
}

#[test]
fn classify_end_to_end_and_bad_input() {
    let model = nano_model("classify", 32);
    let m = model.to_str().unwrap();
    let dir = scratch_dir("classify");
    let out_dir = dir.join("cls");
    let o = out_dir.to_str().unwrap();
    // A task a working fine-tune learns in a few epochs and a broken one
    // cannot fake: the class is the text's last word, which the last
    // token's vector (the one the classifier reads) carries directly.
    // Chance is 1/2 on balanced classes, so the bounds below need learning.
    let data = dir.join("pets.tsv");
    let fillers = ["the", "sat", "on", "mat", "log", "the dog sat", "the cat sat", "on the mat"];
    let lines: String = (0..80)
        .map(|i| {
            let (label, last) = if i % 2 == 0 { ("cats", "cat") } else { ("dogs", "dog") };
            let (a, b) = (fillers[i % fillers.len()], fillers[(i / 3) % fillers.len()]);
            format!("{label}\t{a} {b} the {last}\n")
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    let summary = json_of(&scratchgpt(&[
        "finetune",
        "classify",
        "--model",
        m,
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "4",
        "--lr",
        "0.005",
        "--lora-rank",
        "2",
        "--out",
        o,
        "--json",
    ]));
    for key in ["train_accuracy", "test_accuracy"] {
        let v = summary[key].as_f64().unwrap();
        assert!(v >= 0.9, "{key} = {v}: the last word decides the class, chance is 0.5");
    }
    // nano-like: 2 blocks × 2·(32+96 + 32+32 + 32+128 + 128+32) adapters + the 32→2 head.
    assert_eq!(summary["trainable_parameters"], 2 * 2 * (128 + 64 + 160 + 160) + 32 * 2 + 2);
    assert!(out_dir.join("adapter/adapter_model.safetensors").is_file());
    // Its metrics and their plot, as `train` saves them: 56 training texts
    // in batches of 8, for 4 epochs.
    common::assert_run_metrics(&out_dir, Some(7 * 4));
    // The saved classifier gives the same answers on texts it never saw.
    for (text, want) in [("on the log the cat", "cats"), ("mat sat the dog", "dogs")] {
        let c = json_of(&scratchgpt(&["classify", "--model", o, "--text", text, "--json"]));
        assert_eq!(c["label"], want, "{text}: {c}");
        let probs = c["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 2);
        assert!((probs.values().map(|p| p.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(probs[want].as_f64().unwrap() > 0.5, "{text}: {c}");
    }

    let one_class = dir.join("one.tsv");
    std::fs::write(&one_class, "ham\thello\nham\tbye\n").unwrap();
    let oc = one_class.to_str().unwrap();
    fails_with(&["finetune", "classify", "--model", m, "--data", oc, "--out", o], "only one class");
    fails_with(&["finetune", "classify", "--model", m, "--lora-rank", "0", "--out", o], "LoRA rank must be at least 1");
    fails_with(&["finetune", "classify", "--model", m, "--lora-rank", "33", "--out", o], "larger than the layer");
    if !common::gpu_present() {
        fails_with(&["finetune", "classify", "--model", m, "--device", "cuda", "--out", o], "no CUDA device");
    }
    fails_with(&["finetune", "classify", "--model", m, "--epochs", "0", "--out", o], "--epochs must be at least 1");
    fails_with(&["classify", "--model", m, "--text", "hi"], "classifier.json");
}

#[test]
fn instruct_and_chat_end_to_end_and_bad_input() {
    let model = nano_model("instruct", 32);
    let m = model.to_str().unwrap();
    let dir = scratch_dir("instruct");
    let out_dir = dir.join("inst");
    let o = out_dir.to_str().unwrap();
    // A task a working fine-tune learns and a broken one cannot fake: every
    // record's response is the same two words, so after training the
    // held-out records are answered exactly; the untrained model answers
    // none of them (its greedy answer is a control character, twice).
    let data = dir.join("records.json");
    let records: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({"instruction": "Name the pet.", "input": format!("{i}"), "output": "the cat"}))
        .collect();
    std::fs::write(&data, serde_json::to_string(&records).unwrap()).unwrap();
    let summary = json_of(&scratchgpt(&[
        "finetune",
        "instruct",
        "--model",
        m,
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "6",
        "--lr",
        "0.01",
        "--lora-rank",
        "2",
        "--max-new-tokens",
        "4",
        "--mask-prompt",
        "--out",
        o,
        "--json",
    ]));
    assert_eq!(summary["test_total"], 4, "10% of 40 records are held out");
    // An adapter that does not learn leaves the loss at 5.6 (ln 300 is 5.7);
    // rank 2 on a 32-wide model learns the answer's first tokens, to 5.0.
    assert!(summary["val_loss"].as_f64().unwrap() < 5.3, "{summary}");
    assert_eq!(summary["test_exact_match"], 1.0, "{summary}");
    // The score is the one the saved answers give.
    let responses: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("instruction-data-with-response.json")).unwrap())
            .unwrap();
    let answered = responses.as_array().unwrap();
    assert_eq!(answered.len(), 4);
    for r in answered {
        for key in ["instruction", "input", "output", "model_response"] {
            assert!(r[key].is_string(), "{key} in {r}");
        }
        assert_eq!(r["model_response"], "the cat", "{r}");
    }
    // 34 training records in batches of 8, for 6 epochs.
    common::assert_run_metrics(&out_dir, Some(5 * 6));
    let adapter = out_dir.join("adapter");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((config["r"].as_u64(), config["peft_type"].as_str()), (Some(2), Some("LORA")));

    let reply = json_of(&scratchgpt(&[
        "chat",
        "--model",
        o,
        "--prompt",
        "Add the two numbers.",
        "--input",
        "2 + 3",
        "--max-new-tokens",
        "3",
        "--json",
    ]));
    assert_eq!(reply["prompt"], "Add the two numbers.");
    assert!(reply["response"].is_string());

    // The adapter loads onto its base, and is refused by another base.
    let a = adapter.to_str().unwrap();
    json_of(&scratchgpt(&["chat", "--model", m, "--adapter", a, "--prompt", "Hi", "--max-new-tokens", "2", "--json"]));
    let other = nano_model("other-base", 16);
    fails_with(
        &["chat", "--model", other.to_str().unwrap(), "--adapter", a, "--prompt", "Hi"],
        "does not match the base model",
    );
    // A PEFT option this program does not implement is refused, not ignored.
    let rslora = dir.join("rslora");
    std::fs::create_dir_all(&rslora).unwrap();
    std::fs::copy(adapter.join("adapter_model.safetensors"), rslora.join("adapter_model.safetensors")).unwrap();
    let mut with_rslora = config.clone();
    with_rslora["use_rslora"] = serde_json::json!(true);
    std::fs::write(rslora.join("adapter_config.json"), with_rslora.to_string()).unwrap();
    fails_with(&["chat", "--model", m, "--adapter", rslora.to_str().unwrap(), "--prompt", "Hi"], "use_rslora");

    let missing = dir.join("missing.json");
    std::fs::write(&missing, r#"[{"instruction": "Say hi.", "input": ""}]"#).unwrap();
    fails_with(
        &["finetune", "instruct", "--model", m, "--data", missing.to_str().unwrap(), "--out", o],
        "record 0 has no \"output\" key",
    );
    // One GPU or none: cuda:1 is not there either way.
    if scratchgpt::tensor::Device::cuda_count() < 2 {
        fails_with(&["finetune", "instruct", "--model", m, "--device", "cuda:1", "--out", o], "no CUDA device");
    }
}
