//! Matrix multiply, C = A·B (or C = bias + A·B), on strided operands.
//!
//! A is m×k, B is k×n, C is m×n (the three sizes travel together as a
//! [`GemmShape`]). An operand is a slice plus a [`Strided`]: element (i, j)
//! sits at `offset + i·row_stride + j·col_stride`. A transpose is the same
//! slice with the strides swapped, so `x.matmul(w.t())` never copies `w`.
//!
//! Read [`gemm_reference`] first: the definition, three loops, in f64. The
//! fast route, [`gemm`], computes the same sums in another order, in f32 or
//! f64, on every core:
//! - Each block of C is one single-threaded kernel call
//!   ([`GemmElement::gemm_block`]): for f32 our packed AVX-512 kernel
//!   (`sgemm.rs`) where the CPU has it, and for one row against a weight
//!   stored `[n, k]` (a decode step's x·Wᵀ) the matrix-vector kernel
//!   (`gemv.rs`), which streams W once instead of packing it, and for one
//!   row against B's contiguous rows (a decode step's p·V) `sgemm_row.rs`,
//!   the packed kernel's sums without the packing;
//!   `matrixmultiply`'s sgemm/dgemm otherwise.
//! - Parallelism comes from splitting the problem ourselves: across batch
//!   entries when there are several, otherwise across stripes of C's rows
//!   (or columns, when there are too few rows to share). Every block is
//!   computed by exactly one task with the same arithmetic as a serial run,
//!   so results do not depend on the number of threads.
//! - A linear layer's bias is where C starts ([`Start::Bias`]): the kernel
//!   adds it as it writes each tile, instead of a pass of its own.
//!
//! [`gemm_serial`] is the same kernel on the calling thread, writing into a
//! block of a larger buffer, for kernels that are parallel already
//! (attention's heads).

use rayon::prelude::*;

use super::gemv::gemv_rows;
use super::SendPtr;

/// C = A·B by the definition, C[i, j] = Σ_p A[i, p]·B[p, j], in f64: the
/// reference that [`gemm`] is tested against.
///
/// A `[m, k]` lies at `sa` in `a`, B `[k, n]` at `sb` in `b`; C comes back
/// dense and row-major `[m, n]`.
pub fn gemm_reference(shape: GemmShape, a: &[f64], sa: Strided, b: &[f64], sb: Strided) -> Vec<f64> {
    let GemmShape { m, k, n } = shape;
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0.0;
            for p in 0..k {
                sum += a[sa.index(i, p)] * b[sb.index(p, j)];
            }
            c[i * n + j] = sum;
        }
    }
    c
}

/// The sizes of one product: A `[m, k]` · B `[k, n]` = C `[m, n]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

/// Where one operand lives inside its buffer: element (i, j) at
/// `offset + i·row_stride + j·col_stride` (strides in elements).
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

    /// The same buffer read as the transpose: strides swapped, no copy.
    pub fn transposed(self) -> Self {
        Strided { row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Where element (i, j) is.
    pub fn index(&self, i: usize, j: usize) -> usize {
        self.offset + i * self.row_stride + j * self.col_stride
    }

    /// The same operand starting `rows` rows further down.
    pub fn shifted_rows(self, rows: usize) -> Self {
        self.shifted(rows, 0)
    }

    fn shifted(self, rows: usize, cols: usize) -> Self {
        Strided { offset: self.index(rows, cols), ..self }
    }

    /// One past the largest index a rows×cols view touches (0 when empty).
    fn end(&self, rows: usize, cols: usize) -> usize {
        if rows == 0 || cols == 0 {
            return 0;
        }
        self.index(rows - 1, cols - 1) + 1
    }
}

/// Where a product's C goes: m rows of n elements from `ptr`, `row_stride`
/// elements apart (n for a dense C; wider for a block of a larger matrix).
#[derive(Clone, Copy, Debug)]
pub struct OutBlock<T> {
    pub ptr: *mut T,
    pub row_stride: usize,
}

/// What C holds before A·B is added to it.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a, T> {
    /// Zero: C is overwritten, its old contents (possibly uninitialised)
    /// never read.
    Zero,
    /// C's current contents: C += A·B.
    Accumulate,
    /// The same n values on every row: a linear layer's y = bias + x·Wᵀ.
    Bias(&'a [T]),
}

impl<'a, T> Start<'a, T> {
    /// The start of columns `from..from + len` of C.
    fn columns(self, from: usize, len: usize) -> Self {
        match self {
            Start::Bias(bias) => Start::Bias(&bias[from..from + len]),
            other => other,
        }
    }
}

/// Element types with a GEMM kernel (f32 and f64).
pub trait GemmElement: Copy + Default + Send + Sync + 'static {
    /// One product on the calling thread with this type's fastest kernel:
    /// C = start + A·B.
    ///
    /// # Safety
    /// k > 0; `sa` and `sb` describe m×k and k×n matrices inside `a` and
    /// `b`; `c` points at m rows of n writable elements that alias neither A
    /// nor B and that nothing else touches during the call (uninitialised
    /// unless `start` is `Accumulate`); a bias holds n elements.
    unsafe fn gemm_block(
        shape: GemmShape,
        a: &[Self],
        sa: Strided,
        b: &[Self],
        sb: Strided,
        c: OutBlock<Self>,
        start: Start<Self>,
    );
}

impl GemmElement for f32 {
    unsafe fn gemm_block(
        shape: GemmShape,
        a: &[f32],
        sa: Strided,
        b: &[f32],
        sb: Strided,
        c: OutBlock<f32>,
        start: Start<f32>,
    ) {
        let GemmShape { m, k, n } = shape;
        // One row against contiguous columns (a decode step's x·Wᵀ) streams
        // W once through the matrix-vector kernel instead of packing it.
        let one_row_against_weight_rows = m == 1 && sa.col_stride == 1 && sb.row_stride == 1;
        #[cfg(target_arch = "x86_64")]
        if !one_row_against_weight_rows && super::sgemm::available() {
            // One row against B's contiguous rows (a decode step's p·V)
            // reads B in place, in the packed kernel's order.
            if m == 1 && sb.col_stride == 1 {
                // SAFETY: forwarded from the caller's contract; AVX-512F checked.
                return unsafe { super::sgemm_row::row_times_matrix(k, n, a, sa, b, sb, c, start) };
            }
            // SAFETY: forwarded from the caller's contract; AVX-512F checked.
            return unsafe { super::sgemm::sgemm(shape, a, sa, b, sb, c, start) };
        }
        // SAFETY (both): forwarded from the caller's contract; row 0 of A
        // is k contiguous elements and column j of B the k contiguous
        // elements at offset + j·col_stride.
        unsafe {
            let accumulate = start_in_c(shape, c, start);
            if one_row_against_weight_rows {
                let x = &a[sa.offset..sa.offset + k];
                return gemv_rows(x, b.as_ptr().add(sb.offset), sb.col_stride, n, c.ptr, accumulate);
            }
            let beta = if accumulate { 1.0 } else { 0.0 };
            let ((pa, rsa, csa), (pb, rsb, csb)) = (library_operand(a, sa), library_operand(b, sb));
            matrixmultiply::sgemm(m, k, n, 1.0, pa, rsa, csa, pb, rsb, csb, beta, c.ptr, c.row_stride as isize, 1)
        }
    }
}

impl GemmElement for f64 {
    unsafe fn gemm_block(
        shape: GemmShape,
        a: &[f64],
        sa: Strided,
        b: &[f64],
        sb: Strided,
        c: OutBlock<f64>,
        start: Start<f64>,
    ) {
        let GemmShape { m, k, n } = shape;
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            let beta = if start_in_c(shape, c, start) { 1.0 } else { 0.0 };
            let ((pa, rsa, csa), (pb, rsb, csb)) = (library_operand(a, sa), library_operand(b, sb));
            matrixmultiply::dgemm(m, k, n, 1.0, pa, rsa, csa, pb, rsb, csb, beta, c.ptr, c.row_stride as isize, 1)
        }
    }
}

/// An operand as `matrixmultiply` takes it: first element, then the
/// strides as signed offsets.
fn library_operand<T>(buffer: &[T], at: Strided) -> (*const T, isize, isize) {
    (buffer[at.offset..].as_ptr(), at.row_stride as isize, at.col_stride as isize)
}

/// For kernels that can only overwrite C or add to it: puts the bias into
/// C's rows first, and says whether the kernel must add (β = 1) or may
/// overwrite (β = 0).
///
/// # Safety
/// As for [`GemmElement::gemm_block`].
unsafe fn start_in_c<T: Copy>(shape: GemmShape, c: OutBlock<T>, start: Start<T>) -> bool {
    match start {
        Start::Zero => false,
        Start::Accumulate => true,
        Start::Bias(bias) => {
            for i in 0..shape.m {
                // SAFETY: row i of C holds n elements, the bias n.
                unsafe { std::slice::from_raw_parts_mut(c.ptr.add(i * c.row_stride), shape.n).copy_from_slice(bias) };
            }
            true
        }
    }
}

/// Below this many multiply-adds a single thread is faster than splitting.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// For one row (a decoding step's x·Wᵀ) while a pass keeps the threads
/// awake: 256 KiB of f32 weights, as for the packed ones (`quant::gemv`'s
/// `PARALLEL_MIN_BYTES_AWAKE`, where the measurements are).
const PARALLEL_MIN_WORK_AWAKE_ROW: usize = 1 << 16;

/// `sa.len()` products at once, parallel: entry i multiplies A at `sa[i]` by
/// B at `sb[i]` into the i-th dense m×n block of the result, starting from
/// zero or, given a `bias` (n elements), from the bias on every row.
///
/// The result is built in `c`, an empty vector whose capacity is used
/// (grown if needed), and returned. It is never zeroed first: with β = 0
/// the kernel writes every element without reading it, so filling it
/// beforehand would be a wasted pass over memory. Batch entries may share
/// operands (broadcasting gives them equal offsets).
pub fn gemm<T: GemmElement>(
    shape: GemmShape,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    bias: Option<&[T]>,
    mut c: Vec<T>,
) -> Vec<T> {
    let GemmShape { m, k, n } = shape;
    let len = sa.len() * m * n;
    c.clear();
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "gemm: a bias of {} for {n} columns", bias.len());
    }
    if k == 0 {
        match bias {
            Some(bias) => (0..sa.len() * m).for_each(|_| c.extend_from_slice(bias)),
            None => c.resize(len, T::default()),
        }
        return c;
    }
    c.reserve(len);
    let start = bias.map_or(Start::Zero, Start::Bias);
    // SAFETY: the capacity holds `len` elements; with k > 0 and β = 0 the
    // kernel writes every one of them before `set_len` exposes them.
    unsafe {
        batched_gemm_raw(shape, a, sa, b, sb, c.as_mut_ptr(), start);
        c.set_len(len);
    }
    c
}

/// One product C = A·B on the calling thread into a block of a larger
/// matrix: for kernels that are parallel already and whose tasks write
/// disjoint blocks of one buffer (attention's heads, side by side in the
/// rows of a `[B, T, C]` output).
///
/// # Safety
/// `c` must point at m rows of n writable elements, `c.row_stride` apart,
/// that nothing else reads or writes during the call.
pub unsafe fn gemm_serial<T: GemmElement>(
    shape: GemmShape,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: OutBlock<T>,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { gemm_serial_from(shape, a, sa, b, sb, c, false) }
}

/// [`gemm_serial`] adding to what C holds, C += A·B: for a sum of products
/// over tasks that run one after another on the same block (the key and
/// value gradients of grouped-query attention, summed over the query heads
/// that share them).
///
/// # Safety
/// As [`gemm_serial`], and C's m rows of n elements are initialised.
pub unsafe fn gemm_serial_accumulate<T: GemmElement>(
    shape: GemmShape,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: OutBlock<T>,
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { gemm_serial_from(shape, a, sa, b, sb, c, true) }
}

unsafe fn gemm_serial_from<T: GemmElement>(
    shape: GemmShape,
    a: &[T],
    sa: Strided,
    b: &[T],
    sb: Strided,
    c: OutBlock<T>,
    accumulate: bool,
) {
    let GemmShape { m, k, n } = shape;
    if m == 0 || n == 0 {
        return;
    }
    assert!(n <= c.row_stride, "gemm: {n} columns in rows {} apart", c.row_stride);
    assert!(sa.end(m, k) <= a.len(), "gemm: A operand {sa:?} ({m}x{k}) overruns a buffer of {}", a.len());
    assert!(sb.end(k, n) <= b.len(), "gemm: B operand {sb:?} ({k}x{n}) overruns a buffer of {}", b.len());
    if k == 0 {
        // An empty sum: C = 0, or C unchanged when adding to it.
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C holds n elements (the caller's contract).
                unsafe { std::ptr::write_bytes(c.ptr.add(i * c.row_stride), 0, n) };
            }
        }
        return;
    }
    let start = if accumulate { Start::Accumulate } else { Start::Zero };
    // SAFETY: operands checked above, C as the caller promised.
    unsafe { T::gemm_block(shape, a, sa, b, sb, c, start) }
}

/// The batch, parallel, into `sa.len()` dense m×n blocks at `c`.
///
/// # Safety
/// `c` must point to `sa.len()·m·n` writable elements that nothing else
/// accesses during the call; they may be uninitialised unless `start` is
/// `Accumulate`. With k = 0 nothing is written.
unsafe fn batched_gemm_raw<T: GemmElement>(
    shape: GemmShape,
    a: &[T],
    sa: &[Strided],
    b: &[T],
    sb: &[Strided],
    c: *mut T,
    start: Start<T>,
) {
    let GemmShape { m, k, n } = shape;
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
        // caller's buffer and touched by no other task; the operands were
        // checked above.
        unsafe {
            let c = OutBlock { ptr: base.0.add(i * m * n), row_stride: n };
            T::gemm_block(shape, a, sa[i], b, sb[i], c, start)
        }
    };
    let min_work =
        if m == 1 && super::awake::threads_are_awake() { PARALLEL_MIN_WORK_AWAKE_ROW } else { PARALLEL_MIN_WORK };
    if work < min_work || threads == 1 {
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
        let from = s * stripe;
        let len = stripe.min(extent - from);
        let base = c_ptr;
        // SAFETY: each task's block of C (a row or column stripe of batch
        // entry i) is disjoint from every other task's.
        unsafe {
            let c_block = base.0.add(i * m * n);
            if by_rows {
                let (rows, c) = (sa[i].shifted(from, 0), OutBlock { ptr: c_block.add(from * n), row_stride: n });
                T::gemm_block(GemmShape { m: len, k, n }, a, rows, b, sb[i], c, start);
            } else {
                let (cols, c) = (sb[i].shifted(0, from), OutBlock { ptr: c_block.add(from), row_stride: n });
                T::gemm_block(GemmShape { m, k, n: len }, a, sa[i], b, cols, c, start.columns(from, len));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C += A·B through the parallel driver, into a dense C.
    fn accumulate<T: GemmElement>(shape: GemmShape, a: &[T], sa: &[Strided], b: &[T], sb: &[Strided], c: &mut [T]) {
        assert_eq!(c.len(), sa.len() * shape.m * shape.n);
        // SAFETY: `c` is an exclusive borrow of exactly batch·m·n elements.
        unsafe { batched_gemm_raw(shape, a, sa, b, sb, c.as_mut_ptr(), Start::Accumulate) }
    }

    /// The f32 route as tensors take it (the parallel driver, our kernels,
    /// on a 4-thread pool), against the f64 definition: a decode step's
    /// x·Wᵀ of GPT-2's qkv layer (one row: the matrix-vector kernel), a
    /// linear layer's forward with its bias, ragged sizes that fit no tile
    /// or vector width with every transposition, and a batch sharing B.
    #[test]
    fn f32_gemm_matches_the_reference_at_realistic_sizes() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            let mut worst = 0.0f64;
            let cases = [
                // (m, k, n, A transposed, B transposed, bias, batch)
                (1, 768, 2304, false, true, false, 1),
                (1, 768, 2304, false, true, true, 1),
                (1, 768, 2304, false, false, false, 1),
                (67, 129, 65, false, false, false, 1),
                (67, 129, 65, true, false, false, 1),
                (67, 129, 65, false, true, true, 1),
                (67, 129, 65, true, true, false, 1),
                (37, 300, 515, false, true, true, 1),
                (24, 768, 2304, false, true, true, 1),
                (50, 64, 70, false, false, false, 3),
            ];
            for (m, k, n, a_t, b_t, with_bias, batch) in cases {
                let shape = GemmShape { m, k, n };
                let a: Vec<f32> = (0..batch * m * k).map(|i| (i as f32 * 0.618).sin()).collect();
                let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.414).cos() * 0.5).collect();
                let bias: Vec<f32> = (0..n).map(|j| (j as f32 * 0.3).sin()).collect();
                let sa: Vec<Strided> = (0..batch)
                    .map(|e| {
                        if a_t {
                            Strided::row_major(e * m * k, m).transposed()
                        } else {
                            Strided::row_major(e * m * k, k)
                        }
                    })
                    .collect();
                let sb = if b_t { Strided::row_major(0, k).transposed() } else { Strided::row_major(0, n) };
                let got = gemm(shape, &a, &sa, &b, &vec![sb; batch], with_bias.then_some(&bias[..]), Vec::new());
                let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
                let magnitude = |v: &[f32]| v.iter().map(|&x| (x as f64).abs()).collect::<Vec<f64>>();
                for (e, &sa) in sa.iter().enumerate() {
                    let want = gemm_reference(shape, &widen(&a), sa, &widen(&b), sb);
                    // Σ_p |A[i, p]·B[p, j]|: what the rounding of each sum scales with.
                    let size = gemm_reference(shape, &magnitude(&a), sa, &magnitude(&b), sb);
                    for idx in 0..m * n {
                        let want = want[idx] + if with_bias { bias[idx % n] as f64 } else { 0.0 };
                        let err = (got[e * m * n + idx] as f64 - want).abs() / (1.0 + size[idx]);
                        worst = worst.max(err);
                    }
                }
            }
            // f32 tolerance: 1e-6 of Σ|A·B| (about 8 float epsilons; the
            // worst seen is 9e-8).
            assert!(worst < 1e-6, "off by {worst:e} of the sum of magnitudes");
        });
    }

    #[test]
    fn transposed_and_offset_operands_match_the_reference() {
        let (m, k, n) = (37, 19, 53);
        let shape = GemmShape { m, k, n };
        let a: Vec<f64> = (0..m * k + 3).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n + 5).map(|i| (i as f64 * 0.11).cos()).collect();
        // A stored transposed (k×m row-major) starting at offset 3.
        let sa = Strided::row_major(3, m).transposed();
        let sb = Strided::row_major(5, n);
        let c = gemm(shape, &a, &[sa], &b, &[sb], None, Vec::new());
        let want = gemm_reference(shape, &a, sa, &b, sb);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn a_bias_start_equals_filling_c_with_it_then_accumulating() {
        // f32 (our kernel: full and ragged tiles, row and column stripes,
        // one row through the matrix-vector path) and f64 (the fallback).
        for &(m, k, n) in &[(300, 400, 45), (7, 300, 700), (1, 64, 40), (13, 0, 5)] {
            let shape = GemmShape { m, k, n };
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.013).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.007).cos()).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 3.0).collect();
            let (sa, sb) = (Strided::row_major(0, k), Strided::row_major(0, k).transposed());
            let got = gemm(shape, &a, &[sa], &b, &[sb], Some(&bias), Vec::new());
            let mut want: Vec<f32> = (0..m).flat_map(|_| bias.iter().copied()).collect();
            accumulate(shape, &a, &[sa], &b, &[sb], &mut want);
            assert_eq!(got, want, "f32 {m}x{k}x{n}");
            let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let got = gemm(shape, &widen(&a), &[sa], &widen(&b), &[sb], Some(&widen(&bias)), Vec::new());
            let mut want: Vec<f64> = (0..m).flat_map(|_| widen(&bias)).collect();
            accumulate(shape, &widen(&a), &[sa], &widen(&b), &[sb], &mut want);
            assert_eq!(got, want, "f64 {m}x{k}x{n}");
        }
    }

    #[test]
    fn parallel_row_and_column_splits_match_serial() {
        for &(m, k, n) in &[(300, 64, 40), (1, 512, 1000), (3, 300, 700)] {
            let shape = GemmShape { m, k, n };
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.013).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.007).cos()).collect();
            let (sa, sb) = (Strided::row_major(0, k), Strided::row_major(0, n));
            let mut c = vec![1.0; m * n];
            accumulate(shape, &a, &[sa], &b, &[sb], &mut c);
            let want = gemm_reference(shape, &a, sa, &b, sb);
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
        let c = gemm(GemmShape { m, k, n }, &a, &sa, &b, &sb, None, Vec::new());
        // Row 0 of the second batch entry: [12,13,14]·B.
        let want0 = 12.0 * -2.0 + 13.0 * 0.0 + 14.0 * 2.0;
        assert_eq!(c[m * n], want0);
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn out_of_bounds_operand_panics() {
        let a = vec![0.0f32; 5];
        let b = vec![0.0f32; 6];
        gemm(
            GemmShape { m: 2, k: 3, n: 2 },
            &a,
            &[Strided::row_major(0, 3)],
            &b,
            &[Strided::row_major(0, 2)],
            None,
            Vec::new(),
        );
    }
}
