//! What can go wrong on the GPU, as values rather than panics.
//!
//! cudarc reports driver, NVRTC and cuBLAS failures as three error types
//! and *panics* when a library cannot be loaded at all. Everything in this
//! module turns both into one [`CudaError`], whose message is meant for a
//! person: the first line of `scratchgpt train --device cuda` on a machine
//! without a GPU is `no CUDA device: libcuda.so.1 not found`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// No usable GPU: the driver library is missing, it found no device,
    /// or the ordinal is out of range.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A CUDA library other than the driver could not be loaded.
    #[error("{library} not found: {hint}")]
    MissingLibrary { library: &'static str, hint: &'static str },
    /// A call into the driver failed (out of memory, a bad launch, ...).
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// NVRTC rejected a kernel source; `log` is the compiler's own output.
    #[error("NVRTC could not compile {source_name} for {arch}: {message}\n{log}")]
    Compile { source_name: &'static str, arch: String, message: String, log: String },
    /// cuBLAS failed.
    #[error("cuBLAS: {0}")]
    Blas(String),
    /// NCCL failed (making the communicator, or a collective).
    #[error("NCCL: {0}")]
    Nccl(String),
    /// A request this backend does not support (a dtype, a rank, a size).
    #[error("{0}")]
    Unsupported(String),
}

impl CudaError {
    pub(crate) fn driver(e: impl fmt::Debug) -> CudaError {
        CudaError::Driver(format!("{e:?}"))
    }
    pub(crate) fn blas(e: impl fmt::Debug) -> CudaError {
        CudaError::Blas(format!("{e:?}"))
    }
}

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::driver(e)
    }
}

impl From<cudarc::cublas::result::CublasError> for CudaError {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        CudaError::blas(e)
    }
}

pub type Result<T> = std::result::Result<T, CudaError>;
