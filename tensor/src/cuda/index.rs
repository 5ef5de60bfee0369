//! Indexing on CUDA tensors: `index_select` (and so `embedding`), its
//! adjoint `index_add`, `gather` and `scatter_add`.
//!
//! Indices are checked on the host, as the CPU does (they usually come
//! from there: token ids, positions), then copied to the device. The
//! adjoints are deterministic: `index_add` groups positions by index on the
//! host and adds each group in order (see `index.cu`), so the embedding's
//! gradient has the same bits on every run.

use kernels::cuda::index as k;

use super::{bring, cuda_device, cuda_of, dense, ok, packed, slice, with_cuda_type};
use crate::layout::Layout;
use crate::tensor::Tensor;

/// The indices on the host, each checked against `size`.
fn host_indices(indices: &Tensor, size: usize, op: &str) -> Vec<i64> {
    let host = if indices.device().is_cuda() { super::host_vec::<i64>(indices) } else { indices.to_vec::<i64>() };
    for &i in &host {
        assert!(i >= 0 && (i as usize) < size, "{op}: index {i} is out of range for a dimension of size {size}");
    }
    host
}

pub(crate) fn index_select(x: &Tensor, d: usize, indices: &Tensor) -> Tensor {
    let size = x.dims()[d];
    let ids = host_indices(indices, size, "index_select");
    // Bring `d` to the front so each index names one contiguous row.
    let front = packed(&x.transpose(0, d as isize));
    let width: usize = front.dims()[1..].iter().product();
    let dev = cuda_device(&front);
    let ids_dev = ok(dev.upload(&ids), "index_select");
    let mut dims = front.dims().to_vec();
    dims[0] = ids.len();
    let selected = with_cuda_type!(front.dtype(), "index_select", T => {
        let out = ok(k::select_rows::<T>(dev, slice::<T>(&front), &ids_dev, ids.len(), width), "index_select");
        dense(dev, out, dims)
    });
    if d == 0 {
        selected
    } else {
        selected.transpose(0, d as isize).contiguous()
    }
}

pub(crate) fn index_add(x: &Tensor, d: usize, indices: &Tensor, src: &Tensor) -> Tensor {
    let device = cuda_of(&[x, src]).expect("index_add: a CUDA operand");
    let (x, src) = (bring(x, device, "index_add"), bring(src, device, "index_add"));
    let ids = host_indices(indices, x.dims()[d], "index_add");
    // A fresh dense copy with `d` in front: the kernel adds into it in place.
    let out = super::shape::contiguous_copy(&x.transpose(0, d as isize));
    let src = packed(&src.transpose(0, d as isize));
    let width: usize = out.dims()[1..].iter().product();
    let groups = k::group_by_row(&ids, out.dims()[0]);
    let dev = cuda_device(&out).clone();
    let mut out = out;
    with_cuda_type!(out.dtype(), "index_add", T => {
        let buffer = super::storage_mut(&mut out).slice_mut::<T>();
        ok(k::index_add_rows::<T>(&dev, buffer, slice::<T>(&src), width, &groups), "index_add");
    });
    if d == 0 {
        out
    } else {
        out.transpose(0, d as isize).contiguous()
    }
}

pub(crate) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    host_indices(index, x.dims()[d], "gather");
    let index = packed(&bring(index, x.device(), "gather"));
    let mut strides = x.strides().to_vec();
    let stride_d = strides[d];
    strides[d] = 0;
    let walk = Layout::new(index.shape().clone(), strides, x.layout().offset());
    let walk = super::device_layout(&walk, "gather");
    let dev = cuda_device(x);
    with_cuda_type!(x.dtype(), "gather", T => {
        let out = ok(k::gather::<T>(dev, slice::<T>(x), &walk, slice::<i64>(&index), stride_d, index.numel()), "gather");
        dense(dev, out, index.shape().clone())
    })
}

pub(crate) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
    let device = cuda_of(&[x, src]).expect("scatter_add: a CUDA operand");
    let (x, src) = (bring(x, device, "scatter_add"), bring(src, device, "scatter_add"));
    host_indices(index, x.dims()[d], "scatter_add");
    let (index, src) = (packed(&bring(index, device, "scatter_add")), packed(&src));
    let mut out = super::shape::contiguous_copy(&x);
    let dev = cuda_device(&out).clone();
    let out_dims = out.dims().to_vec();
    with_cuda_type!(out.dtype(), "scatter_add", T => {
        let buffer = super::storage_mut(&mut out).slice_mut::<T>();
        ok(k::scatter_add::<T>(&dev, buffer, &out_dims, slice::<i64>(&index), slice::<T>(&src), index.dims(), d), "scatter_add");
    });
    out
}

/// dW `[vocab, C]` of an embedding lookup: zeros, then each row of dy
/// added to the row its id names, ids grouped on the host so each table
/// row is summed by one thread block in order (no atomics).
pub(crate) fn embedding_backward(ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor {
    let c = dy.dim(-1);
    let ids = host_indices(&ids.flatten_all(), vocab, "embedding_backward");
    let dy = packed(dy);
    let mut dw = super::shape::full([vocab, c], 0.0, dy.dtype(), dy.device());
    let groups = k::group_by_row(&ids, vocab);
    let dev = cuda_device(&dy).clone();
    with_cuda_type!(dw.dtype(), "embedding_backward", T => {
        let buffer = super::storage_mut(&mut dw).slice_mut::<T>();
        ok(k::index_add_rows::<T>(&dev, buffer, slice::<T>(&dy), c, &groups), "embedding_backward");
    });
    dw
}

/// table += the embedding gradient: the gradient (computed where `dy`
/// lives), then one add into the table.
pub(crate) fn embedding_backward_add(table: &mut Tensor, ids: &Tensor, dy: &Tensor) {
    let dw = Tensor::embedding_backward(ids, dy, table.dim(0)).to_dtype(table.dtype());
    table.add_(&dw);
}
