//! The storage formats a model's weights can be converted to.
//!
//! Each scheme trades bits per weight against accuracy:
//!
//! | scheme | bits per weight        | rounding error per weight            |
//! |--------|------------------------|--------------------------------------|
//! | f16    | 16                     | ≤ 2^-11 of the weight (range ±65504)  |
//! | bf16   | 16                     | ≤ 2^-8 of the weight (f32's range)    |
//! | int8   | 8 (+ 32 per row)       | ≤ ½ · max\|row\| / 127                 |
//! | int4   | 4 (+ 16 per 32 weights) | ≤ ½ · max\|group of 32\| / 7           |

use std::fmt;
use std::str::FromStr;

/// How quantized weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    F16,
    BF16,
    Int8,
    Int4,
}

impl Scheme {
    pub const ALL: [Scheme; 4] = [Scheme::F16, Scheme::BF16, Scheme::Int8, Scheme::Int4];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::F16 => "f16",
            Scheme::BF16 => "bf16",
            Scheme::Int8 => "int8",
            Scheme::Int4 => "int4",
        }
    }

    /// Bits per weight, not counting scales.
    pub fn bits(self) -> usize {
        match self {
            Scheme::F16 | Scheme::BF16 => 16,
            Scheme::Int8 => 8,
            Scheme::Int4 => 4,
        }
    }

    /// Weights sharing one scale along a row (int4), if grouped.
    pub fn group_size(self) -> Option<usize> {
        (self == Scheme::Int4).then_some(kernels::cpu::quant::INT4_GROUP)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| format!("unknown quantization {s:?}; choose one of f16, bf16, int8, int4"))
    }
}
