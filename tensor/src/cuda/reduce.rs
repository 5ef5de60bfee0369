//! Reductions on CUDA tensors: along one dimension, and of everything.
//!
//! For `dim`, each output position combines the n = dims[dim] inputs
//! reached by stepping `strides[dim]` from its start; the starts are
//! described by `outer`, the input's layout with `dim` removed. No copy is
//! made to bring `dim` last: the kernels read the strides as they are.

use kernels::cuda::reduce::{self as k, ReduceOutput};
use kernels::cuda::DeviceLayout;

use super::{cuda_device, dense, device_layout, ok, slice, with_cuda_float, with_cuda_type};
use crate::layout::Layout;
use crate::ops::reduce::ReduceOp;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The kernel's code for a reduction.
fn kernel_op(op: ReduceOp) -> k::ReduceOp {
    match op {
        ReduceOp::Sum => k::ReduceOp::Sum,
        ReduceOp::Mean => k::ReduceOp::Mean,
        ReduceOp::Max => k::ReduceOp::Max,
        ReduceOp::Min => k::ReduceOp::Min,
        ReduceOp::ArgMax => k::ReduceOp::ArgMax,
        ReduceOp::ArgMin => k::ReduceOp::ArgMin,
        ReduceOp::Var { unbiased: false } => k::ReduceOp::Var,
        ReduceOp::Var { unbiased: true } => k::ReduceOp::VarUnbiased,
    }
}

/// Reduces dimension `d` of `x` with `op`.
pub(crate) fn reduce(x: &Tensor, d: usize, keepdim: bool, op: ReduceOp) -> Tensor {
    let name = op.name();
    let n = x.dims()[d];
    let mut out_dims = x.dims().to_vec();
    let mut outer_dims = x.dims().to_vec();
    let mut outer_strides = x.strides().to_vec();
    outer_dims.remove(d);
    outer_strides.remove(d);
    if keepdim {
        out_dims[d] = 1;
    } else {
        out_dims.remove(d);
    }
    if n == 0 {
        // The CPU's answers for an empty dimension: sums and means are 0.
        assert!(matches!(op, ReduceOp::Sum | ReduceOp::Mean), "{name}: empty dimension");
        return super::shape::full(out_dims, 0.0, x.dtype(), x.device());
    }
    let outer = device_layout(&Layout::new(Shape(outer_dims), outer_strides, x.layout().offset()), name);
    let dev = cuda_device(x);
    let stride = x.strides()[d];
    with_cuda_type!(x.dtype(), name, T => {
        match ok(k::reduce::<T>(dev, slice::<T>(x), &outer, n, stride, kernel_op(op)), name) {
            ReduceOutput::Values(v) => dense(dev, v, out_dims),
            ReduceOutput::Indices(i) => dense(dev, i, out_dims),
        }
    })
}

pub(crate) fn sum_all(x: &Tensor) -> Tensor {
    scaled_sum_all(x, 1.0)
}

pub(crate) fn mean_all(x: &Tensor) -> Tensor {
    scaled_sum_all(x, 1.0 / x.numel() as f64)
}

/// Σ of every element times `scale`, as a rank-0 tensor of x's dtype.
fn scaled_sum_all(x: &Tensor, scale: f64) -> Tensor {
    let dev = cuda_device(x);
    let layout = device_layout(x.layout(), "sum_all");
    with_cuda_type!(x.dtype(), "sum_all", T => {
        let out = ok(k::sum_all::<T, T>(dev, slice::<T>(x), &layout, false, scale), "sum_all");
        dense(dev, out, ())
    })
}

/// Σ x² over every element, in f64 on the device; one number comes back.
/// Gradient clipping uses it, so a gradient never leaves the GPU.
pub(crate) fn sum_squares(x: &Tensor) -> f64 {
    let dev = cuda_device(x);
    let layout: DeviceLayout = device_layout(x.layout(), "sum_squares");
    let total = with_cuda_float!(x.dtype(), "sum_squares", T => {
        ok(k::sum_all::<T, f64>(dev, slice::<T>(x), &layout, true, 1.0), "sum_squares")
    });
    ok(dev.download(&total, 1), "sum_squares")[0]
}
