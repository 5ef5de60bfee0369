//! 16-bit floats to f32, bit by bit.
//!
//! An f16 is 1 sign bit, 5 exponent bits (bias 15) and 10 mantissa bits; an
//! f32 has 8 exponent bits (bias 127) and 23 mantissa bits, so every f16 is
//! exactly an f32: move the sign, rebias the exponent, shift the mantissa.
//! The special cases are the smallest numbers (subnormals, exponent 0,
//! which f32 stores normalised) and infinities/NaN (exponent 31).
//!
//! A bf16 is simply the upper half of an f32 (same 8-bit exponent, 7-bit
//! mantissa), so widening it is a 16-bit shift.

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
