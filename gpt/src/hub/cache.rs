//! One repository's folder in the Hugging Face cache,
//! `models--ORG--NAME/` (the layout is drawn in `hub/mod.rs`): reading
//! which commit a revision points to, telling whether a snapshot is
//! complete, and adding a finished blob to a snapshot.
//!
//! Every write here is atomic (a temporary name, then a rename), so another
//! program reading the cache, or this one after a crash, sees a file whole
//! or not at all.

use std::fs;
use std::path::{Path, PathBuf};

use super::{is_commit_hash, HubError, ModelId, CONFIG_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};

/// `cache/models--ORG--NAME`.
pub struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    pub fn new(cache: &Path, id: &ModelId) -> RepoCache {
        RepoCache { dir: cache.join(format!("models--{}--{}", id.org, id.name)) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/<etag>`: a file's bytes, complete.
    pub fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// `snapshots/<commit>`: the model folder of one commit.
    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// The commit `revision` names: itself when it is a commit hash, else
    /// what `refs/<revision>` holds.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_string());
        }
        let text = fs::read_to_string(self.dir.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_plain_name(commit).then(|| commit.to_string())
    }

    /// Records that `revision` points to `commit` (nothing for a revision
    /// that is the commit itself, as `huggingface_hub` does).
    pub fn set_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        create_parent(&path)?;
        crate::atomic::write_atomic(&path, commit.as_bytes()).map_err(|e| HubError::io(&path, e))
    }

    /// The snapshot `revision` points to, if it holds a whole model.
    pub fn complete_snapshot(&self, revision: &str) -> Option<PathBuf> {
        let dir = self.snapshot(&self.commit_of(revision)?);
        missing_file(&dir).is_none().then_some(dir)
    }

    /// For an error message: which file the snapshot `revision` points to
    /// lacks, when there is a snapshot at all.
    pub fn missing_in_snapshot(&self, revision: &str) -> Option<String> {
        let dir = self.snapshot(&self.commit_of(revision)?);
        missing_file(&dir)
    }

    /// `.no_exist/<commit>/<file>`: an empty marker that `file` is not in
    /// that commit, so it is not asked for again.
    pub fn known_missing(&self, commit: &str, file: &str) -> bool {
        self.dir.join(".no_exist").join(commit).join(file).exists()
    }

    pub fn mark_missing(&self, commit: &str, file: &str) -> Result<(), HubError> {
        let path = self.dir.join(".no_exist").join(commit).join(file);
        create_parent(&path)?;
        fs::write(&path, b"").map_err(|e| HubError::io(&path, e))
    }

    /// Makes `snapshots/<commit>/<file>` point at the finished blob `etag`,
    /// by a relative link (`../../blobs/<etag>`, one more `../` per folder
    /// in `file`), created under a temporary name and renamed into place.
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, HubError> {
        let path = self.snapshot(commit).join(file);
        create_parent(&path)?;
        let depth = 2 + file.matches('/').count();
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        let temp = crate::atomic::temp_path(&path);
        let _ = fs::remove_file(&temp);
        link_or_copy(&target, &self.blob(etag), &temp).and_then(|()| fs::rename(&temp, &path)).map_err(|e| {
            let _ = fs::remove_file(&temp);
            HubError::io(&path, e)
        })?;
        Ok(path)
    }
}

#[cfg(unix)]
fn link_or_copy(relative_target: &Path, _blob: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(relative_target, link)
}

/// Without symbolic links (as `huggingface_hub` does on Windows without
/// developer mode): a copy of the blob.
#[cfg(not(unix))]
fn link_or_copy(_relative_target: &Path, blob: &Path, link: &Path) -> std::io::Result<()> {
    fs::copy(blob, link).map(|_| ())
}

pub(super) fn create_parent(path: &Path) -> Result<(), HubError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))
}

/// Letters, digits, `-`, `_` and `.` only, not `.` or `..`: safe as one
/// path component (commit hashes and ETags from the server are checked
/// with this before they name a folder or a file).
pub(super) fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The first file a model folder needs that `dir` lacks: `config.json`,
/// then the weights (`model.safetensors`, or the index and every shard it
/// names). `None` when the folder is whole. A link to a blob that is gone
/// counts as missing.
pub fn missing_file(dir: &Path) -> Option<String> {
    if !dir.join(CONFIG_FILE).is_file() {
        return Some(CONFIG_FILE.into());
    }
    if dir.join(WEIGHTS_FILE).is_file() {
        return None;
    }
    let Some(shards) = shard_files(&dir.join(WEIGHTS_INDEX_FILE)) else {
        return Some(WEIGHTS_FILE.into());
    };
    shards.into_iter().find(|shard| !dir.join(shard).is_file())
}

/// The shard files a `model.safetensors.index.json` names, each once, in
/// order; `None` when the index is missing or not one. Names that could
/// leave the folder (absolute, `..`) are refused by [`is_shard_name`].
pub fn shard_files(index: &Path) -> Option<Vec<String>> {
    let text = fs::read_to_string(index).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let map = value.get("weight_map")?.as_object()?;
    let mut shards: Vec<String> = Vec::new();
    for file in map.values() {
        let file = file.as_str()?;
        if !is_shard_name(file) {
            return None;
        }
        if !shards.iter().any(|s| s == file) {
            shards.push(file.to_string());
        }
    }
    (!shards.is_empty()).then_some(shards)
}

/// A relative path of plain names: `model-00001-of-00002.safetensors` or
/// `sub/part.safetensors`.
pub fn is_shard_name(file: &str) -> bool {
    file.split('/').all(is_plain_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cache(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scratchgpt-hub-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_snapshot_is_complete_only_with_config_and_every_shard() {
        let cache = temp_cache("complete");
        let id = ModelId::parse("org/model").unwrap();
        let repo = RepoCache::new(&cache, &id);
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(repo.complete_snapshot("main"), None, "no ref yet");
        repo.set_ref("main", commit).unwrap();
        let blob = |etag: &str, bytes: &[u8]| {
            fs::create_dir_all(repo.blob(etag).parent().unwrap()).unwrap();
            fs::write(repo.blob(etag), bytes).unwrap();
        };
        blob("c0", b"{}");
        repo.link(commit, CONFIG_FILE, "c0").unwrap();
        assert_eq!(repo.missing_in_snapshot("main").as_deref(), Some(WEIGHTS_FILE));
        let index =
            r#"{"weight_map": {"a": "part-1.safetensors", "b": "part-2.safetensors", "c": "part-1.safetensors"}}"#;
        blob("i0", index.as_bytes());
        repo.link(commit, WEIGHTS_INDEX_FILE, "i0").unwrap();
        blob("p1", b"1");
        repo.link(commit, "part-1.safetensors", "p1").unwrap();
        assert_eq!(repo.missing_in_snapshot("main").as_deref(), Some("part-2.safetensors"));
        // A link whose blob is gone is missing too.
        repo.link(commit, "part-2.safetensors", "p2").unwrap();
        assert_eq!(repo.complete_snapshot("main"), None);
        blob("p2", b"2");
        assert_eq!(repo.complete_snapshot("main"), Some(repo.snapshot(commit)));
        assert_eq!(repo.complete_snapshot(commit), Some(repo.snapshot(commit)), "a commit names its snapshot");
        // The links are relative, so the cache can move.
        let link = fs::read_link(repo.snapshot(commit).join(CONFIG_FILE)).unwrap();
        assert_eq!(link, PathBuf::from("../../blobs/c0"));
        fs::remove_dir_all(&cache).unwrap();
    }

    #[test]
    fn shard_names_cannot_leave_the_folder() {
        assert!(is_shard_name("model-00001-of-00002.safetensors"));
        assert!(is_shard_name("sub/part.safetensors"));
        for bad in ["../x.safetensors", "/etc/passwd", "a//b", "", "./x"] {
            assert!(!is_shard_name(bad), "{bad}");
        }
    }
}
