//! Mixture-of-experts routing on a GPU (`kernels::cuda::moe_route`): the
//! index tensors are made on the device and stay there; only the E + 1
//! group starts are copied back.

use kernels::cuda::moe_route as k;

use super::{cuda_device, dense, ok, packed, slice, with_cuda_float};
use crate::ops::moe_route::ExpertRouting;
use crate::tensor::Tensor;

pub(crate) fn route_top_k(probs: &Tensor, top_k: usize) -> ExpertRouting {
    let (n, e) = (probs.dim(0), probs.dim(1));
    let probs = packed(probs);
    let dev = cuda_device(&probs);
    let r = with_cuda_float!(probs.dtype(), "route_top_k", T => {
        ok(k::route::<T>(dev, slice::<T>(&probs), n, e, top_k), "route_top_k")
    });
    ExpertRouting {
        chosen: dense(dev, r.chosen, [n, top_k]),
        offsets: r.offsets.iter().map(|&o| o as usize).collect(),
        tokens: dense(dev, r.tokens, [n * top_k]),
        positions: dense(dev, r.positions, [n * top_k]),
    }
}
