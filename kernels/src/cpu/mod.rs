//! CPU kernels: GEMM, attention, row-wise fused kernels, quantized
//! products and deterministic reductions.
//!
//! Where a kernel is fast, its file opens with a `*_reference` function:
//! the plain definition in f64 that the kernel is tested against. The
//! vector code is picked at run time by [`isa`]; row reductions keep 16
//! SIMD partial sums ([`lanes`]), matrix-vector dot products 32 in one fixed
//! order ([`dot_order`]).

pub mod adamw;
pub mod attention;
pub mod awake;
pub mod cross_entropy;
pub mod dot_order;
pub mod embedding;
pub mod gelu;
pub mod gemm;
pub mod gemv;
pub mod isa;
pub mod lanes;
pub mod math;
pub mod moe_route;
pub mod peak;
pub mod quant;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod rows;
pub mod sgemm;
#[cfg(target_arch = "x86_64")]
pub mod sgemm_row;
pub mod swiglu;

/// Rows per rayon task for row-wise kernels: enough work per task that the
/// scheduling overhead vanishes, small enough to balance across cores.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (16_384 / row_len.max(1)).max(1)
}

/// A pointer that may cross threads, for kernels whose tasks each write a
/// disjoint region of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: used only to hand disjoint regions of one buffer to rayon tasks.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; no two tasks dereference the same element.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer. A closure calling this captures the whole `SendPtr`
    /// (which may cross threads), where naming the field `.0` would capture
    /// the bare pointer (which may not).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
