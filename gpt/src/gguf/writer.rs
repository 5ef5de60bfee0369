//! Writing a GGUF file (version 3): header, metadata, tensor table,
//! padding, then each tensor's bytes at an aligned offset (the layout is
//! in `reader`).
//!
//! The file is streamed to a temporary name beside the target and renamed
//! over it when complete (`crate::atomic`), so a crash never leaves half a
//! file under the target's name.

use std::io::Write;
use std::path::Path;

use super::error::GgufError;
use super::ggml_type::GgmlType;
use super::reader::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC};
use super::value::{encode_str, Value};

/// The version written.
pub const VERSION: u32 = 3;

struct Pending {
    name: String,
    /// Innermost first.
    ne: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// A GGUF file being assembled.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<Pending>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` (replacing an earlier value of it).
    pub fn set(&mut self, key: &str, value: Value) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds a tensor of row-major `shape` whose bytes, of type `ty`, are
    /// `data` (whole blocks along the last dimension).
    pub fn add_tensor(&mut self, name: &str, shape: &[usize], ty: GgmlType, data: Vec<u8>) {
        let numel: usize = shape.iter().product();
        assert!(
            ty.bytes_for(numel as u64) == Some(data.len() as u64),
            "add_tensor {name}: {} bytes for {shape:?} of {ty}",
            data.len()
        );
        let ne = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push(Pending { name: name.to_string(), ne, ty, data });
    }

    fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            Some((_, Value::U32(a))) if a.is_power_of_two() => *a as u64,
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Writes the whole file to `out`.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let alignment = self.alignment();
        let mut header = Vec::new();
        header.extend(MAGIC);
        header.extend(VERSION.to_le_bytes());
        header.extend((self.tensors.len() as u64).to_le_bytes());
        header.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            encode_str(key, &mut header);
            header.extend((value.value_type() as u32).to_le_bytes());
            value.encode(&mut header);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            encode_str(&t.name, &mut header);
            header.extend((t.ne.len() as u32).to_le_bytes());
            for d in &t.ne {
                header.extend(d.to_le_bytes());
            }
            header.extend(t.ty.id().to_le_bytes());
            header.extend(offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
        }
        let padded = (header.len() as u64).div_ceil(alignment) * alignment;
        header.resize(padded as usize, 0);
        out.write_all(&header)?;
        let mut written = 0u64;
        for (t, &at) in self.tensors.iter().zip(&offsets) {
            out.write_all(&vec![0u8; (at - written) as usize])?;
            out.write_all(&t.data)?;
            written = at + t.data.len() as u64;
        }
        // The last tensor is padded too, as ggml's own writer does (its
        // reader sizes the data section as the padded sum).
        out.write_all(&vec![0u8; (offset - written) as usize])
    }

    /// Writes the file to `path` atomically.
    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        crate::atomic::write_atomic_with(path, |w| self.write_to(w)).map_err(|e| GgufError::io(path, e))
    }
}
