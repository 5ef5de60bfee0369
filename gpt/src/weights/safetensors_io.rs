//! Reading and writing tensors in the safetensors format.
//!
//! A safetensors file is an 8-byte little-endian header length, a JSON
//! header mapping each tensor's name to its dtype, shape and byte range, and
//! then the raw little-endian bytes. Reading memory-maps the file (the OS
//! pages it in; nothing is read twice), lets the `safetensors` crate check
//! the header against the file size (so a truncated file is caught before
//! any tensor is touched), and converts each requested tensor into ours.
//! Writing goes to a temporary name in the same folder and is renamed over
//! the target only when complete, so a crash never leaves half a file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use tensor::{DType, Tensor};

use super::error::WeightsError;
use crate::atomic::temp_path;

/// An opened, validated safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

impl SafetensorsFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WeightsError> {
        let path = path.as_ref().to_path_buf();
        // A pipe or device cannot be mapped, and opening a pipe with no
        // writer waits forever: only regular files are weights.
        let meta = std::fs::metadata(&path).map_err(|e| WeightsError::io(&path, e))?;
        if !meta.is_file() {
            let reason = if meta.is_dir() { "is a folder, not a file" } else { "is not a regular file" };
            return Err(WeightsError::io(&path, std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)));
        }
        let file = File::open(&path).map_err(|e| WeightsError::io(&path, e))?;
        // SAFETY: the map is read-only and lives as long as this struct; a
        // file changed underneath by another process could show torn bytes,
        // which the format checks below and the shape checks above catch as
        // well as they can (the same caveat every mmap loader carries).
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| WeightsError::io(&path, e))?;
        SafeTensors::deserialize(&mmap)
            .map_err(|e| WeightsError::Format { path: path.clone(), reason: e.to_string() })?;
        Ok(SafetensorsFile { path, mmap })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parsed(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.mmap).expect("validated in open")
    }

    pub fn names(&self) -> Vec<String> {
        self.parsed().names().into_iter().map(str::to_string).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.parsed().tensor(name).is_ok()
    }

    /// The file's `__metadata__` map.
    pub fn metadata(&self) -> HashMap<String, String> {
        SafeTensors::read_metadata(&self.mmap).ok().and_then(|(_, m)| m.metadata().clone()).unwrap_or_default()
    }

    /// Shape of a tensor without converting it.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>, WeightsError> {
        let st = self.parsed();
        let view = st.tensor(name).map_err(|_| self.missing(name))?;
        Ok(view.shape().to_vec())
    }

    /// A tensor, converted to our dtype of the same kind.
    pub fn tensor(&self, name: &str) -> Result<Tensor, WeightsError> {
        let st = self.parsed();
        let view = st.tensor(name).map_err(|_| self.missing(name))?;
        let tensor = view_to_tensor(&view).ok_or_else(|| WeightsError::DType {
            path: self.path.clone(),
            name: name.into(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        self.release(view.data());
        Ok(tensor)
    }

    /// Drops the mapped pages of `bytes`, a tensor already copied out, from
    /// this process's resident memory. A loader that reads every tensor
    /// once then peaks at the weights it built plus one tensor, not plus the
    /// whole file; the pages stay in the OS's file cache, and reading the
    /// tensor again faults them back in from there.
    fn release(&self, bytes: &[u8]) {
        #[cfg(unix)]
        {
            let offset = bytes.as_ptr() as usize - self.mmap.as_ptr() as usize;
            // SAFETY: the map is read-only and backed by the file, so
            // MADV_DONTNEED loses nothing: later reads see the file's bytes,
            // which `open`'s caveat already assumes nobody changes.
            let _ =
                unsafe { self.mmap.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, bytes.len()) };
        }
        #[cfg(not(unix))]
        let _ = bytes;
    }

    /// A tensor whose shape must be `expected`.
    pub fn tensor_shaped(&self, name: &str, expected: &[usize]) -> Result<Tensor, WeightsError> {
        let shape = self.shape(name)?;
        if shape != expected {
            return Err(WeightsError::Shape {
                path: self.path.clone(),
                name: name.into(),
                expected: expected.to_vec(),
                actual: shape,
            });
        }
        self.tensor(name)
    }

    /// A tensor's stored dtype, shape and bytes, without converting it (for
    /// formats our `Tensor` has no dtype for, such as packed int4).
    pub fn raw(&self, name: &str) -> Result<RawView<'_>, WeightsError> {
        let view = SafeTensors::deserialize(&self.mmap)
            .expect("validated in open")
            .tensor(name)
            .map_err(|_| self.missing(name))?;
        Ok(RawView { dtype: view.dtype(), shape: view.shape().to_vec(), data: view.data() })
    }

    fn missing(&self, name: &str) -> WeightsError {
        WeightsError::Missing { path: self.path.clone(), name: name.into() }
    }
}

/// One tensor of an open file, as stored.
pub struct RawView<'a> {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

fn view_to_tensor(view: &TensorView<'_>) -> Option<Tensor> {
    let bytes = view.data();
    let shape = view.shape().to_vec();
    macro_rules! read {
        ($t:ty, $n:expr, $conv:expr) => {{
            let values: Vec<$t> = bytes.chunks_exact($n).map(|c| $conv(c.try_into().unwrap())).collect();
            Tensor::from_vec(values, shape).ok()
        }};
    }
    match view.dtype() {
        Dtype::F32 => read!(f32, 4, f32::from_le_bytes),
        Dtype::F64 => read!(f64, 8, f64::from_le_bytes),
        Dtype::F16 => read!(f16, 2, f16::from_le_bytes),
        Dtype::BF16 => read!(bf16, 2, bf16::from_le_bytes),
        Dtype::I64 => read!(i64, 8, i64::from_le_bytes),
        Dtype::I8 => read!(i8, 1, i8::from_le_bytes),
        // Some exporters store ids as int32; widen to our int64.
        Dtype::I32 => read!(i64, 4, |c: [u8; 4]| i32::from_le_bytes(c) as i64),
        _ => None,
    }
}

/// A tensor as raw little-endian bytes with its safetensors dtype: how
/// formats with no `Tensor` dtype (packed int4 bytes, say) are written.
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl safetensors::View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn tensor_bytes(t: &Tensor) -> RawTensor {
    let (dtype, data): (Dtype, Vec<u8>) = match t.dtype() {
        DType::F32 => (Dtype::F32, t.contiguous_data::<f32>().iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (Dtype::F64, t.contiguous_data::<f64>().iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F16 => (Dtype::F16, t.contiguous_data::<f16>().iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::BF16 => (Dtype::BF16, t.contiguous_data::<bf16>().iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I64 => (Dtype::I64, t.contiguous_data::<i64>().iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I8 => (Dtype::I8, t.contiguous_data::<i8>().iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    RawTensor { dtype, shape: t.dims().to_vec(), data }
}

/// Writes `tensors` to `path` atomically (temporary file, then rename).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Tensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), WeightsError> {
    let bytes: Vec<(String, RawTensor)> = tensors.iter().map(|(n, t)| (n.clone(), tensor_bytes(t))).collect();
    save_raw_safetensors(path, &bytes, metadata)
}

/// Writes raw tensors to `path` atomically (temporary file, flushed to
/// disk, then renamed), with the permissions any new file of the user's
/// gets (the safetensors crate's own temporary file is private, 0600).
pub fn save_raw_safetensors(
    path: impl AsRef<Path>,
    bytes: &[(String, RawTensor)],
    metadata: Option<HashMap<String, String>>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let tmp = temp_path(path);
    let written = (|| {
        // A file made the ordinary way carries the umask's permissions.
        let permissions = std::fs::File::create(&tmp)?.metadata()?.permissions();
        safetensors::serialize_to_file(bytes.iter().map(|(n, b)| (n.as_str(), b)), metadata, &tmp).map_err(
            |e| match e {
                safetensors::SafeTensorError::IoError(io) => io,
                other => std::io::Error::other(format!("cannot write a safetensors file: {other}")),
            },
        )?;
        std::fs::set_permissions(&tmp, permissions)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(WeightsError::io(path, e));
    }
    Ok(())
}
