//! Reading a GGUF file: memory-mapped, every count and offset checked
//! against the file's size before it is trusted.
//!
//! Layout (version 3, all numbers little-endian):
//!
//! ```text
//! "GGUF"  u32 version  u64 tensor_count  u64 metadata_count
//! metadata_count × (key, u32 value type, value)          see `value`
//! tensor_count × (name, u32 n_dims, n_dims × u64 ne, u32 ggml type, u64 offset)
//! padding to `general.alignment` (32 when absent)
//! tensor data; each offset counts from here and is a multiple of the alignment
//! ```
//!
//! `ne` lists dimensions innermost first (ggml's order): a PyTorch-style
//! `[rows, cols]` matrix is `ne = [cols, rows]`, and its bytes are the rows
//! one after another, each `cols` weights as whole blocks of its type.
//! [`TensorInfo::shape`] turns `ne` around into the row-major shape the
//! rest of this crate uses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::dequant::dequantize;
use super::error::GgufError;
use super::ggml_type::{id_name, GgmlType, SUPPORTED};
use super::value::{Value, ValueType};

pub const MAGIC: &[u8; 4] = b"GGUF";
/// The versions read: 2 and 3 share one layout (1 had 32-bit counts).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 2..=3;
/// The data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays may hold arrays; deeper than this is no file anyone writes.
const MAX_NESTING: usize = 4;

/// One tensor's entry in the file's table.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions innermost first, as stored.
    pub ne: Vec<u64>,
    pub ty: GgmlType,
    /// From the start of the data section.
    pub offset: u64,
    pub bytes: u64,
}

impl TensorInfo {
    /// The row-major shape, outermost first (`ne` reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.ne.iter().rev().map(|&n| n as usize).collect()
    }

    pub fn numel(&self) -> usize {
        self.ne.iter().product::<u64>() as usize
    }
}

/// An opened GGUF file whose header has been checked.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| GgufError::io(path, e))?;
        if !meta.is_file() {
            let reason = if meta.is_dir() { "is a folder, not a GGUF file" } else { "is not a regular file" };
            return Err(GgufError::new(path, reason));
        }
        let file = std::fs::File::open(path).map_err(|e| GgufError::io(path, e))?;
        // SAFETY: read-only map kept alive by this struct; a file changed
        // underneath could show torn bytes, which the checks here and in
        // the loaders catch as well as they can (as every mmap loader).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| GgufError::io(path, e))?;
        let header = parse(path, &mmap)?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            data_start: header.data_start,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every key/value pair, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every tensor's entry, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The stored bytes of a tensor (its offset and size were checked
    /// against the file in `open`).
    pub fn data(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_start + info.offset) as usize;
        &self.mmap[start..start + info.bytes as usize]
    }

    /// A tensor's values as f32, whatever its type.
    pub fn dequantize(&self, info: &TensorInfo) -> Vec<f32> {
        dequantize(info.ty, self.data(info))
    }

    /// An error about this file.
    pub fn error(&self, reason: impl Into<String>) -> GgufError {
        GgufError::new(&self.path, reason)
    }
}

struct Header {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_start: u64,
}

/// Walks the bytes, failing with what it was reading where they ran out.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn fail(&self, reason: String) -> GgufError {
        GgufError::new(self.path, reason)
    }

    fn left(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.left() {
            return Err(self.fail(format!(
                "truncated: {what} needs {n} bytes at byte {} but the file ends at {}",
                self.pos,
                self.bytes.len()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        Ok(self.take(N as u64, what)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.fail(format!("{what} at byte {at} is not UTF-8")))
    }

    fn value(&mut self, ty: ValueType, what: &str, depth: usize) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.fail(format!("{what} is a bool stored as {b}, not 0 or 1"))),
            },
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Array => {
                if depth >= MAX_NESTING {
                    return Err(self.fail(format!("{what} nests arrays more than {MAX_NESTING} deep")));
                }
                let id = self.u32(what)?;
                let elem = ValueType::from_id(id)
                    .ok_or_else(|| self.fail(format!("{what} is an array of unknown value type {id}")))?;
                let count = self.u64(what)?;
                // Each element takes some bytes: a count the rest of the
                // file cannot hold is a damaged file, not an allocation.
                if count.saturating_mul(elem.min_bytes()) > self.left() {
                    return Err(self.fail(format!(
                        "truncated: {what} claims {count} elements but only {} bytes are left",
                        self.left()
                    )));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, what, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Header, GgufError> {
    let mut c = Cursor { bytes, pos: 0, path };
    let magic: [u8; 4] = match bytes.get(..4) {
        Some(m) => m.try_into().expect("four bytes"),
        None => return Err(GgufError::new(path, format!("not a GGUF file: only {} bytes long", bytes.len()))),
    };
    if &magic != MAGIC {
        return Err(GgufError::new(
            path,
            format!("not a GGUF file: it starts with \"{}\", not \"GGUF\"", magic.escape_ascii()),
        ));
    }
    c.pos = 4;
    let version = c.u32("the version")?;
    if !VERSIONS.contains(&version) {
        return Err(c.fail(format!(
            "GGUF version {version} is not supported (versions {}-{} are; a big-endian file also reads as a huge version)",
            VERSIONS.start(),
            VERSIONS.end()
        )));
    }
    let tensor_count = c.u64("the tensor count")?;
    let kv_count = c.u64("the metadata count")?;
    // A key/value pair takes at least 12 bytes, a tensor entry 24.
    if kv_count.saturating_mul(12) > c.left() || tensor_count.saturating_mul(24) > c.left() {
        return Err(c.fail(format!(
            "truncated: the header claims {kv_count} metadata entries and {tensor_count} tensors, more than the {} bytes left hold",
            c.left()
        )));
    }
    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(kv_count as usize);
    for i in 0..kv_count {
        let key = c.string(&format!("metadata key {i}"))?;
        let id = c.u32(&format!("the type of {key}"))?;
        let ty = ValueType::from_id(id).ok_or_else(|| c.fail(format!("metadata {key} has unknown value type {id}")))?;
        let value = c.value(ty, &format!("metadata {key}"), 0)?;
        if metadata.iter().any(|(k, _)| *k == key) {
            return Err(c.fail(format!("metadata key {key} appears twice")));
        }
        metadata.push((key, value));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a > 0 && a.is_power_of_two() => *a as u64,
        Some((_, v)) => return Err(c.fail(format!("{ALIGNMENT_KEY} is {v:?}; it must be a u32 power of two"))),
    };
    let mut tensors = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::new();
    for i in 0..tensor_count {
        let name = c.string(&format!("tensor name {i}"))?;
        let n_dims = c.u32(&format!("the dimensions of tensor {name}"))?;
        if !(1..=MAX_DIMS).contains(&n_dims) {
            return Err(c.fail(format!("tensor {name} has {n_dims} dimensions; ggml allows 1 to {MAX_DIMS}")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64(&format!("the shape of tensor {name}"))?);
        }
        let id = c.u32(&format!("the type of tensor {name}"))?;
        let ty = GgmlType::from_id(id).ok_or_else(|| {
            let known = id_name(id).map_or(String::new(), |n| format!(" ({n})"));
            let supported: Vec<&str> = SUPPORTED.iter().map(|t| t.name()).collect();
            c.fail(format!(
                "tensor {name} has ggml type {id}{known}, which is not supported (supported: {})",
                supported.join(", ")
            ))
        })?;
        let offset = c.u64(&format!("the offset of tensor {name}"))?;
        let numel = ne.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).filter(|&n| n > 0);
        let bytes = numel.filter(|_| ne[0] % ty.block_size() as u64 == 0).and_then(|n| ty.bytes_for(n));
        let Some(bytes) = bytes else {
            return Err(c.fail(format!(
                "tensor {name} has shape {ne:?} (innermost first), which is empty, too large, or not whole {ty} blocks of {} along its rows",
                ty.block_size()
            )));
        };
        if offset % alignment != 0 {
            return Err(
                c.fail(format!("tensor {name}'s offset {offset} is not a multiple of the alignment {alignment}"))
            );
        }
        if !names.insert(name.clone()) {
            return Err(c.fail(format!("tensor {name} appears twice")));
        }
        tensors.push(TensorInfo { name, ne, ty, offset, bytes });
    }
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    for t in &tensors {
        let end = data_start.checked_add(t.offset).and_then(|s| s.checked_add(t.bytes));
        if end.is_none_or(|end| end > file_len) {
            return Err(c.fail(format!(
                "truncated: tensor {} ({} bytes at data offset {}) ends past the end of the file ({file_len} bytes)",
                t.name, t.bytes, t.offset
            )));
        }
    }
    Ok(Header { version, metadata, tensors, data_start })
}
