//! Causal scaled dot-product attention, fused per (batch, head).
//!
//! For one head with queries Q `[tq, d]`, keys K and values V `[tk, d]`:
//!   S = scale · Q·Kᵀ           `[tq, tk]`, scale = 1/√d
//!   P = softmax(S) row-wise, where query i sees keys j ≤ i + (tk − tq)
//!   O = P·V                    `[tq, d]`
//! The offset (tk − tq) lets a query block sit at the end of a longer key
//! sequence: that is decoding with a KV cache, where one new query attends
//! to every cached key. In training tq = tk and the mask is the usual lower
//! triangle.
//!
//! Backward (tq = tk), with dO the gradient of O:
//!   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//!   dQ = scale · dS·K,  dK = scale · dSᵀ·Q.
//! Masked entries have P = 0, so they contribute nothing anywhere.
//!
//! Heads are independent, so (batch, head) pairs run in parallel; each one
//! uses the strided GEMM for its products, reading Kᵀ, Vᵀ, Pᵀ and dSᵀ through
//! swapped strides rather than copies.

use num_traits::Float;
use rayon::prelude::*;

use super::gemm::{gemm, GemmElement, Strided};
use super::math::FastExp;

/// Buffers are dense `[heads, rows, d]` (heads = batch × n_heads) for
/// Q/K/V/O and `[heads, tq, tk]` for P.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward<T: FastExp + GemmElement>(
    q: &[T],
    k: &[T],
    v: &[T],
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    out: &mut [T],
    probs: &mut [T],
) {
    assert_eq!(k.len(), heads * tk * d, "attention: K has {} elements, expected {}", k.len(), heads * tk * d);
    causal_attention_forward_strided(q, k, v, KvLayout { offset: 0, head_stride: tk * d }, heads, tq, tk, d, out, probs)
}

/// Where each head's `[tk, d]` keys and values start in their buffers:
/// head h at `offset + h·head_stride`. A KV cache keeps room for more
/// positions than it holds, so its heads are further apart than tk·d.
#[derive(Clone, Copy, Debug)]
pub struct KvLayout {
    pub offset: usize,
    pub head_stride: usize,
}

/// [`causal_attention_forward`] reading K and V where they lie (a KV
/// cache's buffers), with Q, O and P dense.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward_strided<T: FastExp + GemmElement>(
    q: &[T],
    k: &[T],
    v: &[T],
    kv: KvLayout,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    out: &mut [T],
    probs: &mut [T],
) {
    assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
    assert_eq!(q.len(), heads * tq * d, "attention: Q has {} elements, expected {}", q.len(), heads * tq * d);
    let kv_end = if heads == 0 { 0 } else { kv.offset + (heads - 1) * kv.head_stride + tk * d };
    assert!(
        k.len() >= kv_end && v.len() >= kv_end,
        "attention: K/V buffers hold {} and {}, need {kv_end}",
        k.len(),
        v.len()
    );
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    let past = tk - tq;
    out.par_chunks_mut(tq * d).zip(probs.par_chunks_mut(tq * tk)).enumerate().for_each(|(h, (o, p))| {
        let (qo, ko) = (h * tq * d, kv.offset + h * kv.head_stride);
        // S = Q·Kᵀ, with Kᵀ read as K's buffer with swapped strides.
        gemm(
            tq,
            d,
            tk,
            q,
            Strided::row_major(qo, d),
            k,
            Strided { offset: ko, row_stride: 1, col_stride: d },
            p,
            false,
        );
        for (i, row) in p.chunks_mut(tk).enumerate() {
            let visible = i + past + 1;
            let max = row[..visible].iter().fold(T::neg_infinity(), |m, &x| m.max(x * scale));
            // Exponentials first (a loop the compiler vectorises), then the
            // sum in order.
            row[..visible].iter_mut().for_each(|x| *x = (*x * scale - max).fast_exp());
            let sum = row[..visible].iter().fold(T::zero(), |s, &x| s + x);
            let inv = T::one() / sum;
            row[..visible].iter_mut().for_each(|x| *x = *x * inv);
            row[visible..].iter_mut().for_each(|x| *x = T::zero());
        }
        gemm(tq, tk, d, p, Strided::row_major(0, tk), v, Strided::row_major(ko, d), o, false);
    });
}

/// Gradients of Q, K and V from dO and the forward's saved P (tq = tk = t).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward<T: Float + GemmElement>(
    q: &[T],
    k: &[T],
    v: &[T],
    probs: &[T],
    d_out: &[T],
    heads: usize,
    t: usize,
    d: usize,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    assert_eq!(q.len(), heads * t * d, "attention backward: Q has {} elements, expected {}", q.len(), heads * t * d);
    assert_eq!(
        probs.len(),
        heads * t * t,
        "attention backward: P has {} elements, expected {}",
        probs.len(),
        heads * t * t
    );
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    dq.par_chunks_mut(t * d).zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d))).enumerate().for_each(
        |(h, (dq, (dk, dv)))| {
            let (o, po) = (h * t * d, h * t * t);
            let p = &probs[po..po + t * t];
            // dV = Pᵀ·dO
            gemm(
                t,
                t,
                d,
                p,
                Strided { offset: 0, row_stride: 1, col_stride: t },
                d_out,
                Strided::row_major(o, d),
                dv,
                false,
            );
            // dP = dO·Vᵀ, then dS in place.
            let mut ds = vec![T::zero(); t * t];
            gemm(
                t,
                d,
                t,
                d_out,
                Strided::row_major(o, d),
                v,
                Strided { offset: o, row_stride: 1, col_stride: d },
                &mut ds,
                false,
            );
            for i in 0..t {
                let (pr, dr) = (&p[i * t..(i + 1) * t], &mut ds[i * t..(i + 1) * t]);
                let dot = pr[..=i].iter().zip(&dr[..=i]).fold(T::zero(), |s, (&a, &b)| s + a * b);
                for j in 0..t {
                    dr[j] = if j <= i { pr[j] * (dr[j] - dot) * scale } else { T::zero() };
                }
            }
            // dQ = dS·K, dK = dSᵀ·Q (scale already folded into dS).
            gemm(t, t, d, &ds, Strided::row_major(0, t), k, Strided::row_major(o, d), dq, false);
            gemm(
                t,
                t,
                d,
                &ds,
                Strided { offset: 0, row_stride: 1, col_stride: t },
                q,
                Strided::row_major(o, d),
                dk,
                false,
            );
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward attention for one head, for comparison.
    fn naive(q: &[f64], k: &[f64], v: &[f64], tq: usize, tk: usize, d: usize) -> Vec<f64> {
        let mut out = vec![0.0; tq * d];
        for i in 0..tq {
            let visible = i + (tk - tq) + 1;
            let s: Vec<f64> = (0..visible)
                .map(|j| (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt())
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for j in 0..visible {
                for c in 0..d {
                    out[i * d + c] += e[j] / z * v[j * d + c];
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_and_without_a_cache_offset() {
        let (d, tk) = (4, 6);
        let k: Vec<f64> = (0..tk * d).map(|i| (i as f64 * 0.37).sin()).collect();
        let v: Vec<f64> = (0..tk * d).map(|i| (i as f64 * 0.23).cos()).collect();
        for tq in [6, 2, 1] {
            let q: Vec<f64> = (0..tq * d).map(|i| (i as f64 * 0.71).cos()).collect();
            let (mut out, mut p) = (vec![0.0; tq * d], vec![0.0; tq * tk]);
            causal_attention_forward(&q, &k, &v, 1, tq, tk, d, &mut out, &mut p);
            for (a, b) in out.iter().zip(naive(&q, &k, &v, tq, tk, d)) {
                assert!((a - b).abs() < 1e-12, "tq {tq}: {a} vs {b}");
            }
        }
    }
}
