//! Kernels: compute on raw buffers, with no notion of a tensor.
//!
//! Everything here takes slices plus the numbers that describe them
//! (rows, columns, strides) and writes results into slices the caller owns.
//! The `tensor` crate above turns shapes and layouts into these calls; keeping
//! the arithmetic here means each kernel can be read, tested and optimised on
//! its own.
//!
//! - [`cpu::gemm`]: matrix multiply on strided operands (so transposes are
//!   free), split across rayon threads, with our packed AVX-512 kernel
//!   ([`cpu::sgemm`]), a matrix-vector kernel for one row ([`cpu::gemv`]) or
//!   `matrixmultiply` underneath.
//! - [`cpu::attention`], [`cpu::rows`], [`cpu::cross_entropy`]: fused
//!   causal attention and row-wise kernels (softmax, log-softmax, layer
//!   norm, cross-entropy), parallel over heads or rows.
//! - [`cpu::quant`]: products against weights stored in 16, 8 or 4 bits.
//! - [`cpu::reduce`]: sums with a fixed chunking so that results never depend
//!   on how threads were scheduled.
//! - [`cuda`]: the same families on NVIDIA GPUs, as `.cu` sources compiled
//!   at run time by NVRTC and launched through cudarc, with GEMMs in
//!   cuBLAS. Always compiled; without a GPU it reports an error.
//!
//! The CPU's GEMM, attention, softmax, layer norm, cross-entropy and GELU
//! kernels each open their file with a plain reference (explicit loops, the
//! book's math, in f64) that they are tested against: read the reference
//! first, then what the fast one changes and why.

pub mod cpu;
pub mod cuda;
