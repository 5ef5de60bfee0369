//! The binary on hostile input: numbers and files that would size a huge
//! allocation, endless or blocking files, closed or full outputs, and
//! edited checkpoints. Each is one line on stderr and exit code 2 (or a
//! quiet exit when the reader of stdout went away), never a panic, an
//! abort or a hang.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{fails_with, scratch_dir, scratchgpt, train_char_nano};

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. ";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A trained nano model folder (`tag` keeps parallel tests apart).
fn nano_model(tag: &str) -> PathBuf {
    train_char_nano(&scratch_dir(&format!("robust-model-{tag}")), TEXT)
}

/// A copy of `model` with `edit` applied to its `config.json`.
fn with_config(model: &Path, tag: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = scratch_dir(tag);
    for f in ["model.safetensors", "char_vocab.json"] {
        std::fs::copy(model.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn a_config_is_checked_before_any_model_is_built() {
    let model = nano_model("config");
    // Past the limits: refused from the config alone.
    let huge = with_config(&model, "config-huge", |c| {
        c["n_layer"] = 10_000.into();
        c["vocab_size"] = 10_000_000.into();
        c["n_embd"] = 1_000_000_000u64.into();
    });
    let h = s(&huge);
    fails_with(&["generate", "--model", h, "--prompt", "the"], "larger than the limit of 65536");
    fails_with(&["info", "--model", h], "emb_dim 1000000000");
    // Within the limits but describing 2^40 parameters: building it first
    // would ask for 4 TiB; the file's header says it holds far less.
    let big = with_config(&model, "config-big", |c| {
        c["n_layer"] = 1024.into();
        c["vocab_size"] = (1u64 << 24).into();
        c["n_embd"] = (1u64 << 16).into();
        c["n_head"] = 1.into();
        c["n_positions"] = (1u64 << 20).into();
    });
    let b = s(&big);
    fails_with(&["generate", "--model", b, "--prompt", "the"], "expected [16777216, 65536]");
    fails_with(&["info", "--model", b], "wte.weight");
}

#[test]
fn vocabulary_ids_must_be_dense() {
    let dir = scratch_dir("robust-vocab");
    let bpe = dir.join("bpe");
    std::fs::create_dir_all(&bpe).unwrap();
    std::fs::write(bpe.join("vocab.json"), r#"{"a": 4294967295}"#).unwrap();
    std::fs::write(bpe.join("merges.txt"), "#version: 0.2\n").unwrap();
    fails_with(&["tokenize", "--vocab", s(&bpe), "--text", "a"], "vocab.json: ids must be 0..1 without gaps");
    let ranks = dir.join("r.tiktoken");
    std::fs::write(&ranks, "YQ== 16000000\n").unwrap();
    fails_with(&["tokenize", "--vocab", s(&ranks), "--text", "a"], "ranks must be 0..1 without gaps");
}

#[test]
fn size_arguments_have_limits() {
    let dir = scratch_dir("robust-sizes");
    let data = dir.join("d.txt");
    std::fs::write(&data, TEXT.repeat(40)).unwrap();
    let (d, out) = (s(&data), dir.join("out"));
    let o = s(&out);
    let max = usize::MAX.to_string();
    fails_with(&["tokenizer", "train", "--data", d, "--vocab-size", &max, "--out", o], "larger than the limit");
    let bpe = format!("bpe:{max}");
    fails_with(&["train", "--data", d, "--tokenizer", &bpe, "--out", o], "larger than the limit");
    let nano = ["train", "--data", d, "--tokenizer", "char", "--preset", "nano", "--context", "16", "--out", o];
    let steps = (1u64 << 63).to_string();
    let args = [&nano[..], &["--steps", &steps, "--grad-accum", "2"]].concat();
    fails_with(&args, "--steps × --grad-accum is too large");
    let args = [&nano[..], &["--batch-size", "100000", "--steps", "1"]].concat();
    fails_with(&args, "at most 65536");
    for task in ["classify", "instruct"] {
        fails_with(&["finetune", task, "--model", "m", "--builtin-size", &max], "at most 1000000");
        fails_with(&["finetune", task, "--model", "m", "--epochs", &max], "--epochs must be at most");
    }
    fails_with(&["eval", "--model", "m", "--data", d, "--batch-size", &max], "between 1 and 1024");
    let bench = ["bench", "train", "--preset", "nano"];
    let huge = "1000000000";
    fails_with(&[&bench[..], &["--batch-size", huge, "--context", huge]].concat(), "at most 1048576 tokens");
    fails_with(&[&bench[..], &["--threads", huge, "--steps", "1"]].concat(), "between 1 and 1024");
    let generate = ["bench", "generate", "--preset", "nano", "--new-tokens", "2", "--prompt-tokens", &max];
    fails_with(&generate, "at most 1048576");
    fails_with(&["bench", "gemm", "--preset", "nano", "--tokens", &max], "--tokens must be at most");
    fails_with(&["bench", "quant", "--threads", &max], "between 1 and 1024");
}

#[test]
fn endless_folders_devices_and_oversized_files_are_refused() {
    let dir = scratch_dir("robust-files");
    let d = s(&dir);
    fails_with(&["train", "--data", "/dev/zero", "--steps", "1"], "/dev/zero: cannot read: is not a regular file");
    fails_with(&["tokenize", "--file", d], "is a folder");
    // A sparse file: one byte past the limit, without writing a gigabyte.
    let big = dir.join("big.txt");
    std::fs::File::create(&big).unwrap().set_len((1 << 30) + 1).unwrap();
    fails_with(&["train", "--data", s(&big), "--steps", "1"], "larger than 1073741824 bytes");

    let model = nano_model("files");
    let config = with_config(&model, "files-config", |_| {});
    std::fs::File::create(config.join("config.json")).unwrap().set_len((256 << 20) + 1).unwrap();
    fails_with(&["info", "--model", s(&config)], "config.json: larger than 268435456 bytes");
    // A pipe as the weights: mapping it is impossible and opening it, with
    // no writer, would wait forever.
    let fifo = with_config(&model, "files-fifo", |_| {});
    std::fs::remove_file(fifo.join("model.safetensors")).unwrap();
    let made = Command::new("mkfifo").arg(fifo.join("model.safetensors")).status();
    if made.is_ok_and(|s| s.success()) {
        fails_with(&["generate", "--model", s(&fifo), "--prompt", "the"], "is not a regular file");
    }
}

/// Runs the binary with its stdout a pipe whose reader is already closed.
fn run_into_closed_pipe(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(common::binary())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_or_full_stdout_is_not_a_panic() {
    let dir = scratch_dir("robust-pipe");
    // More than a pipe's buffer, so the write fails however the timing goes.
    let text = dir.join("t.txt");
    std::fs::write(&text, "hello ".repeat(50_000)).unwrap();
    let model = nano_model("pipe");
    let runs: [&[&str]; 4] = [
        &["tokenize", "--file", s(&text)],
        &["tokenize", "--file", s(&text), "--json"],
        &["generate", "--model", s(&model), "--prompt", "the", "--max-new-tokens", "20"],
        &["info", "--preset", "nano"],
    ];
    for args in runs {
        let out = run_into_closed_pipe(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    if Path::new("/dev/full").exists() {
        for args in [&["tokenize", "--text", "hi"][..], &["info", "--preset", "nano", "--json"]] {
            let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
            let out = Command::new(common::binary()).args(args).stdout(full).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.contains("cannot write to stdout"), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn an_edited_trainer_state_is_refused_on_resume() {
    let dir = scratch_dir("robust-resume");
    let run = train_char_nano(&dir, TEXT);
    let state_path = run.join("checkpoint").join("trainer_state.json");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    let edits: [(&str, serde_json::Value, &str); 4] = [
        ("batch_in_epoch", 1_000_000.into(), "batch_in_epoch is 1000000, but the data has"),
        ("adam_steps", serde_json::json!([1]), "adam_steps has 1 entries"),
        ("adam_steps", serde_json::json!(vec![99; saved["adam_steps"].as_array().unwrap().len()]), "more than"),
        ("dropout_rng", serde_json::json!([0, 0, 0, 0]), "dropout_rng is all zeros"),
    ];
    let data = dir.join("data.txt");
    for (field, value, needle) in edits {
        let mut state = saved.clone();
        state[field] = value;
        std::fs::write(&state_path, state.to_string()).unwrap();
        fails_with(&["train", "--resume", s(&run), "--data", s(&data), "--out", s(&run)], needle);
    }
    // The untouched state still resumes.
    std::fs::write(&state_path, saved.to_string()).unwrap();
    let out = scratchgpt(&["train", "--resume", s(&run), "--data", s(&data), "--out", s(&run), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
