//! `kill -9` at random moments: `train`, `quantize` and `finetune` are
//! killed again and again while they replace a folder, and after every kill
//! that folder must load, as the old version or the new one, and the
//! command's input must be untouched.
//!
//! Each case first times one uninterrupted run, then kills runs after
//! delays spread over that time (a fixed sequence, printed), so the kills
//! land before, during and after the save. Loading goes through the same
//! readers users have (`generate`, `classify`, `train --resume`), which
//! find a folder that a kill left half-swapped.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, scratch_dir, scratchgpt, snapshot, train_char_nano};

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. ";
const KILLS: u64 = 24;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) -> bool {
    scratchgpt(args).status.success()
}

/// Runs `args` to the end once (must succeed) and returns how long it took.
fn time_one_run(args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = scratchgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

/// Starts `args`, kills it with SIGKILL after `delay` (if still running)
/// and waits for it.
fn kill_after(args: &[&str], delay: Duration) {
    let mut child = Command::new(binary()).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

/// Delays spread over `0..span` in a fixed, scrambled order (a Weyl
/// sequence), so the kills cover the whole run.
fn delays(span: Duration) -> Vec<Duration> {
    (0..KILLS).map(|i| span.mul_f64(((i as f64) * 0.618_034).fract() * 1.2)).collect()
}

#[test]
fn quantize_killed_anywhere_leaves_a_loadable_folder() {
    let dir = scratch_dir("crash-quantize");
    let base = train_char_nano(&dir, TEXT);
    let before = snapshot(&base);
    let q = dir.join("q");
    let run = |to: &'static str| ["quantize", "--model", s(&base), "--to", to, "--out", s(&q)].map(str::to_string);
    let span = time_one_run(&run("int8").each_ref().map(String::as_str));
    for (i, delay) in delays(span).into_iter().enumerate() {
        let to = if i % 2 == 0 { "int4" } else { "int8" };
        eprintln!("quantize to {to}, killed after {delay:?}");
        kill_after(&run(to).each_ref().map(String::as_str), delay);
        assert!(
            ok(&["generate", "--model", s(&q), "--prompt", "the", "--max-new-tokens", "2"]),
            "kill {i}: q does not load"
        );
        let info = scratchgpt(&["info", "--model", s(&q), "--json"]);
        assert!(info.status.success(), "kill {i}: info: {}", String::from_utf8_lossy(&info.stderr));
    }
    assert_eq!(snapshot(&base), before, "the source changed");
    let _ = std::fs::remove_dir_all(dir);
}

/// A writer killed between its two renames leaves the previous folder
/// under its hidden name and no folder under the real one; every command
/// that reads a model reads the previous folder then (`info` once did
/// not, which a kill in the test above found).
#[test]
fn a_folder_left_between_two_renames_is_read_by_every_reader() {
    let dir = scratch_dir("crash-between-renames");
    let base = train_char_nano(&dir, TEXT);
    let q = dir.join("q");
    assert!(ok(&["quantize", "--model", s(&base), "--to", "int8", "--out", s(&q)]));
    std::fs::rename(&q, dir.join(".q.scratchgpt-old")).unwrap();
    for args in [
        vec!["info", "--model", s(&q), "--json"],
        vec!["generate", "--model", s(&q), "--prompt", "the", "--max-new-tokens", "2"],
        vec!["bench", "generate", "--model", s(&q), "--prompt-tokens", "2", "--new-tokens", "1", "--json"],
    ] {
        let out = scratchgpt(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_killed_anywhere_leaves_a_loadable_run() {
    let dir = scratch_dir("crash-train");
    let run_dir = train_char_nano(&dir, TEXT);
    let data = dir.join("data.txt");
    let mut steps = 3;
    let span = {
        steps += 2;
        time_one_run(&["train", "--resume", s(&run_dir), "--data", s(&data), "--steps", &steps.to_string()])
    };
    for (i, delay) in delays(span).into_iter().enumerate() {
        steps += 2;
        eprintln!("train --resume to {steps} steps, killed after {delay:?}");
        kill_after(&["train", "--resume", s(&run_dir), "--data", s(&data), "--steps", &steps.to_string()], delay);
        assert!(
            ok(&["generate", "--model", s(&run_dir), "--prompt", "the", "--max-new-tokens", "2"]),
            "kill {i}: the run's model does not load"
        );
        let resumed = scratchgpt(&["train", "--resume", s(&run_dir), "--data", s(&data), "--json"]);
        assert!(resumed.status.success(), "kill {i}: resume: {}", String::from_utf8_lossy(&resumed.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn finetune_killed_anywhere_leaves_a_loadable_folder() {
    let dir = scratch_dir("crash-finetune");
    let base = train_char_nano(&dir, TEXT);
    let before = snapshot(&base);
    let out = dir.join("classifier");
    // Texts in the characters the char-level model knows.
    let data = dir.join("labels.tsv");
    std::fs::write(&data, "cat\tthe cat sat on the mat.\ndog\tthe dog sat on the log.\n".repeat(30)).unwrap();
    let args = ["finetune", "classify", "--model", s(&base), "--data", s(&data), "--epochs", "1", "--out", s(&out)];
    let span = time_one_run(&args);
    for (i, delay) in delays(span).into_iter().enumerate() {
        eprintln!("finetune classify, killed after {delay:?}");
        kill_after(&args, delay);
        let c = scratchgpt(&["classify", "--model", s(&out), "--text", "the cat"]);
        assert!(c.status.success(), "kill {i}: classify: {}", String::from_utf8_lossy(&c.stderr));
    }
    assert_eq!(snapshot(&base), before, "the base model changed");
    let _ = std::fs::remove_dir_all(dir);
}
