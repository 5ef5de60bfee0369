//! Models by name from the Hugging Face Hub: `ORG/NAME` or
//! `ORG/NAME@REVISION` becomes a local model folder.
//!
//! The folder is a snapshot in the cache that Python's `huggingface_hub`
//! keeps, in its layout, so a model either program fetched serves both:
//!
//! ```text
//! $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
//! └── models--ORG--NAME/
//!     ├── refs/main                      the commit `main` pointed to: 40 hex digits
//!     ├── blobs/<etag>                   each file's bytes once, named by its ETag
//!     │                                  (sha256 for large files, git's sha1 for small ones)
//!     ├── blobs/<etag>.incomplete        a download in progress: resumed with a Range request
//!     ├── snapshots/<commit>/config.json → ../../blobs/<etag>   (relative symlinks)
//!     └── .no_exist/<commit>/merges.txt  an empty marker: this optional file is not in that commit
//! ```
//!
//! A snapshot only ever gains complete files: bytes arrive in
//! `blobs/<etag>.incomplete`, which is renamed to `blobs/<etag>` once its
//! size is right, and only then is the symlink made (under a temporary name,
//! renamed into place). An interrupted or failed download leaves at most an
//! `.incomplete` blob, which the next run continues from where it stopped.
//!
//! Resolving a name ([`Hub::model_folder`]) first looks in the cache: when
//! `refs/REVISION` (or the commit itself) names a snapshot that holds
//! `config.json` and every safetensors weight file, that folder is the answer
//! and no request is made. Otherwise each file is asked for at
//! `{endpoint}/ORG/NAME/resolve/{revision}/{file}` (`http`): a HEAD gives the
//! commit (`X-Repo-Commit`), the blob name (`X-Linked-Etag` or `ETag`) and the
//! size, and a GET the bytes. The files are `config.json` first (it tells
//! the commit, and whether the repository exists), then the optional
//! tokenizer and generation files (a 404 is recorded in `.no_exist/`), and
//! the weights last, so a snapshot with its weights is a finished one.
//!
//! The environment is read as `huggingface_hub` reads it: `HF_ENDPOINT`,
//! `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` (or the file `$HF_HOME/token`),
//! `HF_HUB_OFFLINE`.

mod cache;
mod http;

use std::path::{Path, PathBuf};

pub use cache::RepoCache;

/// The Hub that `huggingface_hub` talks to when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The files of a model folder that are fetched when the repository has
/// them; a 404 on any of them is fine.
pub const OPTIONAL_FILES: [&str; 7] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
];

/// `config.json` (the model's shape) and `model.safetensors` (the weights
/// in one file), as the loader reads them.
pub use crate::weights::hf::{CONFIG_FILE, WEIGHTS_FILE};
/// The weights in shards: `{"weight_map": {tensor: shard file}}`.
pub use crate::weights::shards::WEIGHTS_INDEX_FILE;

/// `ORG/NAME[@REVISION]`, checked to be safe as a path and a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelId {
    pub org: String,
    pub name: String,
    /// A branch, a tag or a commit hash; `None` is `main`.
    pub revision: Option<String>,
}

impl ModelId {
    /// `Some` for text shaped like a Hub model name: exactly one `/`
    /// between two names of letters, digits, `-`, `_` and `.` (not starting
    /// with `.` or `-`, no `..` or `--`, which the Hub refuses too), then
    /// optionally `@` and a revision. Anything else is a path, not a name.
    pub fn parse(text: &str) -> Option<ModelId> {
        let (repo, revision) = match text.split_once('@') {
            Some((repo, rev)) => (repo, Some(rev)),
            None => (text, None),
        };
        let (org, name) = repo.split_once('/')?;
        if !is_repo_part(org) || !is_repo_part(name) {
            return None;
        }
        if let Some(rev) = revision {
            if !is_revision(rev) {
                return None;
            }
        }
        Some(ModelId { org: org.into(), name: name.into(), revision: revision.map(String::from) })
    }

    /// `ORG/NAME`.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The revision asked for: `main` unless one was given.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.revision {
            Some(rev) => write!(f, "{}/{}@{rev}", self.org, self.name),
            None => write!(f, "{}/{}", self.org, self.name),
        }
    }
}

fn is_repo_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 96
        && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !part.starts_with(['.', '-'])
        && !part.contains("..")
        && !part.contains("--")
}

/// Branch and tag names may hold `/` (`refs/pr/1`); every piece between
/// slashes must be a plain name, so `refs/<revision>` stays in the cache.
fn is_revision(rev: &str) -> bool {
    rev.split('/').all(|piece| {
        !piece.is_empty()
            && piece != "."
            && piece != ".."
            && piece.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    })
}

/// A 40-digit hex commit hash, which names a snapshot directly.
pub fn is_commit_hash(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the model came from and the settings to fetch it with; see
/// [`Hub::from_env`].
#[derive(Debug, Clone)]
pub struct Hub {
    /// The cache's root: holds the `models--ORG--NAME` folders.
    pub cache: PathBuf,
    /// `https://huggingface.co`, without a trailing `/`.
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` to the endpoint (never to the storage
    /// it redirects to), for gated and private models.
    pub token: Option<String>,
    /// Use only the cache; never make a request.
    pub offline: bool,
}

impl Hub {
    /// The settings `huggingface_hub` would use in this environment.
    pub fn from_env() -> Hub {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(var("HOME").unwrap_or_else(|| ".".into())).join(".cache"));
            cache.join("huggingface")
        });
        let cache = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()).trim_end_matches('/').to_string();
        let token_file = var("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home.join("token"));
        let token = var("HF_TOKEN")
            .or_else(|| std::fs::read_to_string(token_file).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v));
        Hub { cache, endpoint, token, offline }
    }

    /// The local folder of model `id`: a complete snapshot in the cache,
    /// fetched first unless it is there already (see the module notes).
    pub fn model_folder(&self, id: &ModelId, progress: &mut dyn Progress) -> Result<PathBuf, HubError> {
        let repo = RepoCache::new(&self.cache, id);
        if let Some(dir) = repo.complete_snapshot(id.revision()) {
            return Ok(dir);
        }
        if self.offline {
            return Err(HubError::NotCached {
                id: id.to_string(),
                cache: repo.dir().to_path_buf(),
                missing: repo.missing_in_snapshot(id.revision()),
            });
        }
        http::Fetch::new(self, id, &repo).model(progress)
    }
}

/// `1`, `true`, `yes`, `on`, in any case, as `huggingface_hub` reads flags.
fn is_true(value: &str) -> bool {
    ["1", "true", "yes", "on"].contains(&value.trim().to_ascii_lowercase().as_str())
}

/// What a download reports as it goes, for a progress bar; every method
/// does nothing unless overridden.
pub trait Progress {
    /// A file starts: `total` bytes when known, `done` already on disk from
    /// an earlier attempt.
    fn start(&mut self, _file: &str, _total: Option<u64>, _done: u64) {}
    /// `bytes` more arrived.
    fn advance(&mut self, _bytes: u64) {}
    /// The file is complete (or the attempt ended).
    fn finish(&mut self) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Why a model could not be had; each message is one line that names the
/// model, and says what to do where something can be done.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{id}: not in the Hugging Face cache ({}{}) and HF_HUB_OFFLINE is set; unset it to download the model", cache.display(), missing.as_ref().map(|m| format!(", the snapshot lacks {m}")).unwrap_or_default())]
    NotCached { id: String, cache: PathBuf, missing: Option<String> },
    #[error("{id}: {reason} (HTTP 404 from {endpoint})")]
    NotFound { id: String, reason: String, endpoint: String },
    #[error("{id}: the Hub refused access (HTTP {status}): the model is gated or private{}", if *token_sent { "; the token given (HF_TOKEN, or the file $HF_HOME/token) does not grant access to it (accept the model's terms on its page)" } else { ", or does not exist; set HF_TOKEN to a token that can read it" })]
    Denied { id: String, status: u16, token_sent: bool },
    #[error("{id}: {file}: the Hub answered HTTP {status}")]
    Status { id: String, file: String, status: u16 },
    #[error("{id}: cannot reach {endpoint}: {reason}; with the model cached, HF_HUB_OFFLINE=1 uses only the cache")]
    Network { id: String, endpoint: String, reason: String },
    #[error("{id}: {file}: the download broke off after {done} of {total} bytes ({reason}); run again to continue it")]
    Interrupted { id: String, file: String, done: u64, total: String, reason: String },
    #[error("{id}: {reason}")]
    Invalid { id: String, reason: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl HubError {
    fn io(path: &Path, source: std::io::Error) -> HubError {
        HubError::Io { path: path.to_path_buf(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_told_apart() {
        let id = ModelId::parse("openai-community/gpt2").unwrap();
        assert_eq!((id.org.as_str(), id.name.as_str(), id.revision()), ("openai-community", "gpt2", "main"));
        let id = ModelId::parse("HuggingFaceTB/SmolLM2-135M@refs/pr/1").unwrap();
        assert_eq!(id.revision(), "refs/pr/1");
        assert_eq!(id.to_string(), "HuggingFaceTB/SmolLM2-135M@refs/pr/1");
        for path in [
            "gpt2",
            "runs/a/b",
            "/abs/path",
            "./runs",
            "../x/y",
            "a/",
            "/b",
            "a/b@",
            "a/b@../x",
            "a/b@x//y",
            "a--b/c",
            "a/.hidden",
            "a b/c",
            "a/b@c@d",
        ] {
            assert_eq!(ModelId::parse(path), None, "{path}");
        }
    }

    #[test]
    fn offline_flags_read_like_huggingface_hub() {
        for yes in ["1", "true", "ON", "Yes"] {
            assert!(is_true(yes), "{yes}");
        }
        for no in ["0", "false", "", "off"] {
            assert!(!is_true(no), "{no}");
        }
    }
}
