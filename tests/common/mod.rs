//! Helpers for tests that run the `scratchgpt` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn scratchgpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scratchgpt")).args(args).output().expect("the binary runs")
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
