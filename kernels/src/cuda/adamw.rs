//! AdamW over all parameters in one launch (`adamw.cu`).
//!
//! The host builds two small tables: one row per parameter tensor (its four
//! buffers and its step-dependent constants) and one row per chunk of
//! [`CHUNK`] elements (which tensor, where it starts). Block b updates
//! chunk b. [`chunk_table`] is the pure part, tested below.

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig};

use super::device::CudaDevice;
use super::error::Result;
use super::sources::ADAMW;

/// Elements per block.
pub const CHUNK: usize = 4096;
const THREADS: u32 = 256;

/// Hyper-parameters shared by every tensor of one step.
#[derive(Clone, Copy, Debug)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One parameter: its buffers (all f32, same length) and its own step t.
pub struct AdamWParam<'a> {
    pub param: &'a mut CudaSlice<f32>,
    pub grad: &'a CudaSlice<f32>,
    pub m: &'a mut CudaSlice<f32>,
    pub v: &'a mut CudaSlice<f32>,
    pub len: usize,
    /// 1-based step count of this parameter, for bias correction.
    pub step: u64,
}

/// Mirrors `struct AdamWTensor` in adamw.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TensorRow {
    param: u64,
    grad: u64,
    m: u64,
    v: u64,
    len: i64,
    decay: f32,
    step_size: f32,
    bias2_sqrt: f32,
    pad: f32,
}
// SAFETY: plain #[repr(C)] fields with the C struct's layout.
unsafe impl DeviceRepr for TensorRow {}

/// Mirrors `struct AdamWChunk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkRow {
    pub tensor: i64,
    pub start: i64,
}
// SAFETY: as above.
unsafe impl DeviceRepr for ChunkRow {}

/// (tensor, start) for every chunk of `chunk` elements of tensors with the
/// given lengths, in order; empty tensors get no chunk.
pub fn chunk_table(lengths: &[usize], chunk: usize) -> Vec<ChunkRow> {
    lengths
        .iter()
        .enumerate()
        .flat_map(|(t, &len)| {
            (0..len).step_by(chunk.max(1)).map(move |start| ChunkRow { tensor: t as i64, start: start as i64 })
        })
        .collect()
}

/// The per-tensor constants, computed in f64 and rounded to f32 exactly as
/// the CPU kernel does: (decay, step_size, sqrt(1 − β₂ᵗ)).
pub fn step_constants(c: &AdamWConfig, step: u64) -> (f32, f32, f32) {
    let bias1 = 1.0 - c.beta1.powi(step as i32);
    let bias2 = 1.0 - c.beta2.powi(step as i32);
    ((1.0 - c.lr * c.weight_decay) as f32, (c.lr / bias1) as f32, bias2.sqrt() as f32)
}

/// Updates every parameter (and its moments) in place.
pub fn adamw_step(dev: &CudaDevice, params: &mut [AdamWParam<'_>], c: &AdamWConfig) -> Result<()> {
    let stream = dev.stream().clone();
    let lengths: Vec<usize> = params.iter().map(|p| p.len).collect();
    let mut rows = Vec::with_capacity(params.len());
    let mut guards = Vec::new();
    for p in params.iter_mut() {
        assert!(
            p.param.len() >= p.len && p.grad.len() >= p.len && p.m.len() >= p.len && p.v.len() >= p.len,
            "adamw: a buffer is shorter than its parameter"
        );
        let (decay, step_size, bias2_sqrt) = step_constants(c, p.step);
        let (param, g1) = p.param.device_ptr_mut(&stream);
        let (grad, g2) = p.grad.device_ptr(&stream);
        let (m, g3) = p.m.device_ptr_mut(&stream);
        let (v, g4) = p.v.device_ptr_mut(&stream);
        guards.push((g1, g2, g3, g4));
        rows.push(TensorRow { param, grad, m, v, len: p.len as i64, decay, step_size, bias2_sqrt, pad: 0.0 });
    }
    let chunks = chunk_table(&lengths, CHUNK);
    if chunks.is_empty() {
        return Ok(());
    }
    let table = dev.upload(&rows)?;
    let chunk_rows = dev.upload(&chunks)?;
    let (b1, b2, one_b1, one_b2, eps) =
        (c.beta1 as f32, c.beta2 as f32, (1.0 - c.beta1) as f32, (1.0 - c.beta2) as f32, c.eps as f32);
    let chunk_len = CHUNK as i64;
    assert!(chunks.len() as u64 <= super::launch::MAX_GRID_X, "adamw: too many chunks");
    let cfg = LaunchConfig { grid_dim: (chunks.len() as u32, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
    // The table holds raw pointers into the parameter buffers; the guards
    // above keep those borrows alive until after the launch is queued.
    launch_kernel!(
        dev,
        ADAMW,
        "adamw_multi_f32",
        cfg,
        [&table, &chunk_rows, &chunk_len, &b1, &b2, &one_b1, &one_b2, &eps]
    )?;
    drop(guards);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_in_exactly_one_chunk() {
        let lengths = [10_000usize, 0, 1, 4096, 4097];
        let table = chunk_table(&lengths, CHUNK);
        for (t, &len) in lengths.iter().enumerate() {
            let mut covered = vec![0u8; len];
            for row in table.iter().filter(|r| r.tensor == t as i64) {
                let start = row.start as usize;
                for c in covered.iter_mut().skip(start).take(CHUNK) {
                    *c += 1;
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "tensor {t}");
        }
        // 10,000 → 3 chunks, 0 → none, 1 → 1, 4096 → 1, 4097 → 2.
        assert_eq!(table.len(), 7);
    }

    #[test]
    fn constants_match_the_cpu_formula() {
        let c = AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let (decay, step, b2) = step_constants(&c, 1);
        assert_eq!(decay, (1.0 - 1e-4f64) as f32);
        assert_eq!(step, (1e-3 / 0.1f64) as f32);
        assert_eq!(b2, (0.001f64).sqrt() as f32);
    }

    #[test]
    fn the_rows_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<TensorRow>(), 4 * 8 + 8 + 4 * 4);
        assert_eq!(std::mem::size_of::<ChunkRow>(), 16);
    }
}
