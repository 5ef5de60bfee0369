//! Reductions on CUDA tensors: along one dimension, and of everything.
//!
//! For `dim`, each output position combines the n = dims[dim] inputs
//! reached by stepping `strides[dim]` from its start; the starts are
//! described by `outer`, the input's layout with `dim` removed. No copy is
//! made to bring `dim` last: the kernels read the strides as they are.

use kernels::cuda::reduce::{self as k, ReduceOp, ReduceOutput};
use kernels::cuda::DeviceLayout;

use super::{cuda_device, dense, device_layout, ok, slice, with_cuda_float, with_cuda_type};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::tensor::Tensor;

fn op_name(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Sum => "sum",
        ReduceOp::Mean => "mean",
        ReduceOp::Max => "max",
        ReduceOp::Min => "min",
        ReduceOp::ArgMax => "argmax",
        ReduceOp::ArgMin => "argmin",
        ReduceOp::Var | ReduceOp::VarUnbiased => "var",
    }
}

/// Reduces `dim` of `x` with `op`.
pub(crate) fn reduce(x: &Tensor, dim: isize, keepdim: bool, op: ReduceOp) -> Tensor {
    let name = op_name(op);
    if matches!(op, ReduceOp::Mean | ReduceOp::Var | ReduceOp::VarUnbiased) {
        assert!(x.dtype().is_float(), "{name}: needs a float tensor, got {}", x.dtype());
    }
    let d = x.layout().resolve(dim, name);
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
        match ok(k::reduce::<T>(dev, slice::<T>(x), &outer, n, stride, op), name) {
            ReduceOutput::Values(v) => dense(dev, v, out_dims),
            ReduceOutput::Indices(i) => dense(dev, i, out_dims),
        }
    })
}

/// Σ of every element times `scale`, as a rank-0 tensor of x's dtype.
pub(crate) fn sum_all(x: &Tensor, scale: f64) -> Tensor {
    let dev = cuda_device(x);
    let layout = device_layout(x.layout(), "sum_all");
    with_cuda_type!(x.dtype(), "sum_all", T => {
        let out = ok(k::sum_all::<T, T>(dev, slice::<T>(x), &layout, false, scale), "sum_all");
        dense(dev, out, ())
    })
}

pub(crate) fn mean_all(x: &Tensor) -> Tensor {
    assert!(x.dtype().is_float(), "mean_all: needs a float tensor, got {}", x.dtype());
    sum_all(x, 1.0 / x.numel() as f64)
}

/// Σ x² over every element, in f64 on the device; one number comes back.
/// Gradient clipping uses it, so a gradient never leaves the GPU.
pub fn sum_squares(x: &Tensor) -> f64 {
    if !x.device().is_cuda() {
        return x.to_f64_vec().iter().map(|v| v * v).sum();
    }
    let dev = cuda_device(x);
    let layout: DeviceLayout = device_layout(x.layout(), "sum_squares");
    let total = with_cuda_float!(x.dtype(), "sum_squares", T => {
        ok(k::sum_all::<T, f64>(dev, slice::<T>(x), &layout, true, 1.0), "sum_squares")
    });
    ok(dev.download(&total, 1), "sum_squares")[0]
}
