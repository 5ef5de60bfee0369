//! ggml's tensor types: how many weights a block holds and how many bytes
//! it takes.
//!
//! Every GGUF tensor is stored as whole blocks along its first (innermost)
//! dimension: a row of `ne0` weights is `ne0 / block_size` blocks of
//! `block_bytes` each. Float types are blocks of one. The quantized types
//! read here:
//!
//! | type | weights | bytes | layout                                             |
//! |------|---------|-------|----------------------------------------------------|
//! | Q8_0 | 32      | 34    | f16 scale d, 32 × i8 q; w = d·q                     |
//! | Q4_0 | 32      | 18    | f16 scale d, 16 bytes of 4-bit q; w = d·(q − 8)     |
//! | Q4_K | 256     | 144   | f16 d, f16 dmin, 12 bytes of 6-bit sub-scales/mins, 128 bytes of 4-bit q |
//! | Q6_K | 256     | 210   | 128 bytes low 4 bits, 64 bytes high 2 bits, 16 × i8 sub-scales, f16 d |
//!
//! The ids are ggml's (`enum ggml_type` in ggml.h); ids of types this
//! module does not read keep their names so an error can say which type a
//! file holds.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_K,
    Q6_K,
}

/// ggml's names for its type ids (gaps are ids ggml retired).
const NAMES: [(u32, &str); 32] = [
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (8, "Q8_0"),
    (9, "Q8_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (30, "BF16"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
];

/// Every type this module reads, for messages.
pub const SUPPORTED: [GgmlType; 7] =
    [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K];

impl GgmlType {
    /// The type with ggml id `id`, if this module reads it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        SUPPORTED.into_iter().find(|t| t.id() == id)
    }

    /// ggml's id, as stored in a tensor's info.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    pub fn name(self) -> &'static str {
        id_name(self.id()).expect("every supported type is named")
    }

    /// Weights per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q8_0 | GgmlType::Q4_0 => 32,
            GgmlType::Q4_K | GgmlType::Q6_K => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q8_0 => 2 + 32,
            GgmlType::Q4_0 => 2 + 16,
            GgmlType::Q4_K => 2 + 2 + 12 + 128,
            GgmlType::Q6_K => 128 + 64 + 16 + 2,
        }
    }

    /// Bytes of `n` weights, `None` if `n` is not whole blocks (or the
    /// count overflows).
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !n.is_multiple_of(block) {
            return None;
        }
        (n / block).checked_mul(self.block_bytes() as u64)
    }
}

/// ggml's name for type id `id` (`Q4_1`, `IQ2_XS`, ...), if it has one.
pub fn id_name(id: u32) -> Option<&'static str> {
    NAMES.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
