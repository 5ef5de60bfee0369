//! The CUDA backend: kernels on raw device buffers, launched through cudarc.
//!
//! This mirrors `cpu/`: functions here take device buffers
//! (`CudaSlice<T>`) plus the numbers that describe them and queue work on
//! a GPU; the `tensor` crate turns shapes and layouts into these calls.
//!
//! - [`device`]: one [`CudaDevice`] per GPU (context, stream, cuBLAS,
//!   compiled kernels), created on first use. Asking for a device on a
//!   machine without one is an error, never a crash ([`libraries`]).
//! - [`compile`] and [`sources`]: the `.cu` files in this folder, compiled
//!   by NVRTC for the GPU's architecture the first time they are needed
//!   (and kept on disk for the next run, [`cache`]).
//! - [`launch`] and [`layout`]: grid sizes and strided layouts, as pure
//!   functions tested on the CPU.
//! - One file per kernel family, each the Rust side of a `.cu` file:
//!   copies and casts, elementwise ops, reductions, softmax, layer norm,
//!   RMSNorm, rotary embedding, SwiGLU,
//!   cross-entropy, indexing, AdamW, attention (cuBLAS + masked softmax,
//!   and a fused flash-style version), mixture-of-experts routing, and GEMM ([`blas`] through cuBLAS,
//!   [`gemm_tiled`] by hand).
//! - [`nccl`]: summing a device buffer across the processes of a
//!   data-parallel run, one GPU each.
//!
//! The code is always compiled (cudarc loads the CUDA libraries at run
//! time), so a build never needs the CUDA toolkit.

/// Launches `$name` from `$source` on `$dev`'s stream with the listed
/// arguments. Every argument must be a reference to a value that outlives
/// the launch call (cudarc stores raw pointers to them until it launches),
/// so scalars are bound to local variables first, never written inline.
macro_rules! launch_kernel {
    ($dev:expr, $source:expr, $name:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let function = $dev.function(&$source, &$name)?;
        let mut builder = $dev.stream().launch_builder(&function);
        $( cudarc::driver::PushKernelArg::arg(&mut builder, $arg); )*
        // SAFETY: the caller lists the kernel's parameters in order with
        // matching types, and has checked that every index the kernel
        // computes from them stays inside the buffers it passes.
        unsafe { builder.launch($cfg) }.map(|_| ()).map_err($crate::cuda::error::CudaError::from)
    }};
}

pub mod adamw;
pub mod attention;
pub mod blas;
pub mod cache;
pub mod cast;
pub mod compile;
pub mod copy;
pub mod cross_entropy;
pub mod device;
pub mod dtype;
pub mod elementwise;
pub mod error;
pub mod flash_attention;
pub mod gemm_tiled;
pub mod index;
pub mod launch;
pub mod layer_norm;
pub mod layout;
pub mod libraries;
pub mod moe_route;
pub mod nccl;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod sources;
pub mod swiglu;

pub use device::{device_count, CudaDevice};
pub use dtype::{CudaFloat, DeviceElement};
pub use error::{CudaError, Result};
pub use layout::DeviceLayout;

/// cudarc itself, for the buffer types (`CudaSlice`) the tensor crate
/// stores.
pub use cudarc;
