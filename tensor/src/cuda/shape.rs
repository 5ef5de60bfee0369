//! Ops that move elements on CUDA: dense copies of views, `cat`,
//! `tril`/`triu`, and filling a new tensor with one value.
//!
//! All of them use the width-generic kernels of `copy.cu`: `cat` writes
//! each input into its window of the output (the output's layout narrowed
//! to that window), so no input is copied twice.

use kernels::cuda::copy as k;

use super::{bring, cuda_device, cuda_of, dense, device_layout, ok, packed, slice, with_cuda_type};
use crate::dtype::{DType, Element};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Device;

/// A fresh dense copy (always allocates).
pub(crate) fn contiguous_copy(t: &Tensor) -> Tensor {
    let dev = cuda_device(t);
    let layout = device_layout(t.layout(), "contiguous");
    with_cuda_type!(t.dtype(), "contiguous", T => {
        let out = ok(k::contiguous::<T>(dev, slice::<T>(t), &layout), "contiguous");
        dense(dev, out, t.shape().clone())
    })
}

/// Joins tensors along `d` into a tensor of shape `dims` (checked by the caller).
pub(crate) fn cat(tensors: &[Tensor], d: usize, dims: Vec<usize>) -> Tensor {
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let device = cuda_of(&refs).expect("cat: a CUDA tensor");
    let parts: Vec<Tensor> = tensors.iter().map(|t| bring(t, device, "cat")).collect();
    let dev = cuda_device(&parts[0]).clone();
    let whole = Layout::contiguous(dims.clone());
    let numel = whole.numel();
    with_cuda_type!(parts[0].dtype(), "cat", T => {
        let mut out = ok(dev.alloc::<T>(numel), "cat");
        let mut start = 0;
        for part in &parts {
            let len = part.dims()[d];
            let window = whole.narrow(d, start, len);
            let dst = device_layout(&window, "cat");
            let src = device_layout(part.layout(), "cat");
            ok(k::copy_strided::<T>(&dev, slice::<T>(part), &src, &mut out, &dst), "cat");
            start += len;
        }
        dense(&dev, out, dims)
    })
}

/// tril (`lower`) or triu over the last two dimensions.
pub(crate) fn triangle(t: &Tensor, diagonal: isize, lower: bool) -> Tensor {
    let x = packed(t);
    let (rows, cols) = (x.dim(-2), x.dim(-1));
    let dev = cuda_device(&x);
    with_cuda_type!(x.dtype(), "tril/triu", T => {
        let out = ok(k::triangle::<T>(dev, slice::<T>(&x), x.numel(), rows, cols, diagonal, lower), "tril/triu");
        dense(dev, out, x.shape().clone())
    })
}

/// A new tensor on the GPU `device` with every element `value` (as `dtype`).
pub(crate) fn full(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Tensor {
    let shape = shape.into();
    let Device::Cuda(ordinal) = device else {
        unreachable!("full: {device} is not a GPU");
    };
    let dev = ok(super::device(ordinal).map_err(|e| kernels::cuda::CudaError::NoDevice(e.to_string())), "full");
    with_cuda_type!(dtype, "full", T => {
        let out = ok(k::filled::<T>(&dev, shape.numel(), T::from_f64(value)), "full");
        dense(&dev, out, shape)
    })
}

/// Writes `src` into positions `start..start + src.dims()[dim]` of `dim`
/// of the dense `dst`, in place: one copy kernel from `src`'s layout into
/// the window's (the output's layout narrowed to it). If another tensor
/// shares `dst`'s buffer, that buffer is copied first, so the other tensor
/// never sees the write. A destination on the host moves to the GPU first,
/// as `add_`'s does.
pub(crate) fn write_window(dst: &mut Tensor, dim: usize, start: usize, src: &Tensor) {
    let device = cuda_of(&[dst, src]).expect("write_window: a CUDA operand");
    *dst = bring(dst, device, "write_window");
    let window = dst.layout().narrow(dim, start, src.dims()[dim]);
    let src = bring(src, device, "write_window");
    let (from, to) = (device_layout(src.layout(), "write_window"), device_layout(&window, "write_window"));
    let dev = cuda_device(dst).clone();
    with_cuda_type!(dst.dtype(), "write_window", T => {
        let buffer = super::storage_mut(dst).slice_mut::<T>();
        ok(k::copy_strided::<T>(&dev, slice::<T>(&src), &from, buffer, &to), "write_window");
    })
}
