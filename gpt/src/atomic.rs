//! Writing files so that a crash never leaves half of one.
//!
//! The bytes go to a temporary file in the same folder, are flushed to disk,
//! and the temporary file is renamed over the target. A rename within one
//! file system is atomic: a reader sees the old file or the new one, never
//! a mixture, and an interrupted write leaves the old file untouched.
//!
//! A folder of several files is written whole under a sibling name and
//! swapped in with two renames (the old folder aside, the new one in), so
//! a reader never sees a mixture of old and new files either.

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

/// `dir` with a suffix, in the same parent folder: `ckpt` → `ckpt.tmp`.
pub(crate) fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Moves the complete folder `new` to `dir`, replacing any folder there:
/// the old one is renamed to `dir.old` first and removed only once the new
/// one is in place. Errors name the path that failed.
pub(crate) fn replace_dir(new: &Path, dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let old = sibling(dir, "old");
    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| (old.clone(), e))?;
        }
        fs::rename(dir, &old).map_err(|e| (dir.to_path_buf(), e))?;
    }
    fs::rename(new, dir).map_err(|e| (dir.to_path_buf(), e))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(|e| (old.clone(), e))?;
    }
    Ok(())
}
