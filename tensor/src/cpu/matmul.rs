//! Matrix products of host tensors through the GEMM kernel of
//! `kernels::cpu::gemm` (f32 and f64; half precision computes in f32).
//!
//! No operand is copied: each batch entry is described to the GEMM kernel by
//! an offset and the last two strides, so transposed or sliced inputs (and
//! broadcast ones, whose batch stride is 0) are read where they lie.

use kernels::cpu::gemm::{gemm, GemmShape, Strided};

use crate::dtype::{DType, FloatElement};
use crate::tensor::Tensor;

/// `a` `[..batch, m, k]` · `b` `[..batch, k, n]` (one batch shape).
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, k, n) = (a.dim(-2), a.dim(-1), b.dim(-1));
    let mut out_dims = a.dims()[..a.rank() - 2].to_vec();
    out_dims.extend([m, n]);
    match a.dtype() {
        DType::F32 => gemm_into::<f32>(a, b, m, k, n, out_dims),
        DType::F64 => gemm_into::<f64>(a, b, m, k, n, out_dims),
        DType::F16 | DType::BF16 => {
            let wide = gemm_into::<f32>(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32), m, k, n, out_dims);
            wide.to_dtype(a.dtype())
        }
        d => unreachable!("matmul: checked to be float, got {d}"),
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

/// x·Wᵀ + b: every leading dimension of x is one batch of rows, so the
/// product is one `[M, K]·[K, N]` GEMM that adds the bias as it writes.
pub(crate) fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let (n, k) = (weight.dim(0), weight.dim(1));
    let x2 = x.reshape(&[-1, k as isize]);
    let y = match (bias, x.dtype()) {
        (None, _) => x2.matmul(&weight.t()),
        (Some(b), DType::F32) => biased_product::<f32>(&x2, weight, b),
        (Some(b), DType::F64) => biased_product::<f64>(&x2, weight, b),
        // Half precision computes in f32 inside matmul; add the bias after.
        (Some(b), _) => x2.matmul(&weight.t()).add(b),
    };
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("rank ≥ 1") = n;
    y.reshape_to(dims)
}

/// How a 2-D tensor lies in its buffer, for the GEMM.
fn operand(t: &Tensor) -> Strided {
    Strided { offset: t.layout().offset(), row_stride: t.strides()[0], col_stride: t.strides()[1] }
}

/// bias + x·Wᵀ, the kernel adding the bias as it writes each tile.
fn biased_product<T: FloatElement>(x2: &Tensor, weight: &Tensor, bias: &Tensor) -> Tensor {
    let (m, k, n) = (x2.dim(0), x2.dim(1), weight.dim(0));
    let bias = bias.contiguous_data::<T>();
    let wt = operand(weight).transposed();
    let (x, w) = (x2.storage_slice::<T>(), weight.storage_slice::<T>());
    let y = gemm(GemmShape { m, k, n }, x, &[operand(x2)], w, &[wt], Some(&bias), crate::pool::take::<T>(m * n));
    Tensor::from_contiguous(y, [m, n])
}
