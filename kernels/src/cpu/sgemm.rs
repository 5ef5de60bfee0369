//! Our own f32 GEMM for AVX-512 CPUs: C (+)= A·B, single-threaded.
//!
//! A GEMM does 2·m·k·n FLOPs on m·k + k·n + m·n numbers, so it can run at
//! the CPU's arithmetic peak, but only if the inner loop never waits for
//! memory. That is arranged in two layers (the BLIS design):
//!
//! 1. The micro-kernel keeps a 12×32 tile of C in 24 of the 32 AVX-512
//!    registers (12 rows × two 16-float vectors). Each step p of the
//!    k-loop loads 32 floats of B's row p (two vector loads) and 12 floats
//!    of A's column p (one broadcast each) and does 24 fused multiply-adds:
//!    768 FLOPs per 14 loads, and the tile never leaves the registers until
//!    the loop ends.
//! 2. The operands are packed first: copied into the exact order the
//!    micro-kernel reads them, so its loads are sequential and aligned and
//!    whatever the original strides were (transposes included) no longer
//!    matter. A is cut into panels of 12 rows, each stored p-major (12 values
//!    per p); B into panels of 32 columns (32 values per p). The k
//!    dimension is taken KC = 384 at a time so that one A panel (18 KiB)
//!    stays in the 48 KiB L1 cache while the kernel streams B panels past
//!    it, and B is taken NC = 480 columns at a time so that its packed block
//!    (720 KiB) stays in the 2 MiB L2 cache while every A panel meets it.
//!
//! Each element of B is packed once; A is packed once per KC-slice when m
//! fits in MC rows (every GPT-2 product does). Ragged edges are zero-padded
//! in the packed panels and their tiles written through a scratch tile, so
//! the kernel itself has no edge cases.
//!
//! The summation order of every C element is fixed: p ascending within each
//! KC-slice, slices added to C in order. It depends on neither the tile
//! position nor how callers split C across threads, so results are the same
//! for any thread count. `gemm.rs` uses this on CPUs with AVX-512F and
//! `matrixmultiply` elsewhere (and for f64); its `gemm_reference` is the
//! definition this kernel is tested against.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;

use super::gemm::{GemmShape, OutBlock, Start, Strided};

/// Rows of the register tile (broadcast from A).
pub const MR: usize = 12;
/// Columns of the register tile (two 16-float vectors of B).
pub const NR: usize = 32;
/// Depth of one packed slice (A panel 12·384·4 B = 18 KiB, in L1).
pub const KC: usize = 384;
/// Columns of B per packed block (384·480·4 B = 720 KiB, in L2).
const NC: usize = 480;
/// Rows of A per packed block; larger products loop over such blocks.
const MC: usize = 3072;

/// True where this CPU can run the kernel (AVX-512F, detected once).
pub fn available() -> bool {
    super::isa::Isa::detect() == super::isa::Isa::Avx512
}

/// A 64-byte aligned run of floats, so packed panels load with aligned
/// vector loads.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// Packing buffers, one pair per thread, reused across calls.
#[derive(Default)]
struct Scratch {
    a: Vec<Line>,
    b: Vec<Line>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A buffer of at least `floats` aligned floats (contents unspecified).
fn floats(buf: &mut Vec<Line>, floats: usize) -> *mut f32 {
    let lines = floats.div_ceil(16);
    if buf.len() < lines {
        buf.resize(lines, Line([0.0; 16]));
    }
    buf.as_mut_ptr().cast()
}

/// A [`Strided`] operand resolved to a pointer: element (i, j) at
/// `ptr + i·row_stride + j·col_stride`, strides as signed pointer offsets.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

impl View {
    /// The operand at `at` in `buffer` (the caller checked that it fits;
    /// an empty one may start anywhere, so no bounds check here).
    fn new(buffer: &[f32], at: Strided) -> View {
        let ptr = buffer.as_ptr().wrapping_add(at.offset);
        View { ptr, row_stride: at.row_stride as isize, col_stride: at.col_stride as isize }
    }

    #[inline(always)]
    unsafe fn at(&self, i: usize, j: usize) -> *const f32 {
        // SAFETY: the caller stays inside the operand it described.
        unsafe { self.ptr.offset(i as isize * self.row_stride + j as isize * self.col_stride) }
    }
}

/// C `[m, n]` = start + A·B, where C starts from zero (overwritten), from
/// itself (accumulated) or from a bias on every row.
///
/// The bias is added to every row as the first KC-slice's tiles are
/// written: the same sums as filling C with the bias and accumulating,
/// without that pass.
///
/// # Safety
/// The CPU must have AVX-512F ([`available`]); `sa` and `sb` must describe
/// m×k and k×n matrices inside `a` and `b`, `c` m rows of n writable floats
/// not overlapping A or B, and a bias n floats; unless C accumulates, it
/// may be uninitialised.
#[cfg(target_arch = "x86_64")]
pub unsafe fn sgemm(
    shape: GemmShape,
    a: &[f32],
    sa: Strided,
    b: &[f32],
    sb: Strided,
    c: OutBlock<f32>,
    start: Start<f32>,
) {
    let GemmShape { m, k, n } = shape;
    let (a, b, rsc, c) = (View::new(a, sa), View::new(b, sb), c.row_stride, c.ptr);
    let accumulate = matches!(start, Start::Accumulate);
    let bias = match start {
        Start::Bias(bias) => Some(bias.as_ptr()),
        Start::Zero | Start::Accumulate => None,
    };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C holds n elements, the bias n floats.
                unsafe {
                    match bias {
                        Some(bias) => std::ptr::copy_nonoverlapping(bias, c.add(i * rsc), n),
                        None => std::ptr::write_bytes(c.add(i * rsc), 0, n),
                    }
                }
            }
        }
        return;
    }
    SCRATCH.with_borrow_mut(|scratch| {
        for ic in (0..m).step_by(MC) {
            let mc = MC.min(m - ic);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // The first slice of k writes C (or adds to it, when asked);
                // later slices add to what the earlier ones left.
                let add = accumulate || pc > 0;
                let bias = if add { None } else { bias };
                let a_packed = floats(&mut scratch.a, mc.div_ceil(MR) * MR * kc);
                // SAFETY: the block lies inside A; the buffer holds every panel.
                unsafe { pack_a(a, ic, pc, mc, kc, a_packed) };
                for jc in (0..n).step_by(NC) {
                    let nc = NC.min(n - jc);
                    let b_packed = floats(&mut scratch.b, nc.div_ceil(NR) * NR * kc);
                    // SAFETY: as for A.
                    unsafe { pack_b(b, pc, jc, kc, nc, b_packed) };
                    for ir in (0..mc).step_by(MR) {
                        let a_panel = unsafe { a_packed.add(ir * kc) };
                        for jr in (0..nc).step_by(NR) {
                            let b_panel = unsafe { b_packed.add(jr * kc) };
                            let (rows, cols) = (MR.min(mc - ir), NR.min(nc - jr));
                            // SAFETY: the tile at (ic+ir, jc+jr) is inside C,
                            // its columns inside the bias.
                            unsafe {
                                let c_tile = c.add((ic + ir) * rsc + jc + jr);
                                let bias = bias.map(|bias| bias.add(jc + jr));
                                tile(kc, a_panel, b_panel, c_tile, rsc, rows, cols, add, bias)
                            }
                        }
                    }
                }
            }
        }
    })
}

/// A's rows `i0..i0+mc`, columns `p0..p0+kc` into panels of MR rows, each
/// p-major; rows past the edge are zeros.
#[cfg(target_arch = "x86_64")]
unsafe fn pack_a(a: View, i0: usize, p0: usize, mc: usize, kc: usize, out: *mut f32) {
    let mut first = 0;
    if a.row_stride == 1 {
        // Columns of A contiguous (A read transposed): for each p, one run
        // of 12 floats per panel, all side by side in the source.
        first = mc / MR;
        // SAFETY: the runs lie inside A; `first` panels fit in `out`.
        unsafe { copy_runs::<MR>(a.at(i0, p0), a.col_stride, kc, first, out) };
    }
    for (panel, ir) in (0..mc).step_by(MR).enumerate().skip(first) {
        let rows = MR.min(mc - ir);
        // SAFETY: the panel's MR·kc floats are inside `out`; reads stay in A.
        unsafe {
            let dst = out.add(panel * MR * kc);
            if a.col_stride == 1 && rows == MR {
                // Rows of A contiguous (the usual activations): 12 rows
                // turned into columns, 16 values of p at a time.
                let done = transpose_a_panel(a, i0 + ir, p0, kc, dst);
                for i in 0..MR {
                    for p in done..kc {
                        *dst.add(p * MR + i) = *a.at(i0 + ir + i, p0 + p);
                    }
                }
                continue;
            }
            for i in 0..MR {
                if i < rows {
                    let src = a.at(i0 + ir + i, p0);
                    for p in 0..kc {
                        *dst.add(p * MR + i) = *src.offset(p as isize * a.col_stride);
                    }
                } else {
                    for p in 0..kc {
                        *dst.add(p * MR + i) = 0.0;
                    }
                }
            }
        }
    }
}

/// B's rows `p0..p0+kc`, columns `j0..j0+nc` into panels of NR columns, each
/// p-major; columns past the edge are zeros.
#[cfg(target_arch = "x86_64")]
unsafe fn pack_b(b: View, p0: usize, j0: usize, kc: usize, nc: usize, out: *mut f32) {
    let mut first = 0;
    if b.col_stride == 1 {
        // Rows of B contiguous: for each p, one run of 32 floats per panel.
        first = nc / NR;
        // SAFETY: the runs lie inside B; `first` panels fit in `out`.
        unsafe { copy_runs::<NR>(b.at(p0, j0), b.row_stride, kc, first, out) };
    }
    for (panel, jr) in (0..nc).step_by(NR).enumerate().skip(first) {
        let cols = NR.min(nc - jr);
        // SAFETY: the panel's NR·kc floats are inside `out`; reads stay in B.
        unsafe {
            let dst = out.add(panel * NR * kc);
            if b.row_stride == 1 && cols == NR {
                // B read transposed (a weight W [n, k] as Wᵀ): 32 contiguous
                // columns turned into rows, 16×16 blocks at a time.
                transpose_panel(b, p0, j0 + jr, kc, dst);
                continue;
            }
            for j in 0..NR {
                if j < cols {
                    let src = b.at(p0, j0 + jr + j);
                    for p in 0..kc {
                        *dst.add(p * NR + j) = *src.offset(p as isize * b.row_stride);
                    }
                } else {
                    for p in 0..kc {
                        *dst.add(p * NR + j) = 0.0;
                    }
                }
            }
        }
    }
}

/// `panels` whole panels of an operand whose panel runs are contiguous
/// in the source: for each p, `panels` runs of `RUN` (12 or 32) floats lie
/// side by side at `src + p·stride`, and run q goes to panel q, at
/// `dst + q·RUN·kc + p·RUN`. Walking the source row by row (p outer) reads
/// it as one sequential stream the prefetcher follows; panel by panel, each
/// pass would hop `stride` floats per step and wait on memory. Vector
/// loads and stores, under a lane mask for 12, never read past a run.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_runs<const RUN: usize>(src: *const f32, stride: isize, kc: usize, panels: usize, dst: *mut f32) {
    let full_vectors = RUN / 16;
    let tail: __mmask16 = ((1u32 << (RUN % 16)) - 1) as __mmask16;
    // SAFETY: row p holds panels·RUN floats from src + p·stride; dst holds
    // panels·kc·RUN floats.
    unsafe {
        for p in 0..kc {
            let row = src.offset(p as isize * stride);
            for q in 0..panels {
                let (from, to) = (row.add(q * RUN), dst.add(q * RUN * kc + p * RUN));
                for v in 0..full_vectors {
                    _mm512_storeu_ps(to.add(16 * v), _mm512_loadu_ps(from.add(16 * v)));
                }
                if tail != 0 {
                    let at = 16 * full_vectors;
                    _mm512_mask_storeu_ps(to.add(at), tail, _mm512_maskz_loadu_ps(tail, from.add(at)));
                }
            }
        }
    }
}

/// Transposes a 16×16 block held as 16 row vectors into 16 column
/// vectors: 32-bit interleaves, then 64-bit, then two rounds of 128-bit
/// lane shuffles (64 shuffles for 256 floats, instead of 256 scalar moves).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // t[2q], t[2q+1]: rows 2q and 2q+1 interleaved; lane L of t[2q] holds
    // columns 4L, 4L+1 of both rows, of t[2q+1] columns 4L+2, 4L+3.
    let mut t = [_mm512_setzero_ps(); 16];
    for q in 0..8 {
        t[2 * q] = _mm512_unpacklo_ps(r[2 * q], r[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_ps(r[2 * q], r[2 * q + 1]);
    }
    // u[4g + s]: lane L holds column 4L + s of rows 4g..4g+3.
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let pd = |x: __m512| _mm512_castps_pd(x);
        let (t0, t1, t2, t3) = (pd(t[4 * g]), pd(t[4 * g + 1]), pd(t[4 * g + 2]), pd(t[4 * g + 3]));
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // v[8h + s], s < 4: columns s and s + 8 of rows 8h..8h+7 (lanes: col s
    // of the first four rows, col s + 8 of them, col s of the next four,
    // col s + 8 of them); v[8h + 4 + s] the same for columns s + 4, s + 12.
    let mut v = [_mm512_setzero_ps(); 16];
    for h in 0..2 {
        for s in 0..4 {
            let (lo, hi) = (u[8 * h + s], u[8 * h + 4 + s]);
            v[8 * h + s] = _mm512_shuffle_f32x4::<0x88>(lo, hi);
            v[8 * h + 4 + s] = _mm512_shuffle_f32x4::<0xDD>(lo, hi);
        }
    }
    // Column s < 8 takes the even lanes of v[s] (rows 0..7) and v[8 + s]
    // (rows 8..15); column s + 8 the odd lanes.
    let mut out = [_mm512_setzero_ps(); 16];
    for s in 0..8 {
        out[s] = _mm512_shuffle_f32x4::<0x88>(v[s], v[8 + s]);
        out[s + 8] = _mm512_shuffle_f32x4::<0xDD>(v[s], v[8 + s]);
    }
    out
}

/// Packs NR columns of a B whose columns are contiguous (row stride 1):
/// `dst[p·NR + j] = B(p0 + p, j0 + j)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_panel(b: View, p0: usize, j0: usize, kc: usize, dst: *mut f32) {
    let full = kc / 16 * 16;
    // SAFETY: column j0+j holds kc contiguous floats from row p0; the panel
    // holds kc·NR floats, 64-byte aligned.
    unsafe {
        for half in 0..2 {
            for p in (0..full).step_by(16) {
                let rows: [__m512; 16] = std::array::from_fn(|j| _mm512_loadu_ps(b.at(p0 + p, j0 + 16 * half + j)));
                for (q, column) in transpose16(rows).into_iter().enumerate() {
                    _mm512_store_ps(dst.add((p + q) * NR + 16 * half), column);
                }
            }
        }
        for j in 0..NR {
            for p in full..kc {
                *dst.add(p * NR + j) = *b.at(p0 + p, j0 + j);
            }
        }
    }
}

/// Packs the first `kc / 16 * 16` values of p for MR rows of a row-major
/// A: `dst[p·MR + i] = A(i0 + i, p0 + p)`. Returns how many p it packed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_a_panel(a: View, i0: usize, p0: usize, kc: usize, dst: *mut f32) -> usize {
    let full = kc / 16 * 16;
    // SAFETY: rows i0..i0+MR hold kc contiguous floats from column p0; the
    // panel holds kc·MR floats.
    unsafe {
        for p in (0..full).step_by(16) {
            // Four zero rows pad the 12 to a 16×16 block; only the first 12
            // lanes of each column are stored.
            let rows: [__m512; 16] =
                std::array::from_fn(
                    |i| {
                        if i < MR {
                            _mm512_loadu_ps(a.at(i0 + i, p0 + p))
                        } else {
                            _mm512_setzero_ps()
                        }
                    },
                );
            for (q, column) in transpose16(rows).into_iter().enumerate() {
                _mm512_mask_storeu_ps(dst.add((p + q) * MR), (1 << MR) - 1, column);
            }
        }
    }
    full
}

/// One MR×NR tile of C from an A panel and a B panel; `rows`×`cols` of it
/// are inside C (the rest is padding and goes through a scratch tile).
/// The tile is added to C (`add`), or to the bias's `cols` floats, or
/// stored as it is.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: usize,
    rows: usize,
    cols: usize,
    add: bool,
    bias: Option<*const f32>,
) {
    // SAFETY: forwarded; a full tile writes MR rows of NR floats inside C.
    unsafe {
        if rows == MR && cols == NR {
            return kernel(kc, a, b, c, rsc, add, bias);
        }
        let mut scratch = [0.0f32; MR * NR];
        kernel(kc, a, b, scratch.as_mut_ptr(), NR, false, None);
        for i in 0..rows {
            for j in 0..cols {
                let out = c.add(i * rsc + j);
                let v = scratch[i * NR + j];
                *out = match (add, bias) {
                    (true, _) => *out + v,
                    (false, Some(bias)) => *bias.add(j) + v,
                    (false, None) => v,
                };
            }
        }
    }
}

/// The register tile: C[0..MR, 0..NR] (+)= Σ_p A_panel[p]ᵀ · B_panel[p].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    kc: usize,
    mut a: *const f32,
    mut b: *const f32,
    c: *mut f32,
    rsc: usize,
    add: bool,
    bias: Option<*const f32>,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY: the panels hold kc steps of MR and NR floats, B's 64-byte
    // aligned; C holds MR rows of NR floats at stride rsc.
    unsafe {
        for _ in 0..kc {
            let b0 = _mm512_load_ps(b);
            let b1 = _mm512_load_ps(b.add(16));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(*a.add(i));
                row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
                row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
        // What the tile is added to: C itself, or the bias on every row.
        let base = if add { None } else { bias.map(|bias| (_mm512_loadu_ps(bias), _mm512_loadu_ps(bias.add(16)))) };
        for (i, row) in acc.iter().enumerate() {
            let out = c.add(i * rsc);
            let (mut lo, mut hi) = (row[0], row[1]);
            if add {
                lo = _mm512_add_ps(_mm512_loadu_ps(out), lo);
                hi = _mm512_add_ps(_mm512_loadu_ps(out.add(16)), hi);
            } else if let Some((bias_lo, bias_hi)) = base {
                lo = _mm512_add_ps(bias_lo, lo);
                hi = _mm512_add_ps(bias_hi, hi);
            }
            _mm512_storeu_ps(out, lo);
            _mm512_storeu_ps(out.add(16), hi);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::super::gemm::gemm_reference;
    use super::*;

    fn widen(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// C (+)= A·B by this kernel alone, into a dense C.
    fn run(shape: GemmShape, a: &[f32], sa: Strided, b: &[f32], sb: Strided, c: &mut [f32], start: Start<f32>) {
        let out = OutBlock { ptr: c.as_mut_ptr(), row_stride: shape.n };
        // SAFETY: the tests' operands fit their buffers; C holds m·n floats.
        unsafe { sgemm(shape, a, sa, b, sb, out, start) }
    }

    #[test]
    fn every_layout_and_ragged_edge_matches_the_definition() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // Sizes straddle MR, NR, KC and NC so edges and multiple slices
        // and blocks all occur.
        for &(m, k, n) in &[(1, 1, 1), (13, 5, 33), (12, 384, 32), (25, 800, 515), (7, 390, 64)] {
            let shape = GemmShape { m, k, n };
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let sa = if a_t { Strided::row_major(0, m).transposed() } else { Strided::row_major(0, k) };
                let sb = if b_t { Strided::row_major(0, k).transposed() } else { Strided::row_major(0, n) };
                let want = gemm_reference(shape, &widen(&a), sa, &widen(&b), sb);
                for accumulate in [false, true] {
                    let mut c = vec![1.0f32; m * n];
                    let start = if accumulate { Start::Accumulate } else { Start::Zero };
                    run(shape, &a, sa, &b, sb, &mut c, start);
                    for (idx, (got, want)) in c.iter().zip(&want).enumerate() {
                        let want = want + if accumulate { 1.0 } else { 0.0 };
                        let tol = 1e-4 * (1.0 + want.abs()) * (k as f64).sqrt();
                        assert!(
                            (*got as f64 - want).abs() < tol,
                            "{m}x{k}x{n} a_t={a_t} b_t={b_t} acc={accumulate} [{idx}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_how_c_is_cut() {
        if !available() {
            return;
        }
        let (m, k, n) = (30, 500, 100);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let (sa, sb) = (Strided::row_major(0, k), Strided::row_major(0, n));
        let mut whole = vec![0.0f32; m * n];
        run(GemmShape { m, k, n }, &a, sa, &b, sb, &mut whole, Start::Zero);
        // The same product as two row stripes and two column stripes.
        let mut parts = vec![0.0f32; m * n];
        run(GemmShape { m: 7, k, n }, &a, sa, &b, sb, &mut parts, Start::Zero);
        let (sa2, sb2) = (sa.shifted_rows(7), Strided { offset: 45, ..sb });
        for (cols, sb, c_at) in [(45, sb, 7 * n), (n - 45, sb2, 7 * n + 45)] {
            let out = OutBlock { ptr: parts[c_at..].as_mut_ptr(), row_stride: n };
            // SAFETY: rows 7.. of columns [c_at % n, + cols) lie inside C.
            unsafe { sgemm(GemmShape { m: m - 7, k, n: cols }, &a, sa2, &b, sb, out, Start::Zero) };
        }
        assert_eq!(whole, parts);
    }
}
