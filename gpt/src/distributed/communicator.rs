//! What data-parallel training needs from the processes' transport: who am
//! I, how many are we, and five collectives over `f32` buffers that every
//! rank calls in the same order.
//!
//! - `all_reduce_sum`: every rank's buffer becomes the element-wise sum of
//!   all of them (gradients);
//! - `reduce_scatter_sum`: of every rank's `[N·S]` buffer, rank r receives
//!   the sum of the slices `[r·S, (r+1)·S)` (ZeRO's gradient shards: half
//!   of an all-reduce, which is a reduce-scatter followed by an all-gather);
//! - `all_gather`: rank r's `[S]` lands at `r·S` of everyone's `[N·S]`
//!   (ZeRO's updated parameter slices);
//! - `broadcast`: rank 0's buffer is copied to every rank (initial weights);
//! - `barrier`: nobody leaves before everybody has arrived.
//!
//! The buffers live in host memory. A transport that can also sum a
//! tensor in GPU memory (NCCL, `nccl.rs`) says so with
//! [`Communicator::reduces_on_device`], and the gradient buckets of a model
//! on a GPU then call [`Communicator::all_reduce_sum_on_device`] instead of
//! copying through the host; the rest of the trainer only sees this trait.
//!
//! One more call lets the gradients travel while backward is still running
//! (`overlap.rs`): [`Communicator::all_reduce_sum_while`] is handed the
//! buckets and the work (the backward pass), and the work hands each bucket
//! over as soon as it is full. MPI starts a non-blocking all-reduce for it
//! and returns at once; a transport without such a call (one process, NCCL)
//! sums each bucket on the spot, which gives the same sums.

use tensor::Tensor;

/// The processes of one data-parallel run.
pub trait Communicator {
    /// This process's index, 0 ..= world_size - 1.
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// This process's index among those on the same machine (which GPU it
    /// should take).
    fn local_rank(&self) -> usize;
    /// Replaces `data` on every rank by the sum over all ranks.
    fn all_reduce_sum(&self, data: &mut [f32]);
    /// Sets `mine` (S values) to the element-wise sum over all ranks of
    /// their `all[r·S .. (r+1)·S]`, r this rank; `all` holds
    /// `world_size × mine.len()` values.
    fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]);
    /// Concatenates every rank's `mine` (all the same length) in rank order
    /// into `all`, which holds `world_size × mine.len()` values.
    fn all_gather(&self, mine: &[f32], all: &mut [f32]);
    /// Copies rank 0's `data` into every rank's.
    fn broadcast(&self, data: &mut [f32]);
    /// Copies rank 0's bytes into every rank's buffer of the same length.
    fn broadcast_bytes(&self, data: &mut [u8]);
    fn barrier(&self);
    /// Ends every process of the run with `code`: for a failure on one rank
    /// that the others, waiting in a collective, would never learn about.
    fn abort(&self, code: i32) -> !;

    /// Whether [`Communicator::all_reduce_sum_on_device`] works: the
    /// gradients of a model on a GPU are then summed where they are.
    fn reduces_on_device(&self) -> bool {
        false
    }

    /// Replaces a dense f32 tensor on this rank's GPU by the sum over all
    /// ranks, without a copy to the host. Only for a transport whose
    /// [`Communicator::reduces_on_device`] is true; an error otherwise.
    fn all_reduce_sum_on_device(&self, _data: &mut Tensor) -> Result<(), String> {
        Err("this transport sums host buffers only".into())
    }

    /// Whether [`Communicator::all_reduce_sum_while`] sums in the
    /// background while the work goes on (else it blocks on each bucket,
    /// and overlapping buys nothing).
    fn sums_in_background(&self) -> bool {
        false
    }

    /// Sums every one of `buckets` over all ranks, while `work` runs: `work`
    /// fills the buckets through the [`BucketSender`] it is given, in index
    /// order, and must hand over all of them. When this returns, each bucket
    /// holds the sum. This default sums each bucket as soon as it is handed
    /// over, blocking; MPI starts a non-blocking all-reduce instead and waits
    /// for all of them after `work`.
    fn all_reduce_sum_while(&self, buckets: &mut [Vec<f32>], work: &mut dyn FnMut(&mut dyn BucketSender)) {
        let mut sender = BlockingSender { comm: self, buckets: buckets.iter_mut() };
        work(&mut sender);
        assert!(sender.buckets.next().is_none(), "all_reduce_sum_while: some buckets were never handed over");
    }

    /// Rank 0 alone prints, evaluates and writes files.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Whether `flag` is set on any rank (every rank gets the same answer).
    fn any(&self, flag: bool) -> bool {
        let mut count = [if flag { 1.0 } else { 0.0 }];
        self.all_reduce_sum(&mut count);
        count[0] > 0.0
    }
}

/// How the work inside [`Communicator::all_reduce_sum_while`] hands over
/// its buckets.
pub trait BucketSender {
    /// Lets `fill` write the next bucket's values (the slice has the
    /// bucket's length) and starts summing them across ranks.
    fn send_next(&mut self, fill: &mut dyn FnMut(&mut [f32]));
    /// A chance for sums already started to move on: MPI advances a
    /// non-blocking collective only while the process is inside some MPI
    /// call, so the work calls this now and then.
    fn make_progress(&mut self) {}
}

/// The default sender: sums each bucket on the spot with `all_reduce_sum`.
struct BlockingSender<'a, C: ?Sized> {
    comm: &'a C,
    buckets: std::slice::IterMut<'a, Vec<f32>>,
}

impl<C: Communicator + ?Sized> BucketSender for BlockingSender<'_, C> {
    fn send_next(&mut self, fill: &mut dyn FnMut(&mut [f32])) {
        let bucket = self.buckets.next().expect("send_next: more buckets handed over than there are");
        fill(bucket);
        self.comm.all_reduce_sum(bucket);
    }
}

/// A run of one process: every collective leaves the data as it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn all_reduce_sum(&self, _data: &mut [f32]) {}
    fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]) {
        mine.copy_from_slice(all);
    }
    fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
        all.copy_from_slice(mine);
    }
    fn broadcast(&self, _data: &mut [f32]) {}
    fn broadcast_bytes(&self, _data: &mut [u8]) {}
    fn barrier(&self) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The communicator of this process: MPI's when it was started by an MPI
/// launcher (`mpirun`, `srun`) with more than one process and the `mpi`
/// feature is on, else [`SingleProcess`]. Without a launcher MPI is not
/// touched at all, so a plain run behaves exactly as without the feature.
pub fn launch() -> Result<Box<dyn Communicator>, String> {
    #[cfg(feature = "mpi")]
    if super::mpi::launched_by_mpi() {
        if let Some(mpi) = super::mpi::MpiCommunicator::init()? {
            return Ok(Box::new(mpi));
        }
    }
    #[cfg(not(feature = "mpi"))]
    if let Some(size) = launcher_world_size().filter(|&n| n > 1) {
        return Err(format!(
            "started as one of {size} processes, but this build has no MPI support; rebuild with --features mpi"
        ));
    }
    Ok(Box::new(SingleProcess))
}

/// The number of processes a launcher says it started (`mpirun` of Open MPI
/// or MPICH, Slurm's `srun`: not `sbatch` alone), if any.
pub(crate) fn launcher_world_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
        .iter()
        .find_map(|var| std::env::var(var).ok()?.trim().parse().ok())
}
