//! Causal scaled dot-product attention: the reference, then the fused kernel.
//!
//! For one head with queries Q `[tq, d]`, keys K and values V `[tk, d]`:
//!   S = scale · Q·Kᵀ           `[tq, tk]`, scale = 1/√d
//!   P = softmax(S) row-wise, where query i sees keys j ≤ i + (tk − tq)
//!       (and, with a sliding window w, only j > i + (tk − tq) − w)
//!   O = P·V                    `[tq, d]`
//! With soft-capping (Gemma 2's `attn_logit_softcapping`, a cap c), the
//! scores are squashed before the mask and softmax, S' = c · tanh(S / c):
//! each stays inside (−c, c), so no single key can take the whole row
//! however large Q·Kᵀ grows. The backward multiplies dS' by the derivative
//! 1 − tanh²(S / c), which the kernel recomputes from Q·Kᵀ rather than
//! keeping a second `[tq, tk]` matrix beside P.
//!
//! The offset (tk − tq) lets a query block sit at the end of a longer key
//! sequence: that is decoding with a KV cache, where one new query attends
//! to every cached key. In training tq = tk and the mask is the usual lower
//! triangle, or a band of width w with a window. [`CausalMask`] is the one
//! place that turns positions into these bounds.
//!
//! Grouped-query attention (GQA; MQA with one key/value head) shares each
//! key/value head among `group` consecutive query heads: query head h reads
//! K and V head h / group. Nothing is copied: the kernel reads the shared
//! head for each query head, and the backward adds the group's dK and dV
//! contributions into the one shared gradient block.
//!
//! Backward, with dO the gradient of O:
//!   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//!   dQ = scale · dS·K,  dK = scale · dSᵀ·Q,
//! and with a cap c, dS is first multiplied by 1 − tanh²(S / c).
//! Masked entries have P = 0, so they contribute nothing anywhere; with
//! grouping, dK and dV of a shared head are these sums over its group.
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
//! - The masked part is never computed. Queries go in blocks of `BLOCK`
//!   rows, and a block multiplies only the keys its rows can see (from the
//!   first row's first visible key to the last row's own position): S and
//!   P·V for a block cost its share of the lower triangle, or of the band a
//!   window leaves, not the whole square. The backward does the same from
//!   the other side: dV and dK for keys j0..j1 gather only the queries that
//!   see them, whose rows of P and dS are nonzero there. For T = 256 that is
//!   10 of the 16 blocks of each product; with a window of 64, a block of 64
//!   queries multiplies at most 127 keys, wherever it sits. Skipped entries are exact zeros, so the
//!   results are those of the full products.
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

use std::ops::Range;

use super::gemm::{gemm_serial, gemm_serial_accumulate, GemmElement, GemmShape, OutBlock, Strided};
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
    windowed_attention_forward_reference(q, k, v, tq, tk, d, None)
}

/// [`attention_forward_reference`] with an optional sliding window: the
/// query at position p (p = i + tk − tq) sees key j when j ≤ p and, with a
/// window w, p − w < j. Written from the definition, not from
/// [`CausalMask`], so that it checks the mask too.
pub fn windowed_attention_forward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    tq: usize,
    tk: usize,
    d: usize,
    window: Option<usize>,
) -> (Vec<f64>, Vec<f64>) {
    capped_attention_forward_reference(q, k, v, tq, tk, d, window, None)
}

/// [`windowed_attention_forward_reference`] with optional soft-capping of
/// the scaled scores, S ← cap · tanh(S / cap), before the softmax.
#[allow(clippy::too_many_arguments)]
pub fn capped_attention_forward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    tq: usize,
    tk: usize,
    d: usize,
    window: Option<usize>,
    softcap: Option<f64>,
) -> (Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (d as f64).sqrt();
    let past = tk - tq; // keys before the first query (a KV cache)
    let mut out = vec![0.0; tq * d];
    let mut probs = vec![0.0; tq * tk];
    for i in 0..tq {
        let position = i + past;
        let sees = |j: usize| j <= position && window.is_none_or(|w| j + w > position);
        let visible: Vec<usize> = (0..tk).filter(|&j| sees(j)).collect();
        // S[i, j] = scale · q_i · k_j
        let mut scores = vec![0.0; visible.len()];
        for (score, &j) in scores.iter_mut().zip(&visible) {
            let mut dot = 0.0;
            for c in 0..d {
                dot += q[i * d + c] * k[j * d + c];
            }
            *score = scale * dot;
            // S[i, j] = cap · tanh(S[i, j] / cap) with soft-capping.
            if let Some(cap) = softcap {
                *score = cap * (*score / cap).tanh();
            }
        }
        // P[i, j] = exp(S[i, j] − max) / Σ_j' exp(S[i, j'] − max)
        let max = scores.iter().fold(f64::NEG_INFINITY, |m, &s| m.max(s));
        let total: f64 = scores.iter().map(|&s| (s - max).exp()).sum();
        for (&score, &j) in scores.iter().zip(&visible) {
            probs[i * tk + j] = (score - max).exp() / total;
        }
        // O[i, c] = Σ_j P[i, j] · V[j, c]
        for &j in &visible {
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
    masked_attention_backward_reference(q, k, v, probs, d_out, t, t, d)
}

/// The backward for any mask and tq ≤ tk: the mask is wherever P is zero,
/// so the same formulas serve a window and a KV cache's offset. q and d_out
/// `[tq, d]`, k and v `[tk, d]`, probs `[tq, tk]`; returns dQ `[tq, d]`,
/// dK and dV `[tk, d]`.
#[allow(clippy::too_many_arguments)]
pub fn masked_attention_backward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    probs: &[f64],
    d_out: &[f64],
    tq: usize,
    tk: usize,
    d: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    capped_attention_backward_reference(q, k, v, probs, d_out, tq, tk, d, None)
}

/// [`masked_attention_backward_reference`] for scores soft-capped at
/// `softcap` in the forward: dS is multiplied by the cap's derivative,
/// 1 − tanh²(scale · q_i · k_j / cap).
#[allow(clippy::too_many_arguments)]
pub fn capped_attention_backward_reference(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    probs: &[f64],
    d_out: &[f64],
    tq: usize,
    tk: usize,
    d: usize,
    softcap: Option<f64>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (d as f64).sqrt();
    // dV[j, c] = Σ_i P[i, j] · dO[i, c]   (dV = Pᵀ·dO)
    let mut dv = vec![0.0; tk * d];
    for i in 0..tq {
        for j in 0..tk {
            for c in 0..d {
                dv[j * d + c] += probs[i * tk + j] * d_out[i * d + c];
            }
        }
    }
    // dP[i, j] = Σ_c dO[i, c] · V[j, c]   (dP = dO·Vᵀ)
    let mut dp = vec![0.0; tq * tk];
    for i in 0..tq {
        for j in 0..tk {
            for c in 0..d {
                dp[i * tk + j] += d_out[i * d + c] * v[j * d + c];
            }
        }
    }
    // dS[i, j] = P[i, j] · (dP[i, j] − Σ_j' P[i, j'] · dP[i, j']), the
    // softmax backward row by row (zero wherever P is: the mask).
    let mut ds = vec![0.0; tq * tk];
    for i in 0..tq {
        let mut row_dot = 0.0;
        for j in 0..tk {
            row_dot += probs[i * tk + j] * dp[i * tk + j];
        }
        for j in 0..tk {
            ds[i * tk + j] = probs[i * tk + j] * (dp[i * tk + j] - row_dot);
        }
    }
    // Through the cap: d(cap · tanh(s / cap))/ds = 1 − tanh²(s / cap).
    if let Some(cap) = softcap {
        for i in 0..tq {
            for j in 0..tk {
                let dot: f64 = (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum();
                let t = (scale * dot / cap).tanh();
                ds[i * tk + j] *= 1.0 - t * t;
            }
        }
    }
    // dQ[i, c] = scale · Σ_j dS[i, j] · K[j, c]   (dQ = scale · dS·K)
    // dK[j, c] = scale · Σ_i dS[i, j] · Q[i, c]   (dK = scale · dSᵀ·Q)
    let (mut dq, mut dk) = (vec![0.0; tq * d], vec![0.0; tk * d]);
    for i in 0..tq {
        for j in 0..tk {
            for c in 0..d {
                dq[i * d + c] += scale * ds[i * tk + j] * k[j * d + c];
                dk[j * d + c] += scale * ds[i * tk + j] * q[i * d + c];
            }
        }
    }
    (dq, dk, dv)
}

// The fused kernels (see the module notes for what they change and why).

/// Query rows per block of the causal products.
const BLOCK: usize = 64;

/// `out[i, j] = Σ_c a[i, c] · b[j, c]` over a `tq × tk` scratch `out`,
/// block of query rows by block, each over only the keys those rows can
/// see; B's rows are read transposed through swapped strides. This is
/// S = Q·Kᵀ in the forward, and dP = dO·Vᵀ (and S again, with a soft-cap)
/// in the backward. Entries outside the visible keys are left as they were.
///
/// # Safety
/// `a` and `b` must hold the rows their layouts name (`tq` rows of `a`,
/// `tk` of `b`, `d` columns each).
unsafe fn rows_times_visible_keys<T: GemmElement>(
    mask: CausalMask,
    tk: usize,
    d: usize,
    (a, a_rows): (&[T], Strided),
    (b, b_rows): (&[T], Strided),
    out: &mut [T],
) {
    for (i0, n) in blocks(out.len() / tk) {
        let seen = mask.keys_of_rows(i0..i0 + n);
        let bt = b_rows.shifted_rows(seen.start).transposed();
        let block = OutBlock { ptr: out[i0 * tk + seen.start..].as_mut_ptr(), row_stride: tk };
        gemm_serial(GemmShape { m: n, k: d, n: seen.len() }, a, a_rows.shifted_rows(i0), b, bt, block)
    }
}

/// Which keys each query sees: the one place where positions become the
/// mask. Queries are the last tq of tk positions, so query row i is at
/// position p = i + past (past = tk − tq: the keys a KV cache holds before
/// the first query). It sees key j when
///   j ≤ p                 (causal), and
///   p − window < j        (sliding window, when there is one),
/// that is the last `window` positions up to and including its own, the
/// convention of Mistral's `sliding_window` in transformers (a key is
/// masked when p − j ≥ window). Both bounds rise with i, so a block of
/// consecutive rows sees one contiguous range of keys, and a block of
/// consecutive keys is seen by one contiguous range of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CausalMask {
    /// Keys before the first query.
    pub past: usize,
    /// At most this many keys per query (≥ 1), or all earlier ones.
    pub window: Option<usize>,
}

impl CausalMask {
    /// The keys query row i sees.
    pub fn keys(&self, i: usize) -> Range<usize> {
        let end = i + self.past + 1;
        let start = self.window.map_or(0, |w| end.saturating_sub(w));
        start..end
    }

    /// The keys any of the (non-empty) query rows `rows` sees.
    pub fn keys_of_rows(&self, rows: Range<usize>) -> Range<usize> {
        self.keys(rows.start).start..self.keys(rows.end - 1).end
    }

    /// The query rows (of tq) that see key j.
    pub fn queries(&self, j: usize, tq: usize) -> Range<usize> {
        let start = j.saturating_sub(self.past).min(tq);
        let end = self.window.map_or(tq, |w| (j + w).saturating_sub(self.past).min(tq));
        start..end.max(start)
    }

    /// The query rows (of tq) that see any of the (non-empty) keys `keys`.
    pub fn queries_of_keys(&self, keys: Range<usize>, tq: usize) -> Range<usize> {
        let (first, last) = (self.queries(keys.start, tq), self.queries(keys.end - 1, tq));
        first.start..last.end.max(first.start)
    }
}

/// The sizes of one fused call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDims {
    /// Query heads, counted over the batch (batch × n_heads).
    pub heads: usize,
    /// Query heads that share one key/value head (n_heads / n_kv_heads;
    /// 1 without grouping). Query head h reads key/value head h / group,
    /// so K and V hold heads / group heads.
    pub group: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    /// The sliding window of [`CausalMask`], if any.
    pub window: Option<usize>,
    /// Soft-capping of the scaled scores, cap · tanh(S / cap), if any.
    pub softcap: Option<f64>,
}

impl AttentionDims {
    /// Plain causal attention: one key/value head per query head, no window.
    pub fn causal(heads: usize, tq: usize, tk: usize, d: usize) -> Self {
        AttentionDims { heads, group: 1, tq, tk, d, window: None, softcap: None }
    }

    pub fn kv_heads(&self) -> usize {
        self.heads / self.group
    }

    pub fn mask(&self) -> CausalMask {
        CausalMask { past: self.tk - self.tq, window: self.window }
    }

    fn check(&self) {
        let AttentionDims { heads, group, tq, tk, .. } = *self;
        assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
        assert!(group > 0 && heads % group == 0, "attention: {heads} query heads in groups of {group}");
        assert!(self.window != Some(0), "attention: a sliding window must hold at least one key");
        assert!(self.softcap.is_none_or(|c| c > 0.0), "attention: a soft-cap must be positive, got {:?}", self.softcap);
    }
}

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
    /// packed qkv projection (width (H + 2·Hkv)·D, column 0, H·D or
    /// (H + Hkv)·D), or a `[B, T, H·D]` attention output.
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

/// (first row, rows) of each block of `n` rows.
fn blocks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..n).step_by(BLOCK).map(move |s| (s, BLOCK.min(n - s)))
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
    let dims = AttentionDims::causal(heads, tq, tk, d);
    causal_attention_forward_in_place(q, qo, k, kv, v, kv, dims, out, qo, probs)
}

/// Causal attention reading Q, K, V and writing O where their layouts say;
/// P is dense `[heads, tq, tk]`. O's heads must not overlap. K and V have
/// `dims.kv_heads()` heads.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_forward_in_place<T: FastExp + GemmElement>(
    q: &[T],
    ql: HeadLayout,
    k: &[T],
    kl: HeadLayout,
    v: &[T],
    vl: HeadLayout,
    dims: AttentionDims,
    out: &mut [T],
    ol: HeadLayout,
    probs: &mut [T],
) {
    dims.check();
    let AttentionDims { heads, group, tq, tk, d, .. } = dims;
    ql.check(heads, tq, d, q.len(), "Q");
    kl.check(dims.kv_heads(), tk, d, k.len(), "K");
    vl.check(dims.kv_heads(), tk, d, v.len(), "V");
    ol.check(heads, tq, d, out.len(), "output");
    assert_eq!(probs.len(), heads * tq * tk, "attention: P holds {}, expected {}", probs.len(), heads * tq * tk);
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    let softcap = dims.softcap.map(|c| T::from(c).unwrap());
    let mask = dims.mask();
    let out_ptr = SendPtr(out.as_mut_ptr());
    probs.par_chunks_mut(tq * tk).enumerate().for_each(|(h, p)| {
        let base = out_ptr;
        let kv = h / group;
        // S = Q·Kᵀ block by block, each over the keys its rows can see, with
        // Kᵀ read as K's buffer with swapped strides.
        // SAFETY: P is this task's tq × tk chunk, and the operands were
        // checked against their buffers.
        unsafe { rows_times_visible_keys(mask, tk, d, (q, ql.operand(h)), (k, kl.operand(kv)), p) };
        for (i, row) in p.chunks_mut(tk).enumerate() {
            let visible = mask.keys(i);
            let seen = &mut row[visible.clone()];
            if let Some(cap) = softcap {
                // cap · tanh(x · scale / cap), then the plain softmax below
                // (with the scale already applied: 1).
                seen.iter_mut().for_each(|x| *x = cap * (*x * scale / cap).tanh());
                let max = lanes::max(seen);
                seen.iter_mut().for_each(|x| *x = (*x - max).fast_exp());
                let inv = T::one() / lanes::sum(seen);
                seen.iter_mut().for_each(|x| *x = *x * inv);
                row[..visible.start].fill(T::zero());
                row[visible.end..].fill(T::zero());
                continue;
            }
            // max(x·scale) = max(x)·scale: rounding keeps the order.
            let max = lanes::max(seen) * scale;
            // Exponentials first, then their sum in SIMD lanes (both loops
            // the compiler vectorises).
            seen.iter_mut().for_each(|x| *x = (*x * scale - max).fast_exp());
            let inv = T::one() / lanes::sum(seen);
            seen.iter_mut().for_each(|x| *x = *x * inv);
            row[..visible.start].fill(T::zero());
            row[visible.end..].fill(T::zero());
        }
        // O = P·V, each block over its visible keys only.
        for (i0, rows) in blocks(tq) {
            let seen = mask.keys_of_rows(i0..i0 + rows);
            let pb = Strided::row_major(i0 * tk + seen.start, tk);
            let vb = vl.operand(kv).shifted_rows(seen.start);
            // SAFETY: head h's rows of O were checked inside `out` and belong
            // to this task alone (heads do not overlap).
            unsafe {
                let o = OutBlock { ptr: base.0.add(ol.start(h) + i0 * ol.row_stride), row_stride: ol.row_stride };
                gemm_serial(GemmShape { m: rows, k: seen.len(), n: d }, p, pb, v, vb, o)
            };
        }
    });
}

/// Gradients of Q, K and V (`inputs`, read where their layouts say) from dO
/// and the saved P, written into `grads` at the three `grad_layouts` (which
/// may share the buffer, as the packed qkv gradient does, but not overlap).
/// dK and dV of a key/value head are the sums over the query heads that
/// share it.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward_in_place<T: Float + GemmElement>(
    inputs: [(&[T], HeadLayout); 3],
    probs: &[T],
    d_out: &[T],
    dol: HeadLayout,
    dims: AttentionDims,
    grads: &mut [T],
    grad_layouts: [HeadLayout; 3],
) {
    dims.check();
    let AttentionDims { heads, group, tq, tk, d, .. } = dims;
    let [(q, ql), (k, kl), (v, vl)] = inputs;
    let kv_heads = dims.kv_heads();
    ql.check(heads, tq, d, q.len(), "Q");
    kl.check(kv_heads, tk, d, k.len(), "K");
    vl.check(kv_heads, tk, d, v.len(), "V");
    dol.check(heads, tq, d, d_out.len(), "dO");
    let [dql, dkl, dvl] = grad_layouts;
    dql.check(heads, tq, d, grads.len(), "dQ");
    dkl.check(kv_heads, tk, d, grads.len(), "dK");
    dvl.check(kv_heads, tk, d, grads.len(), "dV");
    let size = tq * tk;
    assert_eq!(probs.len(), heads * size, "attention backward: P has {}, expected {}", probs.len(), heads * size);
    let scale = T::from(1.0 / (d as f64).sqrt()).unwrap();
    let softcap = dims.softcap.map(|c| T::from(c).unwrap());
    let mask = dims.mask();
    let grads_ptr = SendPtr(grads.as_mut_ptr());
    // One task per key/value head: it owns that head's dK and dV, which sum
    // over its group of query heads, and those query heads' dQ. Its scratch:
    // dS, and with a cap the raw scores Q·Kᵀ its derivative needs.
    let score_scratch = if softcap.is_some() { size } else { 0 };
    (0..kv_heads).into_par_iter().for_each_init(
        || (vec![T::zero(); size], vec![T::zero(); score_scratch]),
        |(ds, scores), kv| {
            let base = grads_ptr;
            // Rows j0.. of head h's gradient block in layout l.
            // SAFETY (for every use below): the block was checked inside
            // `grads`, and the blocks of this task's heads belong to it alone.
            let at = |l: HeadLayout, h: usize, j0: usize| OutBlock {
                ptr: unsafe { base.0.add(l.start(h) + j0 * l.row_stride) },
                row_stride: l.row_stride,
            };
            for h in kv * group..(kv + 1) * group {
                // The group's first query head writes dK and dV, the others
                // add to them.
                let first = h == kv * group;
                let sum_into = |shape: GemmShape, a: &[T], sa: Strided, b: &[T], sb: Strided, c: OutBlock<T>| unsafe {
                    if first {
                        gemm_serial(shape, a, sa, b, sb, c)
                    } else {
                        gemm_serial_accumulate(shape, a, sa, b, sb, c)
                    }
                };
                let p = &probs[h * size..(h + 1) * size];
                // dV = Pᵀ·dO: keys j0..j0+n gather the queries that see
                // them (P is zero elsewhere), Pᵀ read through swapped strides.
                for (j0, n) in blocks(tk) {
                    let seen_by = mask.queries_of_keys(j0..j0 + n, tq);
                    let pt = Strided { offset: seen_by.start * tk + j0, row_stride: 1, col_stride: tk };
                    let dob = dol.operand(h).shifted_rows(seen_by.start);
                    sum_into(GemmShape { m: n, k: seen_by.len(), n: d }, p, pt, d_out, dob, at(dvl, kv, j0));
                }
                // dP = dO·Vᵀ over each query block's visible keys, then dS in
                // place (zero wherever P is).
                // SAFETY: dS is the tq × tk scratch; the operands were checked.
                unsafe { rows_times_visible_keys(mask, tk, d, (d_out, dol.operand(h)), (v, vl.operand(kv)), ds) };
                for i in 0..tq {
                    let visible = mask.keys(i);
                    let (pr, dr) = (&p[i * tk..(i + 1) * tk], &mut ds[i * tk..(i + 1) * tk]);
                    let dot = lanes::dot(&pr[visible.clone()], &dr[visible.clone()]);
                    for (d, &p) in dr[visible.clone()].iter_mut().zip(&pr[visible.clone()]) {
                        *d = p * (*d - dot) * scale;
                    }
                    dr[..visible.start].fill(T::zero());
                    dr[visible.end..].fill(T::zero());
                }
                if let Some(cap) = softcap {
                    // dS ⊙ (1 − tanh²(S / cap)), S = scale · Q·Kᵀ recomputed
                    // over the visible keys as the forward made it.
                    // SAFETY: the tq × tk scratch; the operands were checked.
                    unsafe { rows_times_visible_keys(mask, tk, d, (q, ql.operand(h)), (k, kl.operand(kv)), scores) };
                    for i in 0..tq {
                        let visible = mask.keys(i);
                        let (sr, dr) = (&scores[i * tk..(i + 1) * tk], &mut ds[i * tk..(i + 1) * tk]);
                        for (d, &s) in dr[visible.clone()].iter_mut().zip(&sr[visible.clone()]) {
                            let t = (s * scale / cap).tanh();
                            *d = *d * (T::one() - t * t);
                        }
                    }
                }
                // dQ = dS·K and dK = dSᵀ·Q, over the same ranges (scale is
                // already folded into dS).
                for (i0, n) in blocks(tq) {
                    let seen = mask.keys_of_rows(i0..i0 + n);
                    let dsb = Strided::row_major(i0 * tk + seen.start, tk);
                    let kb = kl.operand(kv).shifted_rows(seen.start);
                    unsafe { gemm_serial(GemmShape { m: n, k: seen.len(), n: d }, ds, dsb, k, kb, at(dql, h, i0)) };
                }
                for (j0, n) in blocks(tk) {
                    let seen_by = mask.queries_of_keys(j0..j0 + n, tq);
                    let dst = Strided { offset: seen_by.start * tk + j0, row_stride: 1, col_stride: tk };
                    let qb = ql.operand(h).shifted_rows(seen_by.start);
                    sum_into(GemmShape { m: n, k: seen_by.len(), n: d }, ds, dst, q, qb, at(dkl, kv, j0));
                }
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
            AttentionDims::causal(heads, t, t, d),
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

    #[test]
    fn mask_ranges_agree_with_the_definition() {
        for (tq, tk) in [(9, 9), (4, 9), (1, 9)] {
            for window in [None, Some(1), Some(3), Some(20)] {
                let mask = CausalMask { past: tk - tq, window };
                let sees = |i: usize, j: usize| j <= i + mask.past && window.is_none_or(|w| j + w > i + mask.past);
                for i in 0..tq {
                    let want: Vec<usize> = (0..tk).filter(|&j| sees(i, j)).collect();
                    assert_eq!(mask.keys(i).collect::<Vec<_>>(), want, "keys of {i}, {mask:?}");
                }
                for j in 0..tk {
                    let want: Vec<usize> = (0..tq).filter(|&i| sees(i, j)).collect();
                    assert_eq!(mask.queries(j, tq).collect::<Vec<_>>(), want, "queries of {j}, {mask:?}");
                }
            }
        }
    }

    /// Grouped heads, windows and cached queries through both fused
    /// kernels, against the per-head references: dK and dV of a shared
    /// head are the sums of its query heads' references.
    #[test]
    fn f64_grouped_and_windowed_kernels_match_the_reference() {
        let (batch, n_heads, d) = (2, 4, 4);
        // Scores of a few units (amplitude-2 waves) against caps of 1.5 and
        // 3: the cap changes every row.
        for (n_kv, tq, tk, window, softcap) in [
            (2, 150, 150, Some(70), None),
            (1, 150, 150, None, None),
            (2, 70, 150, Some(5), None),
            (4, 3, 10, Some(1), None),
            (1, 150, 150, Some(70), Some(1.5)),
            (2, 70, 150, None, Some(3.0)),
        ] {
            let group = n_heads / n_kv;
            let dims = AttentionDims { heads: batch * n_heads, group, tq, tk, d, window, softcap };
            let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
            let q = wave(dims.heads * tq * d, 0.71, 2.0);
            let (k, v) = (wave(dims.kv_heads() * tk * d, 0.37, 2.0), wave(dims.kv_heads() * tk * d, 0.23, 1.0));
            let d_out = wave(dims.heads * tq * d, 0.13, 1.0);
            let (mut out, mut p) = (vec![0.0; q.len()], vec![0.0; dims.heads * tq * tk]);
            causal_attention_forward_in_place(&q, ql, &k, kvl, &v, kvl, dims, &mut out, ql, &mut p);
            // dQ, dK, dV side by side, filled with garbage first: every
            // element must be written.
            let (nq, nkv) = (q.len(), k.len());
            let mut grads = vec![f64::NAN; nq + 2 * nkv];
            let gl = [ql, HeadLayout { offset: nq, ..kvl }, HeadLayout { offset: nq + nkv, ..kvl }];
            let inputs = [(&q[..], ql), (&k[..], kvl), (&v[..], kvl)];
            causal_attention_backward_in_place(inputs, &p, &d_out, ql, dims, &mut grads, gl);
            let (mut want_dk, mut want_dv) = (vec![0.0; nkv], vec![0.0; nkv]);
            let case = format!("Hkv {n_kv}, tq {tq}, tk {tk}, window {window:?}, softcap {softcap:?}");
            for h in 0..dims.heads {
                let kv = h / group;
                let (hq, hk, hv) = (head(&q, ql, h, tq, d), head(&k, kvl, kv, tk, d), head(&v, kvl, kv, tk, d));
                let (want_out, want_p) = capped_attention_forward_reference(&hq, &hk, &hv, tq, tk, d, window, softcap);
                assert!(worst(&head(&out, ql, h, tq, d), &want_out) < 1e-12, "{case}: O of head {h}");
                assert!(worst(&p[h * tq * tk..(h + 1) * tq * tk], &want_p) < 1e-12, "{case}: P of head {h}");
                let hdo = head(&d_out, ql, h, tq, d);
                let (dq, dk, dv) =
                    capped_attention_backward_reference(&hq, &hk, &hv, &want_p, &hdo, tq, tk, d, softcap);
                assert!(worst(&head(&grads, gl[0], h, tq, d), &dq) < 1e-10, "{case}: dQ of head {h}");
                for (c, (a, b)) in dk.iter().zip(&dv).enumerate() {
                    want_dk[kvl.start(kv) + c] += a;
                    want_dv[kvl.start(kv) + c] += b;
                }
            }
            assert!(worst(&grads[nq..nq + nkv], &want_dk) < 1e-10, "{case}: dK");
            assert!(worst(&grads[nq + nkv..], &want_dv) < 1e-10, "{case}: dV");
        }
    }

    /// Keys outside the window are never read: a decoding query with a
    /// window of 16 over 200 keys, the first 184 keys and values NaN.
    /// Computing any product over them would spread NaN into O or dQ.
    #[test]
    fn keys_outside_the_window_are_never_read() {
        let (tq, tk, d, w) = (1, 200, 8, 16);
        let dims = AttentionDims { heads: 2, group: 2, tq, tk, d, window: Some(w), softcap: None };
        let (ql, kvl) = (HeadLayout::dense(tq, d), HeadLayout::dense(tk, d));
        let q = wave(2 * tq * d, 0.71, 1.0);
        let (mut k, mut v) = (wave(tk * d, 0.37, 1.0), wave(tk * d, 0.23, 1.0));
        let (k_seen, v_seen) = (k[(tk - w) * d..].to_vec(), v[(tk - w) * d..].to_vec());
        k[..(tk - w) * d].fill(f64::NAN);
        v[..(tk - w) * d].fill(f64::NAN);
        let (mut out, mut p) = (vec![0.0; 2 * tq * d], vec![0.0; 2 * tq * tk]);
        causal_attention_forward_in_place(&q, ql, &k, kvl, &v, kvl, dims, &mut out, ql, &mut p);
        let mut grads = vec![f64::NAN; 2 * tq * d + 2 * tk * d];
        let gl = [ql, HeadLayout { offset: 2 * tq * d, ..kvl }, HeadLayout { offset: 2 * tq * d + tk * d, ..kvl }];
        let d_out = wave(2 * tq * d, 0.13, 1.0);
        causal_attention_backward_in_place([(&q, ql), (&k, kvl), (&v, kvl)], &p, &d_out, ql, dims, &mut grads, gl);
        for h in 0..2 {
            let (want, _) = attention_forward_reference(&q[h * d..(h + 1) * d], &k_seen, &v_seen, 1, w, d);
            assert!(worst(&out[h * d..(h + 1) * d], &want) < 1e-12, "head {h}: O");
        }
        assert!(grads[..2 * tq * d].iter().all(|g| g.is_finite()), "dQ read a key outside the window");
        // dK and dV of the unseen keys are exact zeros, of the seen finite.
        for part in [1, 2] {
            let rows = &grads[gl[part].offset..gl[part].offset + tk * d];
            assert!(rows[..(tk - w) * d].iter().all(|&g| g == 0.0), "part {part}: unseen keys' gradient");
            assert!(rows[(tk - w) * d..].iter().all(|g| g.is_finite()), "part {part}: seen keys' gradient");
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
                    let dims = AttentionDims::causal(heads, t, t, d);
                    causal_attention_forward_in_place(q, ql, k, kl, v, vl, dims, &mut out, ol, &mut p);
                    let mut grads = vec![0.0f32; b * t * 3 * c];
                    let gl = [part(0), part(1), part(2)];
                    causal_attention_backward_in_place(qkv_in, &p, &d_out, ol, dims, &mut grads, gl);
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
