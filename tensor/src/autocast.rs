//! Autocast: matrix products in half precision, everything else as is.
//!
//! Mixed-precision training keeps the parameters, their gradients and the
//! optimizer's moments in f32 ("master weights"), and runs only the matrix
//! products, which are nearly all of a transformer's arithmetic, on bf16
//! (or f16) inputs: tensor cores multiply those several times faster, and
//! each product still accumulates in f32 and returns an f32 result. With
//! autocast set to bf16, every f32 `matmul` and `linear` on a CUDA device
//! rounds its two operands to bf16 on the way in; layer norm, softmax,
//! GELU, the loss and the optimizer stay f32. The backward products go
//! through the same `matmul`, so they are autocast too.
//!
//! It is one process-wide setting (like `torch.autocast` around a training
//! loop); CPU tensors ignore it.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::dtype::DType;

static AUTOCAST: AtomicU8 = AtomicU8::new(0);

/// Sets the half type CUDA matrix products use for f32 tensors (`None`:
/// full f32). Only F16 and BF16 are accepted.
pub fn set_autocast(dtype: Option<DType>) {
    let code = match dtype {
        None => 0,
        Some(DType::BF16) => 1,
        Some(DType::F16) => 2,
        Some(other) => panic!("autocast: {other} is not a half-precision type (use BF16 or F16)"),
    };
    AUTOCAST.store(code, Ordering::Relaxed);
}

/// The current autocast type.
pub fn autocast() -> Option<DType> {
    match AUTOCAST.load(Ordering::Relaxed) {
        1 => Some(DType::BF16),
        2 => Some(DType::F16),
        _ => None,
    }
}

/// Runs `f` with autocast set to `dtype`, restoring the previous setting.
pub fn with_autocast<R>(dtype: Option<DType>, f: impl FnOnce() -> R) -> R {
    let before = autocast();
    set_autocast(dtype);
    struct Restore(Option<DType>);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_autocast(self.0);
        }
    }
    let _restore = Restore(before);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_scoped() {
        assert_eq!(autocast(), None);
        let inside = with_autocast(Some(DType::BF16), autocast);
        assert_eq!(inside, Some(DType::BF16));
        assert_eq!(autocast(), None);
    }
}
