//! One data-parallel training step, and what the trainer asks of the other
//! ranks around it.
//!
//! It is [`train_step`](crate::train::train_step) with two exchanges added
//! between backward and the update:
//!
//! ```text
//! zero the gradients; forward + backward on this rank's micro-batches
//! all-reduce [loss, not finite?]   every rank gets the mean loss, and all
//!                                  stop together if any rank's was bad
//! all-reduce the gradients ÷ N     in buckets (buckets.rs)
//! clip the global norm             the same on every rank: same gradients
//! AdamW                            the whole model
//! ```
//!
//! Where the transport sums in the background (MPI) and the gradients go
//! through the host, the gradient all-reduce is overlapped with the last
//! micro-batch's backward instead (overlap.rs): the same buckets and sums,
//! started as backward finishes each, then waited for.
//!
//! With ZeRO (zero.rs) the last three are: reduce-scatter the gradients ÷ N
//! (this rank's shard only), all-reduce the shards' squared norms, clip,
//! AdamW on the shard, all-gather the updated shards.

use std::rc::Rc;

use autograd::nn::Module;
use autograd::optim::{clip_grad_norm, AdamW, Optimizer};
use autograd::Var;

use std::time::Duration;

use super::{
    all_reduce_mean_gradients_in, backward_averaging_gradients_in, broadcast_parameters, Communicator, ShardedAdamW,
    BUCKET_BYTES,
};
use crate::train::{backward_micro_batches, backward_micro_batches_then, NonFiniteLoss, StepOutcome};

pub struct DataParallel {
    comm: Rc<dyn Communicator>,
    /// `--zero 1`: AdamW's moments sharded across the ranks, once
    /// [`DataParallel::start`] has built the shards.
    zero: bool,
    sharded: Option<ShardedAdamW>,
    started: bool,
    /// Whether to overlap the gradient all-reduce with backward where the
    /// transport can (on unless [`DataParallel::overlapping`] said no).
    overlap: bool,
    /// The size of a gradient bucket ([`BUCKET_BYTES`] unless set).
    bucket_bytes: usize,
    /// Bytes of gradients the last step handed to all-reduce (with ZeRO, to
    /// the reduce-scatter and the all-reduce of the norm).
    pub exchanged_bytes: usize,
    /// When the last step overlapped the exchange: the time it then waited
    /// for sums still in flight after backward.
    pub overlap_wait: Option<Duration>,
}

impl DataParallel {
    pub fn new(comm: Rc<dyn Communicator>, zero: bool) -> DataParallel {
        DataParallel {
            comm,
            zero,
            sharded: None,
            started: false,
            overlap: true,
            bucket_bytes: BUCKET_BYTES,
            exchanged_bytes: 0,
            overlap_wait: None,
        }
    }

    /// `false`: exchange the gradients only after backward, as one process
    /// after the other would (for comparing the two; the results are the
    /// same bit for bit).
    pub fn overlapping(mut self, overlap: bool) -> DataParallel {
        self.overlap = overlap;
        self
    }

    /// Gradient buckets of `bytes` instead of [`BUCKET_BYTES`].
    pub fn with_bucket_bytes(mut self, bytes: usize) -> DataParallel {
        self.bucket_bytes = bytes;
        self
    }

    /// Whether steps overlap the gradient exchange with backward: asked
    /// for, a transport that sums in the background, no ZeRO (its
    /// reduce-scatter is not overlapped) and gradients that go through the
    /// host (NCCL sums them on the GPU, after backward).
    pub fn overlaps(&self) -> bool {
        self.overlap && !self.zero && self.comm.sums_in_background() && !self.comm.reduces_on_device()
    }

    pub fn comm(&self) -> &dyn Communicator {
        &*self.comm
    }

    /// Before the first step (later calls do nothing): rank 0's weights to
    /// every rank, and with ZeRO the optimizer's state cut into this rank's
    /// shard (the full moments that a resumed `opt` holds are dropped).
    pub fn start(&mut self, opt: &mut AdamW) {
        if self.started {
            return;
        }
        self.started = true;
        broadcast_parameters(&*self.comm, opt.params());
        if self.zero {
            let sharded = ShardedAdamW::new(opt, self.comm.rank(), self.comm.world_size());
            *opt = AdamW::with_options(opt.params().to_vec(), opt.lr, opt.betas, opt.eps, opt.weight_decay);
            self.sharded = Some(sharded);
        }
    }

    /// Whether `flag` (say, Ctrl-C) is set on any rank.
    pub fn any(&self, flag: bool) -> bool {
        self.comm.any(flag)
    }

    /// [`train_step`](crate::train::train_step) across the ranks: the same
    /// arguments, the same outcome on every rank.
    pub fn train_step<M: Module, B>(
        &mut self,
        model: &mut M,
        opt: &mut AdamW,
        lr: f64,
        micro_batches: &[B],
        loss_of_batch: impl Fn(&M, &B) -> Var,
        max_norm: f64,
    ) -> Result<StepOutcome, NonFiniteLoss> {
        assert!(!micro_batches.is_empty(), "a training step needs at least one batch");
        opt.set_learning_rate(lr);
        model.set_training(true);
        opt.zero_grad();
        let overlapped = self.overlaps();
        let mine = if overlapped {
            let (comm, params, bucket_bytes) = (&*self.comm, opt.params(), self.bucket_bytes);
            let mut exchange = None;
            let loss = backward_micro_batches_then(model, micro_batches, loss_of_batch, |last| {
                exchange = Some(backward_averaging_gradients_in(comm, params, last, bucket_bytes));
            });
            let exchange = exchange.expect("the last micro-batch ran");
            (self.exchanged_bytes, self.overlap_wait) = (exchange.exchanged_bytes, Some(exchange.wait));
            loss
        } else {
            self.overlap_wait = None;
            backward_micro_batches(model, micro_batches, loss_of_batch)
        };
        let bad = !mine.is_finite();
        let mut agreed = [if bad { 0.0 } else { mine as f32 }, if bad { 1.0 } else { 0.0 }];
        self.comm.all_reduce_sum(&mut agreed);
        if agreed[1] > 0.0 {
            // The rank that saw it reports its value; the others NaN.
            return Err(NonFiniteLoss(if bad { mine } else { f64::NAN }));
        }
        let loss = agreed[0] as f64 / self.comm.world_size() as f64;
        let grad_norm = match &mut self.sharded {
            None => {
                if !overlapped {
                    self.exchanged_bytes = all_reduce_mean_gradients_in(&*self.comm, opt.params(), self.bucket_bytes);
                }
                let grad_norm = clip_grad_norm(opt.params(), max_norm);
                opt.step();
                grad_norm
            }
            Some(sharded) => {
                let step = sharded.step(&*self.comm, opt.params(), lr, max_norm);
                self.exchanged_bytes = step.exchanged_bytes;
                step.grad_norm
            }
        };
        Ok(StepOutcome { loss, grad_norm })
    }

    /// The optimizer a checkpoint should save: with ZeRO the moments
    /// gathered from every rank (every rank must call this), else `None`
    /// (`opt` itself holds them).
    pub fn gathered_optimizer(&self, opt: &AdamW) -> Option<AdamW> {
        self.sharded.as_ref().map(|sharded| sharded.gather(&*self.comm, opt))
    }
}
