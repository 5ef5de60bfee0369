//! Matrix multiply, C = A·B (or C += A·B), on strided operands.
//!
//! A is m×k, B is k×n, C is m×n. An operand is a slice plus an offset and two
//! strides: element (i, j) sits at `offset + i·row_stride + j·col_stride`.
//! A transpose is the same slice with the strides swapped, so `x.matmul(w.t())`
//! never copies `w`. C is always dense and row-major (row stride n).
//!
//! The inner work is a packed SIMD kernel run single-threaded inside each
//! rayon task: our own (`sgemm.rs`) for f32 on CPUs with AVX-512,
//! `matrixmultiply`'s sgemm/dgemm otherwise. Parallelism
//! comes from splitting the problem ourselves: across batch entries when there
//! are several, otherwise across blocks of C's rows (or columns, when there are
//! too few rows to share). Every block is computed by exactly one task with
//! the same arithmetic as a serial run, so results do not depend on threads.

use rayon::prelude::*;

use super::SendPtr;

/// Where one operand lives inside its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strided {
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Strided {
    /// A dense row-major matrix with `cols` columns starting at `offset`.
    pub fn row_major(offset: usize, cols: usize) -> Self {
        Strided { offset, row_stride: cols, col_stride: 1 }
    }

    /// One past the largest index a rows×cols view touches (0 when empty).
    fn end(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        self.offset + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride + 1
    }

    /// The same operand starting `rows` rows further down.
    pub fn shifted_rows(self, rows: usize) -> Self {
        self.shifted(rows, 0)
    }

    fn shifted(self, rows: usize, cols: usize) -> Self {
        Strided { offset: self.offset + rows * self.row_stride + cols * self.col_stride, ..self }
    }
}

/// Element types `matrixmultiply` has a kernel for.
pub trait GemmElement: Copy + Default + Send + Sync + 'static {
    /// # Safety
    /// The pointers and strides must describe valid m×k, k×n and m×n
    /// matrices, and `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        accumulate: bool,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// C `[1, n]` (+)= a `[1, k]` · B for a B whose columns are contiguous
    /// (`x·Wᵀ` with W stored `[n, k]`), through the matrix-vector kernel of
    /// `gemv`; false when this type has none and the GEMM must do it.
    ///
    /// # Safety
    /// As for `raw_gemm`, with `a` k contiguous elements and column j of B
    /// the k contiguous elements at `b + j·b_col_stride`.
    unsafe fn raw_gemv(
        _k: usize,
        _n: usize,
        _a: *const Self,
        _b: *const Self,
        _b_col_stride: usize,
        _accumulate: bool,
        _c: *mut Self,
    ) -> bool {
        false
    }

    /// C `[m, n]` (row stride `rsc`, column stride 1) (+)= A·B, or
    /// C = bias + A·B, through our own packed kernel (`sgemm`); false when
    /// this type or CPU has none and `raw_gemm` must do it.
    ///
    /// # Safety
    /// As for `raw_gemm`, and `bias` n readable elements.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_own_gemm(
        _m: usize,
        _k: usize,
        _n: usize,
        _a: (*const Self, isize, isize),
        _b: (*const Self, isize, isize),
        _accumulate: bool,
        _bias: Option<*const Self>,
        _c: *mut Self,
        _rsc: usize,
    ) -> bool {
        false
    }
}

macro_rules! gemm_element {
    ($t:ty, $f:path, { $($gemv:tt)* }) => {
        impl GemmElement for $t {
            unsafe fn raw_gemm(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                accumulate: bool,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                let beta = if accumulate { 1.0 } else { 0.0 };
                // SAFETY: forwarded from the caller's contract above.
                unsafe { $f(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
            $($gemv)*
        }
    };
}
gemm_element!(f32, matrixmultiply::sgemm, {
    unsafe fn raw_gemv(
        k: usize,
        n: usize,
        a: *const f32,
        b: *const f32,
        b_col_stride: usize,
        accumulate: bool,
        c: *mut f32,
    ) -> bool {
        // SAFETY: forwarded from the caller's contract.
        unsafe { super::gemv::gemv_rows(std::slice::from_raw_parts(a, k), b, b_col_stride, n, c, accumulate) };
        true
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_own_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: (*const f32, isize, isize),
        b: (*const f32, isize, isize),
        accumulate: bool,
        bias: Option<*const f32>,
        c: *mut f32,
        rsc: usize,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        if super::sgemm::available() {
            use super::sgemm::{sgemm, View};
            let (a, b) = (View { ptr: a.0, rows: a.1, cols: a.2 }, View { ptr: b.0, rows: b.1, cols: b.2 });
            // SAFETY: forwarded from the caller's contract; AVX-512F checked.
            unsafe { sgemm(m, k, n, a, b, c, rsc, accumulate, bias) };
            return true;
        }
        let _ = (m, k, n, a, b, accumulate, bias, c, rsc);
        false
    }
});
gemm_element!(f64, matrixmultiply::dgemm, {});

/// Below this many multiply-adds a single thread is faster than splitting.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// One GEMM, parallel over blocks of C. `accumulate` adds into C instead of
/// overwriting it (gradients accumulate this way).
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: &mut [T],
    accumulate: bool,
) {
    batched_gemm(m, k, n, a, &[sa], b, &[sb], c, accumulate);
}

/// `batch` GEMMs: entry i multiplies A at `sa[i]` by B at `sb[i]` into the
/// i-th dense m×n block of C. Batch entries may share operands (broadcasting
/// gives them equal offsets), never output.
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    c: &mut [T],
    accumulate: bool,
) {
    assert_eq!(c.len(), sa.len() * m * n, "gemm: output holds {} elements, need {}", c.len(), sa.len() * m * n);
    if k == 0 && !accumulate {
        c.fill(T::default());
    }
    // SAFETY: `c` is an exclusive borrow of exactly batch·m·n elements.
    unsafe { batched_gemm_raw(m, k, n, a, sa, b, sb, c.as_mut_ptr(), accumulate, None) }
}

/// One GEMM on the calling thread into a block of a larger matrix, C's rows
/// `c_row_stride` apart: for kernels that are parallel already and whose
/// tasks write disjoint blocks of one buffer (attention's heads, side by
/// side in the rows of a `[B, T, C]` output).
///
/// # Safety
/// `c` must point at m rows of n writable elements, `c_row_stride` apart,
/// that nothing else reads or writes during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_serial_raw<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: *mut T,
    c_row_stride: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= c_row_stride, "gemm: {n} columns in rows {c_row_stride} apart");
    assert!(sa.end(m, k) <= a.len(), "gemm: A operand {sa:?} ({m}x{k}) overruns a buffer of {}", a.len());
    assert!(sb.end(k, n) <= b.len(), "gemm: B operand {sb:?} ({k}x{n}) overruns a buffer of {}", b.len());
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C holds n elements (the caller's contract).
                unsafe { std::ptr::write_bytes(c.add(i * c_row_stride), 0, n) };
            }
        }
        return;
    }
    gemm_block(m, k, n, a, sa, b, sb, c, c_row_stride, accumulate, None)
}

/// Like [`batched_gemm`] into `c`, an empty vector (its capacity is used,
/// growing it if needed), which is returned filled. The buffer is never
/// zeroed first: with β = 0 the kernel writes every element without reading
/// it, so filling it beforehand would be a wasted pass over memory.
#[allow(clippy::too_many_arguments)]
pub fn batched_gemm_new<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    c: Vec<T>,
) -> Vec<T> {
    gemm_new(m, k, n, a, sa, b, sb, None, c)
}

/// A linear layer's y = bias + A·B (A the `[m, k]` input rows, B the
/// transposed weight, bias `[n]`) into `c`, an empty vector as for
/// [`batched_gemm_new`]. The kernel adds the bias while it writes each tile
/// of C, so there is no separate pass broadcasting it over C first.
#[allow(clippy::too_many_arguments)]
pub fn linear_gemm_new<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    bias: &[T],
    c: Vec<T>,
) -> Vec<T> {
    assert_eq!(bias.len(), n, "gemm: a bias of {} for {n} columns", bias.len());
    gemm_new(m, k, n, a, &[sa], b, &[sb], Some(bias), c)
}

/// The two above: every C starting from zero or from the bias.
#[allow(clippy::too_many_arguments)]
fn gemm_new<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    bias: Option<&[T]>,
    mut c: Vec<T>,
) -> Vec<T> {
    let len = sa.len() * m * n;
    c.clear();
    if k == 0 {
        match bias {
            Some(bias) => (0..sa.len() * m).for_each(|_| c.extend_from_slice(bias)),
            None => c.resize(len, T::default()),
        }
        return c;
    }
    c.reserve(len);
    // SAFETY: the capacity holds `len` elements; with k > 0 and β = 0 the
    // kernel writes every one of them before `set_len` exposes them.
    unsafe {
        batched_gemm_raw(m, k, n, a, sa, b, sb, c.as_mut_ptr(), false, bias);
        c.set_len(len);
    }
    c
}

/// With a `bias` (n elements, `accumulate` false), every C starts from it.
///
/// # Safety
/// `c` must point to `sa.len()·m·n` writable elements that nothing else
/// accesses during the call; they may be uninitialised when `accumulate` is
/// false and k > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn batched_gemm_raw<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    c: *mut T,
    accumulate: bool,
    bias: Option<&[T]>,
) {
    let batch = sa.len();
    assert_eq!(batch, sb.len(), "gemm: {} A operands but {} B operands", batch, sb.len());
    for (x, y) in sa.iter().zip(sb) {
        assert!(x.end(m, k) <= a.len(), "gemm: A operand {x:?} ({m}x{k}) overruns a buffer of {}", a.len());
        assert!(y.end(k, n) <= b.len(), "gemm: B operand {y:?} ({k}x{n}) overruns a buffer of {}", b.len());
    }
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let work = batch * m * n * k;
    let threads = rayon::current_num_threads();
    let c_ptr = SendPtr(c);
    let block = move |i: usize| {
        let base = c_ptr;
        // SAFETY: block i of C is m·n elements at offset i·m·n, inside the
        // caller's buffer and touched by no other task.
        gemm_block(m, k, n, a, sa[i], b, sb[i], unsafe { base.0.add(i * m * n) }, n, accumulate, bias)
    };
    if work < PARALLEL_MIN_WORK || threads == 1 {
        (0..batch).for_each(block);
        return;
    }
    if batch >= threads {
        (0..batch).into_par_iter().for_each(block);
        return;
    }
    // Few, large matrices: cut each C into stripes. A task packs (copies
    // into the kernel's panel layout) the whole of the operand it does not
    // cut: row stripes each pack all of B (k×n), column stripes all of A
    // (m×k). So cut along the longer side and repack the smaller operand: a
    // linear layer's forward (m = 256 tokens, n = 2,304 outputs) is cut by
    // columns, its weight gradient (m = 2,304) by rows.
    let tasks_per_matrix = threads.div_ceil(batch) * 2;
    let by_rows = m >= n;
    let extent = if by_rows { m } else { n };
    // Column stripes are kept a multiple of 16 wide so SIMD panels stay whole.
    let align = if by_rows { 1 } else { 16 };
    let stripe = extent.div_ceil(tasks_per_matrix).div_ceil(align) * align;
    let stripes = extent.div_ceil(stripe);
    (0..batch * stripes).into_par_iter().for_each(|task| {
        let (i, s) = (task / stripes, task % stripes);
        let start = s * stripe;
        let len = stripe.min(extent - start);
        let base = c_ptr;
        // SAFETY: each task's block of C (a row or column stripe of batch
        // entry i) is disjoint from every other task's.
        unsafe {
            let c_block = base.0.add(i * m * n);
            if by_rows {
                let rows = sa[i].shifted(start, 0);
                gemm_block(len, k, n, a, rows, b, sb[i], c_block.add(start * n), n, accumulate, bias);
            } else {
                let (cols, bias) = (sb[i].shifted(0, start), bias.map(|bias| &bias[start..start + len]));
                gemm_block(m, k, len, a, sa[i], b, cols, c_block.add(start), n, accumulate, bias);
            }
        }
    });
}

/// One single-threaded GEMM into C at `c` with row stride `rsc`, starting
/// from C itself (`accumulate`), from the `bias` (n elements) or from zero.
#[allow(clippy::too_many_arguments)]
fn gemm_block<T: GemmElement>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: *mut T,
    rsc: usize,
    accumulate: bool,
    bias: Option<&[T]>,
) {
    // SAFETY: the callers checked that A and B stay inside their slices
    // (`Strided::end`), and `c` points at an m×n block with row stride `rsc`
    // inside the output, which is a separate `&mut` borrow so it cannot alias.
    unsafe {
        let a_start = a.as_ptr().add(sa.offset);
        let b_start = b.as_ptr().add(sb.offset);
        let a_view = (a_start, sa.row_stride as isize, sa.col_stride as isize);
        let b_view = (b_start, sb.row_stride as isize, sb.col_stride as isize);
        // One row against contiguous columns (a decode step's x·Wᵀ) streams
        // W once through the matrix-vector kernel instead of packing it.
        let gemv_fits = m == 1 && sa.col_stride == 1 && sb.row_stride == 1;
        if !gemv_fits && T::raw_own_gemm(m, k, n, a_view, b_view, accumulate, bias.map(<[T]>::as_ptr), c, rsc) {
            return;
        }
        // The other kernels only add to C or overwrite it: put the bias in
        // C first and add to it.
        let accumulate = match bias {
            Some(bias) => {
                for i in 0..m {
                    std::slice::from_raw_parts_mut(c.add(i * rsc), n).copy_from_slice(bias);
                }
                true
            }
            None => accumulate,
        };
        if gemv_fits && T::raw_gemv(k, n, a_start, b_start, sb.col_stride, accumulate, c) {
            return;
        }
        T::raw_gemm(
            m,
            k,
            n,
            a_start,
            sa.row_stride as isize,
            sa.col_stride as isize,
            b_start,
            sb.row_stride as isize,
            sb.col_stride as isize,
            accumulate,
            c,
            rsc as isize,
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], sa: Strided, b: &[f64], sb: Strided) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    c[i * n + j] += a[sa.offset + i * sa.row_stride + p * sa.col_stride]
                        * b[sb.offset + p * sb.row_stride + j * sb.col_stride];
                }
            }
        }
        c
    }

    #[test]
    fn transposed_and_offset_operands_match_naive() {
        let (m, k, n) = (37, 19, 53);
        let a: Vec<f64> = (0..m * k + 3).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n + 5).map(|i| (i as f64 * 0.11).cos()).collect();
        // A stored transposed (k×m row-major) starting at offset 3.
        let sa = Strided { offset: 3, row_stride: 1, col_stride: m };
        let sb = Strided::row_major(5, n);
        let mut c = vec![0.0; m * n];
        gemm(m, k, n, &a, sa, &b, sb, &mut c, false);
        let want = naive(m, k, n, &a, sa, &b, sb);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn a_bias_start_equals_filling_c_with_it_then_accumulating() {
        // f32 (our kernel: full and ragged tiles, row and column stripes,
        // one row through the matrix-vector path) and f64 (the fallback).
        for &(m, k, n) in &[(300, 400, 45), (7, 300, 700), (1, 64, 40), (13, 0, 5)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.013).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.007).cos()).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 3.0).collect();
            let (sa, sb) = (Strided::row_major(0, k), Strided { offset: 0, row_stride: 1, col_stride: k });
            let got = linear_gemm_new(m, k, n, &a, sa, &b, sb, &bias, Vec::new());
            let mut want: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
            gemm(m, k, n, &a, sa, &b, sb, &mut want, true);
            assert_eq!(got, want, "f32 {m}x{k}x{n}");
            let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let got = linear_gemm_new(m, k, n, &widen(&a), sa, &widen(&b), sb, &widen(&bias), Vec::new());
            let mut want: Vec<f64> = (0..m).flat_map(|_| widen(&bias)).collect();
            gemm(m, k, n, &widen(&a), sa, &widen(&b), sb, &mut want, true);
            assert_eq!(got, want, "f64 {m}x{k}x{n}");
        }
    }

    #[test]
    fn parallel_row_and_column_splits_match_serial() {
        for &(m, k, n) in &[(300, 64, 40), (1, 512, 1000), (3, 300, 700)] {
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.013).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.007).cos()).collect();
            let mut c = vec![1.0; m * n];
            gemm(m, k, n, &a, Strided::row_major(0, k), &b, Strided::row_major(0, n), &mut c, true);
            let want = naive(m, k, n, &a, Strided::row_major(0, k), &b, Strided::row_major(0, n));
            for (x, y) in c.iter().zip(&want) {
                assert!((x - (y + 1.0)).abs() < 1e-9, "{m}x{k}x{n}: {x} vs {}", y + 1.0);
            }
        }
    }

    #[test]
    fn batched_entries_can_share_an_operand() {
        let (m, k, n) = (4, 3, 2);
        let a: Vec<f32> = (0..2 * m * k).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|i| i as f32 - 2.0).collect();
        let sa = [Strided::row_major(0, k), Strided::row_major(m * k, k)];
        let sb = [Strided::row_major(0, n); 2];
        let mut c = vec![0.0f32; 2 * m * n];
        batched_gemm(m, k, n, &a, &sa, &b, &sb, &mut c, false);
        // Row 0 of the second batch entry: [12,13,14]·B.
        let want0 = 12.0 * -2.0 + 13.0 * 0.0 + 14.0 * 2.0;
        assert_eq!(c[m * n], want0);
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn out_of_bounds_operand_panics() {
        let a = vec![0.0f32; 5];
        let b = vec![0.0f32; 6];
        let mut c = vec![0.0f32; 4];
        gemm(2, 3, 2, &a, Strided::row_major(0, 3), &b, Strided::row_major(0, 2), &mut c, false);
    }
}
