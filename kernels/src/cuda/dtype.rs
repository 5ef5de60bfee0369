//! Which Rust types live in device buffers, and their kernel suffixes.
//!
//! Kernels are C++ templates instantiated once per dtype under names like
//! `unary_bf16`; [`DeviceElement::NAME`] is that suffix, so a generic Rust
//! wrapper finds the right instantiation. f16 and bf16 are the `half`
//! crate's types (cudarc's `f16` feature makes them device-copyable); on
//! the GPU they are 16-bit structs that kernels widen to f32 to compute.

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use half::{bf16, f16};

/// A type a device buffer can hold.
pub trait DeviceElement: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    /// The kernel-name suffix: f32, f16, bf16, i64, i8 (or f64, used only
    /// for reduction partials).
    const NAME: &'static str;
    /// Bytes per element, which picks the dtype-blind copy kernel.
    const WIDTH: usize = std::mem::size_of::<Self>();
}

/// A floating-point type kernels compute with (in f32).
pub trait CudaFloat: DeviceElement {}

macro_rules! element {
    ($t:ty, $name:literal) => {
        impl DeviceElement for $t {
            const NAME: &'static str = $name;
        }
    };
}

element!(f32, "f32");
element!(f16, "f16");
element!(bf16, "bf16");
element!(i64, "i64");
element!(i8, "i8");
element!(f64, "f64");

impl CudaFloat for f32 {}
impl CudaFloat for f16 {}
impl CudaFloat for bf16 {}

/// The copy-kernel suffix for an element width in bytes.
pub fn width_name(width: usize) -> &'static str {
    match width {
        1 => "b8",
        2 => "b16",
        4 => "b32",
        8 => "b64",
        w => panic!("no copy kernel for {w}-byte elements"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_widths() {
        assert_eq!((<bf16 as DeviceElement>::NAME, <bf16 as DeviceElement>::WIDTH), ("bf16", 2));
        assert_eq!(width_name(<i64 as DeviceElement>::WIDTH), "b64");
        assert_eq!(width_name(<i8 as DeviceElement>::WIDTH), "b8");
    }
}
