//! f16 and bf16: two bytes per weight, no scales.
//!
//! Half-precision weights need no quantization step: each weight is simply
//! rounded to the nearest 16-bit float. f16 keeps 11 significant bits
//! (relative error ≤ 2^-11) but only covers ±65504; bf16 keeps 8
//! (≤ 2^-8) with f32's full range.
//!
//! Widening either back to f32 is exact. An f16 is 1 sign bit, 5 exponent
//! bits (bias 15) and 10 mantissa bits; an f32 has 8 exponent bits (bias
//! 127) and 23 mantissa bits, so every f16 is exactly an f32: move the
//! sign, rebias the exponent, shift the mantissa ([`f16_to_f32`]). The
//! special cases are the smallest numbers (subnormals, exponent 0, which
//! f32 stores normalised) and infinities/NaN (exponent 31). A bf16 is
//! simply the upper half of an f32 (same 8-bit exponent, 7-bit mantissa),
//! so widening it is a 16-bit shift ([`bf16_to_f32`]).
//!
//! The dot product is therefore an ordinary f32 dot product whose weights
//! are decoded on the fly: `vcvtph2ps` (F16C / AVX-512F) for f16, a 16-bit
//! shift for bf16. (int4's per-group scales are f16 too, decoded here.)

use super::Isa;
use crate::cpu::dot_order;

/// The f32 with the same value as the f16 with bits `h`.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exponent = ((h >> 10) & 0x1f) as u32;
    let mantissa = (h & 0x03ff) as u32;
    let bits = match exponent {
        0 if mantissa == 0 => sign,
        // Subnormal: value = mantissa · 2^-24, exact in f32.
        0 => {
            let magnitude = mantissa as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        31 => sign | 0x7f80_0000 | (mantissa << 13),
        e => sign | ((e + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// The f32 with the same value as the bf16 with bits `b`.
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// x · w for one row of f16 weights, in the fixed order.
pub fn dot_f16(isa: Isa, w: &[u16], x: &[f32]) -> f32 {
    let mut out = [0.0];
    dot_half_rows(isa, false, w, x, &mut out);
    out[0]
}

/// x · w for one row of bf16 weights, in the fixed order.
pub fn dot_bf16(isa: Isa, w: &[u16], x: &[f32]) -> f32 {
    let mut out = [0.0];
    dot_half_rows(isa, true, w, x, &mut out);
    out[0]
}

/// x · w in the fixed order for each of the `out.len()` rows of f16 (or,
/// `bf16` true, bf16) weights in `w` (`[rows, x.len()]`), into `out`, one
/// call for the block (see `gemv`).
pub fn dot_half_rows(isa: Isa, bf16: bool, w: &[u16], x: &[f32], out: &mut [f32]) {
    let k = x.len();
    assert_eq!(w.len(), out.len() * k, "16-bit dot: {} weights for {} rows of {k}", w.len(), out.len());
    if k == 0 {
        return out.fill(0.0);
    }
    match (isa, bf16) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 is offered only with FMA, AVX-512 with AVX2, and
        // the caller drops to the portable path without F16C (both formats'
        // kernels are compiled with it); the lengths match.
        (Isa::Avx512, false) => unsafe { x86::dot_half_rows_avx512::<false>(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx512, true) => unsafe { x86::dot_half_rows_avx512::<true>(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx2, false) => unsafe { x86::dot_half_rows_avx2::<false>(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Isa::Avx2, true) => unsafe { x86::dot_half_rows_avx2::<true>(w, x, out) },
        _ => {
            let widen = if bf16 { bf16_to_f32 } else { f16_to_f32 };
            for (o, row) in out.iter_mut().zip(w.chunks_exact(k)) {
                *o = dot_order::dot_scalar(x, |j| widen(row[j]));
            }
        }
    }
}

pub fn decode_f16(w: &[u16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect() != Isa::Scalar {
        // SAFETY: AVX2 is offered only with F16C present.
        return unsafe { x86::decode_f16_f16c(w, out) };
    }
    for (o, &h) in out.iter_mut().zip(w) {
        *o = f16_to_f32(h);
    }
}

pub fn decode_bf16(w: &[u16], out: &mut [f32]) {
    for (o, &b) in out.iter_mut().zip(w) {
        *o = bf16_to_f32(b);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{bf16_to_f32, f16_to_f32};
    use crate::cpu::dot_order::x86::*;
    use crate::cpu::dot_order::DOT_LANES;

    /// 8 halves at `p` as floats: f16 converted by F16C, bf16 moved into
    /// the upper half of an f32.
    ///
    /// # Safety
    /// Needs AVX2 and F16C; 8 readable halves at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn widen8<const BF16: bool>(p: *const u16) -> __m256 {
        // SAFETY: 8 halves at p (the caller's promise).
        let h = unsafe { _mm_loadu_si128(p as *const __m128i) };
        if BF16 {
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
        } else {
            _mm256_cvtph_ps(h)
        }
    }

    /// 16 halves at `p` as floats, as [`widen8`] widens 8.
    ///
    /// # Safety
    /// Needs AVX-512F and F16C; 16 readable halves at `p`.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn widen16<const BF16: bool>(p: *const u16) -> __m512 {
        // SAFETY: 16 halves at p (the caller's promise).
        let h = unsafe { _mm256_loadu_si256(p as *const __m256i) };
        if BF16 {
            _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
        } else {
            _mm512_cvtph_ps(h)
        }
    }

    /// One half-precision weight as a float, for a row's tail.
    fn widen<const BF16: bool>(h: u16) -> f32 {
        if BF16 {
            bf16_to_f32(h)
        } else {
            f16_to_f32(h)
        }
    }

    /// x · w for one row of f16 (`BF16` false) or bf16 weights, four
    /// 8-float sums of the fixed order.
    ///
    /// # Safety
    /// Needs AVX2, FMA and F16C; equal lengths.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_half_avx2<const BF16: bool>(w: &[u16], x: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let mut acc = [_mm256_setzero_ps(); 4];
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            prefetch_ahead(wp.wrapping_add(base));
            for (h, a) in acc.iter_mut().enumerate() {
                // SAFETY: base + 8h + 8 ≤ full ≤ len for both slices.
                unsafe {
                    let wv = widen8::<BF16>(wp.add(base + 8 * h));
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(base + 8 * h)), wv, *a);
                }
            }
        }
        // SAFETY: AVX2 implies AVX.
        let mut sum = unsafe { fold_avx2(acc) };
        for j in full..x.len() {
            sum = x[j].mul_add(widen::<BF16>(w[j]), sum);
        }
        sum
    }

    /// The same sums in two 16-float registers.
    ///
    /// # Safety
    /// Needs AVX-512F, AVX2, FMA and F16C; equal lengths.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn dot_half_avx512<const BF16: bool>(w: &[u16], x: &[f32]) -> f32 {
        let full = x.len() / DOT_LANES * DOT_LANES;
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        for base in (0..full).step_by(DOT_LANES) {
            prefetch_ahead(wp.wrapping_add(base));
            // SAFETY: base + 32 ≤ full ≤ len for both slices.
            unsafe {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(base)), widen16::<BF16>(wp.add(base)), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(xp.add(base + 16)), widen16::<BF16>(wp.add(base + 16)), acc1);
            }
        }
        // SAFETY: the caller has AVX-512F.
        let mut sum = unsafe { fold_avx512([acc0, acc1]) };
        for j in full..x.len() {
            sum = x[j].mul_add(widen::<BF16>(w[j]), sum);
        }
        sum
    }

    /// Row after row through the one-row kernel, inlined: the call, the
    /// dispatch and the checks once per block of rows.
    ///
    /// # Safety
    /// Needs AVX2, FMA and F16C; `w` holds `out.len()` rows of `x.len()`
    /// weights.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_half_rows_avx2<const BF16: bool>(w: &[u16], x: &[f32], out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
            // SAFETY: forwarded; each row is as long as x.
            *o = unsafe { dot_half_avx2::<BF16>(row, x) };
        }
    }

    /// [`dot_half_rows_avx2`] in 16-float registers.
    ///
    /// # Safety
    /// Needs AVX-512F, AVX2, FMA and F16C; as above.
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    pub unsafe fn dot_half_rows_avx512<const BF16: bool>(w: &[u16], x: &[f32], out: &mut [f32]) {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(x.len())) {
            // SAFETY: forwarded; each row is as long as x.
            *o = unsafe { dot_half_avx512::<BF16>(row, x) };
        }
    }

    /// # Safety
    /// Needs F16C (and AVX).
    #[target_feature(enable = "avx,f16c")]
    pub unsafe fn decode_f16_f16c(w: &[u16], out: &mut [f32]) {
        let n = w.len().min(out.len());
        let full = n / 8 * 8;
        for j in (0..full).step_by(8) {
            // SAFETY: j + 8 ≤ full ≤ both lengths.
            unsafe {
                let v = _mm256_cvtph_ps(_mm_loadu_si128(w.as_ptr().add(j) as *const __m128i));
                _mm256_storeu_ps(out.as_mut_ptr().add(j), v);
            }
        }
        for j in full..n {
            out[j] = f16_to_f32(w[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc0a0), -5.0);
    }
}
