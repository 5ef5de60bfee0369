//! Tensors on NVIDIA GPUs.
//!
//! A tensor whose storage is [`CudaStorage`] lives in GPU memory. Its ops
//! come here through the backend boundary (`backend.rs`): `ops/` checks the
//! arguments and [`Cuda`] expresses each op as launches of the kernels in
//! `kernels::cuda`, one file per op family, beside the CPU's in `cpu/`.
//! Layouts work exactly as on the CPU: views share the device buffer, and
//! kernels read strided and broadcast views directly (a `DeviceLayout`
//! travels with each launch).
//!
//! Three conventions keep model code device-agnostic:
//! - an op's output lives on its inputs' device;
//! - a CPU operand next to a CUDA one is copied to the GPU first (index
//!   tensors and targets made on the host, a scalar from `Tensor::full`,
//!   a dropout mask drawn by the CPU generator), so the model, the loss and
//!   generation run unchanged once the parameters are on the GPU;
//! - reading values (`to_vec`, `item`, `Display`) copies them back to the
//!   host, which waits for the GPU to finish the work queued before.
//!
//! A failure inside an op (out of memory, a kernel that cannot launch)
//! panics with the driver's message, as a shape mismatch does; asking for
//! a device that does not exist is an error ([`device`]).

mod attention;
mod cast;
pub mod collective;
mod cross_entropy;
mod elementwise;
mod index;
mod matmul;
mod moe_route;
mod optim;
mod reduce;
mod rms_norm;
mod rope;
mod rows;
mod shape;
mod storage;
mod swiglu;

use std::sync::Arc;

use kernels::cuda::cudarc::driver::CudaSlice;
use kernels::cuda::{CudaDevice, DeviceLayout};

use crate::backend::Backend;
use crate::dtype::DType;
use crate::error::{Result, TensorError};
use crate::layout::Layout;
use crate::ops::binary::{BinaryOp, CmpOp};
use crate::ops::cross_entropy::CrossEntropyOutput;
use crate::ops::moe_route::ExpertRouting;
use crate::ops::optim::{AdamWSettings, AdamWSlot};
use crate::ops::reduce::ReduceOp;
use crate::ops::rms_norm::{RmsNormGrads, RmsNormOutput};
use crate::ops::rows::{LayerNormGrads, LayerNormOutput};
use crate::ops::unary::{ScalarOp, UnaryOp};
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;
use crate::Device;

// What `ops/attention.rs` calls for CUDA operands (attention matches its
// routes itself: cuBLAS or flash; every other op comes through `Cuda` below).
pub(crate) use attention::{
    attention, attention_backward, flash_attention, flash_attention_backward, flash_compiled_for,
};
pub(crate) use kernels::cuda::blas::{set_tf32, tf32_enabled};
pub use kernels::cuda::device::set_poison_outputs;
pub use storage::{CudaData, CudaElement, CudaStorage};

/// The CUDA backend: each op of [`Backend`] as launches of the kernels in
/// `kernels::cuda`, in the file named for its family.
pub(crate) struct Cuda;

impl Backend for Cuda {
    fn full(&self, shape: Shape, value: f64, dtype: DType, device: Device) -> Tensor {
        shape::full(shape, value, dtype, device)
    }
    fn contiguous_copy(&self, t: &Tensor) -> Tensor {
        shape::contiguous_copy(t)
    }
    fn to_dtype(&self, t: &Tensor, dtype: DType) -> Tensor {
        cast::to_dtype(t, dtype)
    }
    fn cat(&self, tensors: &[Tensor], dim: usize, dims: Vec<usize>) -> Tensor {
        shape::cat(tensors, dim, dims)
    }
    fn triangle(&self, t: &Tensor, diagonal: isize, lower: bool) -> Tensor {
        shape::triangle(t, diagonal, lower)
    }
    fn write_window(&self, dst: &mut Tensor, dim: usize, start: usize, src: &Tensor) {
        shape::write_window(dst, dim, start, src)
    }

    fn unary(&self, x: &Tensor, op: UnaryOp) -> Tensor {
        elementwise::unary(x, op)
    }
    fn scalar(&self, x: &Tensor, op: ScalarOp, c: f64) -> Tensor {
        elementwise::scalar(x, op, c)
    }
    fn gelu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor {
        elementwise::gelu_backward(x, dy)
    }
    fn binary(&self, a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Tensor {
        elementwise::binary(a, b, op, shape)
    }
    fn compare(&self, a: &Tensor, b: &Tensor, op: CmpOp, shape: &[usize]) -> Tensor {
        elementwise::compare(a, b, op, shape)
    }
    fn where_cond(&self, mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Tensor {
        elementwise::where_cond(mask, a, b, shape)
    }
    fn add_in_place(&self, a: &mut Tensor, b: &Tensor) {
        elementwise::add_in_place(a, b)
    }

    fn reduce(&self, x: &Tensor, dim: usize, keepdim: bool, op: ReduceOp) -> Tensor {
        reduce::reduce(x, dim, keepdim, op)
    }
    fn sum_all(&self, x: &Tensor) -> Tensor {
        reduce::sum_all(x)
    }
    fn mean_all(&self, x: &Tensor) -> Tensor {
        reduce::mean_all(x)
    }
    fn sum_squares(&self, x: &Tensor) -> f64 {
        reduce::sum_squares(x)
    }

    fn softmax(&self, x: &Tensor, log: bool) -> Tensor {
        rows::softmax(x, log)
    }
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor, log: bool) -> Tensor {
        rows::softmax_backward(y, dy, log)
    }
    fn layer_norm(&self, x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
        rows::layer_norm(x, gamma, beta, eps)
    }
    fn layer_norm_backward(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
    ) -> LayerNormGrads {
        rows::layer_norm_backward(x, gamma, mean, rstd, dy)
    }
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, ignore: i64) -> CrossEntropyOutput {
        cross_entropy::cross_entropy(logits, targets, ignore)
    }
    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        ignore: i64,
        scale: f64,
    ) -> Tensor {
        cross_entropy::cross_entropy_backward(logits, targets, lse, ignore, scale)
    }

    fn rms_norm(&self, x: &Tensor, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput {
        rms_norm::rms_norm(x, weight, eps)
    }
    fn rms_norm_backward(&self, x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads {
        rms_norm::rms_norm_backward(x, weight, rstd, dy)
    }
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Tensor {
        rope::rope(x, cos, sin, inverse)
    }
    fn silu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor {
        swiglu::silu_backward(x, dy)
    }
    fn swiglu(&self, gate: &Tensor, up: &Tensor) -> Tensor {
        swiglu::swiglu(gate, up)
    }
    fn swiglu_backward(&self, gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
        swiglu::swiglu_backward(gate, up, dy)
    }

    fn index_select(&self, x: &Tensor, dim: usize, indices: &Tensor) -> Tensor {
        index::index_select(x, dim, indices)
    }
    fn index_add(&self, x: &Tensor, dim: usize, indices: &Tensor, src: &Tensor) -> Tensor {
        index::index_add(x, dim, indices, src)
    }
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> Tensor {
        index::gather(x, dim, index)
    }
    fn scatter_add(&self, x: &Tensor, dim: usize, index: &Tensor, src: &Tensor) -> Tensor {
        index::scatter_add(x, dim, index, src)
    }
    fn embedding_backward(&self, ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor {
        index::embedding_backward(ids, dy, vocab)
    }
    fn embedding_backward_add(&self, table: &mut Tensor, ids: &Tensor, dy: &Tensor) {
        index::embedding_backward_add(table, ids, dy)
    }

    fn route_top_k(&self, probs: &Tensor, k: usize) -> ExpertRouting {
        moe_route::route_top_k(probs, k)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Tensor {
        matmul::matmul(a, b)
    }
    fn linear(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        matmul::linear(x, weight, bias)
    }

    fn adamw_step(&self, slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings) {
        optim::adamw_step(slots, settings)
    }
}

/// The GPU behind `Device::Cuda(ordinal)`, created on first use: an error
/// (never a panic) when there is no driver, no GPU or no such ordinal.
pub fn device(ordinal: usize) -> Result<Arc<CudaDevice>> {
    CudaDevice::get(ordinal).map_err(TensorError::from)
}

/// Hands the device buffer of a dense f32 CUDA tensor to `f` for an
/// in-place update by a library outside this engine (NCCL's all-reduce of
/// a gradient bucket): exactly the tensor's elements, and their GPU. The
/// buffer is copied first if another tensor shares it (copy-on-write).
pub fn with_dense_f32_mut<R>(
    t: &mut Tensor,
    f: impl FnOnce(&Arc<CudaDevice>, &mut kernels::cuda::cudarc::driver::CudaViewMut<'_, f32>) -> R,
) -> Result<R> {
    if !matches!(t.device(), Device::Cuda(_)) {
        return Err(TensorError::Cuda(format!("a device buffer needs a CUDA tensor, got one on {}", t.device())));
    }
    if t.dtype() != DType::F32 {
        return Err(TensorError::DTypeMismatch { expected: DType::F32, actual: t.dtype() });
    }
    if !(t.is_contiguous() && t.layout().offset() == 0) {
        *t = shape::contiguous_copy(t);
    }
    let n = t.layout().numel();
    let storage = storage_mut(t);
    let device = storage.cuda_device().clone();
    let mut view = storage.slice_mut::<f32>().slice_mut(..n);
    Ok(f(&device, &mut view))
}

/// Number of GPUs (0 when there is no driver).
pub(crate) fn device_count() -> usize {
    kernels::cuda::device_count().unwrap_or(0)
}

/// Checks that `device` can be used, compiling every kernel now so that a
/// missing compiler shows up here rather than in the middle of a run.
pub(crate) fn ensure_available(device: Device) -> Result<()> {
    if let Device::Cuda(ordinal) = device {
        self::device(ordinal)?.load_all_kernels()?;
    }
    Ok(())
}

/// Unwraps a kernel result inside an op, where failure is a panic.
pub(crate) fn ok<T>(result: kernels::cuda::Result<T>, op: &str) -> T {
    result.unwrap_or_else(|e| panic!("{op} on CUDA: {e}"))
}

pub(crate) fn storage(t: &Tensor) -> &CudaStorage {
    match t.storage() {
        Storage::Cuda(s) => s,
        Storage::Cpu(_) => panic!("expected a CUDA tensor, got one on the CPU"),
    }
}

/// The device storage of `t` for an in-place update: copied first if any
/// other tensor shares it (copy-on-write, as `data_mut` on the CPU).
pub(crate) fn storage_mut(t: &mut Tensor) -> &mut CudaStorage {
    match Arc::make_mut(t.storage_arc_mut()) {
        Storage::Cuda(s) => s,
        Storage::Cpu(_) => panic!("expected a CUDA tensor, got one on the CPU"),
    }
}

/// The typed device buffer behind a CUDA tensor.
pub(crate) fn slice<T: CudaElement>(t: &Tensor) -> &CudaSlice<T> {
    storage(t).slice::<T>()
}

pub(crate) fn cuda_device(t: &Tensor) -> &Arc<CudaDevice> {
    storage(t).cuda_device()
}

/// A kernel layout for a view (panics past 8 unmergeable dimensions).
pub(crate) fn device_layout(layout: &Layout, op: &str) -> DeviceLayout {
    ok(DeviceLayout::new(layout.dims(), layout.strides(), layout.offset()), op)
}

/// A dense tensor over a fresh device buffer.
pub(crate) fn dense<T: CudaElement>(dev: &Arc<CudaDevice>, slice: CudaSlice<T>, shape: impl Into<Shape>) -> Tensor {
    let shape = shape.into();
    let n = shape.numel();
    Tensor::from_parts(
        Storage::Cuda(CudaStorage::new(dev.clone(), n, slice)),
        Layout::contiguous(shape),
        Device::Cuda(dev.ordinal()),
    )
}

/// `t` dense and starting at element 0 of its buffer, as the row kernels
/// read their inputs (a copy only when it is not already).
pub(crate) fn packed(t: &Tensor) -> Tensor {
    if t.is_contiguous() && t.layout().offset() == 0 {
        t.clone()
    } else {
        shape::contiguous_copy(t)
    }
}

/// `t` on the CUDA device `device`: itself if already there, a copy if on
/// the CPU. Two different GPUs in one op is a programming error.
pub(crate) fn bring(t: &Tensor, device: Device, op: &str) -> Tensor {
    if t.device() == device {
        return t.clone();
    }
    match (t.device(), device) {
        (Device::Cpu, Device::Cuda(_)) => t.to_device(device).unwrap_or_else(|e| panic!("{op}: {e}")),
        (from, to) => panic!("{op}: operands on {from} and {to}; move them to one device first"),
    }
}

/// The CUDA device among `tensors` (the first one found).
pub(crate) fn cuda_of(tensors: &[&Tensor]) -> Option<Device> {
    tensors.iter().map(|t| t.device()).find(|d| matches!(d, Device::Cuda(_)))
}

/// Copies a tensor to the CUDA device `ordinal`.
pub(crate) fn to_cuda(t: &Tensor, ordinal: usize) -> Result<Tensor> {
    if let Storage::Cuda(s) = t.storage() {
        if s.cuda_device().ordinal() == ordinal {
            return Ok(t.clone());
        }
        // GPU to GPU goes through the host: simple, and rare.
        return to_cuda(&to_cpu(t), ordinal);
    }
    let dev = device(ordinal)?;
    // Only the elements the view names travel (dense, row-major).
    let host = t.contiguous();
    let dense_host = if host.layout().offset() == 0 && host.storage().cpu().len() == host.numel() {
        host
    } else {
        host.contiguous_copy()
    };
    let storage = CudaStorage::from_host(dev.clone(), dense_host.storage().cpu())?;
    Ok(Tensor::from_parts(Storage::Cuda(storage), Layout::contiguous(t.shape().clone()), Device::Cuda(ordinal)))
}

/// Copies a CUDA tensor's elements to a dense host tensor.
pub(crate) fn to_cpu(t: &Tensor) -> Tensor {
    let dense = if t.is_contiguous() && t.layout().offset() == 0 && storage(t).len() == t.numel() {
        t.clone()
    } else {
        shape::contiguous_copy(t)
    };
    let host = ok(storage(&dense).to_host(), "copy to host");
    Tensor::from_storage(host, Layout::contiguous(t.shape().clone()))
}

/// This tensor's elements in row-major order, on the host.
pub(crate) fn host_vec<T: crate::dtype::Element>(t: &Tensor) -> Vec<T> {
    to_cpu(t).to_vec::<T>()
}

/// Runs `$body` with `$T` bound to the Rust type of a device dtype.
macro_rules! with_cuda_type {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
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
            $crate::DType::F64 => panic!("{}: float64 tensors cannot live on a CUDA device", $op),
        }
    };
}

/// The same for the float dtypes kernels compute with.
macro_rules! with_cuda_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
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
            other => panic!("{}: needs a float tensor on CUDA, got {}", $op, other),
        }
    };
}

pub(crate) use {with_cuda_float, with_cuda_type};

impl From<kernels::cuda::CudaError> for TensorError {
    fn from(e: kernels::cuda::CudaError) -> Self {
        TensorError::Cuda(e.to_string())
    }
}

/// Whether a dtype can live on a CUDA device.
pub fn dtype_supported(dtype: DType) -> bool {
    dtype != DType::F64
}

/// Waits until every op queued on `device` has finished (a no-op for the
/// CPU): ops return as soon as their kernels are queued, so a timer must
/// synchronise before it stops.
pub(crate) fn synchronize(device: Device) -> Result<()> {
    if let Device::Cuda(ordinal) = device {
        self::device(ordinal)?.synchronize()?;
    }
    Ok(())
}

/// The GPU's name, e.g. "NVIDIA H100 80GB HBM3".
pub(crate) fn device_name(device: Device) -> Result<String> {
    match device {
        Device::Cuda(ordinal) => Ok(self::device(ordinal)?.name().to_string()),
        Device::Cpu => Ok("cpu".into()),
    }
}
