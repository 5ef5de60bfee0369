//! Block formats back to f32: one plain function per type, written to be
//! read beside ggml's `dequantize_row_*` (ggml-quants.c), whose arithmetic
//! they repeat operation for operation, so the results are bit-identical.
//!
//! Each function takes whole blocks and writes `block_size` values per
//! block; [`dequantize`] picks the function by type.

use half::{bf16, f16};

use super::ggml_type::GgmlType;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// `bytes` of type `ty` (whole blocks) as f32 values.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let blocks = bytes.chunks_exact(ty.block_bytes());
    assert!(blocks.remainder().is_empty(), "dequantize: {} bytes is not whole {ty} blocks", bytes.len());
    let mut out = vec![0.0f32; bytes.len() / ty.block_bytes() * ty.block_size()];
    let outs = out.chunks_exact_mut(ty.block_size());
    for (block, y) in blocks.zip(outs) {
        match ty {
            GgmlType::F32 => y[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]),
            GgmlType::F16 => y[0] = f16_at(block, 0),
            GgmlType::BF16 => y[0] = bf16::from_le_bytes([block[0], block[1]]).to_f32(),
            GgmlType::Q8_0 => q8_0(block, y),
            GgmlType::Q4_0 => q4_0(block, y),
            GgmlType::Q4_K => q4_k(block, y),
            GgmlType::Q6_K => q6_k(block, y),
        }
    }
    out
}

/// Q8_0: `d` (f16), then 32 signed bytes; w = d·q.
pub fn q8_0(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    for (y, &q) in y.iter_mut().zip(&block[2..34]) {
        *y = (q as i8) as f32 * d;
    }
}

/// Q4_0: `d` (f16), then 16 bytes: byte j holds weight j in its low
/// nibble and weight j + 16 in its high one, each stored as q + 8.
pub fn q4_0(block: &[u8], y: &mut [f32]) {
    let d = f16_at(block, 0);
    for (j, &byte) in block[2..18].iter().enumerate() {
        y[j] = ((byte & 0x0f) as i32 - 8) as f32 * d;
        y[j + 16] = ((byte >> 4) as i32 - 8) as f32 * d;
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a K-quant block's
/// 12 packed bytes: sub-blocks 0-3 keep theirs in the low 6 bits of bytes
/// j and j + 4; sub-blocks 4-7 have 4 bits in byte j + 4 and their top 2
/// bits in the spare high bits of bytes j − 4 and j.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q4_K: 256 weights in 8 sub-blocks of 32, each with a 6-bit scale and
/// a 6-bit min multiplying the block's f16 `d` and `dmin`:
/// w = d·sc·q − dmin·m, q a 4-bit value. The 128 bytes of q hold
/// sub-blocks in pairs: 32 bytes, the first sub-block in their low
/// nibbles, the second in their high ones.
pub fn q4_k(block: &[u8], y: &mut [f32]) {
    let (d, min) = (f16_at(block, 0), f16_at(block, 2));
    let scales = &block[4..16];
    let qs = &block[16..144];
    for pair in 0..4 {
        let q = &qs[32 * pair..32 * pair + 32];
        let (sc, m) = scale_min_k4(2 * pair, scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = scale_min_k4(2 * pair + 1, scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        let y = &mut y[64 * pair..64 * pair + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// Q6_K: 256 weights in 16 sub-blocks of 16, each with a signed 8-bit
/// scale multiplying the block's f16 `d`: w = d·sc·(q − 32), q a 6-bit
/// value split into 4 low bits (`ql`, 128 bytes) and 2 high bits (`qh`,
/// 64 bytes). Each half of the block (128 weights) takes 64 bytes of `ql`,
/// 32 of `qh` and 8 scales, laid out as ggml's loop below reads them.
pub fn q6_k(block: &[u8], y: &mut [f32]) {
    let (ql_all, qh_all, sc_all) = (&block[0..128], &block[128..192], &block[192..208]);
    let d = f16_at(block, 208);
    for half in 0..2 {
        let (ql, qh, sc) = (&ql_all[64 * half..], &qh_all[32 * half..], &sc_all[8 * half..]);
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let scale = |k: usize| d * (sc[is + k] as i8) as f32;
            y[l] = scale(0) * q1 as f32;
            y[l + 32] = scale(2) * q2 as f32;
            y[l + 64] = scale(4) * q3 as f32;
            y[l + 96] = scale(6) * q4 as f32;
        }
    }
}
