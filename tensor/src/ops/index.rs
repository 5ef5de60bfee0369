//! Picking elements by integer index, and the scatters that undo it.
//!
//! - `index_select(dim, idx)`: whole slices along `dim` at the positions in a
//!   1-D int64 `idx` (an embedding lookup is `weight.index_select(0, ids)`).
//! - `gather(dim, idx)`: one element per output position,
//!   `out[i][j] = x[i][idx[i][j]]` for dim 1 (picking each row's target
//!   log-probability in cross-entropy).
//! - `index_add` and `scatter_add` are their adjoints: they add values back
//!   into the positions the indices name, summing repeats. Backward passes
//!   use them, so a token that appears twice gets both gradients.

use crate::dtype::{DType, Element};
use crate::tensor::Tensor;

fn check_index(op: &str, idx: i64, size: usize) -> usize {
    assert!(idx >= 0 && (idx as usize) < size, "{op}: index {idx} is out of range for a dimension of size {size}");
    idx as usize
}

impl Tensor {
    /// Slices along `dim` at the given indices (a copy).
    pub fn index_select(&self, dim: isize, indices: &Tensor) -> Tensor {
        assert_eq!(indices.dtype(), DType::I64, "index_select: indices must be int64, got {}", indices.dtype());
        assert_eq!(indices.rank(), 1, "index_select: indices must be 1-D, got shape {}", indices.shape());
        let d = self.layout().resolve(dim, "index_select");
        if self.device().is_cuda() {
            return crate::cuda::index_select(self, d, indices);
        }
        let idx = indices.contiguous_data::<i64>();
        let size = self.dims()[d];
        let parts: Vec<Tensor> =
            idx.iter().map(|&i| self.narrow(d as isize, check_index("index_select", i, size), 1)).collect();
        if parts.is_empty() {
            let mut dims = self.dims().to_vec();
            dims[d] = 0;
            return Tensor::zeros(dims, self.dtype());
        }
        if d == 0 && self.is_contiguous() {
            // The common case (embedding rows): copy whole rows directly.
            let row: usize = self.dims()[1..].iter().product();
            return crate::with_type!(self.dtype(), T => {
                let src = self.contiguous_data::<T>();
                let mut out = Vec::with_capacity(idx.len() * row);
                for &i in idx.iter() {
                    let i = i as usize;
                    out.extend_from_slice(&src[i * row..(i + 1) * row]);
                }
                let mut dims = self.dims().to_vec();
                dims[0] = idx.len();
                Tensor::from_contiguous(out, dims)
            });
        }
        Tensor::cat(&parts, d as isize)
    }

    /// Embedding lookup: `weight[ids]` for int64 `ids` of any shape, giving
    /// `ids.shape + [dim]`.
    pub fn embedding(&self, ids: &Tensor) -> Tensor {
        assert_eq!(self.rank(), 2, "embedding: weight must be [vocab, dim], got {}", self.shape());
        let mut dims = ids.dims().to_vec();
        dims.push(self.dims()[1]);
        self.index_select(0, &ids.flatten_all()).reshape_to(dims)
    }

    /// Adds the slices of `src` along `dim` into a copy of `self` at
    /// positions `indices` (repeats accumulate).
    pub fn index_add(&self, dim: isize, indices: &Tensor, src: &Tensor) -> Tensor {
        assert_eq!(indices.dtype(), DType::I64, "index_add: indices must be int64, got {}", indices.dtype());
        let d = self.layout().resolve(dim, "index_add");
        if self.device().is_cuda() || src.device().is_cuda() {
            return crate::cuda::index_add(self, d, indices, src);
        }
        let idx = indices.contiguous_data::<i64>();
        assert_eq!(
            src.dims()[d],
            idx.len(),
            "index_add: source {} has {} slices along {d}, indices {}",
            src.shape(),
            src.dims()[d],
            idx.len()
        );
        // Work with dim moved to the front so each index names a block.
        let out = self.transpose(0, d as isize).contiguous();
        let src = src.transpose(0, d as isize).contiguous();
        let block: usize = out.dims()[1..].iter().product();
        assert_eq!(
            block,
            src.dims()[1..].iter().product::<usize>(),
            "index_add: shapes {} and {} differ outside dim {d}",
            self.shape(),
            src.shape()
        );
        let size = out.dims()[0];
        let result = crate::with_type!(self.dtype(), T => {
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

    /// `out[i][j] = self[i][index[i][j]]` along `dim` (`torch.gather`);
    /// `index` has the rank of `self` and the output has its shape.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Tensor {
        assert_eq!(index.dtype(), DType::I64, "gather: index must be int64, got {}", index.dtype());
        assert_eq!(index.rank(), self.rank(), "gather: index shape {} for input {}", index.shape(), self.shape());
        let d = self.layout().resolve(dim, "gather");
        if self.device().is_cuda() {
            return crate::cuda::gather(self, d, index);
        }
        let size = self.dims()[d];
        let positions = self.gather_positions(d, index, "gather");
        let buf_idx = index.contiguous_data::<i64>();
        crate::with_type!(self.dtype(), T => {
            let buf = self.storage_slice::<T>();
            let out: Vec<T> = positions
                .iter()
                .zip(buf_idx.iter())
                .map(|(&(base, stride), &i)| buf[base + check_index("gather", i, size) * stride])
                .collect();
            Tensor::from_contiguous(out, index.shape().clone())
        })
    }

    /// Adds `src` into a copy of `self` at the positions `index` names along
    /// `dim` (`torch.scatter_add`): the adjoint of `gather`.
    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Tensor) -> Tensor {
        assert_eq!(
            index.shape(),
            src.shape(),
            "scatter_add: index {} and source {} differ",
            index.shape(),
            src.shape()
        );
        let d = self.layout().resolve(dim, "scatter_add");
        if self.device().is_cuda() || src.device().is_cuda() {
            return crate::cuda::scatter_add(self, d, index, src);
        }
        let size = self.dims()[d];
        let base = self.contiguous();
        let positions = base.gather_positions(d, index, "scatter_add");
        let idx = index.contiguous_data::<i64>();
        crate::with_type!(self.dtype(), T => {
            let mut out = base.to_vec::<T>();
            let s = src.contiguous_data::<T>();
            for ((&(b, stride), &i), &v) in positions.iter().zip(idx.iter()).zip(s.iter()) {
                let p = b + check_index("scatter_add", i, size) * stride;
                out[p] = T::from_f64(out[p].to_f64() + v.to_f64());
            }
            Tensor::from_contiguous(out, self.shape().clone())
        })
    }

    /// For every element of `index` (row-major), the buffer offset of
    /// `self` at the same position with coordinate `d` set to 0, and the
    /// stride along `d`.
    fn gather_positions(&self, d: usize, index: &Tensor, op: &str) -> Vec<(usize, usize)> {
        for (i, (&n, &m)) in index.dims().iter().zip(self.dims()).enumerate() {
            assert!(
                i == d || n <= m,
                "{op}: index shape {} exceeds input {} in dimension {i}",
                index.shape(),
                self.shape()
            );
        }
        let mut dims = index.dims().to_vec();
        dims[d] = 1;
        let mut strides = self.strides().to_vec();
        let stride = strides[d];
        strides[d] = 0;
        // A layout over `self` with index's extent, not moving along d.
        let walk = crate::layout::Layout::new(index.shape().clone(), strides, self.layout().offset());
        walk.offsets().map(|o| (o, stride)).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn select_gather_and_their_adjoints() {
        let w = Tensor::arange(0, 8).reshape(&[4, 2]);
        let ids = Tensor::new([[3, 0], [3, 1]]).unwrap();
        let e = w.embedding(&ids);
        assert_eq!(e.dims(), &[2, 2, 2]);
        assert_eq!(e.to_vec::<i64>(), vec![6, 7, 0, 1, 6, 7, 2, 3]);
        let cols = w.index_select(1, &Tensor::new([1, 1]).unwrap());
        assert_eq!(cols.to_vec::<i64>(), vec![1, 1, 3, 3, 5, 5, 7, 7]);

        let x = Tensor::new([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).unwrap();
        let idx = Tensor::new([[2], [0]]).unwrap();
        assert_eq!(x.gather(1, &idx).to_vec::<f32>(), vec![3.0, 4.0]);
        let back = Tensor::zeros([2, 3], DType::F32).scatter_add(1, &idx, &Tensor::new([[1.0], [1.0]]).unwrap());
        assert_eq!(back.to_vec::<f32>(), vec![0., 0., 1., 1., 0., 0.]);

        let acc = Tensor::zeros([4, 2], DType::F32).index_add(
            0,
            &Tensor::new([3, 3]).unwrap(),
            &Tensor::ones([2, 2], DType::F32),
        );
        assert_eq!(acc.to_vec::<f32>()[6..], [2.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "index 9 is out of range")]
    fn out_of_range_index_panics() {
        Tensor::zeros([4, 2], DType::F32).embedding(&Tensor::new([9]).unwrap());
    }
}
