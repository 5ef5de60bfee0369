//! Indexing on host tensors: `index_select` (and so `embedding`), its
//! adjoint `index_add`, `gather`, `scatter_add`, and the embedding's
//! gradient. Each index is checked against its dimension as it is read.

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

fn check_index(op: &str, idx: i64, size: usize) -> usize {
    assert!(idx >= 0 && (idx as usize) < size, "{op}: index {idx} is out of range for a dimension of size {size}");
    idx as usize
}

pub(crate) fn index_select(x: &Tensor, d: usize, indices: &Tensor) -> Tensor {
    let idx = indices.contiguous_data::<i64>();
    let size = x.dims()[d];
    let parts: Vec<Tensor> =
        idx.iter().map(|&i| x.narrow(d as isize, check_index("index_select", i, size), 1)).collect();
    if parts.is_empty() {
        let mut dims = x.dims().to_vec();
        dims[d] = 0;
        return Tensor::zeros(dims, x.dtype());
    }
    if d == 0 && x.is_contiguous() {
        // The common case (embedding rows): copy whole rows directly.
        let row: usize = x.dims()[1..].iter().product();
        return crate::with_type!(x.dtype(), T => {
            let src = x.contiguous_data::<T>();
            let mut out = Vec::with_capacity(idx.len() * row);
            for &i in idx.iter() {
                let i = i as usize;
                out.extend_from_slice(&src[i * row..(i + 1) * row]);
            }
            let mut dims = x.dims().to_vec();
            dims[0] = idx.len();
            Tensor::from_contiguous(out, dims)
        });
    }
    Tensor::cat(&parts, d as isize)
}

pub(crate) fn index_add(x: &Tensor, d: usize, indices: &Tensor, src: &Tensor) -> Tensor {
    let idx = indices.contiguous_data::<i64>();
    // Work with dim moved to the front so each index names a block.
    let out = x.transpose(0, d as isize).contiguous();
    let src = src.transpose(0, d as isize).contiguous();
    let block: usize = out.dims()[1..].iter().product();
    let size = out.dims()[0];
    let result = crate::with_type!(x.dtype(), T => {
        let mut data = out.to_vec::<T>();
        let s = src.contiguous_data::<T>();
        for (k, &i) in idx.iter().enumerate() {
            let i = check_index("index_add", i, size);
            for j in 0..block {
                data[i * block + j] = T::from_f64(data[i * block + j].to_f64() + s[k * block + j].to_f64());
            }
        }
        Tensor::from_contiguous(data, out.shape().clone())
    });
    result.transpose(0, d as isize).contiguous()
}

pub(crate) fn gather(x: &Tensor, d: usize, index: &Tensor) -> Tensor {
    let size = x.dims()[d];
    let positions = gather_positions(x, d, index);
    let buf_idx = index.contiguous_data::<i64>();
    crate::with_type!(x.dtype(), T => {
        let buf = x.storage_slice::<T>();
        let out: Vec<T> = positions
            .iter()
            .zip(buf_idx.iter())
            .map(|(&(base, stride), &i)| buf[base + check_index("gather", i, size) * stride])
            .collect();
        Tensor::from_contiguous(out, index.shape().clone())
    })
}

pub(crate) fn scatter_add(x: &Tensor, d: usize, index: &Tensor, src: &Tensor) -> Tensor {
    let size = x.dims()[d];
    let base = x.contiguous();
    let positions = gather_positions(&base, d, index);
    let idx = index.contiguous_data::<i64>();
    crate::with_type!(x.dtype(), T => {
        let mut out = base.to_vec::<T>();
        let s = src.contiguous_data::<T>();
        for ((&(b, stride), &i), &v) in positions.iter().zip(idx.iter()).zip(s.iter()) {
            let p = b + check_index("scatter_add", i, size) * stride;
            out[p] = T::from_f64(out[p].to_f64() + v.to_f64());
        }
        Tensor::from_contiguous(out, x.shape().clone())
    })
}

/// For every element of `index` (row-major), the buffer offset of `x` at
/// the same position with coordinate `d` set to 0, and the stride along `d`.
fn gather_positions(x: &Tensor, d: usize, index: &Tensor) -> Vec<(usize, usize)> {
    let mut strides = x.strides().to_vec();
    let stride = strides[d];
    strides[d] = 0;
    // A layout over `x` with index's extent, not moving along d.
    let walk = crate::layout::Layout::new(index.shape().clone(), strides, x.layout().offset());
    walk.offsets().map(|o| (o, stride)).collect()
}

/// dW `[vocab, C]`: zeros, then the rows of dy scattered in.
pub(crate) fn embedding_backward(ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor {
    if !matches!(dy.dtype(), DType::F32 | DType::F64) {
        // Half precision accumulates in f32.
        return embedding_backward(ids, &dy.to_dtype(DType::F32), vocab).to_dtype(dy.dtype());
    }
    let mut dw = Tensor::zeros([vocab, dy.dim(-1)], dy.dtype());
    embedding_backward_add(&mut dw, ids, dy);
    dw
}

/// table += the scatter of dy's rows, in the table's own buffer, through
/// `kernels::cpu::embedding` (parallel over column bands, deterministic).
pub(crate) fn embedding_backward_add(table: &mut Tensor, ids: &Tensor, dy: &Tensor) {
    if !matches!(table.dtype(), DType::F32 | DType::F64) || table.dtype() != dy.dtype() {
        let dw = embedding_backward(ids, dy, table.dim(0)).to_dtype(table.dtype());
        table.add_(&dw);
        return;
    }
    let (vocab, c) = (table.dim(0), table.dim(1));
    let rows: Vec<usize> = ids
        .contiguous_data::<i64>()
        .iter()
        .map(|&i| {
            assert!(i >= 0 && (i as usize) < vocab, "embedding_backward: id {i} outside the table of {vocab} rows");
            i as usize
        })
        .collect();
    crate::with_float_type!(table.dtype(), "embedding_backward", T => {
        let dy = dy.contiguous_data::<T>();
        kernels::cpu::embedding::embedding_backward(&rows, &dy, table.data_mut::<T>(), c);
    })
}
