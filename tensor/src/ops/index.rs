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
//!
//! An index tensor may live on either device: its values are read on the
//! host, where each is checked against its dimension (`cpu/index.rs`,
//! `cuda/index.rs`). The op runs where the data operands live.

use crate::backend;
use crate::dtype::DType;
use crate::tensor::Tensor;

/// For gather and scatter: `index` has the rank of `x` and fits inside
/// it in every dimension but `d`.
fn check_fits(x: &Tensor, d: usize, index: &Tensor, op: &str) {
    assert_eq!(index.dtype(), DType::I64, "{op}: index must be int64, got {}", index.dtype());
    assert_eq!(index.rank(), x.rank(), "{op}: index shape {} for input {}", index.shape(), x.shape());
    for (i, (&n, &m)) in index.dims().iter().zip(x.dims()).enumerate() {
        assert!(i == d || n <= m, "{op}: index shape {} exceeds input {} in dimension {i}", index.shape(), x.shape());
    }
}

impl Tensor {
    /// Slices along `dim` at the given indices (a copy).
    pub fn index_select(&self, dim: isize, indices: &Tensor) -> Tensor {
        assert_eq!(indices.dtype(), DType::I64, "index_select: indices must be int64, got {}", indices.dtype());
        assert_eq!(indices.rank(), 1, "index_select: indices must be 1-D, got shape {}", indices.shape());
        let d = self.layout().resolve(dim, "index_select");
        backend::of(&[self]).index_select(self, d, indices)
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
        assert_eq!(
            src.dims()[d],
            indices.numel(),
            "index_add: source {} has {} slices along {d}, indices {}",
            src.shape(),
            src.dims()[d],
            indices.numel()
        );
        // Elements of one slice: the product of every size but `d`'s.
        let block =
            |t: &Tensor| t.dims().iter().enumerate().filter(|&(i, _)| i != d).map(|(_, &n)| n).product::<usize>();
        assert_eq!(
            block(self),
            block(src),
            "index_add: shapes {} and {} differ outside dim {d}",
            self.shape(),
            src.shape()
        );
        backend::of(&[self, src]).index_add(self, d, indices, src)
    }

    /// `out[i][j] = self[i][index[i][j]]` along `dim` (`torch.gather`);
    /// `index` has the rank of `self` and the output has its shape.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Tensor {
        let d = self.layout().resolve(dim, "gather");
        check_fits(self, d, index, "gather");
        backend::of(&[self]).gather(self, d, index)
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
        check_fits(self, d, index, "scatter_add");
        backend::of(&[self, src]).scatter_add(self, d, index, src)
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
