//! Averaging gradients across ranks, a bucket at a time.
//!
//! One all-reduce per parameter would pay the network's latency a hundred
//! times a step; one for the whole model would need a second copy of every
//! gradient at once. So, as PyTorch's DistributedDataParallel does, the
//! gradients are flattened in parameter order into buckets of about
//! [`BUCKET_BYTES`], each bucket is summed across ranks in one call, divided
//! by N, and cut back into the parameters' shapes:
//!
//! ```text
//! grads  [768×2304] [2304] [768×768] [768] …      in parameter order
//! bucket [ ------------ ≤ 25 MB of f32 ------------ ]  all_reduce_sum, ÷ N
//! ```

use autograd::Var;
use tensor::{DType, Device, Tensor};

use super::Communicator;

/// The size a gradient bucket grows to before it is all-reduced (PyTorch's
/// default); a bigger gradient is a bucket of its own.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Replaces the gradient of every parameter by its mean over all ranks.
/// Returns the bytes this rank handed to all-reduce.
///
/// A parameter may have a gradient on one rank and none on another: a
/// mixture of experts' expert that no token of this rank's batch was
/// routed to. Every rank still hands over every parameter, in the same
/// order (a missing gradient as zeros), so the buckets line up; and a
/// presence count travels with each bucket, one number per parameter, so
/// that a parameter no rank touched stays without a gradient (the optimizer
/// skips it, as it would in one process) and every rank agrees on that.
///
/// When the parameters live on a GPU and the transport sums device tensors
/// (NCCL), each bucket is built, summed, divided and cut back on the GPU;
/// only the presence counts, one number per parameter, come to the host.
pub fn all_reduce_mean_gradients(comm: &dyn Communicator, params: &[Var]) -> usize {
    let grads: Vec<(&Var, Option<Tensor>)> = params.iter().map(|p| (p, p.grad())).collect();
    let on_device =
        comm.reduces_on_device() && params.first().is_some_and(|p| matches!(p.data().device(), Device::Cuda(_)));
    let floats_per_bucket = BUCKET_BYTES / std::mem::size_of::<f32>();
    let mut exchanged = 0;
    let mut start = 0;
    while start < grads.len() {
        // Gradients start..end fill this bucket (at least one, however big).
        let mut end = start + 1;
        let mut len = numel(grads[start].0);
        while end < grads.len() && len + numel(grads[end].0) <= floats_per_bucket {
            len += numel(grads[end].0);
            end += 1;
        }
        let bucket = &grads[start..end];
        exchanged += if on_device { mean_on_device(comm, bucket, len) } else { mean_through_host(comm, bucket, len) };
        start = end;
    }
    exchanged
}

fn numel(p: &Var) -> usize {
    p.dims().iter().product()
}

/// One bucket through host memory: `[gradients (len values) | presence
/// (one per parameter)]` all-reduced as `f32`. Returns the bytes handed over.
fn mean_through_host(comm: &dyn Communicator, grads: &[(&Var, Option<Tensor>)], len: usize) -> usize {
    let ranks = comm.world_size() as f32;
    let mut bucket = Vec::with_capacity(len + grads.len());
    for (p, g) in grads {
        match g {
            Some(g) => bucket.extend(g.to_vec::<f32>()),
            None => bucket.extend(std::iter::repeat_n(0.0, numel(p))),
        }
    }
    // Then, per parameter, 1 if this rank has its gradient.
    bucket.extend(presence(grads));
    comm.all_reduce_sum(&mut bucket);
    let (sums, present) = bucket.split_at(len);
    let mut at = 0;
    for ((p, _), &holders) in grads.iter().zip(present) {
        let n = numel(p);
        if holders > 0.0 {
            let mean: Vec<f32> = sums[at..at + n].iter().map(|sum| sum / ranks).collect();
            p.set_grad(Some(on_device_of(mean, &p.data())));
        }
        at += n;
    }
    (len + grads.len()) * std::mem::size_of::<f32>()
}

/// The same bucket, laid out the same way, on the parameters' GPU: the
/// gradients flattened into one device tensor, summed in place by the
/// transport, ÷ N, and each parameter's gradient a view of its span.
fn mean_on_device(comm: &dyn Communicator, grads: &[(&Var, Option<Tensor>)], len: usize) -> usize {
    let device = grads[0].0.data().device();
    let mut pieces: Vec<Tensor> = grads
        .iter()
        .map(|(p, g)| match g {
            Some(g) => g.reshape(&[-1]),
            None => Tensor::zeros_on([numel(p)], DType::F32, device),
        })
        .collect();
    let counts = Tensor::from_vec(presence(grads).collect::<Vec<f32>>(), [grads.len()]).expect("one per parameter");
    pieces.push(counts.to_device(device).expect("the parameters' device"));
    let mut bucket = Tensor::cat(&pieces, 0);
    drop(pieces);
    if let Err(e) = comm.all_reduce_sum_on_device(&mut bucket) {
        // Mid-step, with the other ranks inside the same collective: no
        // way back but ending them all.
        eprintln!("error: summing gradients on the GPU: {e}");
        comm.abort(1);
    }
    // Divided, as the host path divides: × 1/N would differ in the last bit
    // for an N that is not a power of two.
    let mean = bucket.div_scalar(comm.world_size() as f64);
    // The presence counts ÷ N: positive where some rank had the gradient.
    let present = mean.narrow(0, len, grads.len()).to_vec::<f32>();
    let mut at = 0;
    for ((p, _), &holders) in grads.iter().zip(&present) {
        let n = numel(p);
        if holders > 0.0 {
            p.set_grad(Some(mean.narrow(0, at, n).reshape_to(p.dims())));
        }
        at += n;
    }
    (len + grads.len()) * std::mem::size_of::<f32>()
}

/// Per parameter, 1 when this rank has its gradient, else 0.
fn presence<'a>(grads: &'a [(&Var, Option<Tensor>)]) -> impl Iterator<Item = f32> + 'a {
    grads.iter().map(|(_, g)| if g.is_some() { 1.0 } else { 0.0 })
}

/// Copies rank 0's value of every parameter to every rank.
pub fn broadcast_parameters(comm: &dyn Communicator, params: &[Var]) {
    for p in params {
        let value = p.data();
        let mut host = value.to_vec::<f32>();
        comm.broadcast(&mut host);
        p.set_data(on_device_of(host, &value));
    }
}

/// `values` as a tensor of `like`'s shape on `like`'s device.
pub(super) fn on_device_of(values: Vec<f32>, like: &Tensor) -> Tensor {
    let host = Tensor::from_vec(values, like.dims()).expect("as many values as the tensor holds");
    host.to_device(like.device()).expect("the device the tensor came from")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;
    use crate::distributed::zero::tests::Threads;

    /// Two ranks, four parameters: `a` has a gradient on both, `b` only on
    /// rank 0, `c` only on rank 1 (an expert only one rank's tokens chose),
    /// `d` on neither. Each becomes the mean over the ranks, a missing
    /// gradient counting as zeros, and `d` stays without one, on both ranks.
    #[test]
    fn a_gradient_only_some_ranks_have_is_averaged_with_zeros_and_one_no_rank_has_stays_none() {
        let table = Arc::new((Mutex::new(vec![Vec::new(); 2]), Barrier::new(2)));
        let results: Vec<Vec<Option<Vec<f32>>>> = (0..2)
            .map(|rank| {
                let table = table.clone();
                std::thread::spawn(move || {
                    let comm = Threads { rank, table };
                    let params: Vec<Var> =
                        (0..4).map(|_| Var::parameter(Tensor::from_vec(vec![0.0f32; 3], [3]).unwrap())).collect();
                    let r = rank as f32;
                    let grad = |values: [f32; 3]| Some(Tensor::from_vec(values.to_vec(), [3]).unwrap());
                    params[0].set_grad(grad([1.0 + r, 2.0 + r, 3.0 + r]));
                    params[if rank == 0 { 1 } else { 2 }].set_grad(grad([4.0, 6.0, 8.0]));
                    all_reduce_mean_gradients(&comm, &params);
                    params.iter().map(|p| p.grad().map(|g| g.to_vec::<f32>())).collect()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let want = vec![Some(vec![1.5, 2.5, 3.5]), Some(vec![2.0, 3.0, 4.0]), Some(vec![2.0, 3.0, 4.0]), None];
        assert_eq!(results[0], want);
        assert_eq!(results[1], want);
    }
}
