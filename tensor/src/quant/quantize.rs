//! Turning f32 weights into their packed forms, and back.
//!
//! Symmetric absmax quantization maps the largest magnitude in a block of
//! weights to the largest integer and rounds everything else to the
//! nearest step:
//!
//!   scale = max|w| / qmax        q = round(w / scale) ∈ [-qmax, qmax]
//!   w ≈ scale · q                |w - scale·q| ≤ scale / 2
//!
//! "Symmetric" means zero maps to zero and no offset is stored; GPT weights
//! are centred on zero, so an offset would buy little. int8 uses one scale
//! per row (qmax 127), int4 one per group of 32 weights (qmax 7). A block
//! that is all zeros gets scale 0 and q = 0.
//!
//! The int4 scale is stored as f16, so q is computed against the rounded
//! scale actually stored (rounded up if f16 rounding made it smaller, so
//! max|w| / scale never exceeds 7 and the half-step bound still holds).

use half::{bf16, f16};
use kernels::cpu::quant::int4::{pack_group, GROUP_BYTES};
use kernels::cpu::quant::INT4_GROUP;

/// Largest int8 value used: ±127 keeps the range symmetric (−128 unused).
pub const INT8_MAX: f32 = 127.0;
/// Largest int4 value used: ±7 (−8 unused).
pub const INT4_MAX: f32 = 7.0;

/// Why a weight matrix cannot be quantized.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuantizeError {
    #[error("holds a non-finite value ({0})")]
    NonFinite(f32),
    #[error("has {cols} columns; int4 groups need a multiple of {INT4_GROUP}")]
    Int4Columns { cols: usize },
    #[error("has a weight of magnitude {0}, beyond what an f16 scale can hold")]
    Int4Range(f32),
    #[error("has a weight of magnitude {0}, beyond f16's largest value 65504")]
    F16Range(f32),
    #[error("is already quantized ({0})")]
    AlreadyQuantized(super::scheme::Scheme),
}

fn check_finite(w: &[f32]) -> Result<(), QuantizeError> {
    match w.iter().find(|v| !v.is_finite()) {
        Some(&v) => Err(QuantizeError::NonFinite(v)),
        None => Ok(()),
    }
}

fn absmax(w: &[f32]) -> f32 {
    w.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Each row of a `[rows, cols]` matrix as int8 values plus one f32 scale.
pub fn quantize_int8(w: &[f32], cols: usize) -> Result<(Vec<i8>, Vec<f32>), QuantizeError> {
    check_finite(w)?;
    let mut values = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(w.len() / cols.max(1));
    for row in w.chunks_exact(cols.max(1)) {
        let scale = absmax(row) / INT8_MAX;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        values.extend(row.iter().map(|&v| (v * inv).round().clamp(-INT8_MAX, INT8_MAX) as i8));
        scales.push(scale);
    }
    Ok((values, scales))
}

/// The smallest f16 at or above `x` (x ≥ 0, finite in f16's range).
fn f16_at_least(x: f32) -> f16 {
    let h = f16::from_f32(x);
    if h.to_f32() >= x {
        h
    } else {
        f16::from_bits(h.to_bits() + 1)
    }
}

/// A `[rows, cols]` matrix as packed int4 (16 bytes per group of 32, see
/// `kernels::cpu::quant::int4`) plus one f16 scale per group.
pub fn quantize_int4(w: &[f32], cols: usize) -> Result<(Vec<u8>, Vec<f16>), QuantizeError> {
    if !cols.is_multiple_of(INT4_GROUP) {
        return Err(QuantizeError::Int4Columns { cols });
    }
    check_finite(w)?;
    let groups = w.len() / INT4_GROUP;
    let mut packed = Vec::with_capacity(groups * GROUP_BYTES);
    let mut scales = Vec::with_capacity(groups);
    let mut q = [0i8; INT4_GROUP];
    for group in w.chunks_exact(INT4_GROUP) {
        let max = absmax(group);
        if max / INT4_MAX > f16::MAX.to_f32() {
            return Err(QuantizeError::Int4Range(max));
        }
        let scale = f16_at_least(max / INT4_MAX);
        let d = scale.to_f32();
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (qi, &v) in q.iter_mut().zip(group) {
            *qi = (v * inv).round().clamp(-INT4_MAX, INT4_MAX) as i8;
        }
        packed.extend_from_slice(&pack_group(&q));
        scales.push(scale);
    }
    Ok((packed, scales))
}

/// Weights rounded to the nearest f16.
pub fn quantize_f16(w: &[f32]) -> Result<Vec<f16>, QuantizeError> {
    check_finite(w)?;
    let max = absmax(w);
    if max > f16::MAX.to_f32() {
        return Err(QuantizeError::F16Range(max));
    }
    Ok(w.iter().map(|&v| f16::from_f32(v)).collect())
}

/// Weights rounded to the nearest bf16.
pub fn quantize_bf16(w: &[f32]) -> Result<Vec<bf16>, QuantizeError> {
    check_finite(w)?;
    Ok(w.iter().map(|&v| bf16::from_f32(v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::cpu::quant::{PackedMatrix, PackedWeights};
    use proptest::prelude::*;

    fn dequantize(rows: usize, cols: usize, weights: PackedWeights) -> Vec<f32> {
        let m = PackedMatrix::new(rows, cols, weights);
        let mut out = vec![0.0; rows * cols];
        for (r, row) in out.chunks_exact_mut(cols).enumerate() {
            m.dequantize_row(r, row);
        }
        out
    }

    /// Weights of a plausible size, with an occasional outlier and zero row.
    fn matrix(max_rows: usize, col_groups: std::ops::Range<usize>) -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
        (1..max_rows, col_groups).prop_flat_map(|(rows, groups)| {
            let cols = groups * INT4_GROUP;
            let value = prop_oneof![8 => -1.0f32..1.0, 1 => -50.0f32..50.0, 1 => Just(0.0f32), 1 => -1e-6f32..1e-6];
            (Just(rows), Just(cols), proptest::collection::vec(value, rows * cols))
        })
    }

    proptest! {
        #[test]
        fn int8_error_is_at_most_half_a_step((rows, cols, w) in matrix(6, 1..5)) {
            let (values, scales) = quantize_int8(&w, cols).unwrap();
            let back = dequantize(rows, cols, PackedWeights::Int8 { values: &values, scales: &scales });
            for (i, (&a, &b)) in w.iter().zip(&back).enumerate() {
                let step = scales[i / cols];
                // Half a step, plus the rounding of w/s and of s·q themselves.
                prop_assert!((a - b).abs() <= step * 0.5 * (1.0 + 1e-5) + a.abs() * 1e-6,
                    "w {a} → {b}, step {step}");
            }
        }

        #[test]
        fn int4_error_is_at_most_half_a_step((rows, cols, w) in matrix(6, 1..5)) {
            let (packed, scales) = quantize_int4(&w, cols).unwrap();
            let bits: Vec<u16> = scales.iter().map(|s| s.to_bits()).collect();
            let back = dequantize(rows, cols, PackedWeights::Int4 { packed: &packed, scales: &bits });
            for (i, (&a, &b)) in w.iter().zip(&back).enumerate() {
                let step = scales[i / INT4_GROUP].to_f32();
                prop_assert!((a - b).abs() <= step * 0.5 * (1.0 + 1e-5) + a.abs() * 1e-6,
                    "w {a} → {b}, step {step}");
                // The stored scale never undershoots max|w| / 7.
                let group = &w[i / INT4_GROUP * INT4_GROUP..][..INT4_GROUP];
                prop_assert!(step * INT4_MAX >= absmax(group));
            }
        }

        #[test]
        fn half_floats_round_to_nearest(w in proptest::collection::vec(-100.0f32..100.0, 1..64)) {
            let h = quantize_f16(&w).unwrap();
            let b = quantize_bf16(&w).unwrap();
            for ((&v, hv), bv) in w.iter().zip(&h).zip(&b) {
                prop_assert!((v - hv.to_f32()).abs() <= v.abs() * 2f32.powi(-11) + 2f32.powi(-25));
                prop_assert!((v - bv.to_f32()).abs() <= v.abs() * 2f32.powi(-8));
            }
        }
    }

    #[test]
    fn known_values_and_errors() {
        let (q, s) = quantize_int8(&[0.5, -1.27, 0.0, 0.01], 4).unwrap();
        assert_eq!(s, vec![0.01]);
        assert_eq!(q, vec![50, -127, 0, 1]);
        let (q, s) = quantize_int8(&[0.0; 3], 3).unwrap();
        assert_eq!((q, s), (vec![0; 3], vec![0.0]));
        assert_eq!(quantize_int4(&[0.0; 48], 48).unwrap_err(), QuantizeError::Int4Columns { cols: 48 });
        assert!(matches!(quantize_int8(&[f32::NAN], 1), Err(QuantizeError::NonFinite(_))));
        assert_eq!(quantize_f16(&[1e6]).unwrap_err(), QuantizeError::F16Range(1e6));
    }

    #[test]
    fn the_kernels_decode_f16_exactly_as_half_does() {
        for bits in 0..=u16::MAX {
            let ours = kernels::cpu::quant::half_float::f16_to_f32(bits);
            let theirs = f16::from_bits(bits).to_f32();
            assert!(ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()), "{bits:#06x}");
        }
    }
}
