//! A mixture of experts' routing as one op: from router probabilities
//! `[N, E]`, each token's k most probable experts and the tokens grouped by
//! expert ([`Tensor::route_top_k`]).
//!
//! The index tensors it returns live where the probabilities do. On a GPU
//! that is the point: picking the top k on the host would copy all N × E
//! probabilities out of GPU memory in every routed layer (and wait for the
//! GPU first); here only the E + 1 group starts come back, which the
//! caller needs on the host anyway to size each expert's product. An
//! expert's tokens are a view of the grouped list ([`ExpertRouting::expert`]),
//! not a copy. The arithmetic and the exact tie rule are
//! `kernels::cpu::moe_route` (the reference, which the CPU runs) and
//! `moe_route.cu`.

use crate::backend;
use crate::tensor::Tensor;

/// The most experts the op routes among (the CUDA kernel keeps a row's
/// sort keys in shared memory).
pub use kernels::cuda::moe_route::MAX_EXPERTS;

/// Which tokens go to which experts. The three index tensors are int64 on
/// the probabilities' device; `offsets` is on the host.
pub struct ExpertRouting {
    /// `[N, k]`: each token's experts, most probable first (equal
    /// probabilities in index order).
    pub chosen: Tensor,
    /// `E + 1` starts: expert e's entries of `tokens` and `positions` are
    /// `offsets[e]..offsets[e + 1]`.
    pub offsets: Vec<usize>,
    /// `[N·k]`: per expert, the tokens routed to it, in token order.
    pub tokens: Tensor,
    /// `[N·k]`: beside each token, token·k + slot, the position of its
    /// weight in the chosen weights flattened to `[N·k]`.
    pub positions: Tensor,
}

impl ExpertRouting {
    /// The number of experts.
    pub fn n_experts(&self) -> usize {
        self.offsets.len() - 1
    }

    /// How many tokens expert `e` received.
    pub fn count(&self, e: usize) -> usize {
        self.offsets[e + 1] - self.offsets[e]
    }

    /// Expert `e`'s tokens and weight positions, each `[count]`: views of
    /// the grouped lists (no copy).
    pub fn expert(&self, e: usize) -> (Tensor, Tensor) {
        let (start, count) = (self.offsets[e], self.count(e));
        (self.tokens.narrow(0, start, count), self.positions.narrow(0, start, count))
    }
}

impl Tensor {
    /// Routes the probabilities `[N, E]` to the `k` largest of each row
    /// (see the module documentation); `1 ≤ k ≤ E ≤` [`MAX_EXPERTS`].
    pub fn route_top_k(&self, k: usize) -> ExpertRouting {
        assert!(self.dtype().is_float(), "route_top_k: needs float probabilities, got {}", self.dtype());
        assert_eq!(self.rank(), 2, "route_top_k: expects probabilities [N, E], got {}", self.shape());
        let e = self.dim(1);
        assert!(
            k >= 1 && k <= e && e <= MAX_EXPERTS,
            "route_top_k: cannot pick the top {k} of {e} experts (1 ≤ k ≤ E ≤ {MAX_EXPERTS})"
        );
        backend::of(&[self]).route_top_k(self, k)
    }
}

/// The routing's tensors from host vectors (what the CPU backend returns).
pub(crate) fn from_host(groups: kernels::cpu::moe_route::ExpertGroups, n: usize, k: usize) -> ExpertRouting {
    let index = |v: Vec<i64>, dims: Vec<usize>| Tensor::from_vec(v, dims).expect("index lengths match");
    ExpertRouting {
        chosen: index(groups.chosen, vec![n, k]),
        offsets: groups.offsets.iter().map(|&o| o as usize).collect(),
        tokens: index(groups.tokens, vec![n * k]),
        positions: index(groups.positions, vec![n * k]),
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn experts_are_views_of_the_grouped_lists() {
        let probs = Tensor::from_vec(vec![0.1f32, 0.6, 0.3, 0.5, 0.2, 0.3], [2, 3]).unwrap();
        let r = probs.route_top_k(2);
        assert_eq!(r.chosen.dims(), &[2, 2]);
        assert_eq!(r.chosen.to_vec::<i64>(), vec![1, 2, 0, 2]);
        assert_eq!(r.offsets, vec![0, 1, 2, 4]);
        let (tokens, positions) = r.expert(2);
        assert_eq!((tokens.to_vec::<i64>(), positions.to_vec::<i64>()), (vec![0, 1], vec![1, 3]));
        assert_eq!(r.expert(0).0.to_vec::<i64>(), vec![1]);
    }

    #[test]
    #[should_panic(expected = "route_top_k: cannot pick the top 4 of 3 experts")]
    fn more_experts_than_there_are_is_refused() {
        Tensor::zeros([2, 3], DType::F32).route_top_k(4);
    }
}
