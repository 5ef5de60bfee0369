//! The binary never deletes or overwrites what it did not create: outputs
//! that are, hold or lie inside an input are refused; folders that hold
//! something other than what a command writes are refused unless
//! `--force`; a second writer is stopped by the lock; `--resume` goes on in
//! the folder it resumes from; a swap that a crash interrupted is still
//! readable; Ctrl-C and SIGTERM save and exit 130; and a process killed at
//! random points always leaves the old or the new folder loadable.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{binary, fails_with, scratch_dir, scratchgpt, snapshot, train_char_nano};

const TEXT: &str = "the cat sat on the mat. the dog sat on the log. ";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn trainer_step(run: &Path) -> u64 {
    let text = std::fs::read_to_string(run.join("checkpoint/trainer_state.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["step"].as_u64().unwrap()
}

/// `generate` loads `dir` and writes something.
fn loads(dir: &Path) -> bool {
    let out = scratchgpt(&["generate", "--model", s(dir), "--prompt", "the", "--max-new-tokens", "2"]);
    out.status.success()
}

#[test]
fn quantize_never_writes_over_its_input_or_a_foreign_folder() {
    let dir = scratch_dir("safety-quantize");
    let run = train_char_nano(&dir, TEXT);
    let ckpt = run.join("checkpoint");
    let before = snapshot(&run);
    // The run above the checkpoint, and a folder inside it.
    fails_with(&["quantize", "--model", s(&ckpt), "--to", "int8", "--out", s(&run)], "holds the input");
    fails_with(&["quantize", "--model", s(&ckpt), "--to", "int8", "--out", s(&ckpt.join("q"))], "inside the input");
    fails_with(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&run)], "is the model being quantized");
    assert_eq!(snapshot(&run), before, "the run changed");

    // A project folder that happens to hold a config.json.
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("config.json"), "{}").unwrap();
    std::fs::write(project.join("README.md"), "mine").unwrap();
    fails_with(
        &["quantize", "--model", s(&run), "--to", "int8", "--out", s(&project)],
        "not a folder this program wrote",
    );
    assert!(project.join("src").is_dir() && project.join("README.md").is_file());

    // Another training run: its checkpoint and optimizer state would go.
    std::fs::create_dir_all(dir.join("other-run")).unwrap();
    let other = train_char_nano(&dir.join("other-run"), TEXT);
    let other_before = snapshot(&other);
    fails_with(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&other)], "holds a training run");
    assert_eq!(snapshot(&other), other_before);
    // --force replaces it, whole.
    let out = scratchgpt(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&other), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!other.join("checkpoint").exists() && loads(&other));
    // A model folder of ours is replaced without --force.
    let q = scratchgpt(&["quantize", "--model", s(&run), "--to", "int4", "--out", s(&other), "--json"]);
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(other.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("scratchgpt-tmp") || n.contains("scratchgpt-old"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn train_refuses_a_run_or_foreign_files_and_resume_stays_in_its_folder() {
    let dir = scratch_dir("safety-train");
    let run = train_char_nano(&dir, TEXT);
    let data = dir.join("data.txt");
    let before = snapshot(&run);
    let args = |out: &Path| {
        vec![
            "train".to_string(),
            "--data".into(),
            s(&data).into(),
            "--tokenizer".into(),
            "char".into(),
            "--preset".into(),
            "nano".into(),
            "--steps".into(),
            "2".into(),
            "--batch-size".into(),
            "2".into(),
            "--context".into(),
            "16".into(),
            "--eval-every".into(),
            "0".into(),
            "--sample-every".into(),
            "0".into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let a = args(&run);
    fails_with(&refs(&a), "--resume");
    assert_eq!(snapshot(&run), before, "refusing changed the run (metrics, checkpoint)");

    // A user's file inside what looks like a checkpoint folder.
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(foreign.join("checkpoint")).unwrap();
    std::fs::write(foreign.join("checkpoint/notes.txt"), "keep me").unwrap();
    fails_with(&refs(&args(&foreign)), "checkpoint/notes.txt");
    assert_eq!(std::fs::read_to_string(foreign.join("checkpoint/notes.txt")).unwrap(), "keep me");
    // Data inside the output folder.
    let inside = dir.join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::copy(&data, inside.join("data.txt")).unwrap();
    let mut a = args(&inside);
    a[2] = s(&inside.join("data.txt")).into();
    fails_with(&refs(&a), "holds the input");
    // A model folder (here a quantized copy of the run): a new run would
    // leave its checkpoints beside the old model if stopped early.
    let model = dir.join("model");
    let q = scratchgpt(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&model)]);
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    fails_with(&refs(&args(&model)), "holds a model");

    // --resume without --out goes on in the run it resumes, from either
    // the run folder or its checkpoint folder; cwd holds no runs/ after.
    let cwd = scratch_dir("safety-train-cwd");
    for from in [run.clone(), run.join("checkpoint")] {
        let out = Command::new(binary())
            .args(["train", "--resume", s(&from), "--data", s(&data), "--json"])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(PathBuf::from(summary["out"].as_str().unwrap()), run);
    }
    assert!(!cwd.join("runs").exists());
    assert_eq!(trainer_step(&run), 3);
    // Resuming keeps the run's options: --steps alone may change (extend).
    let longer = scratchgpt(&["train", "--resume", s(&run), "--data", s(&data), "--steps", "5"]);
    assert!(longer.status.success(), "{}", String::from_utf8_lossy(&longer.stderr));
    assert_eq!(trainer_step(&run), 5);
    fails_with(&["train", "--resume", s(&run), "--data", s(&data), "--steps", "4"], "already taken 5 steps");
    for flag in [["--lr", "0.1"], ["--batch-size", "4"], ["--tokenizer", "gpt2"]] {
        let out = scratchgpt(&[&["train", "--resume", s(&run), "--data", s(&data)][..], &flag[..]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag:?}");
        assert!(stderr.contains("cannot be used with") && stderr.contains("--resume"), "{flag:?}: {stderr}");
    }
    fails_with(
        &["train", "--resume", s(&run), "--data", s(&data), "--out", s(&dir.join("elsewhere"))],
        "--resume continues the run in",
    );
    fails_with(&["train", "--resume", s(&dir.join("foreign"))], "no checkpoint to resume");
    // Resumed from inside the run folder, by a relative name.
    let out = Command::new(binary())
        .args(["train", "--resume", ".", "--data", s(&data), "--steps", "6"])
        .current_dir(&run)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(trainer_step(&run), 6);
    let hidden: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(cwd);
}

#[test]
fn finetune_and_tokenizer_train_keep_their_inputs() {
    let dir = scratch_dir("safety-finetune");
    let run = train_char_nano(&dir, TEXT);
    let before = snapshot(&run);
    fails_with(&["finetune", "classify", "--model", s(&run), "--out", s(&run)], "is also an input");
    fails_with(&["finetune", "instruct", "--model", s(&run), "--out", s(&run)], "is also an input");
    fails_with(&["finetune", "classify", "--model", s(&run), "--out", s(&dir)], "holds the input");
    fails_with(
        &["tokenizer", "train", "--data", s(&dir.join("data.txt")), "--vocab-size", "300", "--out", s(&run)],
        "holds a model",
    );
    assert_eq!(snapshot(&run), before);
    // Into a folder of only a tokenizer it may write, and does so whole.
    let tok = dir.join("tok");
    for _ in 0..2 {
        let out = scratchgpt(&[
            "tokenizer",
            "train",
            "--data",
            s(&dir.join("data.txt")),
            "--vocab-size",
            "270",
            "--out",
            s(&tok),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(tok.join("vocab.json").is_file() && tok.join("merges.txt").is_file());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_writer_is_stopped_by_the_lock() {
    let dir = scratch_dir("safety-lock");
    let run = train_char_nano(&dir, TEXT);
    let out = dir.join("q");
    let lock = scratchgpt::gpt::output::OutputLock::acquire(&out).unwrap();
    fails_with(
        &["quantize", "--model", s(&run), "--to", "int8", "--out", s(&out)],
        &format!("another scratchgpt process (pid {})", std::process::id()),
    );
    assert!(!out.exists());
    // Nor inside a folder that another process is writing: its swap would
    // take the new folder with it.
    let nested = out.join("inner");
    fails_with(
        &["quantize", "--model", s(&run), "--to", "int8", "--out", s(&nested)],
        "which another scratchgpt process is writing",
    );
    drop(lock);
    let q = scratchgpt(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&out)]);
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_swap_interrupted_between_its_renames_is_still_loaded_and_resumed() {
    let dir = scratch_dir("safety-swap");
    let run = train_char_nano(&dir, TEXT);
    // The model folder: killed after moving the old folder aside.
    let aside = dir.join(".run.scratchgpt-old");
    std::fs::rename(&run, &aside).unwrap();
    assert!(loads(&run), "the folder set aside is read");
    let q = scratchgpt(&["quantize", "--model", s(&run), "--to", "int8", "--out", s(&dir.join("q"))]);
    assert!(q.status.success(), "quantize reads it too: {}", String::from_utf8_lossy(&q.stderr));
    std::fs::rename(&aside, &run).unwrap();
    // The whole run, killed between the renames of its final save: resumed
    // by its own name and by its checkpoint's.
    let data = dir.join("data.txt");
    for from in [run.clone(), run.join("checkpoint")] {
        std::fs::rename(&run, &aside).unwrap();
        let out = scratchgpt(&["train", "--resume", s(&from), "--data", s(&data), "--json"]);
        assert!(out.status.success(), "{from:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!aside.exists() && trainer_step(&run) == 3);
    }
    // The checkpoint: only the old copy is left, under this version's name
    // and under the name earlier versions used.
    for leftover in [".checkpoint.scratchgpt-old", "checkpoint.old"] {
        std::fs::rename(run.join("checkpoint"), run.join(leftover)).unwrap();
        let out = scratchgpt(&["train", "--resume", s(&run), "--data", s(&data), "--json"]);
        assert!(out.status.success(), "{leftover}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(trainer_step(&run), 3, "{leftover}");
        assert!(!run.join(leftover).exists(), "{leftover} was not tidied");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Starts a long `train` run into `out` and waits until it has logged a step.
fn start_long_run(dir: &Path, out: &Path) -> std::process::Child {
    let data = dir.join("data.txt");
    std::fs::write(&data, TEXT.repeat(40)).unwrap();
    let child = Command::new(binary())
        .args(["train", "--data", s(&data), "--tokenizer", "char", "--preset", "nano", "--steps", "100000"])
        .args(["--batch-size", "2", "--context", "16", "--eval-every", "0", "--sample-every", "0"])
        .args(["--checkpoint-every", "0", "--json", "--out", s(out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !out.join("metrics.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "training did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &std::process::Child, name: &str) {
    let ok = Command::new("kill").args(["-s", name, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -s {name}");
}

#[test]
fn sigterm_and_ctrl_c_save_a_checkpoint_and_exit_130() {
    let dir = scratch_dir("safety-signal");
    for name in ["TERM", "INT"] {
        let out = dir.join(format!("run-{name}"));
        let child = start_long_run(&dir, &out);
        signal(&child, name);
        let result = child.wait_with_output().unwrap();
        assert_eq!(result.status.code(), Some(130), "{name}: {}", String::from_utf8_lossy(&result.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        assert_eq!(summary["interrupted"], true);
        assert!(trainer_step(&out) >= 1, "{name}: no checkpoint");
        assert!(loads(&out.join("checkpoint")), "{name}: the checkpoint does not load");
    }
    // A second Ctrl-C stops at once, still 130; whatever checkpoint there
    // is loads (a save in progress is never half-visible).
    let out = dir.join("run-twice");
    let child = start_long_run(&dir, &out);
    signal(&child, "INT");
    signal(&child, "INT");
    let result = child.wait_with_output().unwrap();
    assert_eq!(result.status.code(), Some(130));
    assert!(!out.join("checkpoint").exists() || loads(&out.join("checkpoint")));
    let _ = std::fs::remove_dir_all(dir);
}
