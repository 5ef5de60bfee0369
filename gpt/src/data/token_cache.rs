//! Tokenized corpora, cached on disk.
//!
//! Tokenizing a large corpus takes a while and gives the same answer every
//! time, so the ids are kept next to the source as two files:
//!
//! - `<name>.<tokenizer>.tokens`: the ids as a flat little-endian array, 2
//!   bytes each when the vocabulary fits in `u16` (GPT-2's 50,257 does), else
//!   4 — half the memory of `u32` for the usual case, and readable with
//!   `numpy.fromfile(path, dtype="<u2")`;
//! - `<name>.<tokenizer>.tokens.json`: a small header saying which tokenizer
//!   made them (its fingerprint), how many there are, and the size and hash of
//!   the source they came from.
//!
//! The cache is used only if the header matches the current tokenizer and
//! source, and the array's length and hash match the header; anything else
//! (a changed source, another tokenizer, a torn or foreign file) means
//! tokenizing again. Both files are written under temporary names and
//! renamed, so a crash never leaves a file that looks valid but is not.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::tokenizer::{AnyTokenizer, Fnv};

use super::DataError;

const FORMAT: &str = "scratchgpt-tokens";
const VERSION: u32 = 1;

/// Token ids read from a corpus file, and what happened with the cache.
#[derive(Debug)]
pub struct Corpus {
    pub tokens: Vec<u32>,
    pub cache: CacheStatus,
}

/// What [`load_tokens`] did with the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// The cached ids at this path were valid and used.
    Reused(PathBuf),
    /// The corpus was tokenized and the ids written here.
    Written(PathBuf),
    /// The corpus was tokenized but the cache could not be written (for
    /// example a read-only folder); the ids are still returned.
    NotWritten { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Header {
    format: String,
    version: u32,
    tokenizer: String,
    tokenizer_fingerprint: String,
    vocab_size: usize,
    dtype: String,
    count: usize,
    tokens_fnv64: String,
    source: SourceInfo,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct SourceInfo {
    file: String,
    size: u64,
    /// Recorded for people reading the header; the hash decides.
    mtime_unix_ns: Option<u64>,
    fnv64: String,
}

/// Reads and tokenizes `source` (no cache). Special tokens in the text are
/// honoured; bytes that are not UTF-8 are encoded as bytes by BPE.
pub fn tokenize_file(source: &Path, tokenizer: &AnyTokenizer) -> Result<Vec<u32>, DataError> {
    let bytes = read_source(source)?;
    encode(source, &bytes, tokenizer)
}

/// The ids of `source` under `tokenizer`, from the cache when it is still
/// valid, otherwise tokenized and cached. The cache lives in `cache_dir`, or
/// beside the source when that is `None`.
pub fn load_tokens(source: &Path, tokenizer: &AnyTokenizer, cache_dir: Option<&Path>) -> Result<Corpus, DataError> {
    let bytes = read_source(source)?;
    let (bin_path, header_path) = cache_paths(source, tokenizer, cache_dir);
    let expected_source = source_info(source, &bytes);

    if let Some(tokens) = read_cache(&bin_path, &header_path, tokenizer, &expected_source) {
        return Ok(Corpus { tokens, cache: CacheStatus::Reused(bin_path) });
    }
    let tokens = encode(source, &bytes, tokenizer)?;
    let cache = match write_cache(&bin_path, &header_path, tokenizer, &tokens, expected_source) {
        Ok(()) => CacheStatus::Written(bin_path),
        Err(e) => CacheStatus::NotWritten { path: bin_path, reason: e.to_string() },
    };
    Ok(Corpus { tokens, cache })
}

/// Where the cache of `source` under `tokenizer` lives: `(ids, header)`.
pub fn cache_paths(source: &Path, tokenizer: &AnyTokenizer, cache_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let dir =
        cache_dir.map(Path::to_path_buf).unwrap_or_else(|| source.parent().unwrap_or(Path::new(".")).to_path_buf());
    let name = source.file_name().map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned());
    let stem = format!("{name}.{:016x}.tokens", tokenizer.fingerprint());
    (dir.join(&stem), dir.join(format!("{stem}.json")))
}

fn read_source(source: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = crate::input::read_capped(source, crate::input::TEXT_LIMIT).map_err(|e| DataError::io(source, e))?;
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path: source.to_path_buf() });
    }
    Ok(bytes)
}

fn encode(source: &Path, bytes: &[u8], tokenizer: &AnyTokenizer) -> Result<Vec<u32>, DataError> {
    tokenizer.encode_corpus(bytes).map_err(|e| DataError::Tokenize { path: source.to_path_buf(), source: e })
}

fn fnv64(bytes: &[u8]) -> String {
    let mut h = Fnv::default();
    h.write(bytes);
    format!("{:016x}", h.0)
}

fn source_info(source: &Path, bytes: &[u8]) -> SourceInfo {
    let mtime_unix_ns = std::fs::metadata(source)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64);
    SourceInfo {
        file: source.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        size: bytes.len() as u64,
        mtime_unix_ns,
        fnv64: fnv64(bytes),
    }
}

/// Bytes per id: 2 when every id fits in a `u16`.
fn width(vocab_size: usize) -> usize {
    if vocab_size <= 1 << 16 {
        2
    } else {
        4
    }
}

fn read_cache(bin_path: &Path, header_path: &Path, tokenizer: &AnyTokenizer, source: &SourceInfo) -> Option<Vec<u32>> {
    let header: Header = serde_json::from_str(&std::fs::read_to_string(header_path).ok()?).ok()?;
    let w = width(tokenizer.vocab_size());
    let valid = header.format == FORMAT
        && header.version == VERSION
        && header.tokenizer_fingerprint == format!("{:016x}", tokenizer.fingerprint())
        && header.vocab_size == tokenizer.vocab_size()
        && header.dtype == if w == 2 { "u16" } else { "u32" }
        && header.source.size == source.size
        && header.source.fnv64 == source.fnv64;
    if !valid {
        return None;
    }
    let bytes = std::fs::read(bin_path).ok()?;
    if bytes.len() != header.count * w || fnv64(&bytes) != header.tokens_fnv64 {
        return None;
    }
    let tokens: Vec<u32> = match w {
        2 => bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect(),
        _ => bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    tokens.iter().all(|&id| (id as usize) < tokenizer.vocab_size()).then_some(tokens)
}

fn write_cache(
    bin_path: &Path,
    header_path: &Path,
    tokenizer: &AnyTokenizer,
    tokens: &[u32],
    source: SourceInfo,
) -> std::io::Result<()> {
    let w = width(tokenizer.vocab_size());
    let mut bytes = Vec::with_capacity(tokens.len() * w);
    for &id in tokens {
        match w {
            2 => bytes.extend_from_slice(&(id as u16).to_le_bytes()),
            _ => bytes.extend_from_slice(&id.to_le_bytes()),
        }
    }
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        tokenizer: tokenizer.describe(),
        tokenizer_fingerprint: format!("{:016x}", tokenizer.fingerprint()),
        vocab_size: tokenizer.vocab_size(),
        dtype: if w == 2 { "u16" } else { "u32" }.into(),
        count: tokens.len(),
        tokens_fnv64: fnv64(&bytes),
        source,
    };
    if let Some(dir) = bin_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(bin_path, &bytes)?;
    let json = serde_json::to_string_pretty(&header).expect("a header serializes") + "\n";
    write_atomic(header_path, json.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_follows_the_vocabulary() {
        assert_eq!(width(50257), 2);
        assert_eq!(width(65536), 2);
        assert_eq!(width(65537), 4);
    }
}
