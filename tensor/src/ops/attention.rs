//! Causal scaled dot-product attention on `[B, H, T, D]` tensors.
//!
//! softmax(Q·Kᵀ/√D, masked so each query sees only keys at or before its
//! own position)·V, computed per (batch, head) by the fused kernel in
//! `kernels::cpu::attention`. Keys may outnumber queries (a KV cache): the
//! queries are then the last positions of the sequence.
//!
//! A GPT block's queries, keys and values come out of one projection as
//! `[B, T, 3C]` (Q, K, V side by side, each C = H·D wide); its attention
//! output goes on as `[B, T, C]`. [`Tensor::causal_attention_packed`] works
//! on exactly those: the kernel reads each head's columns in place and
//! writes its output and, in the backward, its gradient columns straight
//! into the packed `[B, T, 3C]` gradient, so no heads-first copy is made
//! either way.

use kernels::cpu::attention::{causal_attention_backward_in_place, causal_attention_forward_in_place, HeadLayout};

use crate::tensor::Tensor;

/// Output of [`Tensor::causal_attention`]: the result and the attention
/// weights P `[B, H, Tq, Tk]` that the backward reuses.
pub struct AttentionOutput {
    pub out: Tensor,
    pub probs: Tensor,
}

/// Gradients from [`Tensor::causal_attention_backward`].
pub struct AttentionGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor) -> (usize, usize, usize, usize) {
    assert!(
        q.rank() == 4 && k.rank() == 4,
        "causal_attention: expects [B, H, T, D], got q {} k {}",
        q.shape(),
        k.shape()
    );
    assert_eq!(k.shape(), v.shape(), "causal_attention: k {} and v {} differ", k.shape(), v.shape());
    let (b, h, tq, d) = (q.dims()[0], q.dims()[1], q.dims()[2], q.dims()[3]);
    assert!(
        k.dims()[0] == b && k.dims()[1] == h && k.dims()[3] == d && k.dims()[2] >= tq,
        "causal_attention: q {} and k {} disagree",
        q.shape(),
        k.shape()
    );
    (b * h, tq, k.dims()[2], d)
}

/// K and V as the kernel reads them: in place when every head is a dense
/// `[tk, d]` block and the heads are evenly spaced with the same spacing
/// in both (a KV cache's narrowed buffers are), otherwise dense copies.
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

/// `[B, T, 3C]` → Q, K, V as `[B, H, T, D]` views (the unfused route).
fn split_heads(qkv: &Tensor, n_heads: usize) -> [Tensor; 3] {
    let (b, t, c) = (qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3);
    let dims = [b as isize, t as isize, n_heads as isize, (c / n_heads) as isize];
    [0, 1, 2].map(|i| qkv.narrow(-1, i * c, c).reshape(&dims).transpose(1, 2))
}

/// `[B, H, T, D]` → `[B, T, C]`.
fn merge_heads(x: &Tensor) -> Tensor {
    let (b, h, t, d) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    x.transpose(1, 2).reshape(&[b as isize, t as isize, (h * d) as isize])
}

fn check_packed(qkv: &Tensor, n_heads: usize) -> (usize, usize, usize, usize) {
    assert!(
        qkv.rank() == 3 && n_heads > 0 && qkv.dim(2).is_multiple_of(3 * n_heads),
        "causal_attention_packed: expects [B, T, 3·H·D] for {n_heads} heads, got {}",
        qkv.shape()
    );
    let (b, t, c) = (qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3);
    (b, t, c, c / n_heads)
}

impl Tensor {
    /// Causal attention; q is `[B, H, Tq, D]`, k and v `[B, H, Tk, D]` with
    /// Tk ≥ Tq.
    pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> AttentionOutput {
        if q.device().is_cuda() || k.device().is_cuda() || v.device().is_cuda() {
            return crate::cuda::causal_attention(q, k, v);
        }
        let (heads, tq, tk, d) = check(q, k, v);
        crate::with_float_type!(q.dtype(), "causal_attention", T => {
            let qc = q.contiguous();
            let (kc, vc, kv) = kv_operands(k, v);
            let mut out = crate::pool::for_overwrite::<T>(heads * tq * d);
            let mut probs = crate::pool::for_overwrite::<T>(heads * tq * tk);
            let dense = HeadLayout::dense(tq, d);
            causal_attention_forward_in_place(
                &qc.contiguous_data::<T>(), dense, kc.storage_slice::<T>(), kv, vc.storage_slice::<T>(), kv,
                heads, tq, tk, d, &mut out, dense, &mut probs,
            );
            let mut pdims = q.dims().to_vec();
            pdims[3] = tk;
            AttentionOutput { out: Tensor::from_contiguous(out, q.shape().clone()), probs: Tensor::from_contiguous(probs, pdims) }
        })
    }

    /// Backward of [`Tensor::causal_attention`] for Tq = Tk.
    pub fn causal_attention_backward(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        probs: &Tensor,
        d_out: &Tensor,
    ) -> AttentionGrads {
        if q.device().is_cuda() || d_out.device().is_cuda() {
            return crate::cuda::causal_attention_backward(q, k, v, probs, d_out);
        }
        let (heads, t, tk, d) = check(q, k, v);
        assert_eq!(t, tk, "causal_attention_backward: needs as many queries as keys");
        crate::with_float_type!(q.dtype(), "causal_attention_backward", T => {
            let n = heads * t * d;
            // dQ, dK, dV side by side in one buffer, handed out as views.
            let mut grads = crate::pool::for_overwrite::<T>(3 * n);
            let dense = HeadLayout::dense(t, d);
            let part = |i: usize| HeadLayout { offset: i * n, ..dense };
            let (qc, kc, vc) = (q.contiguous_data::<T>(), k.contiguous_data::<T>(), v.contiguous_data::<T>());
            causal_attention_backward_in_place(
                [(&qc, dense), (&kc, dense), (&vc, dense)], &probs.contiguous_data::<T>(),
                &d_out.contiguous_data::<T>(), dense, heads, t, d, &mut grads, [part(0), part(1), part(2)],
            );
            let mut dims = q.dims().to_vec();
            dims[0] *= 3;
            let all = Tensor::from_contiguous(grads, dims);
            let b = q.dim(0);
            AttentionGrads { dq: all.narrow(0, 0, b), dk: all.narrow(0, b, b), dv: all.narrow(0, 2 * b, b) }
        })
    }

    /// Causal self-attention on a packed projection: `qkv` `[B, T, 3C]`
    /// (Q, K, V side by side, `n_heads` heads of C / n_heads each) → output
    /// `[B, T, C]` and P `[B, H, T, T]`.
    pub fn causal_attention_packed(qkv: &Tensor, n_heads: usize) -> AttentionOutput {
        let (b, t, c, d) = check_packed(qkv, n_heads);
        if qkv.device().is_cuda() {
            let [q, k, v] = split_heads(qkv, n_heads);
            let fused = Tensor::causal_attention(&q, &k, &v);
            return AttentionOutput { out: merge_heads(&fused.out), probs: fused.probs };
        }
        let heads = b * n_heads;
        crate::with_float_type!(qkv.dtype(), "causal_attention_packed", T => {
            let x = qkv.contiguous_data::<T>();
            let mut out = crate::pool::for_overwrite::<T>(b * t * c);
            let mut probs = crate::pool::for_overwrite::<T>(heads * t * t);
            let part = |i: usize| HeadLayout::packed(t, n_heads, d, 3 * c, i * c);
            causal_attention_forward_in_place(
                &x, part(0), &x, part(1), &x, part(2), heads, t, t, d,
                &mut out, HeadLayout::packed(t, n_heads, d, c, 0), &mut probs,
            );
            AttentionOutput {
                out: Tensor::from_contiguous(out, [b, t, c]),
                probs: Tensor::from_contiguous(probs, [b, n_heads, t, t]),
            }
        })
    }

    /// Backward of [`Tensor::causal_attention_packed`]: d`qkv` `[B, T, 3C]`
    /// from d`out` `[B, T, C]`.
    pub fn causal_attention_packed_backward(qkv: &Tensor, probs: &Tensor, d_out: &Tensor, n_heads: usize) -> Tensor {
        let (b, t, c, d) = check_packed(qkv, n_heads);
        assert_eq!(
            d_out.dims(),
            [b, t, c],
            "causal_attention_packed_backward: d_out {} for qkv {}",
            d_out.shape(),
            qkv.shape()
        );
        if qkv.device().is_cuda() {
            let [q, k, v] = split_heads(qkv, n_heads);
            let dims = [b as isize, t as isize, n_heads as isize, d as isize];
            let g = Tensor::causal_attention_backward(&q, &k, &v, probs, &d_out.reshape(&dims).transpose(1, 2));
            return Tensor::cat(&[merge_heads(&g.dq), merge_heads(&g.dk), merge_heads(&g.dv)], -1);
        }
        crate::with_float_type!(qkv.dtype(), "causal_attention_packed_backward", T => {
            let x = qkv.contiguous_data::<T>();
            let mut grads = crate::pool::for_overwrite::<T>(b * t * 3 * c);
            let part = |i: usize| HeadLayout::packed(t, n_heads, d, 3 * c, i * c);
            causal_attention_backward_in_place(
                [(&x, part(0)), (&x, part(1)), (&x, part(2))], &probs.contiguous_data::<T>(),
                &d_out.contiguous_data::<T>(), HeadLayout::packed(t, n_heads, d, c, 0), b * n_heads, t, d,
                &mut grads, [part(0), part(1), part(2)],
            );
            Tensor::from_contiguous(grads, [b, t, 3 * c])
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn equals_the_unfused_composition() {
        let mut g = Generator::seed(4);
        let (b, h, t, d) = (2, 3, 5, 4);
        let q = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
        let k = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
        let v = Tensor::randn([b, h, t, d], &mut g).to_dtype(DType::F64);
        let fused = Tensor::causal_attention(&q, &k, &v).out;
        let mask = Tensor::ones([t, t], DType::F64).triu(1);
        let scores = q.matmul(&k.t()).div_scalar((d as f64).sqrt()).masked_fill(&mask, f64::NEG_INFINITY);
        let reference = scores.softmax(-1).matmul(&v);
        for (a, r) in fused.to_vec::<f64>().iter().zip(reference.to_vec::<f64>()) {
            assert!((a - r).abs() < 1e-12);
        }
    }

    #[test]
    fn packed_qkv_equals_split_heads() {
        // 70 positions: two query blocks, the second ragged.
        let mut g = Generator::seed(9);
        let (b, t, h, d) = (2, 70, 3, 4);
        let c = h * d;
        let qkv = Tensor::randn([b, t, 3 * c], &mut g).to_dtype(DType::F64);
        let d_out = Tensor::randn([b, t, c], &mut g).to_dtype(DType::F64);
        let packed = Tensor::causal_attention_packed(&qkv, h);
        let [q, k, v] = super::split_heads(&qkv, h);
        let split = Tensor::causal_attention(&q, &k, &v);
        assert_eq!(packed.out.to_vec::<f64>(), super::merge_heads(&split.out).to_vec::<f64>());
        assert_eq!(packed.probs.to_vec::<f64>(), split.probs.to_vec::<f64>());
        let d_qkv = Tensor::causal_attention_packed_backward(&qkv, &packed.probs, &d_out, h);
        let heads_first = d_out.reshape(&[b as isize, t as isize, h as isize, d as isize]).transpose(1, 2);
        let gr = Tensor::causal_attention_backward(&q, &k, &v, &split.probs, &heads_first);
        let want =
            Tensor::cat(&[super::merge_heads(&gr.dq), super::merge_heads(&gr.dk), super::merge_heads(&gr.dv)], -1);
        assert_eq!(d_qkv.to_vec::<f64>(), want.to_vec::<f64>());
    }
}
