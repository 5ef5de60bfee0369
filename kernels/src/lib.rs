//! Kernels: compute on raw buffers, with no notion of a tensor.
//!
//! Everything here takes slices plus the numbers that describe them
//! (rows, columns, strides) and writes results into slices the caller owns.
//! The `tensor` crate above turns shapes and layouts into these calls; keeping
//! the arithmetic here means each kernel can be read, tested and optimised on
//! its own.
//!
//! - [`cpu::gemm`]: matrix multiply through `matrixmultiply`, with strided
//!   operands (so transposes are free) and batches split across rayon threads.
//! - [`cpu::rows`]: fused row-wise kernels (softmax, log-softmax, layer norm),
//!   parallel over rows.
//! - [`cpu::reduce`]: sums with a fixed chunking so that results never depend
//!   on how threads were scheduled.
//! - [`cuda`]: the same families on NVIDIA GPUs, as `.cu` sources compiled
//!   at run time by NVRTC and launched through cudarc, with GEMMs in
//!   cuBLAS. Always compiled; without a GPU it reports an error.

pub mod cpu;
pub mod cuda;
