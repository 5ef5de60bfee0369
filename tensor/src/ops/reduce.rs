//! Reductions along a dimension: sum, mean, max/min, argmax/argmin, var;
//! and of everything: sum, mean, sum of squares.
//!
//! Reducing `dim` of a `[2, 3, 4]` tensor gives `[2, 4]` (or `[2, 1, 4]` with
//! `keepdim`). Float sums accumulate in f64, and the result never depends on
//! how the work was shared out between threads. The arithmetic is in
//! `cpu/reduce.rs` and `cuda/reduce.rs` (see `backend.rs`).

use crate::backend;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// What a reduction along one dimension computes for each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    /// Index (int64) of the largest value; the first on ties.
    ArgMax,
    /// Index (int64) of the smallest value; the first on ties.
    ArgMin,
    /// Variance; `unbiased` divides by n−1 (PyTorch's default) instead of n.
    Var {
        unbiased: bool,
    },
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
            ReduceOp::Var { .. } => "var",
        }
    }
}

impl Tensor {
    /// Reduces `dim` with `op`; `keepdim` keeps it as size 1.
    pub fn reduce(&self, dim: isize, keepdim: bool, op: ReduceOp) -> Tensor {
        let d = self.layout().resolve(dim, op.name());
        if matches!(op, ReduceOp::Mean | ReduceOp::Var { .. }) {
            assert!(self.dtype().is_float(), "{}: needs a float tensor, got {}", op.name(), self.dtype());
        }
        backend::of(&[self]).reduce(self, d, keepdim, op)
    }

    /// Sum along `dim`.
    pub fn sum(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::Sum)
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::Mean)
    }

    /// Variance along `dim`; `unbiased` divides by n−1 (PyTorch's default)
    /// instead of n.
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::Var { unbiased })
    }

    /// Largest value along `dim`.
    pub fn max(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::Max)
    }

    /// Smallest value along `dim`.
    pub fn min(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::Min)
    }

    /// Index (int64) of the largest value along `dim`; the first on ties.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::ArgMax)
    }

    /// Index (int64) of the smallest value along `dim`; the first on ties.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Tensor {
        self.reduce(dim, keepdim, ReduceOp::ArgMin)
    }

    /// Sum of every element, as a rank-0 tensor (fixed chunking: the same
    /// bits whatever the thread count).
    pub fn sum_all(&self) -> Tensor {
        backend::of(&[self]).sum_all(self)
    }

    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&self) -> Tensor {
        assert!(self.dtype().is_float(), "mean_all: needs a float tensor, got {}", self.dtype());
        backend::of(&[self]).mean_all(self)
    }

    /// Σ x² over every element, accumulated in f64 where the tensor lives
    /// (on a GPU only the one number comes back).
    pub fn sum_squares(&self) -> f64 {
        backend::of(&[self]).sum_squares(self)
    }

    /// Σ x² over every element of every tensor: the squared global norm
    /// ‖(t₁, t₂, …)‖₂² that gradient clipping compares with its limit.
    /// Each tensor is summed where it lives; the totals are added in order.
    pub fn squared_norm<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> f64 {
        tensors.into_iter().map(Tensor::sum_squares).sum()
    }

    /// Largest element, as a rank-0 tensor.
    pub fn max_all(&self) -> Tensor {
        self.flatten_all().max(0, false)
    }

    /// Sums over the given dimensions (kept as size 1).
    pub fn sum_keepdims(&self, dims: &[usize]) -> Tensor {
        dims.iter().fold(self.clone(), |t, &d| t.sum(d as isize, true))
    }

    /// Sums a broadcast result back down to `shape`: the gradient of an
    /// operand that was broadcast is the sum over the dimensions it was
    /// repeated along.
    pub fn sum_to_shape(&self, shape: &Shape) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        let lead = self.rank() - shape.rank();
        let mut dims: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            if d == 1 && self.dims()[lead + i] != 1 {
                dims.push(lead + i);
            }
        }
        self.sum_keepdims(&dims).reshape_to(shape.clone())
    }

    /// Number of elements equal to `value` in an integer or mask tensor.
    pub fn count_eq(&self, value: f64) -> usize {
        self.to_f64_vec().iter().filter(|&&v| v == value).count()
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn summing_across_rows_matches_the_strided_path_bit_for_bit() {
        let mut g = Generator::seed(11);
        for dims in [[3usize, 700, 600], [2, 5, 7], [1, 1300, 3]] {
            let x = Tensor::randn(dims, &mut g);
            for d in 0..2 {
                let fast = x.sum(d as isize, false);
                // Moving the summed dim last forces the general path.
                let slow = x.transpose(d, 2).contiguous().sum(2, false);
                let slow = if d == 0 { slow.t() } else { slow };
                assert_eq!(fast.dims(), slow.dims());
                assert_eq!(fast.to_vec::<f32>(), slow.to_vec::<f32>(), "dims {dims:?}, sum over {d}");
            }
        }
    }

    #[test]
    fn reductions_along_any_dim() {
        let x = Tensor::arange(0, 24).reshape(&[2, 3, 4]).to_dtype(DType::F64);
        let s = x.sum(1, false);
        assert_eq!(s.dims(), &[2, 4]);
        assert_eq!(s.to_vec::<f64>()[..4], [12.0, 15.0, 18.0, 21.0]);
        assert_eq!(x.sum(-1, true).dims(), &[2, 3, 1]);
        assert_eq!(x.mean(2, false).to_vec::<f64>()[0], 1.5);
        assert_eq!(x.max(0, false).to_vec::<f64>()[0], 12.0);
        assert_eq!(x.argmax(2, false).to_vec::<i64>(), vec![3; 6]);
        let v = Tensor::new_as([1.0, 2.0, 3.0, 4.0], DType::F64).unwrap();
        assert_eq!(v.var(0, false, true).item::<f64>(), 5.0 / 3.0);
        assert_eq!(v.var(0, false, false).item::<f64>(), 1.25);
        assert_eq!(x.sum_all().item::<f64>(), 276.0);
    }

    #[test]
    fn sum_to_shape_undoes_broadcasting() {
        let g = Tensor::ones([2, 3, 4], DType::F32);
        assert_eq!(g.sum_to_shape(&Shape::from([3, 1])).to_vec::<f32>(), vec![8.0; 3]);
        assert_eq!(g.sum_to_shape(&Shape::from(())).item::<f32>(), 24.0);
    }

    #[test]
    fn squared_norm_sums_every_tensor_in_f64_with_fixed_chunks() {
        let mut g = Generator::seed(12);
        let grads = [Tensor::randn([300, 700], &mut g), Tensor::randn([5], &mut g).to_dtype(DType::BF16)];
        // The same bits as the chunked f64 sum of the squares, tensor by tensor.
        let expected: f64 = grads.iter().map(|t| kernels::cpu::reduce::sum_squares_f64(&t.to_f64_vec(), |v| v)).sum();
        assert_eq!(Tensor::squared_norm(&grads), expected);
        let direct: f64 = grads.iter().flat_map(|t| t.to_f64_vec()).map(|v| v * v).sum();
        assert!((expected - direct).abs() < 1e-9 * direct);
        assert_eq!(Tensor::new([3.0, 4.0]).unwrap().sum_squares(), 25.0);
    }
}
