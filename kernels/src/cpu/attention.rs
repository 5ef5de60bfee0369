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
//!
//! The masked half is never computed. Queries go in blocks of `BLOCK` rows,
//! and a block ending at row i1 multiplies only the keys it can see,
//! 0..i1 + (tk − tq): S and P·V for a block cost its share of the lower
//! triangle, not the whole square. The backward does the same from the
//! other side: dV and dK for keys j0..j1 gather only queries i ≥ j0, whose
//! rows of P and dS are nonzero there. For T = 256 that is 10 of the 16
//! blocks of each product. Skipped entries are exact zeros, so the results
//! are those of the full products.

use num_traits::Float;
use rayon::prelude::*;

use super::gemm::{gemm_serial_into, GemmElement, Strided};

/// Query rows per block of the causal products.
const BLOCK: usize = 64;
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
        // S = Q·Kᵀ block by block, each over the keys its rows can see, with
        // Kᵀ read as K's buffer with swapped strides.
        for i0 in (0..tq).step_by(BLOCK) {
            let (rows, seen) = (BLOCK.min(tq - i0), BLOCK.min(tq - i0) + i0 + past);
            let kt = Strided { offset: ko, row_stride: 1, col_stride: d };
            gemm_serial_into(rows, d, seen, q, Strided::row_major(qo + i0 * d, d), k, kt, &mut p[i0 * tk..], tk, false);
        }
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
        // O = P·V, each block over its visible keys only.
        for i0 in (0..tq).step_by(BLOCK) {
            let (rows, seen) = (BLOCK.min(tq - i0), BLOCK.min(tq - i0) + i0 + past);
            let (pb, vb) = (Strided::row_major(i0 * tk, tk), Strided::row_major(ko, d));
            gemm_serial_into(rows, seen, d, p, pb, v, vb, &mut o[i0 * d..], d, false);
        }
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
    let blocks = || (0..t).step_by(BLOCK).map(move |s| (s, BLOCK.min(t - s)));
    dq.par_chunks_mut(t * d).zip(dk.par_chunks_mut(t * d).zip(dv.par_chunks_mut(t * d))).enumerate().for_each_init(
        || vec![T::zero(); t * t],
        |ds, (h, (dq, (dk, dv)))| {
            let (o, po) = (h * t * d, h * t * t);
            let p = &probs[po..po + t * t];
            // dV = Pᵀ·dO: keys j0..j0+n gather the queries i ≥ j0 (P[i, j]
            // is zero above the diagonal), Pᵀ read through swapped strides.
            for (j0, n) in blocks() {
                let pt = Strided { offset: j0 * t + j0, row_stride: 1, col_stride: t };
                gemm_serial_into(
                    n,
                    t - j0,
                    d,
                    p,
                    pt,
                    d_out,
                    Strided::row_major(o + j0 * d, d),
                    &mut dv[j0 * d..],
                    d,
                    false,
                );
            }
            // dP = dO·Vᵀ over each query block's visible keys, then dS in
            // place (zero wherever P is).
            for (i0, n) in blocks() {
                let vt = Strided { offset: o, row_stride: 1, col_stride: d };
                gemm_serial_into(
                    n,
                    d,
                    i0 + n,
                    d_out,
                    Strided::row_major(o + i0 * d, d),
                    v,
                    vt,
                    &mut ds[i0 * t..],
                    t,
                    false,
                );
            }
            for i in 0..t {
                let (pr, dr) = (&p[i * t..(i + 1) * t], &mut ds[i * t..(i + 1) * t]);
                let dot = pr[..=i].iter().zip(&dr[..=i]).fold(T::zero(), |s, (&a, &b)| s + a * b);
                for j in 0..t {
                    dr[j] = if j <= i { pr[j] * (dr[j] - dot) * scale } else { T::zero() };
                }
            }
            // dQ = dS·K and dK = dSᵀ·Q, over the same triangles (scale is
            // already folded into dS).
            for (i0, n) in blocks() {
                let dsb = Strided::row_major(i0 * t, t);
                gemm_serial_into(n, i0 + n, d, ds, dsb, k, Strided::row_major(o, d), &mut dq[i0 * d..], d, false);
            }
            for (j0, n) in blocks() {
                let dst = Strided { offset: j0 * t + j0, row_stride: 1, col_stride: t };
                gemm_serial_into(
                    n,
                    t - j0,
                    d,
                    ds,
                    dst,
                    q,
                    Strided::row_major(o + j0 * d, d),
                    &mut dk[j0 * d..],
                    d,
                    false,
                );
            }
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
        // 150 keys: three query blocks, the last one ragged.
        let (d, tk) = (4, 150);
        let k: Vec<f64> = (0..tk * d).map(|i| (i as f64 * 0.37).sin()).collect();
        let v: Vec<f64> = (0..tk * d).map(|i| (i as f64 * 0.23).cos()).collect();
        for tq in [150, 70, 2, 1] {
            let q: Vec<f64> = (0..tq * d).map(|i| (i as f64 * 0.71).cos()).collect();
            let (mut out, mut p) = (vec![0.0; tq * d], vec![0.0; tq * tk]);
            causal_attention_forward(&q, &k, &v, 1, tq, tk, d, &mut out, &mut p);
            for (a, b) in out.iter().zip(naive(&q, &k, &v, tq, tk, d)) {
                assert!((a - b).abs() < 1e-12, "tq {tq}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn blocked_backward_matches_the_full_products() {
        // Three blocks of queries and keys (the last ragged), two heads.
        let (heads, t, d) = (2, 150, 4);
        let gen = |n: usize, f: f64| -> Vec<f64> { (0..n).map(|i| (i as f64 * f).sin()).collect() };
        let (q, k, v, d_out) =
            (gen(heads * t * d, 0.71), gen(heads * t * d, 0.37), gen(heads * t * d, 0.23), gen(heads * t * d, 0.13));
        let (mut out, mut p) = (vec![0.0; heads * t * d], vec![0.0; heads * t * t]);
        causal_attention_forward(&q, &k, &v, heads, t, t, d, &mut out, &mut p);
        let (mut dq, mut dk, mut dv) = (vec![0.0; heads * t * d], vec![0.0; heads * t * d], vec![0.0; heads * t * d]);
        causal_attention_backward(&q, &k, &v, &p, &d_out, heads, t, d, &mut dq, &mut dk, &mut dv);
        let scale = 1.0 / (d as f64).sqrt();
        for h in 0..heads {
            let (o, po) = (h * t * d, h * t * t);
            let at = |x: &[f64], i: usize, c: usize| x[o + i * d + c];
            let pij = |i: usize, j: usize| p[po + i * t + j];
            // Every product over the whole square, by the definitions.
            let dp = |i: usize, j: usize| (0..d).map(|c| at(&d_out, i, c) * at(&v, j, c)).sum::<f64>();
            let ds: Vec<f64> = (0..t * t)
                .map(|ij| {
                    let (i, j) = (ij / t, ij % t);
                    let dot: f64 = (0..t).map(|l| pij(i, l) * dp(i, l)).sum();
                    pij(i, j) * (dp(i, j) - dot) * scale
                })
                .collect();
            for i in 0..t {
                for c in 0..d {
                    let want_dv: f64 = (0..t).map(|l| pij(l, i) * at(&d_out, l, c)).sum();
                    let want_dq: f64 = (0..t).map(|l| ds[i * t + l] * at(&k, l, c)).sum();
                    let want_dk: f64 = (0..t).map(|l| ds[l * t + i] * at(&q, l, c)).sum();
                    for (got, want) in
                        [(dv[o + i * d + c], want_dv), (dq[o + i * d + c], want_dq), (dk[o + i * d + c], want_dk)]
                    {
                        assert!((got - want).abs() < 1e-10, "head {h} row {i}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
