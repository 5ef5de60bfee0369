//! Where a command may write: the rules that keep it from losing a user's
//! files.
//!
//! - **Only into what is ours.** A command writes into a folder that does
//!   not exist yet, an empty one, or one that holds exactly what this
//!   program writes ([`FolderKind`], read from the names inside it); any
//!   other folder is refused unless the user says `--force`.
//! - **Never into its own input.** An output equal to, inside, or above an
//!   input folder would delete the input while it is being read
//!   ([`check_not_nested`]); `--force` does not lift this.
//! - **One writer at a time.** An advisory lock ([`OutputLock`]: `flock` on
//!   a hidden file beside the folder, which outlives the folder's swaps)
//!   stops a second process with the holder's pid. The kernel drops it when
//!   the process dies, so a crash never leaves a stale lock.
//!
//! How the new contents replace the old ones without a moment where
//! neither is whole is `crate::atomic`'s part.

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use crate::atomic::{hidden_sibling, readable_dir};
use crate::finetune::classify::{CLASSIFIER_CONFIG_FILE, CLASSIFIER_WEIGHTS_FILE};
use crate::finetune::instruct::RESPONSES_FILE;
use crate::finetune::lora::{ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE};
use crate::tokenizer::{CHAR_VOCAB_FILE, MERGES_FILE, TOKENIZER_JSON_FILE, VOCAB_FILE};
use crate::train::{CHECKPOINT_DIR, LOSS_PLOT_FILE, METRICS_FILE, OPTIMIZER_FILE, STATE_FILE};
use crate::weights::hf::{CONFIG_FILE, WEIGHTS_FILE};
use crate::weights::shards::{is_shard_name, WEIGHTS_INDEX_FILE};

/// The tokenizer's files.
const TOKENIZER_FILES: [&str; 4] = [VOCAB_FILE, MERGES_FILE, CHAR_VOCAB_FILE, TOKENIZER_JSON_FILE];
/// Files a model, run or fine-tuned folder of ours holds at its top level.
const OUR_FILES: [&str; 14] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    WEIGHTS_INDEX_FILE,
    VOCAB_FILE,
    TOKENIZER_JSON_FILE,
    MERGES_FILE,
    CHAR_VOCAB_FILE,
    CLASSIFIER_CONFIG_FILE,
    CLASSIFIER_WEIGHTS_FILE,
    RESPONSES_FILE,
    METRICS_FILE,
    LOSS_PLOT_FILE,
    STATE_FILE,
    OPTIMIZER_FILE,
];
/// Folders inside one of ours, and the files they hold.
const CHECKPOINT_FILES: [&str; 9] = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    WEIGHTS_INDEX_FILE,
    VOCAB_FILE,
    MERGES_FILE,
    CHAR_VOCAB_FILE,
    TOKENIZER_JSON_FILE,
    STATE_FILE,
    OPTIMIZER_FILE,
];
const ADAPTER_FILES: [&str; 2] = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];

/// What a folder holds, judged by the names in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderKind {
    Missing,
    Empty,
    /// A model of ours (weights, config, tokenizer, and what fine-tuning
    /// adds), with no training state.
    Model,
    /// A training run: a model plus `checkpoint/` or optimizer state.
    Run,
    /// Only a tokenizer's files.
    Tokenizer,
    /// Anything else; the entry that gave it away, for the message.
    Foreign(String),
}

impl FolderKind {
    /// How a refusal describes it.
    pub fn describe(&self) -> String {
        match self {
            FolderKind::Missing => "does not exist".into(),
            FolderKind::Empty => "is empty (or holds only a stopped run's metrics)".into(),
            FolderKind::Model => "holds a model".into(),
            FolderKind::Run => "holds a training run (with its checkpoint and optimizer state)".into(),
            FolderKind::Tokenizer => "holds a tokenizer".into(),
            FolderKind::Foreign(entry) => format!("is not a folder this program wrote (it holds {entry:?})"),
        }
    }
}

/// A file or folder name this program leaves behind while writing one of
/// its own entries: `.NAME.tmp-PID` (a file written atomically) or
/// `.NAME.scratchgpt-tmp|old|lock` (a folder being swapped, its lock), for
/// a NAME this program writes. Anything else hidden is the user's.
fn is_leftover(name: &str) -> bool {
    let ours = |base: &str| {
        OUR_FILES.contains(&base)
            || is_shard_name(base)
            || ADAPTER_FILES.contains(&base)
            || base == CHECKPOINT_DIR
            || base == "adapter"
    };
    let Some(rest) = name.strip_prefix('.') else { return false };
    if let Some((base, pid)) = rest.rsplit_once(".tmp-") {
        return !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && ours(base);
    }
    if let Some((base, role)) = rest.rsplit_once(".scratchgpt-") {
        return matches!(role, "tmp" | "old" | "lock") && ours(base);
    }
    false
}

/// The first entry of `dir` whose name is not in `known` (leftovers
/// excepted), or whose type is not what that name should be.
fn first_unknown(dir: &Path, known: &[&str], folders: &[(&str, &[&str])]) -> std::io::Result<Option<String>> {
    let mut names: Vec<(String, bool)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        names.push((name, entry.file_type()?.is_dir()));
    }
    names.sort();
    for (name, is_dir) in names {
        if is_leftover(&name) {
            continue;
        }
        if let Some((_, inner)) = folders.iter().find(|(f, _)| *f == name) {
            if !is_dir {
                return Ok(Some(name));
            }
            if let Some(unknown) = first_unknown(&dir.join(&name), inner, &[])? {
                return Ok(Some(format!("{name}/{unknown}")));
            }
        } else if is_dir || !(known.contains(&name.as_str()) || is_shard_name(&name)) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// What `dir` holds. A symbolic link or a file where a folder should be is
/// foreign.
pub fn folder_kind(dir: &Path) -> std::io::Result<FolderKind> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FolderKind::Missing),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        let what = if meta.file_type().is_symlink() { "a symbolic link" } else { "a file" };
        return Ok(FolderKind::Foreign(format!("{what}, not a folder")));
    }
    // `checkpoint.old`/`.tmp`: where earlier versions swapped checkpoints.
    let folders: [(&str, &[&str]); 4] = [
        (CHECKPOINT_DIR, &CHECKPOINT_FILES),
        ("checkpoint.old", &CHECKPOINT_FILES),
        ("checkpoint.tmp", &CHECKPOINT_FILES),
        ("adapter", &ADAPTER_FILES),
    ];
    if let Some(unknown) = first_unknown(dir, &OUR_FILES, &folders)? {
        return Ok(FolderKind::Foreign(unknown));
    }
    let has = |name: &str| dir.join(name).exists();
    let entries: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !is_leftover(n))
        .collect();
    // A run stopped before its first checkpoint leaves only its metrics.
    let metrics_only = entries.iter().all(|n| n == METRICS_FILE || n == LOSS_PLOT_FILE);
    Ok(if metrics_only {
        FolderKind::Empty
    } else if readable_dir(&dir.join(CHECKPOINT_DIR), STATE_FILE).join(STATE_FILE).is_file()
        || has(CHECKPOINT_DIR)
        || has(STATE_FILE)
        || has(OPTIMIZER_FILE)
    {
        FolderKind::Run
    } else if has(CONFIG_FILE) && (has(WEIGHTS_FILE) || has(WEIGHTS_INDEX_FILE)) {
        FolderKind::Model
    } else if entries.iter().all(|n| TOKENIZER_FILES.contains(&n.as_str()))
        && (has(CHAR_VOCAB_FILE) || (has(VOCAB_FILE) && has(MERGES_FILE)))
    {
        FolderKind::Tokenizer
    } else {
        // Ours by name, but no model to go with them (e.g. weights without
        // a config): not something to replace without being asked.
        FolderKind::Foreign(entries.into_iter().min().unwrap_or_default())
    })
}

/// `path` made absolute with `.` and `..` resolved and symbolic links
/// followed as far as the path exists, so that two spellings of one folder
/// compare equal.
pub fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    let mut clean = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                // `link/..` is the parent of where the link points, as the
                // system resolves it: follow links before going up.
                if let Ok(real) = clean.canonicalize() {
                    clean = real;
                }
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    // Follow links in the longest prefix that exists; keep the rest.
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    while fs::symlink_metadata(&existing).is_err() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_os_string()),
            None => break,
        }
        existing.pop();
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    Ok(out)
}

/// Refuses an output folder that is an input, lies inside one, or holds
/// one: replacing it would delete the input. `inputs` may name files
/// (a data file inside the output is as much at risk). The reason does not
/// repeat the output's name; callers put it first.
pub fn check_not_nested(out: &Path, inputs: &[&Path]) -> Result<(), String> {
    let out_r = resolved(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for input in inputs {
        let in_r = resolved(input).map_err(|e| format!("{}: {e}", input.display()))?;
        let reason = if out_r == in_r {
            "is also an input of this command".to_string()
        } else if in_r.starts_with(&out_r) {
            format!("holds the input {}; replacing it would delete that input", input.display())
        } else if out_r.starts_with(&in_r) {
            format!("is inside the input {}", input.display())
        } else {
            continue;
        };
        return Err(format!("{reason}; choose another output folder"));
    }
    Ok(())
}

/// An advisory lock on an output folder, held until dropped (or the process
/// ends). The lock file `.NAME.scratchgpt-lock` sits beside the folder, not
/// in it, because the folder itself is replaced by renames; it holds the
/// pid of the process that has it, for the message of the next one.
#[derive(Debug)]
pub struct OutputLock {
    _file: fs::File,
    path: PathBuf,
}

impl OutputLock {
    pub fn acquire(dir: &Path) -> Result<OutputLock, String> {
        let path = hidden_sibling(dir, "lock");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: cannot create the lock file: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let who = holder.trim().parse::<u32>().map_or(String::new(), |pid| format!(" (pid {pid})"));
                return Err(format!(
                    "{}: another scratchgpt process{who} is writing this folder; wait for it to finish or choose another output",
                    dir.display()
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(format!("{}: cannot lock: {e}", path.display())),
        }
        let pid = format!("{}\n", std::process::id());
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(pid.as_bytes()));
        Ok(OutputLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The nearest folder above `dir` that another process holds locked:
    /// its swap would take `dir` with it, so nothing may be written there.
    pub fn held_above(dir: &Path) -> Option<PathBuf> {
        let dir = resolved(dir).ok()?;
        dir.ancestors()
            .skip(1)
            .find(|above| {
                let Ok(file) = fs::File::open(hidden_sibling(above, "lock")) else { return false };
                matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
            })
            .map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scratchgpt-output-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn folder_kinds_follow_the_names_inside() {
        let root = scratch("kinds");
        let dir = root.join("out");
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Missing);
        fs::create_dir(&dir).unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Empty);
        fs::write(dir.join(VOCAB_FILE), "{}").unwrap();
        fs::write(dir.join(MERGES_FILE), "").unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Tokenizer);
        fs::write(dir.join(CONFIG_FILE), "{}").unwrap();
        fs::write(dir.join(WEIGHTS_FILE), "").unwrap();
        fs::write(dir.join(".model.safetensors.tmp-12"), "").unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Model);
        fs::create_dir_all(dir.join(CHECKPOINT_DIR)).unwrap();
        fs::write(dir.join(CHECKPOINT_DIR).join(STATE_FILE), "{}").unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Run);
        fs::write(dir.join(CHECKPOINT_DIR).join("notes.txt"), "mine").unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Foreign("checkpoint/notes.txt".into()));
        fs::remove_file(dir.join(CHECKPOINT_DIR).join("notes.txt")).unwrap();
        fs::create_dir(dir.join("src")).unwrap();
        assert_eq!(folder_kind(&dir).unwrap(), FolderKind::Foreign("src".into()));
        // A config.json alone among a project's files is not a model.
        let project = root.join("project");
        fs::create_dir(&project).unwrap();
        fs::write(project.join(CONFIG_FILE), "{}").unwrap();
        fs::write(project.join("README.md"), "").unwrap();
        assert_eq!(folder_kind(&project).unwrap(), FolderKind::Foreign("README.md".into()));
        fs::write(root.join("file"), "").unwrap();
        assert!(matches!(folder_kind(&root.join("file")).unwrap(), FolderKind::Foreign(_)));
        // Hidden names are ours only in our exact patterns, for our names.
        let hidden = root.join("hidden");
        fs::create_dir(&hidden).unwrap();
        for (name, ours) in [
            (".model.safetensors.tmp-12", true),
            (".checkpoint.scratchgpt-old", true),
            (".notes.tmp-1", false),
            (".q8.scratchgpt-old", false),
            (".config.json.tmp-x", false),
        ] {
            fs::write(hidden.join(name), "").unwrap();
            let kind = folder_kind(&hidden).unwrap();
            assert_eq!(kind == FolderKind::Empty, ours, "{name}: {kind:?}");
            fs::remove_file(hidden.join(name)).unwrap();
        }
        // A stopped run's metrics alone count as empty; a config alone is
        // not a model.
        fs::write(hidden.join(METRICS_FILE), "").unwrap();
        assert_eq!(folder_kind(&hidden).unwrap(), FolderKind::Empty);
        fs::write(hidden.join(CONFIG_FILE), "{}").unwrap();
        assert!(matches!(folder_kind(&hidden).unwrap(), FolderKind::Foreign(_)));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn outputs_equal_to_inside_or_above_an_input_are_refused() {
        let root = scratch("nested");
        let run = root.join("run");
        fs::create_dir_all(run.join("checkpoint")).unwrap();
        let ckpt = run.join("checkpoint");
        let err = check_not_nested(&run, &[&ckpt]).unwrap_err();
        assert!(err.contains("holds the input"), "{err}");
        let err = check_not_nested(&ckpt.join("q8"), &[&ckpt]).unwrap_err();
        assert!(err.contains("is inside the input"), "{err}");
        let err = check_not_nested(&root.join("run/./checkpoint/../checkpoint"), &[&ckpt]).unwrap_err();
        assert!(err.contains("is also an input"), "{err}");
        #[cfg(unix)]
        {
            let link = root.join("link");
            std::os::unix::fs::symlink(&run, &link).unwrap();
            assert!(check_not_nested(&link, &[&ckpt]).is_err(), "a link to the input's parent");
            // `deep/..` through a link is where the link points, not `root`.
            fs::create_dir_all(root.join("elsewhere/deep")).unwrap();
            let hop = root.join("hop");
            std::os::unix::fs::symlink(root.join("elsewhere/deep"), &hop).unwrap();
            assert_eq!(resolved(&hop.join("../x")).unwrap(), resolved(&root.join("elsewhere/x")).unwrap());
        }
        check_not_nested(&root.join("other"), &[&ckpt]).unwrap();
        check_not_nested(&root.join("run2"), &[&run]).unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let root = scratch("lock");
        let dir = root.join("out");
        let first = OutputLock::acquire(&dir).unwrap();
        let err = OutputLock::acquire(&dir).unwrap_err();
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        assert!(first.path().starts_with(&root) && !first.path().starts_with(&dir));
        drop(first);
        let _again = OutputLock::acquire(&dir).unwrap();
        fs::remove_dir_all(root).unwrap();
    }
}
