//! Matrix products on CUDA tensors through cuBLAS.
//!
//! `ops/matmul.rs` has already applied `torch.matmul`'s rules (1-D
//! operands, broadcast batch dimensions) and hands over `a` `[..batch, m,
//! k]` and `b` `[..batch, k, n]` as views. If each operand's batch entries
//! sit at one fixed distance from each other (any dense batch, or a stride
//! 0 for a weight shared by the whole batch), the whole product is one
//! strided-batched cuBLAS call that reads the views where they lie;
//! otherwise that operand is copied dense first. With autocast on (see
//! `autocast.rs`), f32 operands are rounded to bf16/f16 and cuBLAS writes
//! the f32 result directly.

use half::{bf16, f16};
use kernels::cuda::blas::{gemm_strided_batched, operand, BlasType, MatrixBatch};
use kernels::cuda::copy::copy_strided;
use kernels::cuda::layout::simplify;
use kernels::cuda::DeviceLayout;

use super::{bring, cuda_device, cuda_of, dense, device_layout, ok, slice, CudaElement};
use crate::dtype::DType;
use crate::tensor::Tensor;

/// How one operand's batch entries are spaced: `Some(stride)` when a single
/// stride reaches them all, for `batch` entries.
fn batch_stride(t: &Tensor) -> Option<usize> {
    let rank = t.rank();
    let (dims, strides) = simplify(&t.dims()[..rank - 2], &t.strides()[..rank - 2]);
    match dims.len() {
        0 => Some(0),
        1 => Some(strides[0]),
        _ => None,
    }
}

/// The operand as cuBLAS needs it: a view with a uniform batch stride and
/// a dense row or column; copied dense when it is not.
fn prepare(t: &Tensor, rows: usize, cols: usize) -> (Tensor, MatrixBatch) {
    let rank = t.rank();
    let (rs, cs) = (t.strides()[rank - 2], t.strides()[rank - 1]);
    if let (Some(bs), Some(_)) = (batch_stride(t), operand(rows, cols, rs, cs)) {
        return (
            t.clone(),
            MatrixBatch { offset: t.layout().offset(), row_stride: rs, col_stride: cs, batch_stride: bs },
        );
    }
    let d = super::shape::contiguous_copy(t);
    (d, MatrixBatch::dense(rows, cols, 0))
}

/// Inputs of the dtype cuBLAS should multiply: autocast's half type for
/// f32 tensors when it is on, else the tensor's own.
fn compute_dtype(dtype: DType) -> DType {
    match (dtype, crate::autocast::autocast()) {
        (DType::F32, Some(half)) => half,
        _ => dtype,
    }
}

/// `[..batch, m, k] · [..batch, k, n]` (both already expanded to the same
/// batch shape) into a dense `[..batch, m, n]` tensor.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let device = cuda_of(&[a, b]).expect("matmul: a CUDA operand");
    let (a, b) = (bring(a, device, "matmul"), bring(b, device, "matmul"));
    let (m, k, n) = (a.dim(-2), a.dim(-1), b.dim(-1));
    let mut out_dims = a.dims()[..a.rank() - 2].to_vec();
    out_dims.extend([m, n]);
    let batch: usize = out_dims[..out_dims.len() - 2].iter().product();
    let out_dtype = a.dtype();
    let dev = cuda_device(&a).clone();
    let mut out = alloc_out(&dev, out_dtype, batch * m * n);
    product_into(&a, &b, batch, m, k, n, &mut out, 0.0);
    out.into_tensor(&dev, out_dims)
}

/// `x·Wᵀ + b` (`Tensor::linear`): the bias is broadcast into
/// the output first and the product added onto it (β = 1).
pub(crate) fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let device = cuda_of(&[x, weight]).expect("linear: a CUDA operand");
    let (x, weight) = (bring(x, device, "linear"), bring(weight, device, "linear"));
    let (n, k) = (weight.dim(0), weight.dim(1));
    let x2 = x.reshape(&[1, -1, k as isize]);
    let m = x2.dim(1);
    let wt = weight.t().unsqueeze(0);
    let dev = cuda_device(&x).clone();
    let mut out = alloc_out(&dev, x.dtype(), m * n);
    let beta = match bias {
        Some(b) => {
            let b = bring(b, device, "linear");
            let rows = b.reshape(&[1, n as isize]).expand([m, n]);
            out.fill_from(&rows);
            1.0
        }
        None => 0.0,
    };
    product_into(&x2, &wt, 1, m, k, n, &mut out, beta);
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("rank ≥ 1") = n;
    out.into_tensor(&dev, dims)
}

/// An output buffer of the tensor's dtype.
enum Out {
    F32(kernels::cuda::cudarc::driver::CudaSlice<f32>),
    F16(kernels::cuda::cudarc::driver::CudaSlice<f16>),
    BF16(kernels::cuda::cudarc::driver::CudaSlice<bf16>),
}

fn alloc_out(dev: &kernels::cuda::CudaDevice, dtype: DType, n: usize) -> Out {
    match dtype {
        DType::F32 => Out::F32(ok(dev.alloc(n), "matmul")),
        DType::F16 => Out::F16(ok(dev.alloc(n), "matmul")),
        DType::BF16 => Out::BF16(ok(dev.alloc(n), "matmul")),
        d => panic!("matmul: needs float tensors, got {d}"),
    }
}

impl Out {
    fn into_tensor(self, dev: &std::sync::Arc<kernels::cuda::CudaDevice>, dims: Vec<usize>) -> Tensor {
        match self {
            Out::F32(s) => dense(dev, s, dims),
            Out::F16(s) => dense(dev, s, dims),
            Out::BF16(s) => dense(dev, s, dims),
        }
    }

    /// Copies a `[m, n]` view (the broadcast bias) into the buffer.
    fn fill_from(&mut self, rows: &Tensor) {
        let dev = cuda_device(rows).clone();
        let src = device_layout(rows.layout(), "linear");
        let dst = DeviceLayout::dense(rows.numel(), 0);
        fn copy<T: CudaElement>(
            dev: &kernels::cuda::CudaDevice,
            rows: &Tensor,
            out: &mut kernels::cuda::cudarc::driver::CudaSlice<T>,
            src: &DeviceLayout,
            dst: &DeviceLayout,
        ) {
            ok(copy_strided::<T>(dev, slice::<T>(rows), src, out, dst), "linear");
        }
        match self {
            Out::F32(s) => copy(&dev, rows, s, &src, &dst),
            Out::F16(s) => copy(&dev, rows, s, &src, &dst),
            Out::BF16(s) => copy(&dev, rows, s, &src, &dst),
        }
    }
}

/// Runs the batched product of `[batch, m, k]` and `[batch, k, n]` views
/// into `out` (dense `[batch, m, n]`), casting inputs for autocast.
#[allow(clippy::too_many_arguments)]
fn product_into(a: &Tensor, b: &Tensor, batch: usize, m: usize, k: usize, n: usize, out: &mut Out, beta: f32) {
    let compute = compute_dtype(a.dtype());
    let (a, b) = if compute != a.dtype() { (a.to_dtype(compute), b.to_dtype(compute)) } else { (a.clone(), b.clone()) };
    let (a, la) = prepare(&a, m, k);
    let (b, lb) = prepare(&b, k, n);
    let dev = cuda_device(&a).clone();
    fn run<I: BlasType + CudaElement, O: BlasType>(
        dev: &kernels::cuda::CudaDevice,
        a: &Tensor,
        la: MatrixBatch,
        b: &Tensor,
        lb: MatrixBatch,
        dims: (usize, usize, usize, usize),
        out: &mut kernels::cuda::cudarc::driver::CudaSlice<O>,
        beta: f32,
    ) {
        let (batch, m, k, n) = dims;
        ok(
            gemm_strided_batched::<I, O>(dev, batch, m, k, n, slice::<I>(a), la, slice::<I>(b), lb, out, 0, beta),
            "matmul",
        );
    }
    let dims = (batch, m, k, n);
    match (compute, out) {
        (DType::F32, Out::F32(o)) => run::<f32, f32>(&dev, &a, la, &b, lb, dims, o, beta),
        (DType::BF16, Out::F32(o)) => run::<bf16, f32>(&dev, &a, la, &b, lb, dims, o, beta),
        (DType::F16, Out::F32(o)) => run::<f16, f32>(&dev, &a, la, &b, lb, dims, o, beta),
        (DType::BF16, Out::BF16(o)) => run::<bf16, bf16>(&dev, &a, la, &b, lb, dims, o, beta),
        (DType::F16, Out::F16(o)) => run::<f16, f16>(&dev, &a, la, &b, lb, dims, o, beta),
        (c, _) => panic!("matmul: no CUDA product for {c} inputs"),
    }
}
