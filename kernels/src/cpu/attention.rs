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
//! swapped strides rather than copies. Every operand is read and written
//! where it lies ([`HeadLayout`]): dense `[heads, T, D]` blocks, a KV
//! cache's spaced-out heads, or the columns of the qkv projection's packed
//! `[B, T, 3C]` output, so a GPT block never copies Q, K, V or their
//! gradients into a heads-first layout and back.
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

use super::gemm::{gemm_serial, GemmElement, GemmShape, OutBlock, Strided};
use super::lanes;
use super::math::FastExp;
use super::SendPtr;

/// Query rows per block of the causal products.
const BLOCK: usize = 64;

/// Where the heads of one operand lie in its buffer. Head h (counting
/// batch-major, h = batch·n_heads + head), row i, column c is at
/// `offset + (h / n_heads)·batch_stride + (h % n_heads)·head_stride +
/// i·row_stride + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    pub offset: usize,
    pub batch_stride: usize,
    pub head_stride: usize,
    pub row_stride: usize,
    pub n_heads: usize,
}

impl HeadLayout {
    /// Dense `[heads, rows, d]`.
    pub fn dense(rows: usize, d: usize) -> Self {
        HeadLayout { offset: 0, batch_stride: rows * d, head_stride: 0, row_stride: d, n_heads: 1 }
    }

    /// Heads of d columns side by side in rows of `width` (`[B, T, width]`),
    /// the first head starting at column `column`: Q, K or V inside the
    /// packed qkv projection (width 3C, column 0, C or 2C), or a `[B, T, C]`
    /// attention output.
    pub fn packed(t: usize, n_heads: usize, d: usize, width: usize, column: usize) -> Self {
        HeadLayout { offset: column, batch_stride: t * width, head_stride: d, row_stride: width, n_heads }
    }

    /// Where head h's row 0 starts.
    pub fn start(&self, h: usize) -> usize {
        self.offset + (h / self.n_heads) * self.batch_stride + (h % self.n_heads) * self.head_stride
    }

    /// Head h's `[rows, d]` block as a GEMM operand.
    fn operand(&self, h: usize) -> Strided {
        Strided::row_major(self.start(h), self.row_stride)
    }

    /// Head h's block read transposed (`[d, rows]`).
    fn transposed(&self, h: usize) -> Strided {
        self.operand(h).transposed()
    }

    /// Panics unless `heads` blocks of `[rows, d]` fit in `len` elements.
    fn check(&self, heads: usize, rows: usize, d: usize, len: usize, what: &str) {
        if heads == 0 || rows == 0 {
            return;
        }
        let end = (0..heads).map(|h| self.start(h)).max().unwrap_or(0) + (rows - 1) * self.row_stride + d;
        assert!(end <= len, "attention: {what} {self:?} needs {end} elements, the buffer holds {len}");
        assert!(d <= self.row_stride, "attention: {what} rows of {d} overlap at stride {}", self.row_stride);
    }
}

/// Causal attention with dense `[heads, rows, d]` Q, K, V and O and
/// `[heads, tq, tk]` P.
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
    let (qo, kv) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
    causal_attention_forward_in_place(q, qo, k, kv, v, kv, heads, tq, tk, d, out, qo, probs)
}

/// Causal attention reading Q, K, V and writing O where their layouts say;
/// P is dense `[heads, tq, tk]`. O's heads must not overlap.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward_in_place<T: FastExp + GemmElement>(
    q: &[T],
    ql: HeadLayout,
    k: &[T],
    kl: HeadLayout,
    v: &[T],
    vl: HeadLayout,
    heads: usize,
    tq: usize,
    tk: usize,
    d: usize,
    out: &mut [T],
    ol: HeadLayout,
    probs: &mut [T],
) {
    assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
    ql.check(heads, tq, d, q.len(), "Q");
    kl.check(heads, tk, d, k.len(), "K");
    vl.check(heads, tk, d, v.len(), "V");
    ol.check(heads, tq, d, out.len(), "output");
    assert_eq!(probs.len(), heads * tq * tk, "attention: P holds {}, expected {}", probs.len(), heads * tq * tk);
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    let past = tk - tq;
    let out_ptr = SendPtr(out.as_mut_ptr());
    probs.par_chunks_mut(tq * tk).enumerate().for_each(|(h, p)| {
        let base = out_ptr;
        // S = Q·Kᵀ block by block, each over the keys its rows can see, with
        // Kᵀ read as K's buffer with swapped strides.
        for i0 in (0..tq).step_by(BLOCK) {
            let (rows, seen) = (BLOCK.min(tq - i0), BLOCK.min(tq - i0) + i0 + past);
            let qb = ql.operand(h).shifted_rows(i0);
            // SAFETY: the block is inside P (this task's chunk) and the
            // operands were checked against their buffers.
            unsafe {
                let s = OutBlock { ptr: p[i0 * tk..].as_mut_ptr(), row_stride: tk };
                gemm_serial(GemmShape { m: rows, k: d, n: seen }, q, qb, k, kl.transposed(h), s)
            };
        }
        for (i, row) in p.chunks_mut(tk).enumerate() {
            let visible = i + past + 1;
            // max(x·scale) = max(x)·scale: rounding keeps the order.
            let max = lanes::max(&row[..visible]) * scale;
            // Exponentials first, then their sum in SIMD lanes (both loops
            // the compiler vectorises).
            row[..visible].iter_mut().for_each(|x| *x = (*x * scale - max).fast_exp());
            let sum = lanes::sum(&row[..visible]);
            let inv = T::one() / sum;
            row[..visible].iter_mut().for_each(|x| *x = *x * inv);
            row[visible..].iter_mut().for_each(|x| *x = T::zero());
        }
        // O = P·V, each block over its visible keys only.
        for i0 in (0..tq).step_by(BLOCK) {
            let (rows, seen) = (BLOCK.min(tq - i0), BLOCK.min(tq - i0) + i0 + past);
            let pb = Strided::row_major(i0 * tk, tk);
            // SAFETY: head h's rows of O were checked inside `out` and belong
            // to this task alone (heads do not overlap).
            unsafe {
                let o = OutBlock { ptr: base.0.add(ol.start(h) + i0 * ol.row_stride), row_stride: ol.row_stride };
                gemm_serial(GemmShape { m: rows, k: seen, n: d }, p, pb, v, vl.operand(h), o)
            };
        }
    });
}

/// Gradients of Q, K and V (`inputs`, read where their layouts say) from dO
/// and the saved P, written into `grads` at the three `grad_layouts` (which
/// may share the buffer, as the packed qkv gradient does, but not overlap).
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward_in_place<T: Float + GemmElement>(
    inputs: [(&[T], HeadLayout); 3],
    probs: &[T],
    d_out: &[T],
    dol: HeadLayout,
    heads: usize,
    t: usize,
    d: usize,
    grads: &mut [T],
    grad_layouts: [HeadLayout; 3],
) {
    let [(q, ql), (k, kl), (v, vl)] = inputs;
    for ((x, l), what) in inputs.iter().zip(["Q", "K", "V"]) {
        l.check(heads, t, d, x.len(), what);
    }
    dol.check(heads, t, d, d_out.len(), "dO");
    for l in &grad_layouts {
        l.check(heads, t, d, grads.len(), "gradient");
    }
    assert_eq!(probs.len(), heads * t * t, "attention backward: P has {}, expected {}", probs.len(), heads * t * t);
    let [dql, dkl, dvl] = grad_layouts;
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    let blocks = || (0..t).step_by(BLOCK).map(move |s| (s, BLOCK.min(t - s)));
    let grads_ptr = SendPtr(grads.as_mut_ptr());
    (0..heads).into_par_iter().for_each_init(
        || vec![T::zero(); t * t],
        |ds, h| {
            let base = grads_ptr;
            let p = &probs[h * t * t..(h + 1) * t * t];
            // Rows j0.. of head h's gradient block in layout l.
            // SAFETY (for every use below): the block was checked inside
            // `grads`, and head h's blocks belong to this task alone.
            let at = |l: HeadLayout, j0: usize| OutBlock {
                ptr: unsafe { base.0.add(l.start(h) + j0 * l.row_stride) },
                row_stride: l.row_stride,
            };
            // dV = Pᵀ·dO: keys j0..j0+n gather the queries i ≥ j0 (P[i, j]
            // is zero above the diagonal), Pᵀ read through swapped strides.
            for (j0, n) in blocks() {
                let pt = Strided { offset: j0 * t + j0, row_stride: 1, col_stride: t };
                let dob = dol.operand(h).shifted_rows(j0);
                unsafe { gemm_serial(GemmShape { m: n, k: t - j0, n: d }, p, pt, d_out, dob, at(dvl, j0)) };
            }
            // dP = dO·Vᵀ over each query block's visible keys, then dS in
            // place (zero wherever P is).
            for (i0, n) in blocks() {
                let dob = dol.operand(h).shifted_rows(i0);
                // SAFETY: rows i0..i0+n of the t×t scratch.
                unsafe {
                    let dp = OutBlock { ptr: ds[i0 * t..].as_mut_ptr(), row_stride: t };
                    gemm_serial(GemmShape { m: n, k: d, n: i0 + n }, d_out, dob, v, vl.transposed(h), dp)
                };
            }
            for i in 0..t {
                let (pr, dr) = (&p[i * t..(i + 1) * t], &mut ds[i * t..(i + 1) * t]);
                let dot = lanes::dot(&pr[..=i], &dr[..=i]);
                for (d, &p) in dr[..=i].iter_mut().zip(&pr[..=i]) {
                    *d = p * (*d - dot) * scale;
                }
                dr[i + 1..].fill(T::zero());
            }
            // dQ = dS·K and dK = dSᵀ·Q, over the same triangles (scale is
            // already folded into dS).
            for (i0, n) in blocks() {
                let dsb = Strided::row_major(i0 * t, t);
                unsafe { gemm_serial(GemmShape { m: n, k: i0 + n, n: d }, ds, dsb, k, kl.operand(h), at(dql, i0)) };
            }
            for (j0, n) in blocks() {
                let dst = Strided { offset: j0 * t + j0, row_stride: 1, col_stride: t };
                let qb = ql.operand(h).shifted_rows(j0);
                unsafe { gemm_serial(GemmShape { m: n, k: t - j0, n: d }, ds, dst, q, qb, at(dkl, j0)) };
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
        // The three gradients side by side in one buffer, as Q, K, V's are
        // in a packed qkv gradient; dQ in the middle to catch crossed layouts.
        let n = heads * t * d;
        let mut grads = vec![0.0; 3 * n];
        let dense = HeadLayout::dense(t, d);
        let part = |i: usize| HeadLayout { offset: i * n, ..dense };
        let inputs = [(&q[..], dense), (&k[..], dense), (&v[..], dense)];
        causal_attention_backward_in_place(
            inputs,
            &p,
            &d_out,
            dense,
            heads,
            t,
            d,
            &mut grads,
            [part(1), part(0), part(2)],
        );
        let (dk, dq, dv) = (&grads[..n], &grads[n..2 * n], &grads[2 * n..]);
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
