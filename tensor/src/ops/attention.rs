//! Causal scaled dot-product attention as one op: checked once, routed once.
//!
//! Per head, softmax(Q·Kᵀ/√D, masked so each query sees only keys at or
//! before its own position)·V. Keys may outnumber queries (a KV cache): the
//! queries are then the last positions of the sequence.
//!
//! Two options of [`AttentionOptions`] serve the Llama family beside GPT-2:
//! - `n_kv_heads` (grouped-query attention; multi-query with 1): K and V
//!   have Hkv heads, each shared by H / Hkv consecutive query heads, so
//!   query head h reads K/V head h / (H / Hkv), as transformers'
//!   `repeat_kv` arranges. No repeated copy is made on the CPU; the
//!   backward sums the gradients of the query heads that share a head. A
//!   KV cache keeps only the Hkv heads.
//! - `window` (a sliding window, Mistral's `sliding_window`): the query at
//!   position p sees keys j with p − window < j ≤ p, its own and the
//!   window − 1 before it (transformers masks a key when p − j ≥ window).
//!   With a KV cache the queries are the last positions, p = i + Tk − Tq
//!   for query row i; `kernels::cpu::attention::CausalMask` is the one
//!   place that does this arithmetic.
//!
//! A third, `softcap` (Gemma 2's `attn_logit_softcapping`), squashes the
//! scaled scores to cap · tanh(S / cap) before the mask and softmax, inside
//! the fused CPU kernel and the cuBLAS route's masked softmax (forward and
//! backward). The flash kernel has no cap, so capped attention on a GPU
//! always takes the cuBLAS route.
//!
//! The head size D is read from the operands, never from a model width: a
//! model may have H·D ≠ C (Qwen3: 16 heads of 128 over a width of 1024).
//!
//! Q, K and V come in one of two layouts ([`Qkv`]):
//! - `Packed`: a block's one projection `[B, T, (H + 2·Hkv)·D]`: Q (H·D
//!   wide), then K, then V (Hkv·D each); GPT-2's `c_attn` is the case
//!   Hkv = H, `[B, T, 3C]`. The output is `[B, T, H·D]`, ready for the
//!   output projection.
//! - `Heads`: q `[B, H, Tq, D]`, k and v `[B, Hkv, Tk, D]` with Tk ≥ Tq;
//!   the output is `[B, H, Tq, D]`.
//!
//! [`split_heads`] and [`merge_heads`] turn one into the other as views; they
//! are the one place that knows how heads sit in the channels.
//!
//! [`Tensor::attention`] checks the shapes, picks one of three routes, and
//! returns the output with a [`SavedAttention`] that records the route and
//! what its backward needs; [`Tensor::attention_backward`] takes the same
//! route back. The caller (autograd's attention op) keeps the saved state
//! without looking inside it.
//! - CPU: the fused kernel of `kernels::cpu::attention`, one pass per head.
//!   It reads packed Q, K and V in place and writes the output and the packed
//!   gradient in place, so no heads-first copy is made either way; a KV
//!   cache's keys and values are read where the cache keeps them. Saves the
//!   attention weights P `[B, H, Tq, Tk]`.
//! - CUDA: two cuBLAS products around a fused masked softmax
//!   (`cuda/attention.rs`), the same arithmetic; saves P.
//! - CUDA flash, when [`AttentionOptions::flash`] asks for it and the kernel
//!   is compiled for the head size: never forms P; saves the output and one
//!   logsumexp per query row, from which the backward recomputes P tile by
//!   tile.
//!
//! Both options are checked in `check` with the rest and reach the kernels
//! as `AttentionDims` (a group size and a window). The cuBLAS route handles
//! them by regrouping: the queries of the heads that share a K/V head are
//! consecutive rows, so one product per K/V head covers the whole group
//! (and sums its dK, dV). The flash kernel is compiled for plain causal
//! attention only: with grouped heads, a window or a soft-cap, a flash
//! request takes the cuBLAS route instead.

use std::sync::atomic::{AtomicBool, Ordering};

use kernels::cpu::attention::{
    causal_attention_backward_in_place, causal_attention_forward_in_place, AttentionDims, HeadLayout,
};

use crate::tensor::Tensor;

/// Queries, keys and values in the layout the caller has them. `T` is
/// `&Tensor` here; autograd hands the same layouts through as `&Var`.
#[derive(Clone, Copy, Debug)]
pub enum Qkv<T> {
    /// One projection's output `[B, T, (H + 2·Hkv)·D]`: Q, K, V side by side.
    Packed(T),
    /// Heads first: q `[B, H, Tq, D]`, k and v `[B, Hkv, Tk, D]`, Tk ≥ Tq.
    Heads { q: T, k: T, v: T },
}

impl<T> Qkv<T> {
    /// The same layout with `f` applied to each operand.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Qkv<U> {
        match self {
            Qkv::Packed(qkv) => Qkv::Packed(f(qkv)),
            Qkv::Heads { q, k, v } => Qkv::Heads { q: f(q), k: f(k), v: f(v) },
        }
    }

    pub fn as_ref(&self) -> Qkv<&T> {
        match self {
            Qkv::Packed(qkv) => Qkv::Packed(qkv),
            Qkv::Heads { q, k, v } => Qkv::Heads { q, k, v },
        }
    }

    /// The operands in order: `[qkv]` or `[q, k, v]`.
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Qkv::Packed(qkv) => vec![qkv],
            Qkv::Heads { q, k, v } => vec![q, k, v],
        }
    }
}

/// What kind of attention to compute: always causal, optionally with
/// grouped key/value heads and a sliding window (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Query heads H: packed input holds H query heads and heads-first q
    /// has H heads.
    pub n_heads: usize,
    /// Key/value heads Hkv, dividing H (H: plain multi-head attention; 1:
    /// multi-query).
    pub n_kv_heads: usize,
    /// Each query sees at most this many keys, ending at its own position
    /// (`None`: every earlier key).
    pub window: Option<usize>,
    /// Soft-capping of the scaled scores, cap · tanh(S / cap) (`None`: off).
    pub softcap: Option<f64>,
    /// On a GPU, use the flash kernel (no stored P) where it is compiled for
    /// the head size; the CPU ignores it.
    pub flash: bool,
}

static FLASH: AtomicBool = AtomicBool::new(false);

/// Whether [`AttentionOptions::new`] asks for the flash kernel (`bench train
/// --flash-attention`). Off by default: the cuBLAS route is the one checked
/// against the CPU, and the flash kernel is checked against it.
pub fn set_flash(on: bool) {
    FLASH.store(on, Ordering::Relaxed);
}

impl AttentionOptions {
    /// Causal attention over `n_heads` heads, each with its own keys and
    /// values, no window; flash as [`set_flash`] last said.
    pub fn new(n_heads: usize) -> Self {
        AttentionOptions {
            n_heads,
            n_kv_heads: n_heads,
            window: None,
            softcap: None,
            flash: FLASH.load(Ordering::Relaxed),
        }
    }

    /// The same with `n_kv_heads` key/value heads shared among the query
    /// heads (grouped-query attention).
    pub fn with_kv_heads(self, n_kv_heads: usize) -> Self {
        AttentionOptions { n_kv_heads, ..self }
    }

    /// The same with a sliding window of `window` keys.
    pub fn with_window(self, window: usize) -> Self {
        AttentionOptions { window: Some(window), ..self }
    }

    /// The same with the scaled scores soft-capped at `cap`.
    pub fn with_softcap(self, cap: f64) -> Self {
        AttentionOptions { softcap: Some(cap), ..self }
    }
}

/// Output of [`Tensor::attention`], and what its backward needs.
pub struct Attention {
    /// `[B, T, C]` for packed input, `[B, H, Tq, D]` for heads-first.
    pub out: Tensor,
    pub saved: SavedAttention,
}

/// The state [`Tensor::attention_backward`] needs, as the route that ran
/// left it.
pub struct SavedAttention {
    route: Route,
    sizes: Sizes,
    /// Whether the input was packed, so the gradient goes back `[B, T, 3C]`.
    packed: bool,
}

enum Route {
    /// The CPU kernel: the operands as it read them (packed input stays
    /// packed) and P.
    Cpu { input: Qkv<Tensor>, probs: Tensor },
    /// CUDA through cuBLAS: dense heads-first Q, K, V and P.
    Cuda { heads: [Tensor; 3], probs: Tensor },
    /// CUDA flash: Q, K, V heads-first as given, the heads-first output and
    /// the logsumexp `[B, H, Tq]` (f32).
    Flash { heads: [Tensor; 3], out: Tensor, lse: Tensor },
}

impl SavedAttention {
    /// The attention weights P `[B, H, Tq, Tk]`, when the route kept them.
    pub fn probs(&self) -> Option<&Tensor> {
        match &self.route {
            Route::Cpu { probs, .. } | Route::Cuda { probs, .. } => Some(probs),
            Route::Flash { .. } => None,
        }
    }

    /// Each query row's log Σ exp(scaled scores) `[B, H, Tq]`, when the
    /// route kept that instead of P (flash).
    pub fn logsumexp(&self) -> Option<&Tensor> {
        match &self.route {
            Route::Flash { lse, .. } => Some(lse),
            _ => None,
        }
    }
}

/// The sizes of one call, read once from the operands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub batch: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub window: Option<usize>,
    pub softcap: Option<f64>,
}

impl Sizes {
    /// (batch, head) pairs: what the kernels run over.
    pub fn heads(&self) -> usize {
        self.batch * self.n_heads
    }

    /// The kernels' view: query heads, group size, lengths, window.
    pub fn dims(&self) -> AttentionDims {
        let group = self.n_heads / self.n_kv_heads;
        let (tq, tk, d, window, softcap) = (self.tq, self.tk, self.d, self.window, self.softcap);
        AttentionDims { heads: self.heads(), group, tq, tk, d, window, softcap }
    }

    /// Plain causal attention: what the flash kernel is compiled for.
    pub fn plain_causal(&self) -> bool {
        self.n_kv_heads == self.n_heads && self.window.is_none() && self.softcap.is_none()
    }

    /// The output's (and its gradient's) shape.
    fn out_dims(&self, packed: bool) -> Vec<usize> {
        if packed {
            vec![self.batch, self.tq, self.n_heads * self.d]
        } else {
            vec![self.batch, self.n_heads, self.tq, self.d]
        }
    }
}

fn check(input: Qkv<&Tensor>, options: &AttentionOptions) -> Sizes {
    let (h, hkv, window) = (options.n_heads, options.n_kv_heads, options.window);
    assert!(h > 0 && hkv > 0, "attention: needs at least one head, got {h} query and {hkv} key/value heads");
    assert!(
        h.is_multiple_of(hkv),
        "attention: {h} query heads cannot be shared evenly among {hkv} key/value heads (n_heads % n_kv_heads != 0)"
    );
    assert!(window != Some(0), "attention: a sliding window must hold at least one key, got window 0");
    let softcap = options.softcap;
    assert!(softcap.is_none_or(|c| c > 0.0), "attention: a soft-cap must be positive, got {softcap:?}");
    let sizes = |batch, tq, tk, d| Sizes { batch, n_heads: h, n_kv_heads: hkv, tq, tk, d, window, softcap };
    match input {
        Qkv::Packed(qkv) => {
            assert!(
                qkv.rank() == 3 && qkv.dim(2).is_multiple_of(h + 2 * hkv),
                "attention: expects packed qkv [B, T, (H + 2·Hkv)·D] for {h} query and {hkv} key/value heads, got {}",
                qkv.shape()
            );
            let (b, t, d) = (qkv.dim(0), qkv.dim(1), qkv.dim(2) / (h + 2 * hkv));
            sizes(b, t, t, d)
        }
        Qkv::Heads { q, k, v } => {
            assert!(
                q.rank() == 4 && k.rank() == 4,
                "attention: expects [B, H, T, D], got q {} k {}",
                q.shape(),
                k.shape()
            );
            assert_eq!(k.shape(), v.shape(), "attention: k {} and v {} differ", k.shape(), v.shape());
            let (b, tq, d) = (q.dims()[0], q.dims()[2], q.dims()[3]);
            assert_eq!(q.dims()[1], h, "attention: q {} has {} heads, the options say {h}", q.shape(), q.dims()[1]);
            assert_eq!(
                k.dims()[1],
                hkv,
                "attention: k {} has {} heads, the options say {hkv} key/value heads",
                k.shape(),
                k.dims()[1]
            );
            assert!(
                k.dims()[0] == b && k.dims()[3] == d && k.dims()[2] >= tq,
                "attention: q {} and k {} disagree",
                q.shape(),
                k.shape()
            );
            sizes(b, tq, k.dims()[2], d)
        }
    }
}

/// `[B, T, H·D]` → `[B, H, T, D]`, a view.
fn heads_of(x: &Tensor, n_heads: usize) -> Tensor {
    let (b, t, c) = (x.dim(0), x.dim(1), x.dim(2));
    x.reshape(&[b as isize, t as isize, n_heads as isize, (c / n_heads) as isize]).transpose(1, 2)
}

/// Packed `[B, T, (H + 2·Hkv)·D]` → q `[B, H, T, D]`, k and v
/// `[B, Hkv, T, D]`, as views.
pub fn split_heads(qkv: &Tensor, options: &AttentionOptions) -> [Tensor; 3] {
    let (h, hkv) = (options.n_heads, options.n_kv_heads);
    let d = qkv.dim(2) / (h + 2 * hkv);
    let part = |start: usize, heads: usize| heads_of(&qkv.narrow(-1, start * d, heads * d), heads);
    [part(0, h), part(h, hkv), part(h + hkv, hkv)]
}

/// `[B, H, T, D]` → `[B, T, H·D]` (a copy: the heads interleave).
pub fn merge_heads(x: &Tensor) -> Tensor {
    let (b, h, t, d) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    x.transpose(1, 2).reshape(&[b as isize, t as isize, (h * d) as isize])
}

impl Tensor {
    /// Causal attention of `input` (see the module documentation for the
    /// layouts and routes): the output, and the state its backward needs.
    pub fn attention(input: Qkv<&Tensor>, options: &AttentionOptions) -> Attention {
        let sizes = check(input, options);
        let packed = matches!(input, Qkv::Packed(_));
        let on_gpu = match input {
            Qkv::Packed(qkv) => qkv.device().is_cuda(),
            Qkv::Heads { q, k, v } => [q, k, v].iter().any(|t| t.device().is_cuda()),
        };
        let (out, route) = if on_gpu {
            let heads = match input {
                Qkv::Packed(qkv) => split_heads(qkv, options),
                Qkv::Heads { q, k, v } => [q.clone(), k.clone(), v.clone()],
            };
            // The flash kernel knows plain causal attention only: grouped
            // heads, a window or a soft-cap take the cuBLAS route, which has
            // all three.
            let flash = options.flash && sizes.plain_causal() && crate::cuda::flash_compiled_for(sizes.d);
            let (out, route) = if flash {
                let [q, k, v] = &heads;
                let (out, lse) = crate::cuda::flash_attention(q, k, v, sizes);
                (out.clone(), Route::Flash { heads, out, lse })
            } else {
                // cuBLAS reads dense operands: made once, kept for the backward.
                let heads = heads.map(|t| t.contiguous());
                let [q, k, v] = &heads;
                let (out, probs) = crate::cuda::attention(q, k, v, sizes);
                (out, Route::Cuda { heads, probs })
            };
            (if packed { merge_heads(&out) } else { out }, route)
        } else {
            cpu_forward(input, sizes)
        };
        Attention { out, saved: SavedAttention { route, sizes, packed } }
    }

    /// The gradients of [`Tensor::attention`]'s inputs from the gradient of
    /// its output, in the input's layout.
    pub fn attention_backward(saved: &SavedAttention, d_out: &Tensor) -> Qkv<Tensor> {
        let (sizes, packed) = (saved.sizes, saved.packed);
        assert_eq!(
            d_out.dims(),
            sizes.out_dims(packed),
            "attention_backward: d_out {} for an output of {:?}",
            d_out.shape(),
            sizes.out_dims(packed)
        );
        let (heads, d_heads) = match &saved.route {
            Route::Cpu { input, probs } => return cpu_backward(input.as_ref(), probs, d_out, sizes),
            Route::Cuda { heads, .. } | Route::Flash { heads, .. } => {
                (heads, if packed { heads_of(d_out, sizes.n_heads) } else { d_out.clone() })
            }
        };
        let [q, k, v] = heads;
        let [dq, dk, dv] = match &saved.route {
            Route::Cuda { probs, .. } => crate::cuda::attention_backward(q, k, v, probs, &d_heads, sizes),
            Route::Flash { out, lse, .. } => crate::cuda::flash_attention_backward(q, k, v, out, lse, &d_heads, sizes),
            Route::Cpu { .. } => unreachable!("returned above"),
        };
        if packed {
            Qkv::Packed(Tensor::cat(&[merge_heads(&dq), merge_heads(&dk), merge_heads(&dv)], -1))
        } else {
            Qkv::Heads { q: dq, k: dk, v: dv }
        }
    }
}

/// K and V as the CPU kernel reads them: in place when every head is a
/// dense `[tk, d]` block and the heads are evenly spaced with the same
/// spacing in both (a KV cache's narrowed buffers are), otherwise dense
/// copies.
fn kv_operands(k: &Tensor, v: &Tensor) -> (Tensor, Tensor, HeadLayout) {
    let (h, tk, d) = (k.dims()[1], k.dims()[2], k.dims()[3]);
    let layout = |t: &Tensor| {
        let s = t.strides();
        let heads_even = t.dims()[0] == 1 || s[0] == s[1] * h;
        (s[3] == 1 && (s[2] == d || tk == 1) && heads_even).then(|| (s[1], t.layout().offset()))
    };
    match (layout(k), layout(v)) {
        (Some((stride_k, off_k)), Some((stride_v, off_v))) if stride_k == stride_v && off_k == off_v => {
            let spaced = HeadLayout { offset: off_k, batch_stride: stride_k, ..HeadLayout::dense(tk, d) };
            (k.clone(), v.clone(), spaced)
        }
        _ => (k.contiguous_copy(), v.contiguous_copy(), HeadLayout::dense(tk, d)),
    }
}

/// Where Q, K or V (`i` = 0, 1, 2) sits inside packed
/// `[B, T, (H + 2·Hkv)·D]`: H query heads, then Hkv key and Hkv value heads.
fn packed_part(s: Sizes, i: usize) -> HeadLayout {
    let (h, hkv) = (s.n_heads, s.n_kv_heads);
    let width = (h + 2 * hkv) * s.d;
    let (first_head, heads) = [(0, h), (h, hkv), (h + hkv, hkv)][i];
    HeadLayout::packed(s.tq, heads, s.d, width, first_head * s.d)
}

/// Where the `[B, T, C]` output (or its gradient) has each head.
fn packed_out(s: Sizes) -> HeadLayout {
    HeadLayout::packed(s.tq, s.n_heads, s.d, s.n_heads * s.d, 0)
}

fn cpu_forward(input: Qkv<&Tensor>, s: Sizes) -> (Tensor, Route) {
    let (heads, tq, tk, d, dims) = (s.heads(), s.tq, s.tk, s.d, s.dims());
    let probs_dims = [s.batch, s.n_heads, tq, tk];
    match input {
        Qkv::Packed(qkv) => {
            let x = qkv.contiguous();
            crate::with_float_type!(x.dtype(), "attention", T => {
                let data = x.contiguous_data::<T>();
                let mut out = crate::pool::for_overwrite::<T>(heads * tq * d);
                let mut probs = crate::pool::for_overwrite::<T>(heads * tq * tk);
                causal_attention_forward_in_place(
                    &data, packed_part(s, 0), &data, packed_part(s, 1), &data, packed_part(s, 2),
                    dims, &mut out, packed_out(s), &mut probs,
                );
                let probs = Tensor::from_contiguous(probs, probs_dims);
                (Tensor::from_contiguous(out, s.out_dims(true)), Route::Cpu { input: Qkv::Packed(x.clone()), probs })
            })
        }
        Qkv::Heads { q, k, v } => {
            let q = q.contiguous();
            let (k, v, kv) = kv_operands(k, v);
            crate::with_float_type!(q.dtype(), "attention", T => {
                let mut out = crate::pool::for_overwrite::<T>(heads * tq * d);
                let mut probs = crate::pool::for_overwrite::<T>(heads * tq * tk);
                let dense = HeadLayout::dense(tq, d);
                causal_attention_forward_in_place(
                    &q.contiguous_data::<T>(), dense, k.storage_slice::<T>(), kv, v.storage_slice::<T>(), kv,
                    dims, &mut out, dense, &mut probs,
                );
                let probs = Tensor::from_contiguous(probs, probs_dims);
                (Tensor::from_contiguous(out, s.out_dims(false)), Route::Cpu { input: Qkv::Heads { q, k, v }, probs })
            })
        }
    }
}

fn cpu_backward(input: Qkv<&Tensor>, probs: &Tensor, d_out: &Tensor, s: Sizes) -> Qkv<Tensor> {
    let dims = s.dims();
    match input {
        Qkv::Packed(x) => crate::with_float_type!(x.dtype(), "attention_backward", T => {
            let data = x.contiguous_data::<T>();
            let mut grads = crate::pool::for_overwrite::<T>(x.numel());
            let parts = [0, 1, 2].map(|i| packed_part(s, i));
            causal_attention_backward_in_place(
                parts.map(|p| (&data[..], p)), &probs.contiguous_data::<T>(),
                &d_out.contiguous_data::<T>(), packed_out(s), dims, &mut grads, parts,
            );
            Qkv::Packed(Tensor::from_contiguous(grads, x.shape().clone()))
        }),
        Qkv::Heads { q, k, v } => crate::with_float_type!(q.dtype(), "attention_backward", T => {
            let (nq, nkv) = (s.heads() * s.tq * s.d, s.batch * s.n_kv_heads * s.tk * s.d);
            // dQ, dK, dV one after another in one buffer, handed out as views.
            let mut grads = crate::pool::for_overwrite::<T>(nq + 2 * nkv);
            let (dense_q, dense_kv) = (HeadLayout::dense(s.tq, s.d), HeadLayout::dense(s.tk, s.d));
            let layouts = [dense_q, HeadLayout { offset: nq, ..dense_kv }, HeadLayout { offset: nq + nkv, ..dense_kv }];
            let (k, v, kv) = kv_operands(k, v);
            causal_attention_backward_in_place(
                [(&q.contiguous_data::<T>(), dense_q), (k.storage_slice::<T>(), kv), (v.storage_slice::<T>(), kv)],
                &probs.contiguous_data::<T>(), &d_out.contiguous_data::<T>(), dense_q, dims, &mut grads, layouts,
            );
            let all = Tensor::from_contiguous(grads, [nq + 2 * nkv]);
            let view = |start: usize, len: usize, dims: [usize; 4]| {
                all.narrow(0, start, len).reshape(&dims.map(|n| n as isize))
            };
            let (q_dims, kv_dims) = ([s.batch, s.n_heads, s.tq, s.d], [s.batch, s.n_kv_heads, s.tk, s.d]);
            Qkv::Heads { q: view(0, nq, q_dims), k: view(nq, nkv, kv_dims), v: view(nq + nkv, nkv, kv_dims) }
        }),
    }
}

#[cfg(test)]
mod tests;
