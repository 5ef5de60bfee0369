//! Element types.
//!
//! A tensor's bytes mean nothing without a dtype. `F32` is the compute type,
//! `F64` is for gradient checks (finite differences need the extra digits),
//! `F16`/`BF16` halve the memory of weights, `I64` holds token ids and `I8`
//! holds quantised weights and boolean masks (0 or 1). As in PyTorch, integer
//! literals become `I64` and float literals `F32`.

use half::{bf16, f16};

use crate::storage::CpuStorage;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I8,
}

impl DType {
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::I8 => 1,
        }
    }

    /// PyTorch's name for it, used by `Display` and error messages.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I8 => "int8",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can live in a tensor.
pub trait Element: Copy + Send + Sync + PartialOrd + std::fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    /// Converts with Rust's `as` semantics (integers truncate and saturate).
    fn from_f64(v: f64) -> Self;
    const ZERO: Self;
    const ONE: Self;
    fn into_storage(data: Vec<Self>) -> CpuStorage;
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    fn vec_mut(storage: &mut CpuStorage) -> Option<&mut Vec<Self>>;
}

macro_rules! element {
    ($t:ty, $variant:ident, $to:expr, $from:expr, $zero:expr, $one:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                $to(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            const ZERO: Self = $zero;
            const ONE: Self = $one;
            fn into_storage(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn vec_mut(storage: &mut CpuStorage) -> Option<&mut Vec<Self>> {
                match storage {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32, 0.0, 1.0);
element!(f64, F64, |x: f64| x, |v: f64| v, 0.0, 1.0);
element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64, f16::ZERO, f16::ONE);
element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64, bf16::ZERO, bf16::ONE);
element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64, 0, 1);
element!(i8, I8, |x: i8| x as f64, |v: f64| v as i8, 0, 1);

/// The float types the CPU computes in. Half types are stored, and converted
/// to f32 for arithmetic on the CPU.
pub trait FloatElement:
    Element + num_traits::Float + kernels::cpu::gemm::GemmElement + kernels::cpu::math::FastExp
{
}
impl FloatElement for f32 {}
impl FloatElement for f64 {}

/// Runs `$body` with `$T` bound to the Rust type of a float dtype (F32/F64).
#[macro_export]
#[doc(hidden)]
macro_rules! with_float_type {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            other => panic!("{}: needs a float32 or float64 tensor, got {}", $op, other),
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of any dtype.
#[macro_export]
#[doc(hidden)]
macro_rules! with_type {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                type $T = f64;
                $body
            }
            $crate::DType::F16 => {
                type $T = half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            $crate::DType::I64 => {
                type $T = i64;
                $body
            }
            $crate::DType::I8 => {
                type $T = i8;
                $body
            }
        }
    };
}
