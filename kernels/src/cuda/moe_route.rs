//! A mixture of experts' routing on the device (`moe_route.cu`): from the
//! router's probabilities `[N, E]`, each token's k experts `[N, k]` and the
//! tokens grouped by expert, with only the E + 1 group starts copied back.
//!
//! Why on the device: picking the top k on the host means copying all N × E
//! probabilities out of GPU memory in every routed layer, and waiting for
//! the GPU to finish before the copy. The group starts are still needed on
//! the host (each expert's product is sized by its row count), but they are
//! E + 1 numbers. The result matches `kernels::cpu::moe_route` exactly,
//! ties included; the .cu file's header explains the four launches.

use cudarc::driver::{CudaSlice, LaunchConfig};

use super::device::CudaDevice;
use super::dtype::CudaFloat;
use super::error::Result;
use super::launch::{for_rows, grid_2d, BLOCK};
use super::sources::MOE_ROUTE;

/// The most experts a row may hold (`MAX_EXPERTS` in the .cu file: the
/// row's sort keys sit in shared memory).
pub const MAX_EXPERTS: usize = 4096;

/// The routing of N tokens to E experts, k each. The index buffers stay on
/// the device; `offsets` is on the host.
pub struct DeviceRouting {
    /// `[N·k]`: token t's experts at t·k.., most probable first.
    pub chosen: CudaSlice<i64>,
    /// `[E + 1]`: expert e's entries of `tokens` and `positions` are
    /// `offsets[e]..offsets[e + 1]`.
    pub offsets: Vec<i64>,
    /// `[N·k]`: the tokens of each expert, in token order.
    pub tokens: CudaSlice<i64>,
    /// `[N·k]`: beside each token, token·k + slot, where its weight sits
    /// among the N·k chosen weights.
    pub positions: CudaSlice<i64>,
}

/// Routes dense `probs` `[n, e]` to the `k` most probable experts per row
/// (`1 ≤ k ≤ e ≤ MAX_EXPERTS`).
pub fn route<T: CudaFloat>(
    dev: &CudaDevice,
    probs: &CudaSlice<T>,
    n: usize,
    e: usize,
    k: usize,
) -> Result<DeviceRouting> {
    assert!(k >= 1 && k <= e && e <= MAX_EXPERTS, "moe_route: top {k} of {e} experts (at most {MAX_EXPERTS})");
    assert!(probs.len() >= n * e, "moe_route: a buffer of {} for {n}×{e} probabilities", probs.len());
    let total = n * k;
    // Buffers hold at least one element, even for no tokens.
    let mut chosen = dev.alloc::<i64>(total.max(1))?;
    let mut tokens = dev.alloc::<i64>(total.max(1))?;
    let mut positions = dev.alloc::<i64>(total.max(1))?;
    if n == 0 {
        return Ok(DeviceRouting { chosen, offsets: vec![0; e + 1], tokens, positions });
    }
    let (e64, k64, total64) = (e as i64, k as i64, total as i64);
    let name = format!("moe_top_k_{}", T::NAME);
    launch_kernel!(dev, MOE_ROUTE, name, for_rows(n, e), [probs, &e64, &k64, &mut chosen])?;
    let mut offsets = dev.alloc::<i64>(e + 1)?;
    let per_expert = grid_2d(e, 1, (BLOCK, 1, 1), 0);
    launch_kernel!(dev, MOE_ROUTE, "moe_expert_counts", per_expert, [&chosen, &total64, &mut offsets])?;
    let one_thread = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
    launch_kernel!(dev, MOE_ROUTE, "moe_expert_offsets", one_thread, [&mut offsets, &e64])?;
    launch_kernel!(
        dev,
        MOE_ROUTE,
        "moe_group_by_expert",
        per_expert,
        [&chosen, &total64, &k64, &offsets, &mut tokens, &mut positions]
    )?;
    // The one copy to the host (it waits for the launches above).
    let offsets = dev.download(&offsets, e + 1)?;
    Ok(DeviceRouting { chosen, offsets, tokens, positions })
}
