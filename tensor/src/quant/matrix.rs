//! A weight matrix held in a quantized format, and the products a model
//! needs from it.
//!
//! `QuantMatrix` owns the packed buffers of a `[rows, cols]` matrix (one
//! row per output, as a `Linear` weight) and computes, without ever
//! expanding the whole matrix to f32:
//! - `matmul`: x `[.., cols]` → x·Wᵀ `[.., rows]` (a Linear layer, or the
//!   tied output head where the rows are the vocabulary);
//! - [`matmul_shared_input`]: several such products of one input (q, k and
//!   v), run as one, where plain f32 weights may join the packed ones;
//! - `lookup_rows`: the rows for some ids, decoded (an embedding lookup).

use std::borrow::Cow;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use kernels::cpu::quant::{self as qk, PackedMatrix, PackedWeights};

use super::quantize::{quantize_bf16, quantize_f16, quantize_int4, quantize_int8, QuantizeError};
use super::scheme::Scheme;
use crate::{DType, Tensor};

/// The packed buffers of one matrix.
#[derive(Clone, Debug)]
pub enum QuantData {
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    /// One value per weight, one scale per row.
    Int8 {
        values: Vec<i8>,
        scales: Vec<f32>,
    },
    /// Two weights per byte, one scale per group of 32 weights.
    Int4 {
        packed: Vec<u8>,
        scales: Vec<f16>,
    },
}

#[derive(Clone, Debug)]
pub struct QuantMatrix {
    rows: usize,
    cols: usize,
    data: QuantData,
}

impl QuantMatrix {
    /// Quantizes a dense row-major `[rows, cols]` f32 matrix.
    pub fn quantize(w: &[f32], rows: usize, cols: usize, scheme: Scheme) -> Result<Self, QuantizeError> {
        assert_eq!(w.len(), rows * cols, "QuantMatrix::quantize: {} values for [{rows}, {cols}]", w.len());
        let data = match scheme {
            Scheme::F16 => QuantData::F16(quantize_f16(w)?),
            Scheme::BF16 => QuantData::BF16(quantize_bf16(w)?),
            Scheme::Int8 => {
                let (values, scales) = quantize_int8(w, cols)?;
                QuantData::Int8 { values, scales }
            }
            Scheme::Int4 => {
                let (packed, scales) = quantize_int4(w, cols)?;
                QuantData::Int4 { packed, scales }
            }
        };
        Ok(QuantMatrix::from_parts(rows, cols, data))
    }

    /// Wraps buffers already in packed form. Panics if their lengths do not
    /// describe a `[rows, cols]` matrix (loaders check before calling).
    pub fn from_parts(rows: usize, cols: usize, data: QuantData) -> Self {
        let m = QuantMatrix { rows, cols, data };
        m.packed(); // validates the lengths
        m
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn data(&self) -> &QuantData {
        &self.data
    }

    pub fn scheme(&self) -> Scheme {
        match self.data {
            QuantData::F16(_) => Scheme::F16,
            QuantData::BF16(_) => Scheme::BF16,
            QuantData::Int8 { .. } => Scheme::Int8,
            QuantData::Int4 { .. } => Scheme::Int4,
        }
    }

    /// Bytes held: the packed weights plus their scales.
    pub fn bytes(&self) -> usize {
        self.packed().weights.bytes()
    }

    /// The kernels' borrowed view.
    pub fn packed(&self) -> PackedMatrix<'_> {
        let weights = match &self.data {
            QuantData::F16(w) => PackedWeights::F16(w.reinterpret_cast()),
            QuantData::BF16(w) => PackedWeights::BF16(w.reinterpret_cast()),
            QuantData::Int8 { values, scales } => PackedWeights::Int8 { values, scales },
            QuantData::Int4 { packed, scales } => PackedWeights::Int4 { packed, scales: scales.reinterpret_cast() },
        };
        PackedMatrix::new(self.rows, self.cols, weights)
    }

    /// x `[.., cols]` (f32) → x·Wᵀ (+ bias) `[.., rows]`.
    pub fn matmul(&self, x: &Tensor, bias: Option<&Tensor>) -> Tensor {
        let [y] = matmul_shared_input([(SharedWeight::Packed(self), bias)], x);
        y
    }

    /// The decoded rows for int64 `ids` of any shape: `ids.shape + [cols]`.
    pub fn lookup_rows(&self, ids: &Tensor) -> Tensor {
        assert_eq!(ids.dtype(), DType::I64, "quantized lookup: ids must be int64, got {}", ids.dtype());
        let packed = self.packed();
        let mut dims = ids.dims().to_vec();
        dims.push(self.cols);
        let ids = ids.contiguous_data::<i64>();
        let mut out = vec![0.0f32; ids.len() * self.cols];
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(self.cols.max(1))) {
            assert!((0..self.rows as i64).contains(&id), "quantized lookup: id {id} is outside the {} rows", self.rows);
            packed.dequantize_row(id as usize, row);
        }
        Tensor::from_vec(out, dims).expect("ids·cols values")
    }

    /// The whole matrix decoded to f32 (for inspection and tests; the model
    /// never calls this).
    pub fn dequantize(&self) -> Tensor {
        let packed = self.packed();
        let mut out = vec![0.0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols.max(1)).enumerate() {
            packed.dequantize_row(r, row);
        }
        Tensor::from_vec(out, [self.rows, self.cols]).expect("rows·cols values")
    }
}

/// The weight of one product in [`matmul_shared_input`].
#[derive(Clone, Debug)]
pub enum SharedWeight<'a> {
    /// A packed matrix.
    Packed(&'a QuantMatrix),
    /// A plain f32 `[rows, cols]` matrix on the CPU (a Linear's weight),
    /// read where it lies.
    Dense(Tensor),
}

impl SharedWeight<'_> {
    fn rows_cols(&self) -> (usize, usize) {
        match self {
            SharedWeight::Packed(w) => (w.rows, w.cols),
            SharedWeight::Dense(w) => (w.dim(0), w.dim(1)),
        }
    }
}

/// x `[.., cols]` (f32) times several weights of one input, → one
/// x·W_iᵀ (+ bias_i) `[.., rows_i]` each: a layer's query, key and value
/// projections, or its gate and up. The same outputs as one product each;
/// when decoding, the matrix-vector products run as one
/// (`kernels::cpu::quant::matmul_shared_input`), so the threads meet once
/// for all of them, and an f32 weight's rows are summed as the f32 GEMM's
/// one-row path sums them (`kernels::cpu::gemv::dot`), bit for bit.
pub fn matmul_shared_input<const N: usize>(
    layers: [(SharedWeight<'_>, Option<&Tensor>); N],
    x: &Tensor,
) -> [Tensor; N] {
    assert_eq!(x.dtype(), DType::F32, "shared-input matmul: input must be f32, got {}", x.dtype());
    let cols = x.dim(-1);
    for (w, _) in &layers {
        if let SharedWeight::Dense(t) = w {
            assert!(
                t.dtype() == DType::F32 && t.rank() == 2 && !t.device().is_cuda(),
                "shared-input matmul: a dense weight must be a 2-D f32 tensor on the CPU, got {} {} on {:?}",
                t.dtype(),
                t.shape(),
                t.device()
            );
        }
        let (rows, w_cols) = w.rows_cols();
        assert_eq!(cols, w_cols, "shared-input matmul: input {} against a [{rows}, {w_cols}] weight", x.shape());
    }
    let m = x.numel() / cols.max(1);
    let input = x.contiguous_data::<f32>();
    // The dense weights' values, borrowed where they are contiguous (none
    // for a packed one).
    let values: Vec<Cow<'_, [f32]>> = layers
        .iter()
        .map(|(w, _)| match w {
            SharedWeight::Dense(t) => t.contiguous_data::<f32>(),
            SharedWeight::Packed(_) => Cow::Borrowed(&[][..]),
        })
        .collect();
    let packed: Vec<PackedMatrix<'_>> = layers
        .iter()
        .zip(&values)
        .map(|((w, _), values)| match w {
            SharedWeight::Packed(q) => q.packed(),
            SharedWeight::Dense(t) => PackedMatrix::new(t.dim(0), t.dim(1), PackedWeights::F32(values)),
        })
        .collect();
    let mut outputs: Vec<Vec<f32>> = packed.iter().map(|w| crate::pool::zeroed::<f32>(m * w.rows)).collect();
    let mut products: Vec<_> = packed.iter().zip(outputs.iter_mut()).map(|(w, y)| (w, y.as_mut_slice())).collect();
    qk::matmul_shared_input(&input, m, &mut products);
    let mut outputs = outputs.into_iter();
    layers.map(|(w, bias)| {
        let rows = w.rows_cols().0;
        let mut y = outputs.next().expect("one output per layer");
        if let Some(b) = bias {
            let b = b.contiguous_data::<f32>();
            assert_eq!(b.len(), rows, "shared-input matmul: bias of {} for {rows} outputs", b.len());
            for row in y.chunks_exact_mut(rows.max(1)) {
                row.iter_mut().zip(b.iter()).for_each(|(v, &bv)| *v += bv);
            }
        }
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("rank ≥ 1") = rows;
        Tensor::from_vec(y, dims).expect("m·rows outputs")
    })
}
