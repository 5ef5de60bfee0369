//! Which SIMD instruction sets this CPU has, asked once.
//!
//! The same source runs on any x86-64 CPU (and others), so the vector
//! kernels are compiled for several instruction sets side by side, each
//! behind `#[target_feature]`, and the widest one the CPU supports is chosen
//! at run time. Every kernel keeps one summation order on all of them
//! (`dot_order.rs`), so the choice changes the speed, never the bits.

use std::sync::OnceLock;

/// The instruction sets the vector kernels have a version for, narrowest
/// first: 8-float (AVX2 with FMA) and 16-float (AVX-512F) registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    Avx512,
}

impl Isa {
    /// The widest instruction set this CPU supports (asked once).
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| *Isa::available().last().expect("scalar is always available"))
    }

    /// Every instruction set this CPU can run, narrowest first (tests run
    /// each one and compare them).
    pub fn available() -> Vec<Isa> {
        let mut out = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            out.push(Isa::Avx2);
            if is_x86_feature_detected!("avx512f") {
                out.push(Isa::Avx512);
            }
        }
        out
    }
}

/// Whether the CPU converts f16 in hardware (F16C). Every CPU with AVX2
/// has it, but it is a separate flag, so the f16 and int4 kernels check.
pub fn has_f16c() -> bool {
    static F16C: OnceLock<bool> = OnceLock::new();
    *F16C.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("f16c");
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}
