//! Helpers for tests that run the `scratchgpt` binary.

#![allow(dead_code)] // each test file uses its own subset

pub mod parity;
pub mod trained_folder;
pub mod xml;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the `scratchgpt` binary, with backtraces on, so that a panic where
/// an error belongs cannot pass for a one-line message. Cargo bakes the
/// binary's path into each test executable; `SCRATCHGPT_BIN` points
/// elsewhere, for test executables run away from their build folder
/// (`scripts/gpu-bundle.sh` carries both to a GPU machine).
pub fn scratchgpt(args: &[&str]) -> Output {
    Command::new(binary()).args(args).env("RUST_BACKTRACE", "1").output().expect("the binary runs")
}

/// The `scratchgpt` binary's path (see [`scratchgpt`]), for tests that
/// start it themselves.
pub fn binary() -> std::ffi::OsString {
    std::env::var_os("SCRATCHGPT_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_scratchgpt").into())
}

/// Every file under `dir` with its bytes, sorted by path: a fingerprint
/// that shows a folder was left untouched.
pub fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Whether this machine has a CUDA device. Tests that check what
/// `--device cuda` says on a machine without one skip that check here.
pub fn gpu_present() -> bool {
    scratchgpt::tensor::Device::cuda_count() > 0
}

/// A fresh, empty temporary folder unique to this test process and `name`.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts exit code 2 and a single-line error mentioning `needle`.
pub fn fails_with(args: &[&str], needle: &str) {
    let out = scratchgpt(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr}");
    assert!(stderr.contains(needle), "{args:?}: {stderr:?} lacks {needle:?}");
}

/// Trains a char-level `nano` model for 3 steps on `text` × 40 in `dir`,
/// returning its run folder.
pub fn train_char_nano(dir: &std::path::Path, text: &str) -> PathBuf {
    train_char_nano_for(dir, text, 3)
}

/// Like [`train_char_nano`], for `steps` steps (a model whose predictions
/// carry information, for tests that compare two ways of running it).
#[allow(dead_code)]
pub fn train_char_nano_for(dir: &std::path::Path, text: &str, steps: usize) -> PathBuf {
    train_nano(dir, text, "char", steps)
}

/// A nano model trained `steps` steps on `text` with `tokenizer` (`char`,
/// `bpe:N`, ...), in `dir/run`.
#[allow(dead_code)]
pub fn train_nano(dir: &std::path::Path, text: &str, tokenizer: &str, steps: usize) -> PathBuf {
    let steps_arg = steps.to_string();
    let data = dir.join("data.txt");
    std::fs::write(&data, text.repeat(40)).unwrap();
    let run = dir.join("run");
    let out = scratchgpt(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--tokenizer",
        tokenizer,
        "--preset",
        "nano",
        "--steps",
        &steps_arg,
        "--batch-size",
        "2",
        "--context",
        "16",
        "--eval-every",
        "0",
        "--sample-every",
        "0",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], steps);
    run
}

/// Checks the metrics a training or fine-tuning run saved in `dir`:
/// `metrics.jsonl` has a train line for each step 1, 2, …, (`train_steps`
/// of them, where given), each with its loss, learning rate, gradient norm
/// and speed, and `loss.svg` is well-formed XML with the titles of its four
/// panels. Returns the number of train lines.
pub fn assert_run_metrics(dir: &std::path::Path, train_steps: Option<usize>) -> usize {
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let train: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m["kind"] == "train")
        .collect();
    assert!(!train.is_empty() && train_steps.is_none_or(|n| n == train.len()), "{train_steps:?} steps: {metrics}");
    for (i, line) in train.iter().enumerate() {
        assert_eq!(line["step"], i + 1, "{line}");
        for field in ["loss", "lr", "grad_norm", "tokens_per_s"] {
            assert!(line[field].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0), "{field} in {line}");
        }
        assert!(line["lr"].as_f64().unwrap() > 0.0 && line["grad_norm"].as_f64().unwrap() > 0.0, "{line}");
    }
    let svg = std::fs::read_to_string(dir.join("loss.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("loss.svg is not XML: {e}"));
    let texts: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    for title in ["loss", "learning rate", "gradient norm (before clipping)", "tokens/s"] {
        assert!(texts.contains(&title), "no panel {title:?} in loss.svg: {texts:?}");
    }
    train.len()
}
