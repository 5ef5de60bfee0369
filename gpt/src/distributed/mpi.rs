//! The MPI communicator (rsmpi over the system's MPI library, such as Open
//! MPI): each collective is the MPI call of the same name on
//! `MPI_COMM_WORLD`. MPI is initialised once per process and finalised when
//! this is dropped.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::*;

use super::communicator::{launcher_world_size, Communicator};

pub struct MpiCommunicator {
    world: SimpleCommunicator,
    local_rank: usize,
    // Dropped last: finalises MPI.
    _universe: Universe,
}

/// Whether a launcher started this process (so initialising MPI is wanted).
pub(crate) fn launched_by_mpi() -> bool {
    launcher_world_size().is_some()
}

impl MpiCommunicator {
    /// Initialises MPI; `None` when the world holds this process alone (MPI
    /// is finalised again and the run goes on as a single process).
    pub fn init() -> Result<Option<MpiCommunicator>, String> {
        // Only the main thread calls MPI (rayon's workers never do).
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or("MPI was already initialised in this process")?;
        let world = universe.world();
        if world.size() == 1 {
            return Ok(None);
        }
        // The ranks that share this machine's memory, numbered from 0.
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(Some(MpiCommunicator { world, local_rank, _universe: universe }))
    }
}

impl Communicator for MpiCommunicator {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn world_size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn all_reduce_sum(&self, data: &mut [f32]) {
        let send = data.to_vec();
        self.world.all_reduce_into(&send[..], data, SystemOperation::sum());
    }
    fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]) {
        assert_eq!(all.len(), mine.len() * self.world_size(), "reduce_scatter_sum: one slice per rank");
        self.world.reduce_scatter_block_into(all, mine, SystemOperation::sum());
    }
    fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
        assert_eq!(all.len(), mine.len() * self.world_size(), "all_gather: one slice per rank");
        self.world.all_gather_into(mine, all);
    }
    fn broadcast(&self, data: &mut [f32]) {
        self.world.process_at_rank(0).broadcast_into(data);
    }
    fn broadcast_bytes(&self, data: &mut [u8]) {
        self.world.process_at_rank(0).broadcast_into(data);
    }
    fn barrier(&self) {
        self.world.barrier();
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
