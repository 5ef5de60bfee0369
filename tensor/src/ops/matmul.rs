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
//! No operand is copied: each batch entry is described to the GEMM kernel by
//! an offset and the last two strides, so transposed or sliced inputs (and
//! broadcast ones, whose batch stride is 0) are read where they lie.

use kernels::cpu::gemm::{gemm, GemmShape, Strided};

use crate::dtype::{DType, FloatElement};
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

impl Tensor {
    /// Matrix product following `torch.matmul`.
    pub fn matmul(&self, rhs: &Tensor) -> Tensor {
        assert_eq!(self.dtype(), rhs.dtype(), "matmul: dtypes {} and {} differ", self.dtype(), rhs.dtype());
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
    let mut out_dims = batch.clone();
    out_dims.extend([m, n]);
    if a.device().is_cuda() || b.device().is_cuda() {
        return crate::cuda::matmul_batched(&a, &b, m, k, n, out_dims);
    }
    match a.dtype() {
        DType::F32 => gemm_into::<f32>(&a, &b, m, k, n, out_dims),
        DType::F64 => gemm_into::<f64>(&a, &b, m, k, n, out_dims),
        DType::F16 | DType::BF16 => {
            let wide = gemm_into::<f32>(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32), m, k, n, out_dims);
            wide.to_dtype(a.dtype())
        }
        d => panic!("matmul: needs float tensors, got {d}"),
    }
}

/// The operand description for every batch entry of a `[..batch, r, c]` view.
fn batch_operands(t: &Tensor) -> Vec<Strided> {
    let rank = t.rank();
    let (rs, cs) = (t.strides()[rank - 2], t.strides()[rank - 1]);
    // The offsets of the batch entries are the "row offsets" of the layout
    // restricted to the batch dimensions.
    let batch_layout = crate::layout::Layout::new(
        crate::shape::Shape(t.dims()[..rank - 2].iter().copied().chain([1]).collect()),
        t.strides()[..rank - 2].iter().copied().chain([1]).collect(),
        t.layout().offset(),
    );
    batch_layout.row_offsets().into_iter().map(|offset| Strided { offset, row_stride: rs, col_stride: cs }).collect()
}

fn gemm_into<T: FloatElement>(a: &Tensor, b: &Tensor, m: usize, k: usize, n: usize, out_dims: Vec<usize>) -> Tensor {
    let (sa, sb) = (batch_operands(a), batch_operands(b));
    let buffer = crate::pool::take(sa.len() * m * n);
    let out = gemm(GemmShape { m, k, n }, a.storage_slice::<T>(), &sa, b.storage_slice::<T>(), &sb, None, buffer);
    Tensor::from_contiguous(out, out_dims)
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
