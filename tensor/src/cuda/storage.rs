//! Device storage: a tensor's buffer in GPU memory.
//!
//! [`CudaStorage`] is the GPU twin of `CpuStorage`: one typed buffer
//! (`CudaSlice<T>` from cudarc) plus the device it lives on. It holds the
//! dtypes kernels exist for: f32 (compute), f16 and bf16 (half precision),
//! i64 (token ids) and i8 (masks). f64 stays on the CPU, where gradient
//! checks need it.
//!
//! Buffers are freed when the last tensor using them is dropped (cudarc
//! frees in stream order into the device's memory pool, so the next
//! allocation of the same size is cheap). Copies to and from the host are
//! plain synchronous transfers: reading a value back waits for the work
//! queued before it, which is the only point where the host waits.

use std::sync::Arc;

use half::{bf16, f16};
use kernels::cuda::cudarc::driver::CudaSlice;
use kernels::cuda::{CudaDevice, DeviceElement};

use crate::dtype::DType;
use crate::storage::CpuStorage;
use crate::Device;

/// A typed device buffer.
pub enum CudaData {
    F32(CudaSlice<f32>),
    F16(CudaSlice<f16>),
    BF16(CudaSlice<bf16>),
    I64(CudaSlice<i64>),
    I8(CudaSlice<i8>),
}

pub struct CudaStorage {
    pub(crate) device: Arc<CudaDevice>,
    /// Elements in use (buffers hold at least one element, even when empty).
    pub(crate) len: usize,
    pub(crate) data: CudaData,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStorage({} × {} on {})", self.len, self.dtype(), self.device())
    }
}

impl Clone for CudaStorage {
    /// A device-to-device copy (copy-on-write of a shared buffer).
    fn clone(&self) -> Self {
        let data = match &self.data {
            CudaData::F32(s) => CudaData::F32(device_copy(&self.device, s)),
            CudaData::F16(s) => CudaData::F16(device_copy(&self.device, s)),
            CudaData::BF16(s) => CudaData::BF16(device_copy(&self.device, s)),
            CudaData::I64(s) => CudaData::I64(device_copy(&self.device, s)),
            CudaData::I8(s) => CudaData::I8(device_copy(&self.device, s)),
        };
        CudaStorage { device: self.device.clone(), len: self.len, data }
    }
}

fn device_copy<T: DeviceElement>(dev: &CudaDevice, s: &CudaSlice<T>) -> CudaSlice<T> {
    dev.stream().clone_dtod(s).unwrap_or_else(|e| panic!("copying a buffer on {dev:?}: {e:?}"))
}

/// Which Rust type a device buffer of a dtype holds.
pub trait CudaElement: crate::dtype::Element + DeviceElement {
    fn wrap(s: CudaSlice<Self>) -> CudaData;
    fn unwrap(d: &CudaData) -> Option<&CudaSlice<Self>>;
    fn unwrap_mut(d: &mut CudaData) -> Option<&mut CudaSlice<Self>>;
}

macro_rules! cuda_element {
    ($t:ty, $variant:ident) => {
        impl CudaElement for $t {
            fn wrap(s: CudaSlice<Self>) -> CudaData {
                CudaData::$variant(s)
            }
            fn unwrap(d: &CudaData) -> Option<&CudaSlice<Self>> {
                match d {
                    CudaData::$variant(s) => Some(s),
                    _ => None,
                }
            }
            fn unwrap_mut(d: &mut CudaData) -> Option<&mut CudaSlice<Self>> {
                match d {
                    CudaData::$variant(s) => Some(s),
                    _ => None,
                }
            }
        }
    };
}

cuda_element!(f32, F32);
cuda_element!(f16, F16);
cuda_element!(bf16, BF16);
cuda_element!(i64, I64);
cuda_element!(i8, I8);

impl CudaStorage {
    pub fn new<T: CudaElement>(device: Arc<CudaDevice>, len: usize, slice: CudaSlice<T>) -> CudaStorage {
        CudaStorage { device, len, data: T::wrap(slice) }
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            CudaData::F32(_) => DType::F32,
            CudaData::F16(_) => DType::F16,
            CudaData::BF16(_) => DType::BF16,
            CudaData::I64(_) => DType::I64,
            CudaData::I8(_) => DType::I8,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn device(&self) -> Device {
        Device::Cuda(self.device.ordinal())
    }

    pub fn cuda_device(&self) -> &Arc<CudaDevice> {
        &self.device
    }

    /// The typed buffer; panics with both dtypes when `T` is not the dtype.
    pub fn slice<T: CudaElement>(&self) -> &CudaSlice<T> {
        T::unwrap(&self.data)
            .unwrap_or_else(|| panic!("device buffer holds {} but {} was asked for", self.dtype(), T::DTYPE))
    }

    pub fn slice_mut<T: CudaElement>(&mut self) -> &mut CudaSlice<T> {
        let dtype = self.dtype();
        T::unwrap_mut(&mut self.data)
            .unwrap_or_else(|| panic!("device buffer holds {dtype} but {} was asked for", T::DTYPE))
    }

    /// Copies a host buffer to `device`. f64 has no device storage.
    pub fn from_host(device: Arc<CudaDevice>, host: &CpuStorage) -> kernels::cuda::Result<CudaStorage> {
        fn up<T: CudaElement>(dev: Arc<CudaDevice>, v: &[T]) -> kernels::cuda::Result<CudaStorage> {
            let slice = dev.upload(v)?;
            Ok(CudaStorage::new(dev, v.len(), slice))
        }
        match host {
            CpuStorage::F32(v) => up(device, v),
            CpuStorage::F16(v) => up(device, v),
            CpuStorage::BF16(v) => up(device, v),
            CpuStorage::I64(v) => up(device, v),
            CpuStorage::I8(v) => up(device, v),
            CpuStorage::F64(_) => Err(kernels::cuda::CudaError::Unsupported(
                "float64 tensors stay on the CPU (CUDA tensors hold float32, float16, bfloat16, int64 or int8); \
                 convert with .to_dtype(DType::F32) first"
                    .into(),
            )),
        }
    }

    /// The whole buffer, copied to the host.
    pub fn to_host(&self) -> kernels::cuda::Result<CpuStorage> {
        let d = &self.device;
        Ok(match &self.data {
            CudaData::F32(s) => CpuStorage::F32(d.download(s, self.len)?),
            CudaData::F16(s) => CpuStorage::F16(d.download(s, self.len)?),
            CudaData::BF16(s) => CpuStorage::BF16(d.download(s, self.len)?),
            CudaData::I64(s) => CpuStorage::I64(d.download(s, self.len)?),
            CudaData::I8(s) => CpuStorage::I8(d.download(s, self.len)?),
        })
    }
}
