//! Matrix products through cuBLAS.
//!
//! cuBLAS, like Fortran, stores matrices column-major; our tensors are
//! row-major. The two views are transposes of each other, so the row-major
//! product C = A·B is computed as the column-major product Cᵀ = Bᵀ·Aᵀ:
//! B goes first, and each operand's own strides decide whether cuBLAS reads
//! it as is (`N`) or transposed (`T`) — a transposed tensor view costs
//! nothing ([`operand`]). Batches of products that sit at a fixed distance
//! from each other in memory (`[B, H, T, D]` attention heads, or one weight
//! shared by a whole batch with distance 0) go in one strided-batched call.
//!
//! Precision: every product accumulates in f32 (`CUBLAS_COMPUTE_32F`).
//! f32 inputs are multiplied in full f32 unless TF32 is switched on
//! ([`set_tf32`]): tensor cores then round the inputs to 10 mantissa bits,
//! several times faster, but no longer within the parity tests' 1e-5.
//! f16/bf16 inputs use tensor cores and may write f32 or their own type:
//! bf16 inputs with an f32 output is the matmul of mixed-precision
//! training (see the tensor crate's autocast).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use cudarc::cublas::{result, sys};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use half::{bf16, f16};

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::{CudaError, Result};

static TF32: AtomicBool = AtomicBool::new(false);

/// Lets f32 products use TF32 tensor cores (faster, ~1e-3 relative error).
pub fn set_tf32(on: bool) {
    TF32.store(on, Ordering::Relaxed);
}

pub fn tf32_enabled() -> bool {
    TF32.load(Ordering::Relaxed)
}

/// A float type cuBLAS knows.
pub trait BlasType: CudaFloat {
    const DATA_TYPE: sys::cudaDataType;
}
impl BlasType for f32 {
    const DATA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_32F;
}
impl BlasType for f16 {
    const DATA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_16F;
}
impl BlasType for bf16 {
    const DATA_TYPE: sys::cudaDataType = sys::cudaDataType::CUDA_R_16BF;
}

/// Where the matrices of one operand are: element (r, c) of batch entry b
/// is at `offset + b·batch_stride + r·row_stride + c·col_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixBatch {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_stride: usize,
}

impl MatrixBatch {
    /// Dense row-major `[batch, rows, cols]` from `offset`.
    pub fn dense(rows: usize, cols: usize, offset: usize) -> MatrixBatch {
        MatrixBatch { offset, row_stride: cols, col_stride: 1, batch_stride: rows * cols }
    }
}

/// How cuBLAS should read the *transpose* of a row-major `rows × cols`
/// matrix with the given strides (the Bᵀ and Aᵀ of Cᵀ = BᵀAᵀ): `N` with a
/// leading dimension when rows are dense (column stride 1), `T` when
/// columns are dense (row stride 1). `None` when neither is dense: the
/// caller copies such an operand first. A size-1 dimension's stride never
/// matters, and is treated as whatever makes the matrix dense.
pub fn operand(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Option<(bool, usize)> {
    let (rows, cols) = (rows.max(1), cols.max(1));
    let rows_dense = (col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= cols);
    if rows_dense {
        let ld = if rows == 1 { cols } else { row_stride };
        return Some((false, ld.max(1)));
    }
    let cols_dense = (row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= rows);
    if cols_dense {
        let ld = if cols == 1 { rows } else { col_stride };
        return Some((true, ld.max(1)));
    }
    None
}

/// The element range an operand's batch touches, for the bounds check.
fn last_element(m: &MatrixBatch, batch: usize, rows: usize, cols: usize) -> usize {
    m.offset + (batch - 1) * m.batch_stride + (rows - 1) * m.row_stride + (cols - 1) * m.col_stride
}

fn as_int(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| CudaError::Unsupported(format!("matmul: {what} = {x} exceeds cuBLAS's 32-bit sizes")))
}

/// `C[b] = A[b]·B[b]` for b < batch, with A `[m, k]`, B `[k, n]` read
/// through their strides and C written dense `[batch, m, n]` from
/// `c_offset` (`beta = 1` adds to C instead of overwriting it).
#[allow(clippy::too_many_arguments)]
pub fn gemm_strided_batched<I: BlasType, O: BlasType>(
    dev: &CudaDevice,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &CudaSlice<I>,
    la: MatrixBatch,
    b: &CudaSlice<I>,
    lb: MatrixBatch,
    c: &mut CudaSlice<O>,
    c_offset: usize,
    beta: f32,
) -> Result<()> {
    if batch == 0 || m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // An empty sum: C = beta·C, which for beta 0 is zeros.
        if beta == 0.0 {
            dev.fill_bytes(c, 0)?;
            return Ok(());
        }
        return Err(CudaError::Unsupported("matmul: accumulating an empty product".into()));
    }
    let (a_trans, lda) = operand(m, k, la.row_stride, la.col_stride)
        .ok_or_else(|| CudaError::Unsupported("matmul: left operand has no dense dimension".into()))?;
    let (b_trans, ldb) = operand(k, n, lb.row_stride, lb.col_stride)
        .ok_or_else(|| CudaError::Unsupported("matmul: right operand has no dense dimension".into()))?;
    if last_element(&la, batch, m, k) >= a.len() || last_element(&lb, batch, k, n) >= b.len() {
        return Err(CudaError::Unsupported("matmul: an operand's strides reach past its buffer".into()));
    }
    if c_offset + batch * m * n > c.len() {
        return Err(CudaError::Unsupported("matmul: the output buffer is too small".into()));
    }
    let op = |t: bool| if t { sys::cublasOperation_t::CUBLAS_OP_T } else { sys::cublasOperation_t::CUBLAS_OP_N };
    let compute = if I::NAME == "f32" && tf32_enabled() {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32
    } else {
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F
    };
    let (alpha, beta) = (1.0f32, beta);
    let stream = dev.stream().clone();
    let blas = dev.blas();
    let (a_ptr, _a_guard) = a.device_ptr(&stream);
    let (b_ptr, _b_guard) = b.device_ptr(&stream);
    let (c_ptr, _c_guard) = c.device_ptr_mut(&stream);
    let size_i = std::mem::size_of::<I>() as u64;
    let size_o = std::mem::size_of::<O>() as u64;
    let a_ptr = a_ptr + la.offset as u64 * size_i;
    let b_ptr = b_ptr + lb.offset as u64 * size_i;
    let c_ptr = c_ptr + c_offset as u64 * size_o;
    // Column-major Cᵀ (n × m, ld n) = op(B)ᵀ-view (n × k) · op(A)ᵀ-view (k × m).
    // SAFETY: the three pointers address live buffers on this device's
    // stream (the handle is bound to it); the bounds checks above keep
    // every element cuBLAS reads or writes inside them; alpha and beta are
    // f32, as CUBLAS_COMPUTE_32F requires.
    unsafe {
        result::gemm_strided_batched_ex(
            *blas.handle(),
            op(b_trans),
            op(a_trans),
            as_int(n, "n")?,
            as_int(m, "m")?,
            as_int(k, "k")?,
            &alpha as *const f32 as *const c_void,
            b_ptr as *const c_void,
            I::DATA_TYPE,
            as_int(ldb, "ldb")?,
            lb.batch_stride as i64,
            a_ptr as *const c_void,
            I::DATA_TYPE,
            as_int(lda, "lda")?,
            la.batch_stride as i64,
            &beta as *const f32 as *const c_void,
            c_ptr as *mut c_void,
            O::DATA_TYPE,
            as_int(n, "ldc")?,
            (m * n) as i64,
            as_int(batch, "batch")?,
            compute,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )?;
    }
    Ok(())
}

/// One product `C = A·B` into a new dense `[m, n]` buffer.
#[allow(clippy::too_many_arguments)]
pub fn gemm<I: BlasType, O: BlasType>(
    dev: &CudaDevice,
    m: usize,
    k: usize,
    n: usize,
    a: &CudaSlice<I>,
    la: MatrixBatch,
    b: &CudaSlice<I>,
    lb: MatrixBatch,
) -> Result<CudaSlice<O>> {
    let mut c = dev.alloc::<O>(m * n)?;
    gemm_strided_batched(dev, 1, m, k, n, a, la, b, lb, &mut c, 0, 0.0)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the transposed matrix the way cuBLAS would, to check `operand`.
    fn read_transpose_as_cublas(buf: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Vec<f32> {
        let (trans, ld) = operand(rows, cols, rs, cs).expect("dense operand");
        // The matrix cuBLAS sees is Xᵀ: cols × rows, column-major.
        let mut out = Vec::new();
        for c in 0..rows {
            for r in 0..cols {
                // element (r, c) of op(stored)
                let v = if trans { buf[c + r * ld] } else { buf[r + c * ld] };
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn operands_are_read_as_their_transposes() {
        // X = [[0, 1, 2], [3, 4, 5]] row-major (2×3), and the same values
        // stored transposed (a `.t()` view of a 3×2 buffer).
        let dense: Vec<f32> = (0..6).map(|v| v as f32).collect();
        // Column c of Xᵀ is row c of X.
        let want_by_columns: Vec<f32> = (0..2).flat_map(|c| (0..3).map(move |r| (c * 3 + r) as f32)).collect();
        assert_eq!(read_transpose_as_cublas(&dense, 2, 3, 3, 1), want_by_columns);
        let transposed_storage = vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]; // column-major X
        assert_eq!(read_transpose_as_cublas(&transposed_storage, 2, 3, 1, 2), want_by_columns);
    }

    #[test]
    fn size_one_dimensions_and_padding() {
        assert_eq!(operand(1, 5, 999, 1), Some((false, 5)));
        assert_eq!(operand(5, 1, 1, 999), Some((false, 1)));
        assert_eq!(operand(4, 3, 8, 1), Some((false, 8))); // rows padded to 8
        assert_eq!(operand(4, 3, 1, 4), Some((true, 4)));
        assert_eq!(operand(4, 3, 6, 2), None);
        assert_eq!(operand(4, 3, 2, 1), None); // rows overlap
    }
}
