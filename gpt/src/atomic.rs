//! Writing files so that a crash never leaves half of one.
//!
//! The bytes go to a temporary file in the same folder, are flushed to disk,
//! and the temporary file is renamed over the target. A rename within one
//! file system is atomic: a reader sees the old file or the new one, never
//! a mixture, and an interrupted write leaves the old file untouched.
//!
//! A folder of several files is written whole under a hidden sibling name
//! (`.NAME.scratchgpt-tmp`) and swapped in with two renames: the old folder
//! aside (`.NAME.scratchgpt-old`), the new one in, and only then the old
//! one removed. A crash between any two of those steps leaves one of three
//! pictures, and each has a complete folder in it:
//!
//! | left on disk      | what it means                  | readers use | next writer   |
//! |-------------------|--------------------------------|-------------|---------------|
//! | `NAME` + tmp      | the new folder was unfinished  | `NAME`      | drops tmp     |
//! | old + tmp, no `NAME` | killed between the renames  | old         | old → `NAME`  |
//! | `NAME` + old      | killed before the cleanup      | `NAME`      | drops old     |
//!
//! Readers ([`readable_dir`]) never rename anything, so they cannot race a
//! writer; writers ([`settle_dir`]) put the folder back in order first.
//! The sibling names are hidden and carry this program's name, so they can
//! never be a folder of the user's that happens to end in `.old`.

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
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Replaces `path` atomically with what `fill` writes, streamed (for files
/// too large to assemble in memory first).
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let mut writer = std::io::BufWriter::new(fs::File::create(&temp)?);
        fill(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// The hidden sibling `parent/.NAME.scratchgpt-ROLE` of `dir`, where ROLE is
/// `tmp` (a new folder being written), `old` (the folder it replaces) or
/// `lock` (see `gpt::output`).
pub fn hidden_sibling(dir: &Path, role: &str) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    dir.with_file_name(format!(".{name}.scratchgpt-{role}"))
}

/// Where an earlier version of this program left the previous checkpoint
/// while swapping (`checkpoint.old`); read, never written, only for
/// checkpoint folders and only when it holds `marker`, so a user's own
/// `NAME.old` backup is never taken for a model.
fn legacy_old(dir: &Path, marker: &str) -> Option<PathBuf> {
    (dir.file_name()? == "checkpoint").then_some(())?;
    let old = dir.with_file_name("checkpoint.old");
    old.join(marker).is_file().then_some(old)
}

/// The folder a reader should open for `dir`: `dir` itself when it exists,
/// or the previous folder when a writer was killed between its two renames
/// (`marker` is a file every complete folder of this kind holds, e.g.
/// `config.json`).
pub fn readable_dir(dir: &Path, marker: &str) -> PathBuf {
    if fs::symlink_metadata(dir).is_ok() {
        return dir.to_path_buf();
    }
    let old = hidden_sibling(dir, "old");
    if old.join(marker).is_file() {
        return old;
    }
    legacy_old(dir, marker).unwrap_or_else(|| dir.to_path_buf())
}

/// Removes a leftover of ours, a folder or (after a forced replacement of a
/// file) a file.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Puts `dir` back in order after a swap that a crash interrupted (the
/// table at the top): rolls back to the old folder when `dir` is missing,
/// then drops the leftovers. Writers call it before writing.
pub fn settle_dir(dir: &Path) -> std::io::Result<()> {
    let (tmp, old) = (hidden_sibling(dir, "tmp"), hidden_sibling(dir, "old"));
    if fs::symlink_metadata(dir).is_err() && old.is_dir() {
        fs::rename(&old, dir)?;
    }
    for leftover in [tmp, old] {
        remove_entry(&leftover)?;
    }
    Ok(())
}

/// A fresh, empty hidden folder beside `dir` to build its replacement in.
pub fn staging_dir(dir: &Path) -> std::io::Result<PathBuf> {
    let tmp = hidden_sibling(dir, "tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    Ok(tmp)
}

/// Moves the complete folder `new` to `dir`, replacing any folder there:
/// the old one is renamed aside first and removed only once the new one is
/// in place. Errors name the path that failed.
pub fn replace_dir(new: &Path, dir: &Path) -> Result<(), (PathBuf, std::io::Error)> {
    let old = hidden_sibling(dir, "old");
    let exists = |p: &Path| fs::symlink_metadata(p).is_ok();
    if exists(&old) {
        // A previous swap's leftover: `dir` is complete if it exists.
        if !exists(dir) {
            fs::rename(&old, dir).map_err(|e| (old.clone(), e))?;
        } else {
            remove_entry(&old).map_err(|e| (old.clone(), e))?;
        }
    }
    sync_dir(new).map_err(|e| (new.to_path_buf(), e))?;
    if exists(dir) {
        fs::rename(dir, &old).map_err(|e| (dir.to_path_buf(), e))?;
    }
    if let Err(e) = fs::rename(new, dir) {
        // Put the old folder back rather than leave neither in place.
        let _ = fs::rename(&old, dir);
        return Err((dir.to_path_buf(), e));
    }
    if let Some(parent) = dir.parent() {
        // The renames themselves reach the disk with the parent's entry.
        let _ = sync_dir(parent);
    }
    remove_entry(&old).map_err(|e| (old.clone(), e))?;
    Ok(())
}

/// Flushes a folder's entries (the names of the files in it) to disk.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scratchgpt-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn folder(path: &Path, content: &str) {
        fs::create_dir_all(path).unwrap();
        fs::write(path.join("config.json"), content).unwrap();
    }

    fn content(path: &Path) -> String {
        fs::read_to_string(path.join("config.json")).unwrap()
    }

    #[test]
    fn every_crash_point_of_a_swap_leaves_a_readable_folder() {
        let root = scratch("crash");
        let dir = root.join("model");
        let (tmp, old) = (hidden_sibling(&dir, "tmp"), hidden_sibling(&dir, "old"));
        // Killed while writing the new folder: the old one is read and kept.
        folder(&dir, "old");
        folder(&tmp, "half");
        assert_eq!(content(&readable_dir(&dir, "config.json")), "old");
        settle_dir(&dir).unwrap();
        assert_eq!(content(&dir), "old");
        assert!(!tmp.exists());
        // Killed between the renames: the old folder is read, then restored.
        fs::rename(&dir, &old).unwrap();
        folder(&tmp, "new");
        assert!(!dir.exists());
        assert_eq!(content(&readable_dir(&dir, "config.json")), "old");
        settle_dir(&dir).unwrap();
        assert_eq!(content(&dir), "old");
        assert!(!old.exists() && !tmp.exists());
        // Killed before the cleanup: the new folder is in place.
        folder(&old, "older");
        assert_eq!(content(&readable_dir(&dir, "config.json")), "old");
        settle_dir(&dir).unwrap();
        assert!(!old.exists());
        // A complete swap.
        folder(&tmp, "new");
        replace_dir(&tmp, &dir).unwrap();
        assert_eq!(content(&dir), "new");
        assert!(!tmp.exists() && !old.exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_users_folder_named_old_is_never_touched() {
        let root = scratch("user-old");
        let dir = root.join("run");
        folder(&dir, "mine");
        let user = root.join("run.old");
        fs::create_dir_all(&user).unwrap();
        fs::write(user.join("notes.txt"), "keep me").unwrap();
        let tmp = staging_dir(&dir).unwrap();
        folder(&tmp, "new");
        replace_dir(&tmp, &dir).unwrap();
        settle_dir(&dir).unwrap();
        assert_eq!(fs::read_to_string(user.join("notes.txt")).unwrap(), "keep me");
        // Nor read in place of a missing folder, since it is not one of ours.
        assert_eq!(readable_dir(&root.join("run"), "config.json"), dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(readable_dir(&dir, "config.json"), dir);
        fs::remove_dir_all(root).unwrap();
    }
}
