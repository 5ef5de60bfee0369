//! Mixture-of-experts routing on the host: the reference of
//! `kernels::cpu::moe_route` on the probabilities read as f64.

use kernels::cpu::moe_route::route_top_k_reference;

use crate::ops::moe_route::{from_host, ExpertRouting};
use crate::tensor::Tensor;

pub(crate) fn route_top_k(probs: &Tensor, k: usize) -> ExpertRouting {
    let (n, e) = (probs.dim(0), probs.dim(1));
    from_host(route_top_k_reference(&probs.to_f64_vec(), e, k), n, k)
}
