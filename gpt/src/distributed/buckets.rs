//! Averaging gradients across ranks, a bucket at a time.
//!
//! One all-reduce per parameter would pay the network's latency a hundred
//! times a step; one for the whole model would need a second copy of every
//! gradient at once. So, as PyTorch's DistributedDataParallel does, the
//! gradients are flattened into buckets of about [`BUCKET_BYTES`], each
//! bucket is summed across ranks in one call, divided by N, and cut back
//! into the parameters' shapes. The buckets take the parameters last to
//! first, the order in which backward finishes their gradients, so that the
//! overlapped exchange (`overlap.rs`) can send the first bucket while
//! backward is still working on the first layers:
//!
//! ```text
//! grads  … [768] [768×768] [2304] [768×2304]      last parameter first
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
    all_reduce_mean_gradients_in(comm, params, BUCKET_BYTES)
}

/// [`all_reduce_mean_gradients`] with buckets of `bucket_bytes` rather than
/// [`BUCKET_BYTES`] (a small model makes one bucket of the default size,
/// and then nothing can overlap; tests and `bench train --bucket-mb`).
pub fn all_reduce_mean_gradients_in(comm: &dyn Communicator, params: &[Var], bucket_bytes: usize) -> usize {
    let on_device =
        comm.reduces_on_device() && params.first().is_some_and(|p| matches!(p.data().device(), Device::Cuda(_)));
    let mut exchanged = 0;
    for bucket in bucket_plan(params, bucket_bytes) {
        let grads: Vec<(&Var, Option<Tensor>)> = bucket.iter().map(|&i| (&params[i], params[i].grad())).collect();
        let len = grads.iter().map(|(p, _)| numel(p)).sum();
        exchanged += if on_device { mean_on_device(comm, &grads, len) } else { mean_through_host(comm, &grads, len) };
    }
    exchanged
}

/// The parameters of each bucket, by index into `params`: last parameter
/// first, each bucket growing until the next gradient would take it past
/// `bucket_bytes` of f32 (at least one gradient, however big). The
/// blocking and the overlapped exchange share this plan, so both sum the
/// same buffers.
pub(super) fn bucket_plan(params: &[Var], bucket_bytes: usize) -> Vec<Vec<usize>> {
    let bucket_floats = bucket_bytes / std::mem::size_of::<f32>();
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    let mut len = 0;
    for i in (0..params.len()).rev() {
        let n = numel(&params[i]);
        match buckets.last_mut() {
            Some(bucket) if len + n <= bucket_floats => bucket.push(i),
            _ => {
                buckets.push(vec![i]);
                len = 0;
            }
        }
        len += n;
    }
    buckets
}

pub(super) fn numel(p: &Var) -> usize {
    p.dims().iter().product()
}

/// The values a bucket hands to all-reduce, `[gradients | presence]`: each
/// parameter's gradient flattened (zeros where this rank has none), then
/// per parameter 1 if this rank has its gradient, else 0. `out` holds
/// exactly that many values.
pub(super) fn fill_host_bucket(grads: &[(&Var, Option<Tensor>)], out: &mut [f32]) {
    let mut at = 0;
    for (p, g) in grads {
        let n = numel(p);
        match g {
            Some(g) => out[at..at + n].copy_from_slice(&g.to_vec::<f32>()),
            None => out[at..at + n].fill(0.0),
        }
        at += n;
    }
    for (slot, present) in out[at..].iter_mut().zip(presence(grads)) {
        *slot = present;
    }
}

/// The values of a host bucket after the sum over `ranks` ranks, back into
/// the parameters: each gradient becomes sum ÷ N, and a parameter that no
/// rank had a gradient for stays without one.
pub(super) fn write_back_means(params: &[&Var], summed: &[f32], ranks: usize) {
    let len: usize = params.iter().map(|p| numel(p)).sum();
    let (sums, present) = summed.split_at(len);
    let mut at = 0;
    for (p, &holders) in params.iter().zip(present) {
        let n = numel(p);
        if holders > 0.0 {
            let mean: Vec<f32> = sums[at..at + n].iter().map(|sum| sum / ranks as f32).collect();
            p.set_grad(Some(on_device_of(mean, &p.data())));
        }
        at += n;
    }
}

/// One bucket through host memory: `[gradients (len values) | presence
/// (one per parameter)]` all-reduced as `f32`. Returns the bytes handed over.
fn mean_through_host(comm: &dyn Communicator, grads: &[(&Var, Option<Tensor>)], len: usize) -> usize {
    let mut bucket = vec![0.0; len + grads.len()];
    fill_host_bucket(grads, &mut bucket);
    comm.all_reduce_sum(&mut bucket);
    let params: Vec<&Var> = grads.iter().map(|(p, _)| *p).collect();
    write_back_means(&params, &bucket, comm.world_size());
    bucket.len() * std::mem::size_of::<f32>()
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
