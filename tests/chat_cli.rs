//! Chat templates end to end: `chat --render-only --json` against the text
//! and ids `transformers` gives, multi-turn `chat` with its KV cache against
//! recomputing every turn, end tokens from `generation_config.json`, BOS on
//! `generate` and `eval` for a `tokenizer.json` that adds one, and
//! `finetune instruct` in a folder's chat template.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{binary, fails_with, scratch_dir, scratchgpt};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::tensor::Generator;
use serde_json::{json, Value};

const HF_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/gpt/tests/fixtures/hf_json");
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
                      {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A fixture `tokenizer.json` with `added` appended to its added tokens.
fn tokenizer_json(name: &str, added: &[Value]) -> String {
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(HF_JSON).join(name)).unwrap()).unwrap();
    spec["added_tokens"].as_array_mut().unwrap().extend(added.iter().cloned());
    spec.to_string()
}

/// A folder with a tokenizer and a `tokenizer_config.json`, and, when
/// `vocab` is given, a randomly initialised nano model of that vocabulary.
fn folder(name: &str, tokenizer: &str, config: Value, vocab: Option<usize>) -> PathBuf {
    let dir = scratch_dir(name);
    if let Some(vocab_size) = vocab {
        let config = GPTConfig { vocab_size, context_length: 160, ..GPTConfig::preset("nano").unwrap() };
        let model = GPTModel::new(config, &mut Generator::seed(3));
        // Initial weights make every position's logits nearly alike; larger
        // embeddings make the (greedy) replies depend on the prompt.
        for (name, param) in scratchgpt::autograd::nn::Module::named_parameters(&model) {
            if !name.contains("norm") && !name.contains("ln") {
                param.set_data(param.data().mul_scalar(10.0));
            }
        }
        scratchgpt::gpt::weights::save_model(&model, &dir, None).unwrap();
    }
    std::fs::write(dir.join("tokenizer.json"), tokenizer).unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    dir
}

fn chatml_model(name: &str) -> PathBuf {
    let config = json!({"eos_token": "<|im_end|>", "chat_template": CHATML});
    folder(name, &tokenizer_json("qwen.tokenizer.json", &[]), config, Some(604))
}

#[test]
fn render_only_json_gives_the_text_and_ids_transformers_gives() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("fixtures/chat_template_ids.json")).unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chatml", "llama3", "mistral", "gemma"]);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let tokenizer = tokenizer_json(case["tokenizer"].as_str().unwrap(), case["added_tokens"].as_array().unwrap());
        let dir = folder(&format!("chat-ids-{name}"), &tokenizer, case["tokenizer_config"].clone(), None);
        let messages = dir.join("messages.json");
        std::fs::write(&messages, case["messages"].to_string()).unwrap();
        let got = stdout_json(&scratchgpt(&[
            "chat",
            "--model",
            s(&dir),
            "--messages",
            s(&messages),
            "--render-only",
            "--json",
        ]));
        assert_eq!(got["text"], case["text"], "{name}");
        assert_eq!(got["ids"], case["ids"], "{name}");
    }
}

#[test]
fn bad_messages_and_refusing_templates_are_one_line_errors() {
    let dir = folder(
        "chat-bad-messages",
        &tokenizer_json("llama2.tokenizer.json", &[]),
        json!({"bos_token": "<s>", "chat_template": "{{ raise_exception('Only user turns, please') }}"}),
        None,
    );
    let file = dir.join("messages.json");
    for bad in ["not json", r#"{"role": "user", "content": "hi"}"#, r#"[{"role": "user"}]"#, "[]"] {
        std::fs::write(&file, bad).unwrap();
        fails_with(&["chat", "--model", s(&dir), "--messages", s(&file), "--render-only", "--json"], "messages.json");
    }
    std::fs::write(&file, r#"[{"role": "user", "content": "hi"}]"#).unwrap();
    fails_with(&["chat", "--model", s(&dir), "--messages", s(&file), "--render-only"], "Only user turns, please");
}

/// `chat` on `stdin`, its stdout.
fn chat_session(model: &Path, stdin: &str) -> String {
    let mut child = std::process::Command::new(binary())
        .args(["chat", "--model", s(model), "--max-new-tokens", "6"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_conversation_answers_as_recomputing_every_turn_does() {
    let model = chatml_model("chat-multi-turn");
    let answer = |messages: &[(&str, &str)]| -> String {
        let list: Vec<Value> =
            messages.iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
        let file = model.join("turns.json");
        std::fs::write(&file, Value::from(list).to_string()).unwrap();
        let out =
            scratchgpt(&["chat", "--model", s(&model), "--messages", s(&file), "--max-new-tokens", "6", "--json"]);
        stdout_json(&out)["response"].as_str().unwrap().to_string()
    };
    let first = answer(&[("user", "the cat")]);
    let second = answer(&[("user", "the cat"), ("assistant", &first), ("user", "and the dog")]);
    let after_reset = answer(&[("user", "hello")]);
    assert_ne!(second, answer(&[("user", "and the dog")]), "the history should change the reply");

    let stdout = chat_session(&model, "the cat\n\nand the dog\n/reset\nhello\n/exit\nnever read\n");
    let banner = "Type a message (/reset starts over, /exit or Ctrl-D quits).\n";
    assert_eq!(stdout, format!("{banner}> {first}\n> > {second}\n> > {after_reset}\n> "));
    // End of input ends the conversation as /exit does.
    assert_eq!(chat_session(&model, "the cat\n"), format!("{banner}> {first}\n> "));
}

/// `generate --json` on `model`: its prompt ids and new ids.
fn generate_ids(model: &Path, prompt: &str, max_new_tokens: usize) -> (Vec<u64>, Vec<u64>) {
    let n = max_new_tokens.to_string();
    let out = stdout_json(&scratchgpt(&[
        "generate",
        "--model",
        s(model),
        "--prompt",
        prompt,
        "--max-new-tokens",
        &n,
        "--json",
    ]));
    let ids = |key: &str| out[key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    (ids("prompt_ids"), ids("new_ids"))
}

#[test]
fn generation_stops_at_any_of_the_folders_end_tokens() {
    let model = chatml_model("chat-end-tokens");
    let (_, free) = generate_ids(&model, "the cat", 12);
    // The first new id not seen before it: stopping there stops exactly there.
    let k = (1..free.len()).find(|&k| !free[..k].contains(&free[k])).unwrap();
    std::fs::write(model.join("generation_config.json"), json!({"eos_token_id": [603, free[k]]}).to_string()).unwrap();
    assert_eq!(generate_ids(&model, "the cat", 12).1, free[..=k]);
    // generation_config.json comes before config.json, which comes before
    // the tokenizer.
    let config_path = model.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["eos_token_id"] = json!(free[k]);
    std::fs::write(&config_path, config.to_string()).unwrap();
    std::fs::write(model.join("generation_config.json"), json!({"eos_token_id": [603, 602]}).to_string()).unwrap();
    assert_eq!(generate_ids(&model, "the cat", 12).1, free);
    std::fs::remove_file(model.join("generation_config.json")).unwrap();
    assert_eq!(generate_ids(&model, "the cat", 12).1, free[..=k]);
    std::fs::write(model.join("generation_config.json"), r#"{"eos_token_id": "<|im_end|>"}"#).unwrap();
    fails_with(&["generate", "--model", s(&model), "--prompt", "hi"], "generation_config.json");
}

#[test]
fn generate_and_eval_add_the_tokenizers_bos_as_transformers_does() {
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(HF_JSON).join("cases.json")).unwrap()).unwrap();
    let text = cases["texts"][1].as_str().unwrap();
    let ids = |tokenizer: &str, key: &str| -> Vec<u64> {
        cases["tokenizers"][tokenizer][1][key].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
    };
    let (with_bos, plain) = (ids("llama3", "ids"), ids("llama3", "ids_plain"));
    assert_eq!(with_bos.len(), plain.len() + 1);
    let llama3 = folder("chat-bos", &tokenizer_json("llama3.tokenizer.json", &[]), json!({}), Some(650));
    assert_eq!(generate_ids(&llama3, text, 1).0, with_bos);
    let data = llama3.join("data.txt");
    std::fs::write(&data, text).unwrap();
    let eval = stdout_json(&scratchgpt(&["eval", "--model", s(&llama3), "--data", s(&data), "--json"]));
    assert_eq!(eval["tokens"], with_bos.len() - 1);
    // A tokenizer whose post-processor adds nothing adds nothing.
    let qwen = chatml_model("chat-no-bos");
    assert_eq!(generate_ids(&qwen, text, 1).0, ids("qwen", "ids_plain"));
}

#[test]
fn finetune_instruct_speaks_the_folders_chat_template() {
    let model = chatml_model("chat-finetune");
    let records: Vec<Value> = (0..24)
        .map(|i| {
            let animal = ["cat", "dog"][i % 2];
            json!({"instruction": "Name the animal.", "input": animal, "output": format!("the {animal}")})
        })
        .collect();
    let data = model.join("records.json");
    std::fs::write(&data, Value::from(records).to_string()).unwrap();
    let out = scratch_dir("chat-finetune-out").join("tuned");
    let summary = stdout_json(&scratchgpt(&[
        "finetune",
        "instruct",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "25",
        "--lr",
        "0.01",
        "--batch-size",
        "8",
        "--mask-prompt",
        "--max-new-tokens",
        "6",
        "--json",
    ]));
    assert_eq!(summary["test_exact_match"], 1.0, "{summary}");
    // The tuned folder keeps the tokenizer and the template, and answers in
    // the template's format, stopping at its end of turn.
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    for (input, want) in [("cat", "the cat"), ("dog", "the dog")] {
        let reply = stdout_json(&scratchgpt(&[
            "chat",
            "--model",
            s(&out),
            "--prompt",
            "Name the animal.",
            "--input",
            input,
            "--json",
        ]));
        assert_eq!(reply["response"], want);
    }
}
