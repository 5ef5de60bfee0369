//! Data-parallel training over MPI: `mpirun -np 2` ranks with
//! `--batch-size B` take the steps one process takes with `--batch-size 2B`.
//!
//! Built with `--features mpi` (needs Open MPI's `mpirun`). The two runs
//! add the same numbers in a different order (per-rank means averaged
//! against one mean over all rows), so they agree to rounding: each step's
//! loss and gradient norm within 1e-5 (relative; measured 1e-7), the weights
//! after 10 AdamW steps within 2e-5 (absolute; measured 1.5e-6, while one
//! step moves a weight by up to lr = 1e-3).
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{binary, scratch_dir, scratchgpt};

const STEPS: usize = 10;

/// The nano model on a character corpus, `STEPS` steps of `batch` windows
/// of 16 tokens; everything that is not the step itself switched off.
fn train_args(data: &Path, out: &Path, batch: usize) -> Vec<String> {
    let args = [
        "train",
        "--tokenizer",
        "char",
        "--preset",
        "nano",
        "--context",
        "16",
        "--eval-every",
        "0",
        "--sample-every",
        "0",
        "--checkpoint-every",
        "0",
        "--warmup",
        "3",
        "--json",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for (flag, value) in [("--data", data.display().to_string()), ("--out", out.display().to_string())] {
        args.extend([flag.to_string(), value]);
    }
    args.extend(["--steps".into(), STEPS.to_string(), "--batch-size".into(), batch.to_string()]);
    args
}

fn mpirun(ranks: usize, args: &[String]) -> Output {
    Command::new("mpirun")
        .args(["-np", &ranks.to_string(), "--allow-run-as-root", "--oversubscribe"])
        .arg(binary())
        .args(args)
        // One thread per rank: two ranks on a two-core machine.
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("mpirun runs (Open MPI's openmpi-bin)")
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each step's `field` (loss, grad_norm), from the run's `metrics.jsonl`.
fn per_step(run: &Path, field: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    lines.filter(|m| m["kind"] == "train").map(|m| m[field].as_f64().unwrap()).collect()
}

/// Every weight of the saved model, by tensor name.
fn weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            (name, values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

/// A corpus of a few hundred windows, and a single-process run on it with
/// `--batch-size 4`: what the two-rank runs are compared with.
fn data_and_reference(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data.txt");
    let text = "the cat sat on the mat. a dog ran to the park and back again! ";
    std::fs::write(&data, text.repeat(60)).unwrap();
    let single = dir.join("single");
    succeeded(&scratchgpt(&train_args(&data, &single, 4).iter().map(String::as_str).collect::<Vec<_>>()));
    (data, single)
}

fn assert_same_training(two_ranks: &Path, single: &Path) {
    // The gradient norm is before clipping: AdamW would hide gradients that
    // are off by a constant factor, the norm does not.
    for field in ["loss", "grad_norm"] {
        let (a, b) = (per_step(two_ranks, field), per_step(single, field));
        assert_eq!((a.len(), b.len()), (STEPS, STEPS));
        for (step, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * y.abs(), "step {}: {field} {x} on 2 ranks, {y} on 1", step + 1);
        }
    }
    let (wa, wb) = (weights(two_ranks), weights(single));
    assert_eq!(wa.len(), wb.len());
    for ((name, x), (_, y)) in wa.iter().zip(&wb) {
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(worst <= 2e-5, "{name}: weights differ by {worst} after {STEPS} steps");
    }
}

#[test]
fn two_ranks_step_like_one_process_with_twice_the_batch() {
    let dir = scratch_dir("distributed");
    let (data, single) = data_and_reference(&dir);

    let plain = dir.join("plain");
    let out = mpirun(2, &train_args(&data, &plain, 2));
    succeeded(&out);
    // Rank 0 alone reports: one JSON summary.
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], STEPS);
    assert_same_training(&plain, &single);

    // The gradient exchange overlapped with backward (the default) or run
    // after it: the same buckets and sums, so bit for bit the same run. With
    // buckets of 50 KiB the nano model's 0.44 MB of gradients make several,
    // most of them sent while backward runs; with `--grad-accum 2` only the
    // second micro-batch's backward is overlapped.
    let mut runs = Vec::new();
    for (name, extra) in [
        ("small-buckets", &[][..]),
        ("small-buckets-after", &["--no-overlap"][..]),
        ("accum", &["--grad-accum", "2"][..]),
        ("accum-after", &["--grad-accum", "2", "--no-overlap"][..]),
    ] {
        let mut args = train_args(&data, &dir.join(name), 2);
        args.extend(["--bucket-mb", "0.05"].iter().chain(extra).map(|a| a.to_string()));
        succeeded(&mpirun(2, &args));
        runs.push(dir.join(name));
    }
    for pair in runs.chunks(2) {
        for field in ["loss", "grad_norm"] {
            assert_eq!(per_step(&pair[0], field), per_step(&pair[1], field), "{field}: {}", pair[0].display());
        }
        assert!(weights(&pair[0]) == weights(&pair[1]), "{}: weights differ", pair[0].display());
    }
    assert_same_training(&runs[0], &single);

    let mut zero_args = train_args(&data, &dir.join("zero"), 2);
    zero_args.extend(["--zero".into(), "1".into()]);
    succeeded(&mpirun(2, &zero_args));
    assert_same_training(&dir.join("zero"), &single);
    // The checkpoint holds the moments of every parameter, gathered from
    // both shards: the same as the plain run's.
    let optimizer = |run: &Path| -> Vec<(String, Vec<f32>)> {
        let bytes = std::fs::read(run.join("checkpoint/optimizer.safetensors")).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut all: Vec<_> = file
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()))
            .collect();
        all.sort_by(|a: &(String, Vec<f32>), b| a.0.cmp(&b.0));
        all
    };
    let (za, pa) = (optimizer(&dir.join("zero")), optimizer(&plain));
    assert_eq!(za.len(), pa.len());
    for ((name, x), (_, y)) in za.iter().zip(&pa) {
        let worst = x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-6, "{name}: moments differ by {worst}");
    }

    // A two-rank run resumes on two ranks only: on one, the data order
    // would change.
    let resume =
        ["train", "--resume", plain.to_str().unwrap(), "--data", data.to_str().unwrap(), "--steps", "12", "--json"];
    let out = scratchgpt(&resume);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("trained on 2 process(es)"), "{stderr}");
    let resume: Vec<String> = resume.iter().map(|a| a.to_string()).collect();
    succeeded(&mpirun(2, &resume));
    assert_eq!(per_step(&plain, "loss").len(), 12);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ctrl-C on one rank of a 2-rank run stops both ranks after the same step
/// and rank 0 saves; resuming on 2 ranks then gives, step for step, the
/// losses and at the end the weights of a run that was never stopped (the
/// same numbers in the same order, so exactly).
#[test]
fn a_two_rank_run_stopped_by_ctrl_c_resumes_identically() {
    const LONG: usize = 400;
    let dir = scratch_dir("mpi-ctrl-c");
    let data = dir.join("data.txt");
    std::fs::write(&data, "the cat sat on the mat. a dog ran to the park and back again! ".repeat(60)).unwrap();
    let args = |out: &Path| {
        let mut args = train_args(&data, out, 2);
        let steps = args.iter().position(|a| a == "--steps").unwrap() + 1;
        args[steps] = LONG.to_string();
        args
    };
    let whole = dir.join("whole");
    succeeded(&mpirun(2, &args(&whole)));

    let stopped = dir.join("stopped");
    let mut run = Command::new("mpirun")
        .args(["-np", "2", "--allow-run-as-root", "--oversubscribe"])
        .arg(binary())
        .args(args(&stopped))
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mpirun runs");
    // A few steps in, Ctrl-C reaches one rank (the first process found
    // whose command line names this run's folder).
    let started = Instant::now();
    let metrics = stopped.join("metrics.jsonl");
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 5 {
        assert!(started.elapsed() < Duration::from_secs(120), "the run never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let rank = rank_pid(&stopped).expect("a rank of the running job");
    let signal = Command::new("kill").args(["-INT", &rank.to_string()]).status().unwrap();
    assert!(signal.success());
    let status = run.wait().unwrap();
    assert!(!status.success(), "a stopped run exits non-zero (130)");
    let done = per_step(&stopped, "loss").len();
    assert!(done > 0 && done < LONG, "stopped after {done} of {LONG} steps");

    let resume = ["train", "--resume", stopped.to_str().unwrap(), "--data", data.to_str().unwrap(), "--json"];
    succeeded(&mpirun(2, &resume.iter().map(|a| a.to_string()).collect::<Vec<_>>()));
    for field in ["loss", "grad_norm"] {
        assert_eq!(per_step(&stopped, field), per_step(&whole, field), "{field}, stopped after step {done}");
    }
    assert_eq!(weights(&stopped), weights(&whole));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process id of a running `scratchgpt` whose command line names
/// `run` (a rank, not mpirun itself, whose command line names it too).
fn rank_pid(run: &Path) -> Option<u32> {
    let needle = run.to_str()?;
    let ours = binary();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let words: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let first = std::ffi::OsStr::new(std::str::from_utf8(words.first()?).ok()?);
        let names_run = words.iter().any(|w| *w == needle.as_bytes());
        (first == ours && names_run).then_some(pid)
    })
}

/// `bench train` under mpirun: both ranks step, rank 0 alone reports, and
/// each rank hands all-reduce 4 bytes per parameter plus 4 per parameter
/// tensor (the presence counts of the gradient buckets), overlapped with
/// backward or not, in one bucket or many.
#[test]
fn bench_train_on_two_ranks_reports_both_ranks_and_the_bytes_exchanged() {
    let args: Vec<String> = [
        "bench",
        "train",
        "--threads",
        "1",
        "--n-layer",
        "1",
        "--n-embd",
        "32",
        "--n-head",
        "2",
        "--vocab-size",
        "50",
        "--context",
        "16",
        "--batch-size",
        "2",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--json",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let out = mpirun(2, &args);
    succeeded(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ranks"], 2);
    let params = report["params"].as_u64().unwrap();
    let tensors = report["parameter_tensors"].as_u64().unwrap();
    assert!(params > 0 && tensors > 0);
    assert_eq!(report["all_reduced_bytes_per_step"].as_u64().unwrap(), 4 * (params + tensors));
    assert!(report["all_reduce_ms_per_step"].as_f64().unwrap() > 0.0);
    // Overlapped by default: what waited for the sums is part of what the
    // exchange added after backward.
    assert_eq!(report["overlapped"], true);
    let wait = report["all_reduce_wait_ms_per_step"].as_f64().unwrap();
    assert!(wait >= 0.0 && wait <= report["all_reduce_ms_per_step"].as_f64().unwrap());
    // Both ranks' tokens: 2 ranks × 2 windows × 16 tokens per step.
    let per_step = report["tokens_per_s"].as_f64().unwrap() * report["ms_per_step"].as_f64().unwrap() / 1e3;
    assert!((per_step - 64.0).abs() < 1e-6 * 64.0, "tokens per step {per_step}, expected 64");

    // After backward: the same bytes, all of the exchange waited for.
    let mut after = args.clone();
    after.extend(["--no-overlap".to_string(), "--bucket-mb".to_string(), "0.01".to_string()]);
    let out = mpirun(2, &after);
    succeeded(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overlapped"], false);
    assert_eq!(report["all_reduced_bytes_per_step"].as_u64().unwrap(), 4 * (params + tensors));
    assert_eq!(report["all_reduce_wait_ms_per_step"], report["all_reduce_ms_per_step"]);

    // Alone: one rank, nothing exchanged.
    let alone = scratchgpt(&args.iter().map(String::as_str).collect::<Vec<_>>());
    succeeded(&alone);
    let report: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert_eq!((report["ranks"].as_u64(), report["all_reduced_bytes_per_step"].as_u64()), (Some(1), Some(0)));
}
