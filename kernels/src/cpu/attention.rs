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

use super::gemm::{gemm_serial, gemm_serial_accumulate, GemmElement, GemmShape, OutBlock, Strided};
use super::lanes;
use super::math::FastExp;
use super::SendPtr;

mod layout;
pub use layout::{AttentionDims, CausalMask, HeadLayout};

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
mod tests;
