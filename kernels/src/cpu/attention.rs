//! Causal scaled dot-product attention: the reference, then the fused kernel.
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
//! Read [`attention_forward_reference`] and [`attention_backward_reference`]
//! first: one head, explicit loops in f64, the formulas above line by line.
//! The fused kernels after them, [`causal_attention_forward_in_place`] and
//! [`causal_attention_backward_in_place`], compute the same numbers for
//! every head of a batch at once. What they change, and why:
//!
//! - Heads are independent, so (batch, head) pairs run in parallel.
//! - The loops over i, j and c become matrix products (the strided GEMM of
//!   `gemm.rs`), reading Kᵀ, Vᵀ, Pᵀ and dSᵀ through swapped strides rather
//!   than copies.
//! - Every operand is read and written where it lies ([`HeadLayout`]):
//!   dense `[heads, T, D]` blocks, a KV cache's spaced-out heads, or the
//!   columns of the qkv projection's packed `[B, T, 3C]` output, so a GPT
//!   block never copies Q, K, V or their gradients into a heads-first layout
//!   and back.
//! - The masked half is never computed. Queries go in blocks of `BLOCK`
//!   rows, and a block ending at row i1 multiplies only the keys it can see,
//!   0..i1 + (tk − tq): S and P·V for a block cost its share of the lower
//!   triangle, not the whole square. The backward does the same from the
//!   other side: dV and dK for keys j0..j1 gather only queries i ≥ j0, whose
//!   rows of P and dS are nonzero there. For T = 256 that is 10 of the 16
//!   blocks of each product. Skipped entries are exact zeros, so the results
//!   are those of the full products.
//! - Each softmax row takes its maximum and sum in SIMD lanes (`lanes.rs`)
//!   and its exponentials from the vectorisable `fast_exp` (`math.rs`), and
//!   the scale is folded where it costs nothing: max(x·scale) = max(x)·scale,
//!   and into dS once rather than into dQ and dK.
//!
//! So the fused kernels differ from the reference only by rounding: in f64
//! by ~1e-15, in f32 by ~1e-6 (the tests hold them to both, for T up to 256
//! with ragged blocks).

use num_traits::Float;
use rayon::prelude::*;

use super::gemm::{gemm_serial, GemmElement, GemmShape, OutBlock, Strided};
use super::lanes;
use super::math::FastExp;
use super::SendPtr;

/// Causal attention for one head by the definition, in f64: the reference
/// that the fused [`causal_attention_forward_in_place`] is tested against.
///
/// q `[tq, d]`, k and v `[tk, d]`, dense and row-major, tq ≤ tk. Returns
/// O `[tq, d]` and P `[tq, tk]` (zero where a key is masked).
pub fn attention_forward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    tq: usize,
    tk: usize,
    d: usize,
) -> (Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (d as f64).sqrt();
    let past = tk - tq; // keys before the first query (a KV cache)
    let mut out = vec![0.0; tq * d];
    let mut probs = vec![0.0; tq * tk];
    for i in 0..tq {
        // Query i sees keys 0..=i + past.
        let visible = i + past + 1;
        // S[i, j] = scale · q_i · k_j
        let mut scores = vec![0.0; visible];
        for (j, score) in scores.iter_mut().enumerate() {
            let mut dot = 0.0;
            for c in 0..d {
                dot += q[i * d + c] * k[j * d + c];
            }
            *score = scale * dot;
        }
        // P[i, j] = exp(S[i, j] − max) / Σ_j' exp(S[i, j'] − max)
        let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
        let total: f64 = scores.iter().map(|&s| (s - max).exp()).sum();
        for (j, &score) in scores.iter().enumerate() {
            probs[i * tk + j] = (score - max).exp() / total;
        }
        // O[i, c] = Σ_j P[i, j] · V[j, c]
        for j in 0..visible {
            for c in 0..d {
                out[i * d + c] += probs[i * tk + j] * v[j * d + c];
            }
        }
    }
    (out, probs)
}

/// The backward of [`attention_forward_reference`] for tq = tk = t, by the
/// definitions, in f64: the reference that the fused
/// [`causal_attention_backward_in_place`] is tested against.
///
/// q, k, v and d_out (dO) `[t, d]`, probs (P) `[t, t]` as the forward
/// returned it. Returns (dQ, dK, dV), each `[t, d]`.
pub fn attention_backward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    probs: &[f64],
    d_out: &[f64],
    t: usize,
    d: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (d as f64).sqrt();
    // dV[j, c] = Σ_i P[i, j] · dO[i, c]   (dV = Pᵀ·dO)
    let mut dv = vec![0.0; t * d];
    for i in 0..t {
        for j in 0..t {
            for c in 0..d {
                dv[j * d + c] += probs[i * t + j] * d_out[i * d + c];
            }
        }
    }
    // dP[i, j] = Σ_c dO[i, c] · V[j, c]   (dP = dO·Vᵀ)
    let mut dp = vec![0.0; t * t];
    for i in 0..t {
        for j in 0..t {
            for c in 0..d {
                dp[i * t + j] += d_out[i * d + c] * v[j * d + c];
            }
        }
    }
    // dS[i, j] = P[i, j] · (dP[i, j] − Σ_j' P[i, j'] · dP[i, j']), the
    // softmax backward row by row (zero wherever P is: the mask).
    let mut ds = vec![0.0; t * t];
    for i in 0..t {
        let mut row_dot = 0.0;
        for j in 0..t {
            row_dot += probs[i * t + j] * dp[i * t + j];
        }
        for j in 0..t {
            ds[i * t + j] = probs[i * t + j] * (dp[i * t + j] - row_dot);
        }
    }
    // dQ[i, c] = scale · Σ_j dS[i, j] · K[j, c]   (dQ = scale · dS·K)
    // dK[j, c] = scale · Σ_i dS[i, j] · Q[i, c]   (dK = scale · dSᵀ·Q)
    let (mut dq, mut dk) = (vec![0.0; t * d], vec![0.0; t * d]);
    for i in 0..t {
        for j in 0..t {
            for c in 0..d {
                dq[i * d + c] += scale * ds[i * t + j] * k[j * d + c];
                dk[j * d + c] += scale * ds[i * t + j] * q[i * d + c];
            }
        }
    }
    (dq, dk, dv)
}

// The fused kernels (see the module notes for what they change and why).

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

    fn wave(n: usize, frequency: f64, amplitude: f64) -> Vec<f64> {
        (0..n).map(|i| amplitude * (i as f64 * frequency).sin()).collect()
    }

    fn narrow(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }

    /// Head h's `[rows, d]` block of a buffer laid out as `l`, densely, in f64.
    fn head<T: Float>(x: &[T], l: HeadLayout, h: usize, rows: usize, d: usize) -> Vec<f64> {
        (0..rows).flat_map(|i| (0..d).map(move |c| x[l.start(h) + i * l.row_stride + c].to_f64().unwrap())).collect()
    }

    /// Largest |got − want| / (1 + |want|): relative for large values,
    /// absolute for small ones.
    fn worst(got: &[f64], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        got.iter().zip(want).map(|(g, w)| (g - w).abs() / (1.0 + w.abs())).fold(0.0, f64::max)
    }

    #[test]
    fn f64_forward_matches_the_reference_with_and_without_a_cache_offset() {
        // 150 keys: three query blocks, the last one ragged.
        let (d, tk) = (4, 150);
        let (k, v) = (wave(tk * d, 0.37, 1.0), wave(tk * d, 0.23, 1.0));
        for tq in [150, 70, 2, 1] {
            let q = wave(tq * d, 0.71, 1.0);
            let (mut out, mut p) = (vec![0.0; tq * d], vec![0.0; tq * tk]);
            causal_attention_forward(&q, &k, &v, 1, tq, tk, d, &mut out, &mut p);
            let (want_out, want_p) = attention_forward_reference(&q, &k, &v, tq, tk, d);
            assert!(worst(&out, &want_out) < 1e-12, "tq {tq}: O off by {}", worst(&out, &want_out));
            assert!(worst(&p, &want_p) < 1e-12, "tq {tq}: P off by {}", worst(&p, &want_p));
        }
    }

    #[test]
    fn f64_backward_matches_the_reference() {
        // Three blocks of queries and keys (the last ragged), two heads.
        let (heads, t, d) = (2, 150, 4);
        let n = heads * t * d;
        let (q, k, v, d_out) = (wave(n, 0.71, 1.0), wave(n, 0.37, 1.0), wave(n, 0.23, 1.0), wave(n, 0.13, 1.0));
        let (mut out, mut p) = (vec![0.0; n], vec![0.0; heads * t * t]);
        causal_attention_forward(&q, &k, &v, heads, t, t, d, &mut out, &mut p);
        // The three gradients side by side in one buffer, as Q, K, V's are
        // in a packed qkv gradient; dQ in the middle to catch crossed layouts.
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
        for h in 0..heads {
            let at = |x: &[f64]| head(x, dense, h, t, d);
            let (q, k, v, d_out) = (at(&q), at(&k), at(&v), at(&d_out));
            let (_, p) = attention_forward_reference(&q, &k, &v, t, t, d);
            let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &p, &d_out, t, d);
            for (what, l, want) in [("dQ", part(1), dq), ("dK", part(0), dk), ("dV", part(2), dv)] {
                let err = worst(&head(&grads, l, h, t, d), &want);
                assert!(err < 1e-10, "head {h} {what} off by {err}");
            }
        }
    }

    /// The f32 kernels as a GPT block runs them: Q, K and V read from a
    /// packed `[B, T, 3C]` projection, O written into `[B, T, C]`, the
    /// gradients into a packed `[B, T, 3C]`, heads on a 4-thread pool; T
    /// from one row to four blocks with ragged ends, D as in small and
    /// GPT-2-sized heads.
    #[test]
    fn f32_kernels_match_the_reference_at_realistic_sizes() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            let (b, n_heads) = (2, 3);
            let (mut worst_out, mut worst_p, mut worst_grad) = (0.0f64, 0.0f64, 0.0f64);
            for d in [16, 64] {
                for t in [1, 7, 64, 129, 256] {
                    let c = n_heads * d;
                    let heads = b * n_heads;
                    // Q·Kᵀ/√d of a few units, as in a trained model: peaked
                    // rows and flat ones.
                    let qkv = narrow(&wave(b * t * 3 * c, 0.618, 2.0));
                    let d_out = narrow(&wave(b * t * c, 0.271, 1.0));
                    let part = |i: usize| HeadLayout::packed(t, n_heads, d, 3 * c, i * c);
                    let ol = HeadLayout::packed(t, n_heads, d, c, 0);
                    let (mut out, mut p) = (vec![0.0f32; b * t * c], vec![0.0f32; heads * t * t]);
                    let qkv_in = [(&qkv[..], part(0)), (&qkv[..], part(1)), (&qkv[..], part(2))];
                    let [(q, ql), (k, kl), (v, vl)] = qkv_in;
                    causal_attention_forward_in_place(q, ql, k, kl, v, vl, heads, t, t, d, &mut out, ol, &mut p);
                    let mut grads = vec![0.0f32; b * t * 3 * c];
                    let gl = [part(0), part(1), part(2)];
                    causal_attention_backward_in_place(qkv_in, &p, &d_out, ol, heads, t, d, &mut grads, gl);
                    for h in 0..heads {
                        let [q, k, v] = [0, 1, 2].map(|i| head(&qkv, part(i), h, t, d));
                        let (want_out, want_p) = attention_forward_reference(&q, &k, &v, t, t, d);
                        let got_p: Vec<f64> = p[h * t * t..(h + 1) * t * t].iter().map(|&x| x as f64).collect();
                        worst_out = worst_out.max(worst(&head(&out, ol, h, t, d), &want_out));
                        worst_p = worst_p.max(worst(&got_p, &want_p));
                        let d_out = head(&d_out, ol, h, t, d);
                        let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &want_p, &d_out, t, d);
                        for (i, want) in [dq, dk, dv].iter().enumerate() {
                            worst_grad = worst_grad.max(worst(&head(&grads, part(i), h, t, d), want));
                        }
                    }
                }
            }
            // f32 tolerances, as |got − want| / (1 + |want|): ~10× the
            // worst seen (O 7e-7, P 9e-7, gradients 2e-6).
            assert!(worst_out < 1e-5, "O off by {worst_out:e}");
            assert!(worst_p < 1e-5, "P off by {worst_p:e}");
            assert!(worst_grad < 2e-5, "dQ, dK or dV off by {worst_grad:e}");
        });
    }

    /// Decoding with a KV cache: a few new queries at the end of T keys.
    #[test]
    fn f32_cached_queries_match_the_reference() {
        let mut worst_out = 0.0f64;
        for d in [16, 64] {
            for (tq, tk) in [(1, 1), (1, 129), (7, 256), (64, 200)] {
                let heads = 3;
                let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
                let q = narrow(&wave(heads * tq * d, 0.618, 2.0));
                let (k, v) = (narrow(&wave(heads * tk * d, 0.414, 2.0)), narrow(&wave(heads * tk * d, 0.173, 1.0)));
                let (mut out, mut p) = (vec![0.0f32; heads * tq * d], vec![0.0f32; heads * tq * tk]);
                causal_attention_forward(&q, &k, &v, heads, tq, tk, d, &mut out, &mut p);
                for h in 0..heads {
                    let (hq, hk, hv) = (head(&q, ql, h, tq, d), head(&k, kvl, h, tk, d), head(&v, kvl, h, tk, d));
                    let (want_out, _) = attention_forward_reference(&hq, &hk, &hv, tq, tk, d);
                    worst_out = worst_out.max(worst(&head(&out, ql, h, tq, d), &want_out));
                }
            }
        }
        // f32 tolerance as above (worst seen 1.3e-7).
        assert!(worst_out < 1e-5, "O off by {worst_out:e}");
    }
}
