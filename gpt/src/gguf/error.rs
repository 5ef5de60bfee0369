//! What can go wrong reading or writing a GGUF file: one line that names
//! the file and the problem.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct GgufError {
    pub path: PathBuf,
    pub reason: String,
}

impl GgufError {
    pub fn new(path: &Path, reason: impl Into<String>) -> Self {
        GgufError { path: path.to_path_buf(), reason: reason.into() }
    }

    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::new(path, e.to_string())
    }
}
