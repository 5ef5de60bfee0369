//! A tensor summed across processes where it lives, in GPU memory: the
//! device half of data-parallel training on GPUs, over NCCL
//! (`kernels::cuda::nccl`).
//!
//! ```text
//! every rank:  DeviceGroup::check(cuda:local)          GPU usable, NCCL loads?
//! rank 0:      id = DeviceGroup::new_id()              128 bytes, sent by the caller's
//!                                                     own transport (MPI) to every rank
//! every rank:  group = DeviceGroup::join(cuda:local, rank, N, id)    together
//! each step:   group.all_reduce_sum(&mut bucket)       bucket = Σ over ranks, in place
//! ```
//!
//! Callers above this crate (the training loop's communicator) see tensors
//! and devices only; the GPU, its stream and NCCL's communicator stay here.
//! Every failure is an `Err` with one line (no GPU, no `libnccl.so.2`, a
//! tensor on another GPU), never a panic.

use std::sync::Arc;

use kernels::cuda::nccl::{new_unique_id, require_nccl, NcclComm, NCCL_ID_BYTES};
use kernels::cuda::CudaDevice;

use crate::{Device, Tensor};

/// The size of the id rank 0 makes and every rank joins with.
pub const GROUP_ID_BYTES: usize = NCCL_ID_BYTES;

/// This process's member of a group of processes, one GPU each, that sum
/// tensors together.
pub struct DeviceGroup {
    nccl: NcclComm,
}

/// The GPU behind `device`, or an error (its own one line: no driver, no
/// such GPU, not a CUDA device).
fn gpu(device: Device) -> Result<Arc<CudaDevice>, String> {
    match device {
        Device::Cuda(ordinal) => CudaDevice::get(ordinal).map_err(|e| e.to_string()),
        other => Err(format!("a device group needs a CUDA device, got {other}")),
    }
}

impl DeviceGroup {
    /// Ok when `device` is a usable GPU and NCCL loads; else why not.
    pub fn check(device: Device) -> Result<(), String> {
        gpu(device)?;
        require_nccl().map_err(|e| e.to_string())
    }

    /// A fresh group id (rank 0 makes it; every rank joins with it).
    pub fn new_id() -> Result<[u8; GROUP_ID_BYTES], String> {
        new_unique_id().map_err(|e| e.to_string())
    }

    /// Joins the group of `world_size` processes as `rank`, on `device`.
    /// Every rank calls this together; it returns once all have joined.
    pub fn join(device: Device, rank: usize, world_size: usize, id: &[u8; GROUP_ID_BYTES]) -> Result<Self, String> {
        let nccl = NcclComm::new(gpu(device)?, rank, world_size, id).map_err(|e| e.to_string())?;
        Ok(DeviceGroup { nccl })
    }

    /// The device this member sums on.
    pub fn device(&self) -> Device {
        Device::Cuda(self.nccl.device().ordinal())
    }

    /// `t` = the sum of every rank's `t`, in place: a dense f32 tensor on
    /// this member's GPU (copied first if another tensor shares its
    /// buffer). Queued on the GPU's stream like any kernel.
    pub fn all_reduce_sum(&self, t: &mut Tensor) -> Result<(), String> {
        let mine = self.nccl.device().ordinal();
        super::with_dense_f32_mut(t, |gpu, buffer| {
            if gpu.ordinal() != mine {
                return Err(format!("a tensor on cuda:{} given to NCCL on cuda:{mine}", gpu.ordinal()));
            }
            self.nccl.all_reduce_sum_in_place(buffer).map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())?
    }
}
