//! Errors for input a caller could get wrong at run time (data of the wrong
//! length, an unavailable device). Shape mismatches between operands are
//! programming errors and panic instead, naming the op and both shapes.

use crate::{DType, Device, Shape};

#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    #[error("data has {len} elements but shape {shape} needs {numel}")]
    LengthMismatch { len: usize, shape: Shape, numel: usize },
    #[error("nested data is ragged: {0}")]
    Ragged(String),
    #[error("expected dtype {expected}, tensor has {actual}")]
    DTypeMismatch { expected: DType, actual: DType },
    #[error("device {0} is not available: {1}")]
    DeviceUnavailable(Device, String),
    /// The CUDA backend's own message, e.g. "no CUDA device: libcuda.so.1 not found".
    #[error("{0}")]
    Cuda(String),
}

pub type Result<T> = std::result::Result<T, TensorError>;
