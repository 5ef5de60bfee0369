//! Data-parallel training: N processes, each with a full copy of the model,
//! each reading its own share of every batch, adding up their gradients.
//!
//! ```text
//! rank r of N, every step:
//!   inputs [B, T] = rows r·B .. (r+1)·B of the global batch [N·B, T]
//!   forward + backward                       the rank's own gradients g_r
//!   g = (g_0 + … + g_{N-1}) / N              all-reduce, in buckets (buckets.rs)
//!   clip, AdamW                              the same update on every rank
//! ```
//!
//! Since every rank starts from rank 0's weights and applies the same
//! averaged gradient, the copies never drift apart, and N ranks with
//! `--batch-size B` take the step one process takes with `--batch-size N·B`.
//! With ZeRO stage 1 (`zero.rs`) each rank keeps AdamW's moments for only a
//! 1/N slice of the parameters, receives the summed gradients of that slice
//! alone (a reduce-scatter), and the updated slices are gathered.
//!
//! The processes talk through a [`Communicator`]: [`SingleProcess`] (no one
//! to talk to: every collective is the identity) or, with the `mpi` feature,
//! MPI (`mpi.rs`), started by `mpirun -np N` or Slurm's `srun`. Ranks on
//! GPUs add NCCL (`nccl.rs`) for the gradients, which then stay in GPU
//! memory; the rest still goes through MPI.

mod buckets;
mod communicator;
mod data_parallel;
#[cfg(feature = "mpi")]
mod mpi;
mod nccl;
mod overlap;
mod zero;

pub use buckets::{all_reduce_mean_gradients, all_reduce_mean_gradients_in, broadcast_parameters, BUCKET_BYTES};
pub use communicator::{launch, BucketSender, Communicator, SingleProcess};
pub use data_parallel::DataParallel;
#[cfg(feature = "mpi")]
pub use mpi::MpiCommunicator;
pub use nccl::NcclCommunicator;
pub use overlap::{backward_averaging_gradients, backward_averaging_gradients_in, OverlappedExchange};
pub use zero::{ShardedAdamW, ShardedStep};
