//! e^x in f32 that the compiler can vectorise.
//!
//! The C library's `expf` is accurate but is a function call per element,
//! so a loop over a million activations runs one value at a time. This
//! version is a handful of multiplies and adds with no branches and no
//! calls; inlined into a loop, the compiler runs it on a whole SIMD
//! register of values at once. The classic recipe (Cephes' `expf`):
//!
//! 1. Split x = n·ln 2 + r with n an integer and |r| ≤ ½·ln 2, so
//!    e^x = 2^n · e^r. (ln 2 is split into a high and a low part so that
//!    n·ln 2 is subtracted without losing r's low bits.)
//! 2. e^r from a degree-7 polynomial, accurate to about one unit in the
//!    last place on that small interval.
//! 3. 2^n is built directly as a float's bit pattern: exponent field n+127.
//!
//! The result is within 2 ulp of the exact value across the whole range
//! (tested against f64 below). Inputs beyond ±87.3 are clamped, so the
//! result saturates to the largest / smallest normal float instead of
//! overflowing; NaN stays NaN.
//!
//! f64 code keeps the library's `exp`: it is what the gradient checks run
//! in, where accuracy matters more than speed.

use num_traits::Float;

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding 1.5·2²³ rounds an f32 in ±2²² to an integer, held in the low
/// mantissa bits.
const ROUNDER: f32 = 12_582_912.0;
const MAX_INPUT: f32 = 88.0;
const MIN_INPUT: f32 = -87.3;

/// e^x for an f32, vectorisable (see the module notes).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // Comparisons (not min/max) so that a NaN falls through unchanged.
    let x = if x > MAX_INPUT {
        MAX_INPUT
    } else if x < MIN_INPUT {
        MIN_INPUT
    } else {
        x
    };
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r by Horner's rule (Taylor coefficients refined by Cephes).
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let er = p * r * r + r + 1.0;
    // 2^n: the integer n sits in `shifted`'s low bits, offset by ROUNDER's.
    let n_int = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let two_n = f32::from_bits(((n_int + 127) as u32) << 23);
    er * two_n
}

/// The exponential the fused kernels use: the vectorisable one for f32,
/// the library's for f64.
pub trait FastExp: Float {
    fn fast_exp(self) -> Self;
}

impl FastExp for f32 {
    #[inline(always)]
    fn fast_exp(self) -> f32 {
        exp_f32(self)
    }
}

impl FastExp for f64 {
    #[inline(always)]
    fn fast_exp(self) -> f64 {
        self.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between a and the exact value.
    fn ulps(a: f32, exact: f64) -> f64 {
        let ulp = (exact as f32).abs().max(f32::MIN_POSITIVE);
        let ulp = f32::from_bits(ulp.to_bits() + 1) - ulp;
        (a as f64 - exact).abs() / ulp as f64
    }

    #[test]
    fn within_two_ulp_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let e = ulps(exp_f32(x), (x as f64).exp());
            worst = worst.max(e);
            x += 0.000_731;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn extremes_saturate_and_nan_propagates() {
        assert!(exp_f32(1000.0).is_finite() && exp_f32(1000.0) > 1e38);
        assert!(exp_f32(-1000.0) >= 0.0 && exp_f32(-1000.0) < 1e-37);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(f32::INFINITY), exp_f32(MAX_INPUT));
    }
}
