//! The MPI communicator (rsmpi over the system's MPI library, such as Open
//! MPI): each collective is the MPI call of the same name on
//! `MPI_COMM_WORLD`. MPI is initialised once per process and finalised when
//! this is dropped.
//!
//! The overlapped gradient exchange uses `MPI_Iallreduce` (rsmpi's
//! `immediate_all_reduce_into`): each bucket's sum starts as the bucket is
//! handed over and runs while backward goes on; all are waited for at the
//! end. rsmpi ties a request to a scope that its buffers outlive, so the
//! whole backward runs inside one `mpi::request::scope`, with the send and
//! receive buffers allocated before it.

use std::collections::VecDeque;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::request::{LocalScope, Request};
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::*;

use super::communicator::{launcher_world_size, BucketSender, Communicator};

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
    fn sums_in_background(&self) -> bool {
        true
    }
    fn all_reduce_sum_while(&self, buckets: &mut [Vec<f32>], work: &mut dyn FnMut(&mut dyn BucketSender)) {
        // MPI reads the send buffer while the sum lands in `buckets`.
        let mut sends: Vec<Vec<f32>> = buckets.iter().map(|b| vec![0.0; b.len()]).collect();
        mpi::request::scope(|scope| {
            let mut sender = MpiSender {
                world: &self.world,
                scope,
                sends: sends.iter_mut(),
                sums: buckets.iter_mut(),
                in_flight: VecDeque::new(),
            };
            work(&mut sender);
            assert!(sender.sends.next().is_none(), "all_reduce_sum_while: some buckets were never handed over");
            for request in sender.in_flight {
                request.wait_without_status();
            }
        });
    }
}

/// Starts one `MPI_Iallreduce` per bucket handed over, oldest first in
/// `in_flight`.
struct MpiSender<'a, 's> {
    world: &'a SimpleCommunicator,
    scope: &'s LocalScope<'a>,
    sends: std::slice::IterMut<'a, Vec<f32>>,
    sums: std::slice::IterMut<'a, Vec<f32>>,
    in_flight: VecDeque<Request<'a, [f32], &'s LocalScope<'a>>>,
}

impl BucketSender for MpiSender<'_, '_> {
    fn send_next(&mut self, fill: &mut dyn FnMut(&mut [f32])) {
        let send = self.sends.next().expect("send_next: more buckets handed over than there are");
        let sum = self.sums.next().expect("as many sums as sends");
        fill(send);
        let send: &[f32] = send;
        let request = self.world.immediate_all_reduce_into(self.scope, send, &mut sum[..], SystemOperation::sum());
        self.in_flight.push_back(request);
    }

    fn make_progress(&mut self) {
        // Testing the oldest request runs MPI's progress engine for all.
        if let Some(oldest) = self.in_flight.pop_front() {
            if let Err(unfinished) = oldest.test() {
                self.in_flight.push_front(unfinished);
            }
        }
    }
}
