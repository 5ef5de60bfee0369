//! Storage: the flat buffer a tensor's layout indexes into.
//!
//! Several tensors can share one storage (`Arc`): a transpose or a slice is
//! the same buffer read with different strides. Storage is immutable while
//! shared; an in-place update copies first if anyone else still holds it
//! (copy-on-write), so a value saved for a backward pass never changes under
//! it.

use half::{bf16, f16};

use crate::dtype::DType;

/// A host buffer of one dtype.
#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    I8(Vec<i8>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::I8(_) => DType::I8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::I8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for CpuStorage {
    /// Large float buffers go back to the pool for the next op to reuse.
    fn drop(&mut self) {
        match self {
            CpuStorage::F32(v) => crate::pool::give(std::mem::take(v)),
            CpuStorage::F64(v) => crate::pool::give(std::mem::take(v)),
            _ => {}
        }
    }
}

/// Where a tensor's buffer lives: host memory, or a GPU's (`cuda/storage.rs`).
#[derive(Clone, Debug)]
pub enum Storage {
    Cpu(CpuStorage),
    Cuda(crate::cuda::CudaStorage),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
            Storage::Cuda(s) => s.dtype(),
        }
    }

    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            Storage::Cuda(s) => on_gpu(s),
        }
    }

    pub fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(s) => s,
            Storage::Cuda(s) => on_gpu(s),
        }
    }
}

/// A CPU code path reached a GPU buffer: name the device and the way out.
fn on_gpu(s: &crate::cuda::CudaStorage) -> ! {
    panic!(
        "this operation reads host memory, but the tensor is on {}; copy it with .to_device(Device::Cpu)",
        s.device()
    )
}
