//! Ranks on GPUs: the gradients are summed by NCCL in GPU memory, the rest
//! (rank 0's weights at the start, the loss and stop flags of each step,
//! checkpoints' optimizer shards) still by the host transport (MPI).
//!
//! ```text
//! every rank:  cuda:<local rank> usable, libnccl.so.2 loads?   agreed over MPI
//! rank 0:      NCCL unique id (128 bytes)  ──broadcast_bytes (MPI)──▶ every rank
//! every rank:  join the NCCL communicator of N ranks on its GPU
//! each step:   gradient bucket [≤ 25 MB f32] on the GPU ──ncclAllReduce(sum)──▶ same buffer
//! ```
//!
//! Every setup failure is agreed on by all ranks before anyone waits on
//! another (a rank without NCCL would leave the others in the broadcast),
//! so each rank returns the same `Err` and the run stops with one message.

use tensor::{Device, DeviceGroup, Tensor, GROUP_ID_BYTES};

use super::Communicator;

pub struct NcclCommunicator {
    /// Everything but the device all-reduce goes here.
    host: Box<dyn Communicator>,
    group: DeviceGroup,
}

impl NcclCommunicator {
    /// Starts NCCL on GPU `ordinal` (this rank's local rank) beside the host
    /// transport `host`. Every rank calls this together; every rank gets
    /// `Ok`, or every rank an `Err` (this rank's own reason when it had one).
    pub fn new(host: Box<dyn Communicator>, ordinal: usize) -> Result<NcclCommunicator, String> {
        let device = Device::Cuda(ordinal);
        let ready = DeviceGroup::check(device);
        if host.any(ready.is_err()) {
            return Err(ready.err().unwrap_or_else(|| "another process could not start NCCL".into()));
        }

        // Rank 0's id, preceded by one byte saying whether it could make one.
        let mut message = [0u8; 1 + GROUP_ID_BYTES];
        let mut own_error = None;
        if host.is_root() {
            match DeviceGroup::new_id() {
                Ok(id) => {
                    message[0] = 1;
                    message[1..].copy_from_slice(&id);
                }
                Err(e) => own_error = Some(e),
            }
        }
        host.broadcast_bytes(&mut message);
        if message[0] == 0 {
            return Err(own_error.unwrap_or_else(|| "process 0 could not make an NCCL id".into()));
        }
        let id: [u8; GROUP_ID_BYTES] = message[1..].try_into().expect("GROUP_ID_BYTES after the flag");

        // Returns once every rank has joined (a rank failing inside this call
        // leaves the others waiting in it: NCCL's own limit applies).
        let joined = DeviceGroup::join(device, host.rank(), host.world_size(), &id);
        if host.any(joined.is_err()) {
            return Err(joined.err().unwrap_or_else(|| "another process could not join NCCL".into()));
        }
        Ok(NcclCommunicator { host, group: joined.expect("checked just above") })
    }
}

impl Communicator for NcclCommunicator {
    fn rank(&self) -> usize {
        self.host.rank()
    }
    fn world_size(&self) -> usize {
        self.host.world_size()
    }
    fn local_rank(&self) -> usize {
        self.host.local_rank()
    }
    fn all_reduce_sum(&self, data: &mut [f32]) {
        self.host.all_reduce_sum(data)
    }
    fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]) {
        self.host.reduce_scatter_sum(all, mine)
    }
    fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
        self.host.all_gather(mine, all)
    }
    fn broadcast(&self, data: &mut [f32]) {
        self.host.broadcast(data)
    }
    fn broadcast_bytes(&self, data: &mut [u8]) {
        self.host.broadcast_bytes(data)
    }
    fn barrier(&self) {
        self.host.barrier()
    }
    fn abort(&self, code: i32) -> ! {
        self.host.abort(code)
    }

    fn reduces_on_device(&self) -> bool {
        true
    }

    fn all_reduce_sum_on_device(&self, data: &mut Tensor) -> Result<(), String> {
        self.group.all_reduce_sum(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::SingleProcess;

    /// On a machine without a GPU (or without NCCL) starting NCCL is an
    /// error with the missing piece's message, never a panic.
    #[test]
    fn starting_nccl_without_a_gpu_or_libnccl_is_an_error() {
        match NcclCommunicator::new(Box::new(SingleProcess), 0) {
            Ok(comm) => assert!(comm.reduces_on_device()),
            Err(e) => {
                assert!(!e.contains('\n'), "one line: {e}");
                assert!(e.starts_with("no CUDA device") || e.starts_with("libnccl.so.2 not found"), "{e}");
            }
        }
    }

    #[test]
    fn the_host_transport_refuses_device_tensors() {
        let mut t = Tensor::from_vec(vec![1.0f32], [1]).unwrap();
        assert!(!SingleProcess.reduces_on_device());
        assert!(SingleProcess.all_reduce_sum_on_device(&mut t).is_err());
    }
}
