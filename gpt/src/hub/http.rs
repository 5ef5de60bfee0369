//! Fetching one model's files from the Hub into the cache.
//!
//! Each file is two requests to `{endpoint}/ORG/NAME/resolve/{revision}/{file}`:
//!
//! - HEAD, without following a redirect to another host: the Hub answers a
//!   small file itself (200) and a large one with a redirect to its storage
//!   (302), and either way the headers name the commit (`X-Repo-Commit`),
//!   the blob (`X-Linked-Etag` for large files, else `ETag`) and the size
//!   (`X-Linked-Size`, else `Content-Length`). A redirect within the Hub (a
//!   renamed repository: a relative `Location`) is followed.
//! - GET of the bytes, from the storage when redirected, appended to
//!   `blobs/<etag>.incomplete`. When that file already holds bytes from an
//!   attempt that broke off, the GET asks only for the rest
//!   (`Range: bytes=N-`) and a `206 Partial Content` answer is appended; a
//!   server that answers the whole file (200) starts it over. A connection
//!   lost mid-file is retried a few times from where it stopped.
//!
//! The token goes to the endpoint only: the storage a redirect points to
//! gets signed URLs and never sees it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::cache::{create_parent, is_plain_name, is_shard_name, missing_file, shard_files, RepoCache};
use super::{
    is_commit_hash, Hub, HubError, ModelId, Progress, CONFIG_FILE, OPTIONAL_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};

/// GETs per file before giving up; each continues where the last stopped.
const ATTEMPTS: u32 = 5;
/// Relative redirects followed by a HEAD (renamed repositories).
const MAX_HUB_REDIRECTS: u32 = 5;

/// What a HEAD tells about one file.
struct FileMeta {
    /// The commit the revision resolved to.
    commit: Option<String>,
    /// The blob's name: its ETag without quotes or `W/`.
    etag: String,
    size: Option<u64>,
    /// Where the bytes are: the storage a redirect named, or the URL itself.
    download_url: String,
}

enum Head {
    Found(FileMeta),
    /// A 404, with the Hub's `X-Error-Code` (`RepoNotFound`,
    /// `RevisionNotFound`, `EntryNotFound`) when it sent one.
    Missing(Option<String>),
}

/// How one GET ended, when it did not bring the whole file.
enum Failed {
    /// Worth another attempt (a dropped connection, a 5xx).
    Retry(String),
    /// Not (a 404, a refusal, a disk that cannot be written).
    Fatal(HubError),
}

/// One model being fetched.
pub(super) struct Fetch<'a> {
    hub: &'a Hub,
    id: &'a ModelId,
    repo: &'a RepoCache,
    agent: ureq::Agent,
}

impl<'a> Fetch<'a> {
    pub fn new(hub: &'a Hub, id: &'a ModelId, repo: &'a RepoCache) -> Fetch<'a> {
        let agent = ureq::Agent::config_builder()
            // Statuses are answers to read, not errors: a 404 on an
            // optional file is expected.
            .http_status_as_error(false)
            // Redirects are followed by hand: a HEAD must read the Hub's
            // own headers, and the token must not reach another host.
            .max_redirects(0)
            .user_agent(concat!("scratchgpt/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build()
            .into();
        Fetch { hub, id, repo, agent }
    }

    /// Fetches what is missing of the model's snapshot and returns its
    /// folder: `config.json` (which settles the commit), the optional files,
    /// then the weights.
    pub fn model(&self, progress: &mut dyn Progress) -> Result<std::path::PathBuf, HubError> {
        let revision = self.id.revision();
        let config = match self.head(revision, CONFIG_FILE)? {
            Head::Found(meta) => meta,
            Head::Missing(code) => return Err(self.not_found(code.as_deref(), CONFIG_FILE)),
        };
        let commit = match config.commit.clone() {
            Some(commit) => commit,
            None if is_commit_hash(revision) => revision.to_string(),
            None => {
                return Err(self.invalid(format!(
                    "{} sent no X-Repo-Commit header; is HF_ENDPOINT a Hugging Face Hub?",
                    self.hub.endpoint
                )))
            }
        };
        if !is_plain_name(&commit) {
            return Err(self.invalid(format!("the Hub sent an unusable commit {commit:?}")));
        }
        self.repo.set_ref(revision, &commit)?;
        if !self.repo.snapshot(&commit).join(CONFIG_FILE).is_file() {
            self.store(&commit, CONFIG_FILE, config, progress)?;
        }
        for file in OPTIONAL_FILES {
            self.fetch(&commit, file, false, progress)?;
        }
        // A folder of weights is the last thing written: a snapshot that
        // has them has everything else that was asked for.
        if !self.fetch(&commit, WEIGHTS_FILE, false, progress)? {
            if !self.fetch(&commit, WEIGHTS_INDEX_FILE, false, progress)? {
                return Err(self.invalid(format!(
                    "the repository has no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} at {revision} (only safetensors weights are read)"
                )));
            }
            let index = self.repo.snapshot(&commit).join(WEIGHTS_INDEX_FILE);
            let Some(shards) = shard_files(&index) else {
                return Err(self.invalid(format!("{WEIGHTS_INDEX_FILE}: no weight_map of plain shard file names")));
            };
            for shard in shards {
                self.fetch(&commit, &shard, true, progress)?;
            }
        }
        let dir = self.repo.snapshot(&commit);
        match missing_file(&dir) {
            None => Ok(dir),
            Some(file) => Err(self.invalid(format!("{}: lacks {file} after the download", dir.display()))),
        }
    }

    /// Makes sure `file` is in the snapshot of `commit`, asking the Hub
    /// unless it is there or known not to exist. `false` when the Hub does
    /// not have it (an error instead when `required`).
    fn fetch(&self, commit: &str, file: &str, required: bool, progress: &mut dyn Progress) -> Result<bool, HubError> {
        debug_assert!(is_shard_name(file));
        if self.repo.snapshot(commit).join(file).is_file() {
            return Ok(true);
        }
        if !required && self.repo.known_missing(commit, file) {
            return Ok(false);
        }
        match self.head(commit, file)? {
            Head::Found(meta) => self.store(commit, file, meta, progress).map(|()| true),
            Head::Missing(code) if required => Err(self.not_found(code.as_deref(), file)),
            Head::Missing(_) => self.repo.mark_missing(commit, file).map(|()| false),
        }
    }

    /// Downloads the blob unless it is cached already (another revision
    /// may share it), then links it into the snapshot.
    fn store(&self, commit: &str, file: &str, meta: FileMeta, progress: &mut dyn Progress) -> Result<(), HubError> {
        if !is_plain_name(&meta.etag) {
            return Err(self.invalid(format!("{file}: the Hub sent an unusable ETag {:?}", meta.etag)));
        }
        let blob = self.repo.blob(&meta.etag);
        if !blob.is_file() {
            self.download(file, &meta, &blob, progress)?;
        }
        self.repo.link(commit, file, &meta.etag).map(|_| ())
    }

    /// `{endpoint}/ORG/NAME/resolve/{revision}/{file}`; a revision with a
    /// `/` in it (`refs/pr/1`) is sent as one path segment.
    fn resolve_url(&self, revision: &str, file: &str) -> String {
        let revision = revision.replace('/', "%2F");
        format!("{}/{}/{}/resolve/{revision}/{file}", self.hub.endpoint, self.id.org, self.id.name)
    }

    /// `scheme://host[:port]` of the endpoint, for relative redirects.
    fn origin(&self) -> &str {
        let endpoint = &self.hub.endpoint;
        let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
        endpoint[after_scheme..].find('/').map_or(endpoint.as_str(), |i| &endpoint[..after_scheme + i])
    }

    /// Whether `url` is on the endpoint's host, the only place the token
    /// is sent.
    fn is_hub(&self, url: &str) -> bool {
        let origin = self.origin();
        url.strip_prefix(origin).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    fn with_token<B>(&self, request: ureq::RequestBuilder<B>, url: &str) -> ureq::RequestBuilder<B> {
        match &self.hub.token {
            Some(token) if self.is_hub(url) => request.header("Authorization", format!("Bearer {token}")),
            _ => request,
        }
    }

    fn head(&self, revision: &str, file: &str) -> Result<Head, HubError> {
        let mut url = self.resolve_url(revision, file);
        for _ in 0..=MAX_HUB_REDIRECTS {
            let response = self.with_token(self.agent.head(&url), &url).call().map_err(|e| self.network(e))?;
            let status = response.status().as_u16();
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
            let location = header("location");
            match status {
                300..=399 => {
                    let Some(location) = location else {
                        return Err(self.status(file, status));
                    };
                    if location.starts_with('/') {
                        url = format!("{}{location}", self.origin());
                        continue;
                    }
                    // The storage: the headers of this answer describe the
                    // file (its Content-Length is the redirect's own).
                    let etag = header("x-linked-etag").or_else(|| header("etag"));
                    return self.meta(file, header("x-repo-commit"), etag, header("x-linked-size"), location);
                }
                200..=299 => {
                    let etag = header("x-linked-etag").or_else(|| header("etag"));
                    let size = header("x-linked-size").or_else(|| header("content-length"));
                    return self.meta(file, header("x-repo-commit"), etag, size, url);
                }
                404 => return Ok(Head::Missing(header("x-error-code"))),
                401 | 403 => return Err(self.denied(status)),
                _ => return Err(self.status(file, status)),
            }
        }
        Err(self.invalid(format!("{file}: more than {MAX_HUB_REDIRECTS} redirects")))
    }

    fn meta(
        &self,
        file: &str,
        commit: Option<String>,
        etag: Option<String>,
        size: Option<String>,
        download_url: String,
    ) -> Result<Head, HubError> {
        let Some(etag) = etag.map(|e| normalize_etag(&e)) else {
            return Err(self.invalid(format!("{file}: the Hub sent no ETag")));
        };
        let size = size.and_then(|s| s.parse().ok());
        Ok(Head::Found(FileMeta { commit, etag, size, download_url }))
    }

    /// Brings the file's bytes to `blob`, through `blob.incomplete`.
    fn download(&self, file: &str, meta: &FileMeta, blob: &Path, progress: &mut dyn Progress) -> Result<(), HubError> {
        let partial = blob.with_file_name(format!("{}.incomplete", meta.etag));
        create_parent(&partial)?;
        let on_disk = |path: &Path| fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        progress.start(file, meta.size, on_disk(&partial));
        let mut last_failure = String::new();
        let mut complete = false;
        for attempt in 0..ATTEMPTS {
            let before = on_disk(&partial);
            if meta.size == Some(before) {
                complete = true;
                break;
            }
            match self.get(file, meta, &partial, before, progress) {
                Ok(()) => {
                    complete = meta.size.is_none_or(|size| on_disk(&partial) == size);
                    if complete {
                        break;
                    }
                    last_failure = "the file ended early".into();
                }
                Err(Failed::Retry(reason)) => last_failure = reason,
                Err(Failed::Fatal(e)) => {
                    progress.finish();
                    return Err(e);
                }
            }
            // Quick retries while bytes keep coming; a pause when none did.
            if on_disk(&partial) == before && attempt + 1 < ATTEMPTS {
                std::thread::sleep(Duration::from_millis(500 << attempt));
            }
        }
        progress.finish();
        let done = on_disk(&partial);
        if let Some(size) = meta.size.filter(|&size| done > size) {
            // More bytes than the file has: they cannot be right.
            let _ = fs::remove_file(&partial);
            return Err(self.invalid(format!("{file}: received {done} bytes, more than its {size}")));
        }
        if !complete {
            let total = meta.size.map_or_else(|| "?".to_string(), |s| s.to_string());
            return Err(HubError::Interrupted {
                id: self.id.to_string(),
                file: file.to_string(),
                done,
                total,
                reason: last_failure,
            });
        }
        File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| HubError::io(&partial, e))?;
        fs::rename(&partial, blob).map_err(|e| HubError::io(blob, e))
    }

    /// One GET, appending to `partial`, which holds `have` bytes already.
    fn get(
        &self,
        file: &str,
        meta: &FileMeta,
        partial: &Path,
        have: u64,
        progress: &mut dyn Progress,
    ) -> Result<(), Failed> {
        let url = &meta.download_url;
        let mut request = self.with_token(self.agent.get(url), url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call().map_err(|e| Failed::Retry(e.to_string()))?;
        let status = response.status().as_u16();
        let content_range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).map(String::from);
        let start_over = match status {
            206 if content_range.as_deref().is_some_and(|r| range_start(r) == Some(have)) => false,
            // A range other than the one asked for: take the whole file.
            206 => return self.restart(partial, "the server answered another range than asked"),
            200 => true,
            // The partial file is longer than the file: it was of another.
            416 => return self.restart(partial, "the partial download did not fit the file"),
            401 | 403 => return Err(Failed::Fatal(self.denied(status))),
            500..=599 | 429 => return Err(Failed::Retry(format!("HTTP {status}"))),
            _ => return Err(Failed::Fatal(self.status(file, status))),
        };
        let write_error = |e: std::io::Error| Failed::Fatal(HubError::io(partial, e));
        let mut out = if start_over {
            progress.start(file, meta.size, 0);
            File::create(partial).map_err(write_error)?
        } else {
            OpenOptions::new().append(true).open(partial).map_err(write_error)?
        };
        let mut body = response.into_body().into_reader();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = match body.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // What arrived is kept: the next attempt continues from it.
                    out.flush().map_err(write_error)?;
                    return Err(Failed::Retry(e.to_string()));
                }
            };
            out.write_all(&buffer[..n]).map_err(write_error)?;
            progress.advance(n as u64);
        }
        out.flush().map_err(write_error)
    }

    fn restart(&self, partial: &Path, reason: &str) -> Result<(), Failed> {
        fs::remove_file(partial).map_err(|e| Failed::Fatal(HubError::io(partial, e)))?;
        Err(Failed::Retry(reason.into()))
    }

    fn not_found(&self, code: Option<&str>, file: &str) -> HubError {
        let revision = self.id.revision();
        let reason = match code {
            Some("RepoNotFound") => "no such model on the Hub".to_string(),
            Some("RevisionNotFound") => format!("no revision {revision} in the repository"),
            Some("EntryNotFound") if file == CONFIG_FILE => {
                format!("the repository has no {CONFIG_FILE} at {revision}, so it is not a model folder")
            }
            Some("EntryNotFound") => format!("{file} is missing from the repository at {revision}"),
            _ => format!("no such model, revision {revision} or file {file} on the Hub"),
        };
        HubError::NotFound { id: self.id.to_string(), reason, endpoint: self.hub.endpoint.clone() }
    }

    fn denied(&self, status: u16) -> HubError {
        HubError::Denied { id: self.id.repo(), status, token_sent: self.hub.token.is_some() }
    }

    fn status(&self, file: &str, status: u16) -> HubError {
        HubError::Status { id: self.id.to_string(), file: file.to_string(), status }
    }

    fn network(&self, e: ureq::Error) -> HubError {
        HubError::Network { id: self.id.to_string(), endpoint: self.hub.endpoint.clone(), reason: e.to_string() }
    }

    fn invalid(&self, reason: String) -> HubError {
        HubError::Invalid { id: self.id.to_string(), reason }
    }
}

/// `"abc"`, `W/"abc"` → `abc`.
fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

/// The first byte of `bytes START-END/TOTAL`.
fn range_start(content_range: &str) -> Option<u64> {
    content_range.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_ranges_read_as_the_hub_sends_them() {
        assert_eq!(normalize_etag("\"a1b2\""), "a1b2");
        assert_eq!(normalize_etag("W/\"a1b2\""), "a1b2");
        assert_eq!(normalize_etag("a1b2"), "a1b2");
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
    }

    #[test]
    fn the_token_goes_to_the_endpoint_only() {
        let hub =
            Hub { cache: "c".into(), endpoint: "https://hub.example:8080/mirror".into(), token: None, offline: false };
        let id = ModelId::parse("o/n").unwrap();
        let repo = RepoCache::new(&hub.cache, &id);
        let fetch = Fetch::new(&hub, &id, &repo);
        assert_eq!(fetch.origin(), "https://hub.example:8080");
        assert!(fetch.is_hub("https://hub.example:8080/o/n/resolve/main/config.json"));
        assert!(!fetch.is_hub("https://hub.example:80801/x"));
        assert!(!fetch.is_hub("https://cdn.example/blob"));
        assert_eq!(
            fetch.resolve_url("refs/pr/1", "config.json"),
            "https://hub.example:8080/mirror/o/n/resolve/refs%2Fpr%2F1/config.json"
        );
    }
}
