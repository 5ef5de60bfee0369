//! f32 into GGUF's storage types, with ggml's own rounding
//! (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref` in ggml-quants.c,
//! which the `gguf` Python package repeats bit for bit):
//!
//! - **Q8_0**: per block of 32, d = max|w| / 127 and q = round(w / d),
//!   rounding halves away from zero; d is stored as f16 but q is computed
//!   with the f32 d.
//! - **Q4_0**: per block of 32, the weight of largest magnitude m (the
//!   first, on a tie) sets d = m / −8, so m itself becomes q = −8 and the
//!   range [−8, 7] is used in full; each weight is stored as
//!   min(15, trunc(w / d + 8.5)), i.e. q + 8 rounded half up.
//!
//! How these compare with this crate's own int8/int4 (`tensor::quant`):
//! our int8 keeps one f32 scale per *row*, Q8_0 one f16 scale per 32
//! weights, so the two layouts differ and Q8_0 is not loaded as our int8.
//! Our int4 packs 32 weights exactly as Q4_0 does (byte j = weight j in
//! the low nibble, weight j + 16 in the high one, each as q + 8) with an
//! f16 scale per 32, and decodes w = d·(nibble − 8) as Q4_0 does: a Q4_0
//! tensor *is* our int4 with the scales kept beside the nibbles, which is
//! how `--model FILE.gguf` loads it. Only the rounding rules differ (ours
//! is symmetric, q ∈ [−7, 7] with d ≥ 0; Q4_0 uses −8 and a signed d), so
//! exporting re-quantizes from f32 with the rules above rather than
//! copying our int4 bytes.

use half::{bf16, f16};

use super::ggml_type::GgmlType;

/// `values` (whole blocks of `ty`) stored as `ty`. Callers check that the
/// values are finite (a NaN has no quantized form), and that `ty` is one we
/// write: the k-quants are read only (`export` refuses them first).
pub fn quantize(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    assert!(values.len().is_multiple_of(ty.block_size()), "quantize: {} values is not whole {ty} blocks", values.len());
    match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        GgmlType::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        GgmlType::Q8_0 => values.chunks_exact(32).flat_map(q8_0).collect(),
        GgmlType::Q4_0 => values.chunks_exact(32).flat_map(q4_0).collect(),
        GgmlType::Q4_K | GgmlType::Q6_K => panic!("quantize: {ty} is read, not written; export refuses it first"),
    }
}

/// One Q8_0 block: f16 d, then 32 signed bytes.
pub fn q8_0(x: &[f32]) -> [u8; 34] {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut out = [0u8; 34];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (o, &v) in out[2..].iter_mut().zip(x) {
        // f32::round rounds halves away from zero, as C's roundf.
        *o = (v * id).round() as i8 as u8;
    }
    out
}

/// One Q4_0 block: f16 d, then 16 bytes of nibble pairs.
pub fn q4_0(x: &[f32]) -> [u8; 18] {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let nibble = |v: f32| ((v * id + 8.5).trunc() as u8).min(15);
    let mut out = [0u8; 18];
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for j in 0..16 {
        out[2 + j] = nibble(x[j]) | (nibble(x[j + 16]) << 4);
    }
    out
}
