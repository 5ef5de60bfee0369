//! A model's weights in one safetensors file or split over several.
//!
//! Hugging Face writes a model larger than `max_shard_size` (5 GB by
//! default; Llama 3 8B is 16 GB in bf16) as shards with an index:
//!
//! ```text
//! model.safetensors.index.json   {"metadata": {"total_size": N},
//!                                 "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors", ...}}
//! model-00001-of-00002.safetensors
//! model-00002-of-00002.safetensors
//! ```
//!
//! [`WeightFiles`] opens either layout and answers "which file holds this
//! tensor", so a loader reads names, shapes and tensors without caring how
//! the folder is split. As `transformers` does, a folder with
//! `model.safetensors` reads that file and ignores any index. Every shard
//! the index names is opened (and its header checked) before any tensor is
//! read, so a missing or truncated shard fails first, naming the file; a
//! tensor the index places in a shard that lacks it is an error too.
//!
//! [`save_sharded`] writes the other direction: tensors in order, a new
//! shard whenever the next tensor would pass the size limit, then the index
//! last, so a crash before the index leaves no index pointing at missing
//! shards.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tensor::Tensor;

use super::error::WeightsError;
use super::safetensors_io::{save_safetensors, RawView, SafetensorsFile};
use crate::atomic::write_atomic;

/// The single-file weights' name.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded folder.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// A folder's weights: one file, or the shards an index names.
pub struct WeightFiles {
    files: Vec<SafetensorsFile>,
    /// Tensor name → index into `files`.
    owner: HashMap<String, usize>,
    /// The file errors about a missing tensor name: the single file, or the
    /// index that should have listed it.
    listing: PathBuf,
}

impl WeightFiles {
    /// Opens `dir/model.safetensors`, or else the index and every shard it
    /// names.
    pub fn open(dir: &Path) -> Result<WeightFiles, WeightsError> {
        let single = dir.join(WEIGHTS_FILE);
        let index = dir.join(WEIGHTS_INDEX_FILE);
        if single.exists() || !index.exists() {
            return Ok(WeightFiles::single(SafetensorsFile::open(single)?));
        }
        let text = crate::input::read_capped_string(&index, crate::input::JSON_LIMIT)
            .map_err(|e| WeightsError::io(&index, e))?;
        let bad = |reason: String| WeightsError::Config { path: index.clone(), reason };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let map =
            value.get("weight_map").and_then(Value::as_object).ok_or_else(|| bad("no \"weight_map\" object".into()))?;
        // Shards in the order of their names, each opened once.
        let mut shard_of_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| bad(format!("the file for {tensor} is not a string")))?;
            if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
                return Err(bad(format!("{tensor} is placed in {file:?}, which is not a file name in this folder")));
            }
            shard_of_name.entry(file).or_default().push(tensor);
        }
        if shard_of_name.is_empty() {
            return Err(bad("the weight map is empty".into()));
        }
        let mut files = Vec::with_capacity(shard_of_name.len());
        let mut owner = HashMap::with_capacity(map.len());
        for (file, tensors) in shard_of_name {
            let shard = SafetensorsFile::open(dir.join(file))?;
            for tensor in tensors {
                if !shard.contains(tensor) {
                    return Err(bad(format!("{tensor} is placed in {file}, which does not hold it")));
                }
                owner.insert(tensor.to_string(), files.len());
            }
            files.push(shard);
        }
        Ok(WeightFiles { files, owner, listing: index })
    }

    /// One file's tensors.
    pub fn single(file: SafetensorsFile) -> WeightFiles {
        let owner = file.names().into_iter().map(|n| (n, 0)).collect();
        let listing = file.path().to_path_buf();
        WeightFiles { files: vec![file], owner, listing }
    }

    /// The file a missing tensor is reported against.
    pub fn path(&self) -> &Path {
        &self.listing
    }

    /// Every tensor name, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.owner.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.owner.contains_key(name)
    }

    /// The size of every file that holds the weights, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| std::fs::metadata(f.path()).map(|m| m.len()).unwrap_or(0)).sum()
    }

    /// How many files hold the weights.
    pub fn shard_count(&self) -> usize {
        self.files.len()
    }

    /// The file that holds `name`.
    pub fn file_of(&self, name: &str) -> Result<&SafetensorsFile, WeightsError> {
        self.owner
            .get(name)
            .map(|&i| &self.files[i])
            .ok_or_else(|| WeightsError::Missing { path: self.listing.clone(), name: name.into() })
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>, WeightsError> {
        self.file_of(name)?.shape(name)
    }

    pub fn tensor(&self, name: &str) -> Result<Tensor, WeightsError> {
        self.file_of(name)?.tensor(name)
    }

    pub fn tensor_shaped(&self, name: &str, expected: &[usize]) -> Result<Tensor, WeightsError> {
        self.file_of(name)?.tensor_shaped(name, expected)
    }

    pub fn raw(&self, name: &str) -> Result<RawView<'_>, WeightsError> {
        self.file_of(name)?.raw(name)
    }
}

/// The name of shard `k` (from 1) of `n`, as `transformers` names them.
pub fn shard_file_name(k: usize, n: usize) -> String {
    format!("model-{k:05}-of-{n:05}.safetensors")
}

/// Groups tensors, in order, into shards of at most `max_bytes` each (a
/// tensor larger than the limit gets a shard of its own, as in
/// `transformers`). Returns the index ranges of `sizes`.
pub fn plan_shards(sizes: &[usize], max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > max_bytes {
            shards.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        shards.push(start..sizes.len());
    }
    shards
}

/// Writes `tensors` into `dir` as shards of at most `max_bytes` plus
/// [`WEIGHTS_INDEX_FILE`], or as one [`WEIGHTS_FILE`] when they fit in one.
/// Returns the files written. Each file is written atomically, the index
/// last; the caller removes the layout it replaces (see
/// [`remove_replaced_weights`]).
pub fn save_sharded(
    dir: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    max_bytes: usize,
) -> Result<Vec<String>, WeightsError> {
    let sizes: Vec<usize> = tensors.iter().map(|(_, t)| t.numel() * t.dtype().size_in_bytes()).collect();
    let plan = plan_shards(&sizes, max_bytes.max(1));
    if plan.len() <= 1 {
        save_safetensors(dir.join(WEIGHTS_FILE), tensors, Some(metadata))?;
        return Ok(vec![WEIGHTS_FILE.into()]);
    }
    let mut weight_map = BTreeMap::new();
    let mut written = Vec::with_capacity(plan.len() + 1);
    for (k, range) in plan.iter().enumerate() {
        let name = shard_file_name(k + 1, plan.len());
        save_safetensors(dir.join(&name), &tensors[range.clone()], Some(metadata.clone()))?;
        for (tensor, _) in &tensors[range.clone()] {
            weight_map.insert(tensor.clone(), name.clone());
        }
        written.push(name);
    }
    let index = json!({
        "metadata": {"total_size": sizes.iter().sum::<usize>()},
        "weight_map": weight_map,
    });
    let path = dir.join(WEIGHTS_INDEX_FILE);
    let text = serde_json::to_string_pretty(&index).expect("JSON of an index");
    write_atomic(&path, text.as_bytes()).map_err(|e| WeightsError::io(&path, e))?;
    written.push(WEIGHTS_INDEX_FILE.into());
    Ok(written)
}

/// After a save wrote `written`, removes the weights of the other layout
/// that an earlier save of this folder left: a single file that would
/// shadow a new index, or an old index and the shards it named. Only names
/// of our weight layouts are touched.
pub fn remove_replaced_weights(dir: &Path, written: &[String]) -> Result<(), WeightsError> {
    let mut stale: Vec<PathBuf> = Vec::new();
    if written.iter().any(|f| f == WEIGHTS_INDEX_FILE) {
        stale.push(dir.join(WEIGHTS_FILE));
    }
    // Shards of an earlier save with a different count, or all of them
    // when this save wrote one file.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_shard_name(&name) && !written.contains(&name) {
                stale.push(entry.path());
            }
        }
    }
    if !written.iter().any(|f| f == WEIGHTS_INDEX_FILE) {
        stale.push(dir.join(WEIGHTS_INDEX_FILE));
    }
    for path in stale {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(WeightsError::io(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name` is spelled `model-NNNNN-of-NNNNN.safetensors`.
pub fn is_shard_name(name: &str) -> bool {
    let Some(middle) = name.strip_prefix("model-").and_then(|n| n.strip_suffix(".safetensors")) else {
        return false;
    };
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    matches!(middle.split_once("-of-"), Some((k, n)) if digits(k) && digits(n))
}

/// Reads a size such as `5GB`, `500MB`, `2GiB` or a byte count
/// (`--max-shard-size`, as `transformers`' `max_shard_size`).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a size such as 5GB or 500MB"))?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)")),
    };
    let bytes = value * scale;
    if !(bytes >= 1.0 && bytes < usize::MAX as f64) {
        return Err(format!("{text:?} is not a positive size"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_fill_up_to_the_limit_and_big_tensors_stand_alone() {
        assert_eq!(plan_shards(&[4, 4, 4], 8), vec![0..2, 2..3]);
        assert_eq!(plan_shards(&[4, 20, 4], 8), vec![0..1, 1..2, 2..3]);
        assert_eq!(plan_shards(&[4, 4], 100), vec![0..2]);
        assert_eq!(plan_shards(&[], 100), Vec::<std::ops::Range<usize>>::new());
    }

    #[test]
    fn sizes_and_shard_names_read_as_transformers_writes_them() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_size("0").is_err());
        assert_eq!(shard_file_name(2, 10), "model-00002-of-00010.safetensors");
        assert!(is_shard_name("model-00002-of-00010.safetensors"));
        assert!(!is_shard_name("model.safetensors") && !is_shard_name("model-2-of-10.safetensors"));
    }
}
