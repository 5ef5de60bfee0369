//! The gradient of an embedding lookup: rows added back into the table.
//!
//! The forward picked rows: y[k] = W[ids[k]] for N ids, y `[N, C]`. Its
//! gradient sends each row of dY back where it came from:
//! dW `[V, C]` starts at zero and dW[ids[k]] += dY[k]; an id used twice
//! collects both rows, and ids never seen keep a zero row.
//!
//! The scatter itself is in `cpu/index.rs` (through `kernels::cpu::embedding`,
//! parallel over column bands, deterministic) and `cuda/index.rs`.

use crate::backend;
use crate::dtype::DType;
use crate::tensor::Tensor;

impl Tensor {
    /// dW `[vocab, C]` for an embedding lookup of int64 `ids` (any shape)
    /// whose output gradient is `dy` `[..ids.shape, C]`.
    pub fn embedding_backward(ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor {
        assert_eq!(ids.dtype(), DType::I64, "embedding_backward: ids must be int64, got {}", ids.dtype());
        let c = dy.dim(-1);
        assert_eq!(
            dy.numel(),
            ids.numel() * c,
            "embedding_backward: gradient {} does not match ids {}",
            dy.shape(),
            ids.shape()
        );
        backend::of(&[dy]).embedding_backward(ids, dy, vocab)
    }

    /// self `[vocab, C]` += the embedding gradient of `ids` and `dy`, in
    /// place. A tied embedding already holds the output head's gradient
    /// when the lookup's turn comes; scattering into it skips a zeroed
    /// table the size of the vocabulary and the pass that would add the two.
    pub fn embedding_backward_add_(&mut self, ids: &Tensor, dy: &Tensor) {
        assert_eq!(ids.dtype(), DType::I64, "embedding_backward: ids must be int64, got {}", ids.dtype());
        assert!(
            self.rank() == 2 && dy.dim(-1) == self.dim(1) && dy.numel() == ids.numel() * self.dim(1),
            "embedding_backward: gradient {} does not match ids {} and table {}",
            dy.shape(),
            ids.shape(),
            self.shape()
        );
        backend::of(&[&*self, dy]).embedding_backward_add(self, ids, dy)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn equals_index_add_into_zeros() {
        let mut g = Generator::seed(5);
        let ids = Tensor::new([[3i64, 1, 3], [0, 3, 6]]).unwrap();
        let dy = Tensor::randn([2, 3, 130], &mut g);
        let fast = Tensor::embedding_backward(&ids, &dy, 7);
        let reference = Tensor::zeros([7, 130], DType::F32).index_add(0, &ids.flatten_all(), &dy.reshape(&[6, 130]));
        assert_eq!(fast.to_vec::<f32>(), reference.to_vec::<f32>());
        // Into an existing table: its rows plus the scatter, and a buffer
        // another tensor shares is left alone.
        let start = Tensor::randn([7, 130], &mut g);
        let mut table = start.clone();
        table.embedding_backward_add_(&ids, &dy);
        let want = start.index_add(0, &ids.flatten_all(), &dy.reshape(&[6, 130]));
        assert_eq!(table.to_vec::<f32>(), want.to_vec::<f32>());
        assert_ne!(start.to_vec::<f32>(), table.to_vec::<f32>());
    }
}
