//! Writing files so that a crash never leaves half of one.
//!
//! The bytes go to a temporary file in the same folder, are flushed to disk,
//! and the temporary file is renamed over the target. A rename within one
//! file system is atomic: a reader sees the old file or the new one, never
//! a mixture, and an interrupted write leaves the old file untouched.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `dir/.name.tmp-PID`: beside the target, so the final rename is atomic.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}
