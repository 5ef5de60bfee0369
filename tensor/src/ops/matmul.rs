//! Matrix multiplication with PyTorch's `matmul` rules.
//!
//! - 2-D × 2-D: `[m, k] · [k, n] → [m, n]`.
//! - 1-D operands: a vector on the left is a `[1, k]` row, on the right a
//!   `[k, 1]` column; the added dimension is removed from the result.
//! - More dimensions: everything before the last two is a batch, broadcast
//!   between the operands: `[B, 1, m, k] · [h, k, n] → [B, h, m, n]`.
//!
//! A batch times a single matrix, `[.., m, k] · [k, n]`, is one GEMM with
//! the batch folded into the rows (as PyTorch does).
//!
//! Operands are views: the batch dimensions are broadcast by `expand`
//! (stride 0), and the backends (`cpu/matmul.rs`, `cuda/matmul.rs`) read
//! transposed, sliced or broadcast inputs where they lie.

use crate::backend;
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product following `torch.matmul`.
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        assert_eq!(self.dtype(), rhs.dtype(), "matmul: dtypes {} and {} differ", self.dtype(), rhs.dtype());
        assert!(self.dtype().is_float(), "matmul: needs float tensors, got {}", self.dtype());
        assert!(
            self.rank() >= 1 && rhs.rank() >= 1,
            "matmul: shapes {} and {} need at least one dimension",
            self.shape(),
            rhs.shape()
        );
        let a = if self.rank() == 1 { self.unsqueeze(0) } else { self.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(1) } else { rhs.clone() };
        if a.rank() > 2 && b.rank() == 2 && a.dim(-1) == b.dim(0) {
            // `[.., m, k] · [k, n]`: all leading rows are one `[M, k]` matrix,
            // so one large GEMM instead of a batch of small ones sharing b.
            let mut dims = a.dims().to_vec();
            *dims.last_mut().unwrap() = b.dim(1);
            return a.reshape(&[-1, b.dim(0) as isize]).matmul(&b).reshape_to(dims);
        }
        let mut out = matmul_nd(&a, &b, self, rhs);
        if rhs.rank() == 1 {
            out = out.squeeze(-1);
        }
        if self.rank() == 1 {
            out = out.squeeze(if rhs.rank() == 1 { 0 } else { -2 });
        }
        out
    }
}

/// `a` `[..batch_a, m, k]` · `b` `[..batch_b, k, n]` with the batch
/// dimensions broadcast together.
fn matmul_nd(a: &Tensor, b: &Tensor, orig_a: &Tensor, orig_b: &Tensor) -> Tensor {
    let (m, k) = (a.dim(-2), a.dim(-1));
    let (k2, n) = (b.dim(-2), b.dim(-1));
    assert_eq!(k, k2, "matmul: shapes {} and {} have inner sizes {k} and {k2}", orig_a.shape(), orig_b.shape());
    let batch_a = &a.dims()[..a.rank() - 2];
    let batch_b = &b.dims()[..b.rank() - 2];
    let batch = broadcast_shapes(batch_a, batch_b).unwrap_or_else(|| {
        panic!("matmul: batch dimensions of {} and {} cannot broadcast", orig_a.shape(), orig_b.shape())
    });
    let full = |t: &Tensor, rows: usize, cols: usize| {
        let mut dims = batch.clone();
        dims.extend([rows, cols]);
        t.expand(dims)
    };
    let (a, b) = (full(a, m, k), full(b, k, n));
    backend::of(&[&a, &b]).matmul(&a, &b)
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn matmul_shapes_follow_torch() {
        let a = Tensor::arange(0, 6).reshape(&[2, 3]).to_dtype(DType::F32);
        let aat = a.matmul(&a.t());
        assert_eq!(aat.to_vec::<f32>(), vec![5., 14., 14., 50.]);
        let v = Tensor::new([1.0, 1.0, 1.0]).unwrap();
        assert_eq!(a.matmul(&v).to_vec::<f32>(), vec![3., 12.]);
        assert_eq!(v.matmul(&v).dims(), &[] as &[usize]);
        assert_eq!(v.matmul(&a.t()).dims(), &[2]);
        let batch = Tensor::ones([4, 1, 2, 3], DType::F32);
        let w = Tensor::ones([5, 3, 7], DType::F32);
        let out = batch.matmul(&w);
        assert_eq!(out.dims(), &[4, 5, 2, 7]);
        assert!(out.to_vec::<f32>().iter().all(|&x| x == 3.0));
    }

    #[test]
    #[should_panic(expected = "matmul: shapes [2, 3] and [2, 3] have inner sizes 3 and 2")]
    fn inner_size_mismatch_names_both_shapes() {
        let a = Tensor::zeros([2, 3], DType::F32);
        a.matmul(&a);
    }
}
