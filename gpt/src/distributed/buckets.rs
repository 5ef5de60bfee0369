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
use tensor::Tensor;

use super::Communicator;

/// The size a gradient bucket grows to before it is all-reduced (PyTorch's
/// default); a bigger gradient is a bucket of its own.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Replaces the gradient of every parameter that has one by its mean over
/// all ranks. Returns the bytes this rank handed to all-reduce.
pub fn all_reduce_mean_gradients(comm: &dyn Communicator, params: &[Var]) -> usize {
    let grads: Vec<(&Var, Tensor)> = params.iter().filter_map(|p| p.grad().map(|g| (p, g))).collect();
    let ranks = comm.world_size() as f32;
    let floats_per_bucket = BUCKET_BYTES / std::mem::size_of::<f32>();
    let mut exchanged = 0;
    let mut start = 0;
    while start < grads.len() {
        // Gradients start..end fill this bucket (at least one, however big).
        let mut end = start + 1;
        let mut len = grads[start].1.numel();
        while end < grads.len() && len + grads[end].1.numel() <= floats_per_bucket {
            len += grads[end].1.numel();
            end += 1;
        }
        let mut bucket = Vec::with_capacity(len);
        for (_, g) in &grads[start..end] {
            bucket.extend(g.to_vec::<f32>());
        }
        comm.all_reduce_sum(&mut bucket);
        exchanged += bucket.len() * std::mem::size_of::<f32>();
        let mut at = 0;
        for (p, g) in &grads[start..end] {
            let mean: Vec<f32> = bucket[at..at + g.numel()].iter().map(|sum| sum / ranks).collect();
            at += g.numel();
            p.set_grad(Some(on_device_of(mean, g)));
        }
        start = end;
    }
    exchanged
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
