//! Causal scaled dot-product attention on `[B, H, T, D]` tensors.
//!
//! softmax(Q·Kᵀ/√D, masked so each query sees only keys at or before its
//! own position)·V, computed per (batch, head) by the fused kernel in
//! `kernels::cpu::attention`. Keys may outnumber queries (a KV cache): the
//! queries are then the last positions of the sequence.

use kernels::cpu::attention::KvLayout;

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
fn kv_operands(k: &Tensor, v: &Tensor) -> (Tensor, Tensor, KvLayout) {
    let (h, tk, d) = (k.dims()[1], k.dims()[2], k.dims()[3]);
    let layout = |t: &Tensor| {
        let s = t.strides();
        let heads_even = t.dims()[0] == 1 || s[0] == s[1] * h;
        (s[3] == 1 && (s[2] == d || tk == 1) && heads_even).then(|| (s[1], t.layout().offset()))
    };
    match (layout(k), layout(v)) {
        (Some((stride_k, off_k)), Some((stride_v, off_v))) if stride_k == stride_v && off_k == off_v => {
            (k.clone(), v.clone(), KvLayout { offset: off_k, head_stride: stride_k })
        }
        _ => {
            let (kc, vc) = (k.contiguous_copy(), v.contiguous_copy());
            (kc, vc, KvLayout { offset: 0, head_stride: tk * d })
        }
    }
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
            let mut out = crate::pool::zeroed::<T>(heads * tq * d);
            let mut probs = crate::pool::zeroed::<T>(heads * tq * tk);
            kernels::cpu::attention::causal_attention_forward_strided(
                &qc.contiguous_data::<T>(), kc.storage_slice::<T>(), vc.storage_slice::<T>(), kv,
                heads, tq, tk, d, &mut out, &mut probs,
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
            let (mut dq, mut dk, mut dv) = (crate::pool::zeroed::<T>(n), crate::pool::zeroed::<T>(n), crate::pool::zeroed::<T>(n));
            kernels::cpu::attention::causal_attention_backward(
                &q.contiguous_data::<T>(), &k.contiguous_data::<T>(), &v.contiguous_data::<T>(),
                &probs.contiguous_data::<T>(), &d_out.contiguous_data::<T>(),
                heads, t, d, &mut dq, &mut dk, &mut dv,
            );
            let shape = q.shape().clone();
            AttentionGrads {
                dq: Tensor::from_contiguous(dq, shape.clone()),
                dk: Tensor::from_contiguous(dk, shape.clone()),
                dv: Tensor::from_contiguous(dv, shape),
            }
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
}
