//! Ops that make or move elements of host tensors: filling, dense copies
//! of views, `cat`, `tril`/`triu`, and writing a window in place.

use crate::dtype::{DType, Element};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Every element equal to `value` (converted to `dtype`).
pub(crate) fn full(shape: Shape, value: f64, dtype: DType) -> Tensor {
    crate::with_type!(dtype, T => {
        // A recycled buffer when one fits (gradients start from zeros).
        let mut data = crate::pool::take::<T>(shape.numel());
        data.resize(shape.numel(), T::from_f64(value));
        Tensor::from_contiguous(data, shape)
    })
}

/// A fresh dense copy (always allocates).
pub(crate) fn contiguous_copy(t: &Tensor) -> Tensor {
    crate::with_type!(t.dtype(), T => Tensor::from_contiguous(t.to_vec::<T>(), t.shape().clone()))
}

/// Joins tensors along `d` into a tensor of shape `dims`.
pub(crate) fn cat(tensors: &[Tensor], d: usize, dims: Vec<usize>) -> Tensor {
    crate::with_type!(tensors[0].dtype(), T => cat_dense::<T>(tensors, d, dims))
}

fn cat_dense<T: Element>(tensors: &[Tensor], d: usize, dims: Vec<usize>) -> Tensor {
    // View the output as [outer, dims[d] * inner]; each input contributes a
    // block of its own dims[d] * inner elements to every outer row.
    let outer: usize = dims[..d].iter().product();
    let inner: usize = dims[d + 1..].iter().product();
    let mut out = Vec::with_capacity(dims.iter().product());
    let parts: Vec<_> = tensors.iter().map(|t| t.contiguous_data::<T>()).collect();
    for o in 0..outer {
        for (t, data) in tensors.iter().zip(&parts) {
            let block = t.dims()[d] * inner;
            out.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    Tensor::from_contiguous(out, dims)
}

/// tril (`lower`) or triu over the last two dimensions.
pub(crate) fn triangle(t: &Tensor, diagonal: isize, lower: bool) -> Tensor {
    let (rows, cols) = (t.dim(-2), t.dim(-1));
    crate::with_type!(t.dtype(), T => {
        let mut data = t.to_vec::<T>();
        for (idx, v) in data.iter_mut().enumerate() {
            let (i, j) = (((idx / cols.max(1)) % rows.max(1)) as isize, (idx % cols.max(1)) as isize);
            let keep = if lower { j - i <= diagonal } else { j - i >= diagonal };
            if !keep {
                *v = T::ZERO;
            }
        }
        Tensor::from_contiguous(data, t.shape().clone())
    })
}

/// Writes `src` into positions `start..start + src.dims()[d]` of dimension
/// `d` of the dense `dst`. Viewed as `[outer, size_d, inner]`, the window
/// is one run of `len · inner` adjacent elements per outer index (per
/// head, for a KV cache's `[B, H, T, D]` buffer along T): one slice copy
/// each.
pub(crate) fn write_window(dst: &mut Tensor, d: usize, start: usize, src: &Tensor) {
    let (size, len) = (dst.dims()[d], src.dims()[d]);
    let inner: usize = dst.dims()[d + 1..].iter().product();
    let run = len * inner;
    crate::with_type!(dst.dtype(), T => {
        let src = src.contiguous_data::<T>();
        let dst = dst.data_mut::<T>();
        for (o, from) in src.chunks_exact(run.max(1)).enumerate() {
            let at = (o * size + start) * inner;
            dst[at..at + run].copy_from_slice(from);
        }
    })
}
