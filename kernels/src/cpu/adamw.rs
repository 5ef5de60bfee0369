//! AdamW, one fused pass over a parameter buffer.
//!
//! For step t (from 1), gradient g, with decoupled weight decay as in
//! PyTorch's `torch.optim.AdamW`:
//!   p ← p − lr·λ·p
//!   m ← β₁m + (1 − β₁)g,   v ← β₂v + (1 − β₂)g²
//!   p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! Each element's update is independent, so chunks run in parallel and the
//! result does not depend on the split.

use num_traits::Float;
use rayon::prelude::*;

/// Hyper-parameters of one AdamW step.
#[derive(Clone, Copy, Debug)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// 1-based step count, for bias correction.
    pub t: u64,
}

const CHUNK: usize = 1 << 14;

/// Updates `param`, `m` and `v` in place from `grad`.
pub fn adamw<T: Float + Send + Sync>(param: &mut [T], grad: &[T], m: &mut [T], v: &mut [T], h: AdamWStep) {
    assert!(
        param.len() == grad.len() && m.len() == param.len() && v.len() == param.len(),
        "adamw: buffer lengths differ"
    );
    let c = |x: f64| T::from(x).unwrap();
    let bias1 = 1.0 - h.beta1.powi(h.t as i32);
    let bias2 = 1.0 - h.beta2.powi(h.t as i32);
    let (b1, b2, one_b1, one_b2) = (c(h.beta1), c(h.beta2), c(1.0 - h.beta1), c(1.0 - h.beta2));
    let decay = c(1.0 - h.lr * h.weight_decay);
    let step_size = c(h.lr / bias1);
    let bias2_sqrt = c(bias2.sqrt());
    let eps = c(h.eps);
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            // Zipped iterators (not indices) so no bounds checks stand in
            // the way of vectorising the loop.
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *p = *p * decay;
                *m = b1 * *m + one_b1 * g;
                *v = b2 * *v + one_b2 * g * g;
                let denom = v.sqrt() / bias2_sqrt + eps;
                *p = *p - step_size * *m / denom;
            }
        });
}
