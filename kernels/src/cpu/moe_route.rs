//! A mixture of experts' routing: each token's k most probable experts,
//! and the tokens grouped by expert. The plain reference that the CUDA
//! kernels (`cuda/moe_route.cu`) match exactly.
//!
//! From probabilities `[N, E]` (row-major, one row per token):
//!
//! ```text
//! chosen    [N, k]   token t's experts, most probable first; equal
//!                    probabilities keep index order (a stable sort)
//! offsets   [E + 1]  expert e's entries below are offsets[e]..offsets[e+1]
//! tokens    [N·k]    per expert, the tokens routed to it, in token order
//! positions [N·k]    beside each, t·k + slot: where its weight sits among
//!                    the N·k chosen weights
//! ```
//!
//! The grouping is a counting sort: count each expert's entries, turn the
//! counts into starts (a prefix sum), then walk the tokens in order and
//! append each entry at its expert's next free place. An expert no token
//! chose has an empty range. Each expert can then run one product over
//! only its rows.

/// The routing of N tokens, as described in the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpertGroups {
    pub chosen: Vec<i64>,
    pub offsets: Vec<i64>,
    pub tokens: Vec<i64>,
    pub positions: Vec<i64>,
}

/// Routes `probs` `[n, e]` (n = probs.len() / e) to the `k` most probable
/// experts per row, compared by `f64::total_cmp`.
pub fn route_top_k_reference(probs: &[f64], e: usize, k: usize) -> ExpertGroups {
    assert!(k >= 1 && k <= e, "route_top_k: top {k} of {e} experts");
    assert!(probs.len().is_multiple_of(e), "route_top_k: {} probabilities are not rows of {e}", probs.len());
    let n = probs.len() / e;
    let mut chosen = Vec::with_capacity(n * k);
    for row in probs.chunks(e) {
        let mut order: Vec<usize> = (0..e).collect();
        // A stable sort keeps equal probabilities in index order.
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        chosen.extend(order[..k].iter().map(|&expert| expert as i64));
    }
    // Counting sort of the entries t·k + slot by expert.
    let mut offsets = vec![0i64; e + 1];
    for &expert in &chosen {
        offsets[expert as usize + 1] += 1;
    }
    for i in 1..=e {
        offsets[i] += offsets[i - 1];
    }
    let mut next: Vec<i64> = offsets[..e].to_vec();
    let (mut tokens, mut positions) = (vec![0i64; n * k], vec![0i64; n * k]);
    for (entry, &expert) in chosen.iter().enumerate() {
        let at = &mut next[expert as usize];
        tokens[*at as usize] = (entry / k) as i64;
        positions[*at as usize] = entry as i64;
        *at += 1;
    }
    ExpertGroups { chosen, offsets, tokens, positions }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tokens, four experts, top 2: a tie (token 1: experts 0 and 2 at
    /// 0.4), an expert nobody picks (3), and the groups in token order.
    #[test]
    fn picks_the_k_largest_and_groups_them_by_expert() {
        #[rustfmt::skip]
        let probs = [
            0.1, 0.5, 0.3, 0.1,
            0.4, 0.1, 0.4, 0.1,
            0.2, 0.6, 0.2, 0.0,
        ];
        let g = route_top_k_reference(&probs, 4, 2);
        // Token 2: 0.6, then the tie of experts 0 and 2 at 0.2 (0 first).
        assert_eq!(g.chosen, vec![1, 2, 0, 2, 1, 0]);
        assert_eq!(g.offsets, vec![0, 2, 4, 6, 6]);
        assert_eq!(g.tokens, vec![1, 2, 0, 2, 0, 1]);
        assert_eq!(g.positions, vec![2, 5, 0, 4, 1, 3]);
    }
}
