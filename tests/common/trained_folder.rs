//! A model folder trained once through the binary, the way a user makes
//! one (`train --preset P --tokenizer bpe:600` on a few instruction
//! records), and the small readers the command-line tests of each model
//! family use on it (`llama_cli`, `families_cli`).

use std::path::{Path, PathBuf};

use scratchgpt::gpt::weights::SafetensorsFile;
use serde_json::Value;

use super::{scratch_dir, scratchgpt};

pub const PREAMBLE: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
/// The instruction records: pretraining sees them in the Alpaca format, and
/// `finetune instruct` teaches the model to answer them and stop.
pub const QUESTIONS: [(&str, &str); 4] = [
    ("Which animal says moo?", "the cow"),
    ("Which animal says woof?", "the dog"),
    ("Which animal says meow?", "the cat"),
    ("Which animal says cluck?", "the hen"),
];

/// The trained folder, its corpus, and the `train --json` summary.
pub struct Trained {
    pub run: PathBuf,
    pub corpus: PathBuf,
    pub summary: Value,
}

/// The records in the Alpaca format, `times` over.
pub fn instruction_text(times: usize) -> String {
    (0..times)
        .flat_map(|_| QUESTIONS)
        .map(|(q, a)| format!("{PREAMBLE}\n\n### Instruction:\n{q}\n\n### Response:\n{a}\n\n"))
        .collect()
}

/// `train --preset preset` for `steps` steps on six rounds of the records,
/// with a 600-token BPE learned from them, in a scratch folder named `name`.
pub fn train_instruct_folder(name: &str, preset: &str, steps: usize) -> Trained {
    let dir = scratch_dir(name);
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, instruction_text(6)).unwrap();
    let run = dir.join("run");
    let steps_arg = steps.to_string();
    let summary = json(&[
        "train",
        "--preset",
        preset,
        "--data",
        s(&corpus),
        "--tokenizer",
        "bpe:600",
        "--steps",
        &steps_arg,
        "--lr",
        "0.003",
        "--batch-size",
        "4",
        "--eval-every",
        "20",
        "--sample-every",
        "0",
        "--out",
        s(&run),
        "--json",
    ]);
    assert_eq!(summary["steps"], steps);
    Trained { run, corpus, summary }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the binary, which must succeed, and parses its `--json` output.
pub fn json(args: &[&str]) -> Value {
    let out = scratchgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect()
}

/// `generate --json`'s prompt and new ids, and its text.
pub fn greedy(model: &Path, prompt: &str, n: usize) -> (Vec<u32>, Vec<u32>, String) {
    let v = json(&["generate", "--model", s(model), "--prompt", prompt, "--max-new-tokens", &n.to_string(), "--json"]);
    (ids(&v["prompt_ids"]), ids(&v["new_ids"]), v["text"].as_str().unwrap().to_string())
}

pub fn eval_loss(model: &Path, data: &Path) -> f64 {
    let loss = json(&["eval", "--model", s(model), "--data", s(data), "--json"])["loss"].as_f64().unwrap();
    assert!(loss.is_finite(), "{}: loss {loss}", model.display());
    loss
}

/// Every tensor of a safetensors file, by name, as shape and f32 values.
pub fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let file = SafetensorsFile::open(path).unwrap();
    let mut out: Vec<_> = file
        .names()
        .into_iter()
        .map(|n| {
            let t = file.tensor(&n).unwrap();
            (n, t.dims().to_vec(), t.to_vec::<f32>())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// `finetune instruct --lora-rank 2` of `run` on `rounds` rounds of the
/// records as Alpaca JSON, for `epochs` epochs, into a scratch folder named
/// `name`: the tuned folder and the `--json` summary.
pub fn finetune_instruct_rank2(
    run: &Path,
    name: &str,
    rounds: usize,
    epochs: usize,
    max_new: usize,
) -> (PathBuf, Value) {
    let dir = scratch_dir(name);
    let records: Vec<Value> = (0..rounds)
        .flat_map(|_| QUESTIONS)
        .map(|(q, a)| serde_json::json!({"instruction": q, "input": "", "output": a}))
        .collect();
    let data = dir.join("records.json");
    std::fs::write(&data, Value::from(records).to_string()).unwrap();
    let tuned = dir.join("tuned");
    let (epochs, max_new) = (epochs.to_string(), max_new.to_string());
    let summary = json(&[
        "finetune",
        "instruct",
        "--model",
        s(run),
        "--data",
        s(&data),
        "--lora-rank",
        "2",
        "--epochs",
        &epochs,
        "--lr",
        "0.01",
        "--max-new-tokens",
        &max_new,
        "--out",
        s(&tuned),
        "--json",
    ]);
    (tuned, summary)
}
