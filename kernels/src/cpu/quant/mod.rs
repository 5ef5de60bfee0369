//! Matrix products against weights stored in fewer bits, read in place.
//!
//! A linear layer computes y = x·Wᵀ with W stored `[N, K]` (one row per
//! output). Here W is kept packed in one of four formats and is never
//! expanded into an f32 copy of the whole matrix:
//!
//! | format | per weight | what it stores                                        |
//! |--------|-----------|--------------------------------------------------------|
//! | f16    | 2 bytes   | IEEE half: 10-bit mantissa, 5-bit exponent              |
//! | bf16   | 2 bytes   | the top 16 bits of an f32: 7-bit mantissa, f32's range  |
//! | int8   | 1 byte    | q ∈ [-127, 127], one f32 scale s per row: w ≈ s·q       |
//! | int4   | ½ byte    | q ∈ [-7, 7] per nibble, one f16 scale per 32 weights    |
//!
//! Two ways to multiply, chosen by the number of input rows M:
//! - M = 1, the shape of decoding one token: a matrix-vector product
//!   ([`gemv`]). Each weight row is streamed from memory once. f16 and bf16
//!   weights are widened to f32 in registers and multiplied into the input.
//!   For int8 and int4 the input row is quantized to 8 bits as well and the
//!   products are integer dot products ([`int_dot`], as llama.cpp does),
//!   several times fewer instructions per weight than widening each one to
//!   f32, which keeps the kernel as fast as the memory can feed it. A few
//!   input rows (up to 4 for f16 and bf16, 16 for int8 and int4, see
//!   `gemv_max_rows`) still go this way, one pass each.
//! - More rows (a prompt, an evaluation batch): the arithmetic, not the
//!   memory, is the cost, and a tile of weight rows is kept in cache while
//!   all M rows pass over it. For f16 and bf16 the tile is decoded into an
//!   f32 scratch buffer and multiplied by the f32 GEMM's kernel
//!   ([`tiled`]). For int8 and int4 every input row is quantized to 8 bits
//!   once, as decoding quantizes it, and a lane's products stay in integers
//!   for a whole block of 32 before they meet a float, 4 input rows × 4
//!   weight rows at a time ([`int_tiled`]). The integer products are
//!   decoding's; only the float additions of block sums come in another
//!   order, so a prompt run as one block and the same tokens decoded one by
//!   one agree to rounding.
//!
//! Plain f32 weights (a Linear's own) may come here too, as a fifth
//! "format" that needs no decoding ([`PackedWeights::F32`]): then a
//! layer's q, k and v in f32 are one product of shared input
//! ([`gemv::gemv_shared_input`]) with the f32 GEMM's one-row bits.
//!
//! Every decoded weight is exact (an int times an f16 scale fits in an
//! f32's mantissa), so in the f32 paths the only rounding is in the sums.
//! Those follow the fixed order of the f32 matrix-vector kernel
//! (`cpu::gemv`, see `cpu::dot_order`) on every instruction set, which is
//! why the AVX-512, AVX2 and portable paths give bit-identical results. The
//! integer dot products round the input to 8 bits first and then keep an
//! order of their own, the same on every instruction set too.

pub mod gemv;
pub mod half_float;
pub mod int4;
pub mod int8;
pub mod int_dot;
pub mod int_tiled;
pub mod tiled;

#[cfg(test)]
mod tests;

/// The instruction set every kernel here takes (from `cpu::isa`).
pub use super::isa::Isa;

use rayon::prelude::*;

use super::isa::has_f16c;

/// `isa`, or the portable path where a kernel needs F16C and it is missing.
fn with_f16c(isa: Isa) -> Isa {
    if isa == Isa::Scalar || has_f16c() {
        isa
    } else {
        Isa::Scalar
    }
}

/// Weights per int4 group: one f16 scale covers this many consecutive
/// weights of a row (llama.cpp's Q4_0 uses the same block size).
pub const INT4_GROUP: usize = 32;

/// The packed storage of a `[rows, cols]` weight matrix, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum PackedWeights<'a> {
    /// Plain f32, row-major: a Linear's own weight, read where it lies, so
    /// that it can join a product of shared input ([`matmul_shared_input`])
    /// beside packed ones or on its own. Its rows are `cpu::gemv::dot`'s.
    F32(&'a [f32]),
    /// IEEE half-precision bit patterns, row-major.
    F16(&'a [u16]),
    /// bfloat16 bit patterns (an f32's upper half), row-major.
    BF16(&'a [u16]),
    /// One signed byte per weight, row-major, and one scale per row.
    Int8 { values: &'a [i8], scales: &'a [f32] },
    /// Two weights per byte (see [`int4`] for the order) and one f16 scale
    /// (as bits) per group of [`INT4_GROUP`] weights, `[rows, cols / 32]`.
    Int4 { packed: &'a [u8], scales: &'a [u16] },
}

/// A `[rows, cols]` weight matrix in a packed format.
#[derive(Clone, Copy, Debug)]
pub struct PackedMatrix<'a> {
    pub rows: usize,
    pub cols: usize,
    pub weights: PackedWeights<'a>,
}

impl<'a> PackedMatrix<'a> {
    /// Checks that the buffers hold exactly a `[rows, cols]` matrix; panics
    /// otherwise (callers validate files before they get here).
    pub fn new(rows: usize, cols: usize, weights: PackedWeights<'a>) -> Self {
        let n = rows * cols;
        let ok = match weights {
            PackedWeights::F32(w) => w.len() == n,
            PackedWeights::F16(w) | PackedWeights::BF16(w) => w.len() == n,
            PackedWeights::Int8 { values, scales } => values.len() == n && scales.len() == rows,
            PackedWeights::Int4 { packed, scales } => {
                cols.is_multiple_of(INT4_GROUP) && packed.len() == n / 2 && scales.len() == n / INT4_GROUP
            }
        };
        assert!(ok, "PackedMatrix: buffers do not hold a [{rows}, {cols}] {} matrix", weights.format_name());
        PackedMatrix { rows, cols, weights }
    }

    /// y = x · rowᵀ for one weight row, in the fixed summation order.
    pub fn row_dot(&self, isa: Isa, row: usize, x: &[f32]) -> f32 {
        debug_assert_eq!(x.len(), self.cols);
        let k = self.cols;
        match self.weights {
            PackedWeights::F32(w) => crate::cpu::gemv::dot(isa, x, &w[row * k..(row + 1) * k]),
            PackedWeights::F16(w) => half_float::dot_f16(with_f16c(isa), &w[row * k..(row + 1) * k], x),
            PackedWeights::BF16(w) => half_float::dot_bf16(with_f16c(isa), &w[row * k..(row + 1) * k], x),
            PackedWeights::Int8 { values, scales } => int8::dot(isa, &values[row * k..(row + 1) * k], x) * scales[row],
            PackedWeights::Int4 { packed, scales } => {
                let groups = k / INT4_GROUP;
                let (packed, scales) =
                    (&packed[row * k / 2..(row + 1) * k / 2], &scales[row * groups..(row + 1) * groups]);
                int4::dot(with_f16c(isa), packed, scales, x)
            }
        }
    }

    /// Whether a matrix-vector product quantizes its input to 8 bits and
    /// uses the integer dot products ([`int_dot`]): int8 and int4.
    pub fn multiplies_in_integers(&self) -> bool {
        matches!(self.weights, PackedWeights::Int8 { .. } | PackedWeights::Int4 { .. })
    }

    /// y = x · rowᵀ for one int8 or int4 row against an input quantized to
    /// 8 bits, in the integer kernels' order.
    pub fn row_dot_quantized(&self, path: int_dot::IntPath, row: usize, x: &int_dot::QuantizedRow) -> f32 {
        let mut out = [0.0];
        self.rows_dot_quantized(path, row, x, &mut out);
        out[0]
    }

    /// `out[i]` = [`row_dot`](Self::row_dot) of row `first + i` for f32, f16
    /// and bf16 weights, the same bits, for a block of rows in one call.
    pub fn rows_dot(&self, isa: Isa, first: usize, x: &[f32], out: &mut [f32]) {
        let rows = first * self.cols..(first + out.len()) * self.cols;
        match self.weights {
            PackedWeights::F16(w) => half_float::dot_half_rows(with_f16c(isa), false, &w[rows], x, out),
            PackedWeights::BF16(w) => half_float::dot_half_rows(with_f16c(isa), true, &w[rows], x, out),
            _ => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.row_dot(isa, first + i, x);
                }
            }
        }
    }

    /// `out[i]` = [`row_dot_quantized`](Self::row_dot_quantized) of row
    /// `first + i`, the same bits, for a block of rows in one call.
    pub fn rows_dot_quantized(&self, path: int_dot::IntPath, first: usize, x: &int_dot::QuantizedRow, out: &mut [f32]) {
        let (k, rows) = (self.cols, first..first + out.len());
        match self.weights {
            PackedWeights::Int8 { values, scales } => {
                int_dot::dot_int8_rows(path, &values[rows.start * k..rows.end * k], x, out);
                for (o, &s) in out.iter_mut().zip(&scales[rows]) {
                    *o *= s;
                }
            }
            PackedWeights::Int4 { packed, scales } => {
                let groups = k / INT4_GROUP;
                let (packed, scales) =
                    (&packed[rows.start * k / 2..rows.end * k / 2], &scales[rows.start * groups..rows.end * groups]);
                int_dot::dot_int4_rows(path, packed, scales, x, out)
            }
            _ => panic!("rows_dot_quantized: {} weights are multiplied in f32", self.weights.format_name()),
        }
    }

    /// Decodes row `row` into `out` (`cols` floats).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let k = self.cols;
        assert_eq!(out.len(), k, "dequantize_row: output holds {} floats, the row {k}", out.len());
        match self.weights {
            PackedWeights::F32(w) => out.copy_from_slice(&w[row * k..(row + 1) * k]),
            PackedWeights::F16(w) => half_float::decode_f16(&w[row * k..(row + 1) * k], out),
            PackedWeights::BF16(w) => half_float::decode_bf16(&w[row * k..(row + 1) * k], out),
            PackedWeights::Int8 { values, scales } => int8::decode(&values[row * k..(row + 1) * k], scales[row], out),
            PackedWeights::Int4 { packed, scales } => {
                let groups = k / INT4_GROUP;
                int4::decode(&packed[row * k / 2..(row + 1) * k / 2], &scales[row * groups..(row + 1) * groups], out)
            }
        }
    }
}

impl PackedWeights<'_> {
    pub fn format_name(&self) -> &'static str {
        match self {
            PackedWeights::F32(_) => "f32",
            PackedWeights::F16(_) => "f16",
            PackedWeights::BF16(_) => "bf16",
            PackedWeights::Int8 { .. } => "int8",
            PackedWeights::Int4 { .. } => "int4",
        }
    }

    /// Bytes a pass over the matrix reads: the weights and their scales.
    pub fn bytes(&self) -> usize {
        match self {
            PackedWeights::F32(w) => 4 * w.len(),
            PackedWeights::F16(w) | PackedWeights::BF16(w) => 2 * w.len(),
            PackedWeights::Int8 { values, scales } => values.len() + 4 * scales.len(),
            PackedWeights::Int4 { packed, scales } => packed.len() + 2 * scales.len(),
        }
    }
}

impl PackedMatrix<'_> {
    /// Input rows up to which a product makes one matrix-vector pass per
    /// row; above it, tiles. f16 and bf16: decoding tiles for the f32 GEMM
    /// costs about a pass, and their passes read twice int8's bytes; they
    /// cross near 5 rows. int8 and int4: the integer tiles (`int_tiled`)
    /// copy each weight tile into their order once, about 0.9 ms for a
    /// `[3072, 768]` weight, then run about 3× faster per row than the
    /// passes. Measured on that weight, one thread, 2-core AMD EPYC with
    /// AVX-512 VNNI (criterion medians, `benches/quant_gemv.rs`, group
    /// `quant_prompt`), passes against tiles: int8 at 8 rows 0.62 ms against
    /// 1.04, at 16 rows 1.05 against 1.14, at 64 rows ~4.2 (16 rows' × 4)
    /// against 2.23; int4 at 16 rows 1.54 against 1.91, at 64 rows ~6.2
    /// against 3.03. Both cross near 16–20 rows.
    /// f32 weights take the passes only for a single row: from two rows on,
    /// the f32 GEMM (through `tiled`) reads each weight once for all of them.
    fn gemv_max_rows(&self) -> usize {
        match self.weights {
            PackedWeights::F32(_) => 1,
            PackedWeights::F16(_) | PackedWeights::BF16(_) => 4,
            PackedWeights::Int8 { .. } | PackedWeights::Int4 { .. } => 16,
        }
    }
}

/// y `[m, rows]` = x `[m, cols]` · Wᵀ, with the best instruction set.
pub fn matmul(x: &[f32], m: usize, w: &PackedMatrix, y: &mut [f32]) {
    matmul_with(Isa::detect(), x, m, w, y)
}

/// [`matmul`] on a given instruction set (tests compare them).
pub fn matmul_with(isa: Isa, x: &[f32], m: usize, w: &PackedMatrix, y: &mut [f32]) {
    matmul_shared_input_with(isa, x, m, &mut [(w, y)])
}

/// y_i `[m, rows_i]` = x `[m, cols]` · W_iᵀ for several matrices of the
/// same input (a layer's q, k and v), with the best instruction set: the
/// outputs of one [`matmul`] each, with decoding's matrix-vector products
/// run as one ([`gemv::gemv_shared_input`]).
pub fn matmul_shared_input(x: &[f32], m: usize, products: &mut [(&PackedMatrix, &mut [f32])]) {
    matmul_shared_input_with(Isa::detect(), x, m, products)
}

/// [`matmul_shared_input`] on a given instruction set.
pub fn matmul_shared_input_with(isa: Isa, x: &[f32], m: usize, products: &mut [(&PackedMatrix, &mut [f32])]) {
    for (w, y) in products.iter() {
        assert_eq!(x.len(), m * w.cols, "quant matmul: x holds {} floats, expected {m}×{}", x.len(), w.cols);
        assert_eq!(y.len(), m * w.rows, "quant matmul: y holds {} floats, expected {m}×{}", y.len(), w.rows);
    }
    let cols = products.first().map_or(0, |(w, _)| w.cols);
    if cols == 0 {
        return products.iter_mut().for_each(|(_, y)| y.fill(0.0));
    }
    // A few input rows: one matrix-vector pass each, against all the
    // matrices that take that path at once.
    let (vector, tiled): (Vec<_>, Vec<_>) =
        products.iter_mut().filter(|(w, _)| w.rows > 0).partition(|(w, _)| m <= w.gemv_max_rows());
    let mut vector: Vec<_> = vector.into_iter().map(|(w, y)| (*w, y.chunks_exact_mut(w.rows))).collect();
    if !vector.is_empty() {
        for xr in x.chunks_exact(cols) {
            let mut row: Vec<_> = vector.iter_mut().map(|(w, y)| (*w, y.next().expect("m rows of outputs"))).collect();
            gemv::gemv_shared_input(isa, xr, &mut row);
        }
    }
    // More rows: the arithmetic is the cost, matrix by matrix.
    for (w, y) in tiled {
        if w.multiplies_in_integers() {
            // Every row quantized once, as the matrix-vector path quantizes
            // it: the same integer products, their block sums added in the
            // tiles' own order (`int_tiled`), so the same tokens decoded one
            // by one agree with a prompt to rounding.
            let rows: Vec<int_dot::QuantizedRow> =
                x.par_chunks_exact(cols).map(int_dot::QuantizedRow::for_tiles).collect();
            int_tiled::matmul(int_dot::IntPath::for_isa(isa), w, &rows, y);
        } else {
            tiled::matmul(w, x, m, y);
        }
    }
}
