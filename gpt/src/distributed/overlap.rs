//! Sending the gradients while backward is still running.
//!
//! Backward finishes the parameters' gradients roughly last layer first.
//! The blocking exchange (`buckets.rs`) waits for all of them and then
//! all-reduces bucket after bucket, so the network and the cores take
//! turns. Here, as in PyTorch's DistributedDataParallel, a bucket is sent
//! the moment its last gradient is final (autograd's leaf hook says when),
//! and backward goes on with the earlier layers while it travels:
//!
//! ```text
//! backward   [layer L ][layer L-1][ … ][layer 1][embeddings]
//! all-reduce       [bucket 0]   [bucket 1]  …        [last]│wait│ ÷ N, AdamW
//! ```
//!
//! Only the wait at the end, for what was still in flight when backward
//! ended, is added to the step. Three rules keep it correct:
//!
//! - Buckets are started strictly in index order, a full bucket waiting for
//!   the ones before it: every rank must start its collectives in the same
//!   order, whatever order its own gradients happen to finish in.
//! - A frozen parameter is not waited for. A bucket whose missing
//!   gradients do not come (an expert no token of this rank chose) is sent
//!   when backward ends, in its turn.
//! - The buckets, their layout and the ÷ N are those of
//!   [`all_reduce_mean_gradients`](super::all_reduce_mean_gradients)
//!   (`bucket_plan`, `fill_host_bucket`, `write_back_means`): the same sums
//!   of the same numbers, so the two give bit-identical gradients on 2
//!   ranks (with more, MPI's non-blocking all-reduce may add in another
//!   order than its blocking one: equal to rounding).
//!
//! With gradient accumulation only the last micro-batch's backward is
//! overlapped: before it, the gradients are not final.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use autograd::Var;
use tensor::Tensor;

use super::buckets::{bucket_plan, fill_host_bucket, numel, write_back_means};
use super::Communicator;
use super::BUCKET_BYTES;

/// What an overlapped backward exchanged, and how much of it showed.
#[derive(Clone, Copy, Debug, Default)]
pub struct OverlappedExchange {
    /// Bytes this rank handed to all-reduce (the blocking exchange's count).
    pub exchanged_bytes: usize,
    /// Buckets handed over from inside backward, before it ended.
    pub sent_during_backward: usize,
    /// Time blocked after backward ended, waiting for the sums still in
    /// flight: the part of the all-reduce that backward did not hide.
    pub wait: Duration,
    /// What the exchange added after backward: `wait`, then ÷ N and the
    /// gradients written back (the blocking exchange pays that too).
    pub after_backward: Duration,
}

/// Runs `loss.backward()` and, meanwhile, replaces the gradient of every
/// parameter by its mean over all ranks, as
/// [`all_reduce_mean_gradients`](super::all_reduce_mean_gradients) would
/// after it (bit for bit on 2 ranks). Every rank must call it with the
/// same parameters and bucket size.
pub fn backward_averaging_gradients(comm: &dyn Communicator, params: &[Var], loss: &Var) -> OverlappedExchange {
    backward_averaging_gradients_in(comm, params, loss, BUCKET_BYTES)
}

/// [`backward_averaging_gradients`] with buckets of `bucket_bytes` (the
/// same size as the blocking exchange's, for the same sums).
pub fn backward_averaging_gradients_in(
    comm: &dyn Communicator,
    params: &[Var],
    loss: &Var,
    bucket_bytes: usize,
) -> OverlappedExchange {
    let plan = bucket_plan(params, bucket_bytes);
    // Which buckets each parameter sits in (two, if it is listed twice).
    let mut buckets_of: HashMap<u64, Vec<usize>> = HashMap::new();
    for (b, bucket) in plan.iter().enumerate() {
        for &i in bucket {
            buckets_of.entry(params[i].id()).or_default().push(b);
        }
    }
    // Gradients each bucket still waits for; a frozen parameter sends none.
    let mut missing: Vec<usize> =
        plan.iter().map(|bucket| bucket.iter().filter(|&&i| params[i].requires_grad()).count()).collect();
    let mut buffers: Vec<Vec<f32>> = plan
        .iter()
        .map(|bucket| vec![0.0; bucket.iter().map(|&i| numel(&params[i])).sum::<usize>() + bucket.len()])
        .collect();
    let fill = |b: usize, out: &mut [f32]| {
        let grads: Vec<(&Var, Option<Tensor>)> = plan[b].iter().map(|&i| (&params[i], params[i].grad())).collect();
        fill_host_bucket(&grads, out);
    };
    let (mut sent_during_backward, mut backward_ended) = (0, None);
    comm.all_reduce_sum_while(&mut buffers, &mut |sender| {
        let mut next = 0;
        loss.backward_with_leaf_hook(|leaf| {
            for &b in buckets_of.get(&leaf.id()).into_iter().flatten() {
                missing[b] -= 1;
            }
            while next < plan.len() && missing[next] == 0 {
                sender.send_next(&mut |out| fill(next, out));
                next += 1;
            }
            sender.make_progress();
        });
        sent_during_backward = next;
        // Buckets waiting on gradients that did not come this pass.
        while next < plan.len() {
            sender.send_next(&mut |out| fill(next, out));
            next += 1;
        }
        backward_ended = Some(Instant::now());
    });
    let wait = backward_ended.map_or(Duration::ZERO, |ended| ended.elapsed());
    for (bucket, summed) in plan.iter().zip(&buffers) {
        let bucket_params: Vec<&Var> = bucket.iter().map(|&i| &params[i]).collect();
        write_back_means(&bucket_params, summed, comm.world_size());
    }
    let after_backward = backward_ended.map_or(Duration::ZERO, |ended| ended.elapsed());
    let exchanged_bytes = buffers.iter().map(Vec::len).sum::<usize>() * std::mem::size_of::<f32>();
    OverlappedExchange { exchanged_bytes, sent_during_backward, wait, after_backward }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::{Arc, Barrier, Mutex};

    use autograd::nn::{Linear, Module};
    use tensor::Generator;

    use super::*;
    use crate::distributed::zero::tests::Threads;
    use crate::distributed::{all_reduce_mean_gradients_in, SingleProcess};

    /// Three linear layers 3 → 4 → 5 → 2 with tanh between them.
    fn three_layers(seed: u64) -> Vec<Linear> {
        let mut gen = Generator::seed(seed);
        vec![Linear::new(3, 4, true, &mut gen), Linear::new(4, 5, true, &mut gen), Linear::new(5, 2, true, &mut gen)]
    }

    fn loss_of(layers: &[Linear], rows: &[f32]) -> Var {
        let mut h = Var::constant(Tensor::from_vec(rows.to_vec(), [rows.len() / 3, 3]).unwrap());
        for (i, layer) in layers.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < layers.len() {
                h = h.tanh();
            }
        }
        h.square().mean_all()
    }

    fn params_of(layers: &[Linear]) -> Vec<Var> {
        layers.iter().flat_map(Module::parameters).collect()
    }

    /// Each parameter's gradient, if it has one.
    type Grads = Vec<Option<Vec<f32>>>;

    fn grads_of(params: &[Var]) -> Grads {
        params.iter().map(|p| p.grad().map(|g| g.to_vec::<f32>())).collect()
    }

    /// One process that records, for each bucket it is asked to sum, the
    /// bucket's length and how many of the parameters had a gradient then.
    struct Recorder {
        params: Vec<Var>,
        sent: RefCell<Vec<(usize, usize)>>,
    }

    impl Communicator for Recorder {
        fn rank(&self) -> usize {
            0
        }
        fn world_size(&self) -> usize {
            1
        }
        fn local_rank(&self) -> usize {
            0
        }
        fn all_reduce_sum(&self, data: &mut [f32]) {
            let with_grad = self.params.iter().filter(|p| p.grad().is_some()).count();
            self.sent.borrow_mut().push((data.len(), with_grad));
        }
        fn reduce_scatter_sum(&self, all: &[f32], mine: &mut [f32]) {
            SingleProcess.reduce_scatter_sum(all, mine)
        }
        fn all_gather(&self, mine: &[f32], all: &mut [f32]) {
            SingleProcess.all_gather(mine, all)
        }
        fn broadcast(&self, _data: &mut [f32]) {}
        fn broadcast_bytes(&self, _data: &mut [u8]) {}
        fn barrier(&self) {}
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }

    /// With one parameter per bucket, the buckets go last parameter first
    /// (layer 3's bias, its weight, then layer 2's, …: lengths numel + 1 for
    /// the presence count), and layer 3's is sent while only layer 3 has
    /// its gradients: backward has not reached the others yet.
    #[test]
    fn buckets_are_sent_last_parameter_first_while_backward_still_runs() {
        let layers = three_layers(1);
        let params = params_of(&layers);
        let comm = Recorder { params: params.clone(), sent: RefCell::new(Vec::new()) };
        let loss = loss_of(&layers, &[0.5, -1.0, 2.0, 1.5, 0.25, -0.75]);
        let exchange = backward_averaging_gradients_in(&comm, &params, &loss, 4);
        let sent = comm.sent.into_inner();
        let lengths: Vec<usize> = sent.iter().map(|s| s.0).collect();
        assert_eq!(lengths, [2 + 1, 10 + 1, 5 + 1, 20 + 1, 4 + 1, 12 + 1]);
        let with_grad: Vec<usize> = sent.iter().map(|s| s.1).collect();
        assert_eq!(with_grad[..2], [2, 2], "layer 3's buckets go before the other layers have gradients");
        assert!(with_grad.windows(2).all(|w| w[0] <= w[1]) && with_grad[5] == 6, "{with_grad:?}");
        assert_eq!(exchange.sent_during_backward, 6);
        assert_eq!(exchange.exchanged_bytes, 4 * (53 + 6));
    }

    /// Two ranks (threads) on different rows, two micro-batches each: the
    /// first accumulated as usual, the second overlapped. The gradients are
    /// bit for bit those of the blocking exchange after a plain backward,
    /// including a frozen bias that has none.
    #[test]
    fn overlapped_and_blocking_exchanges_give_identical_gradients() {
        let table = Arc::new((Mutex::new(vec![Vec::new(); 2]), Barrier::new(2)));
        let results: Vec<(Grads, Grads)> = (0..2)
            .map(|rank| {
                let table = table.clone();
                std::thread::spawn(move || {
                    let comm = Threads { rank, table };
                    let r = rank as f32;
                    let batches = [[0.5, -1.0 + r, 2.0, 1.5, 0.25 * r, -0.75], [r, 1.0, -2.0, 0.5, 3.0, r - 1.0]];
                    let run = |overlap: bool| {
                        let layers = three_layers(7);
                        layers[1].parameters()[1].set_requires_grad(false);
                        let params = params_of(&layers);
                        loss_of(&layers, &batches[0]).backward();
                        let last = loss_of(&layers, &batches[1]);
                        if overlap {
                            backward_averaging_gradients_in(&comm, &params, &last, 64);
                        } else {
                            last.backward();
                            all_reduce_mean_gradients_in(&comm, &params, 64);
                        }
                        grads_of(&params)
                    };
                    (run(true), run(false))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        for (overlapped, blocking) in &results {
            assert_eq!(overlapped, blocking);
            assert!(overlapped[3].is_none() && overlapped.iter().filter(|g| g.is_some()).count() == 5);
        }
        assert_eq!(results[0], results[1], "every rank ends with the same mean");
    }
}
