//! Causal self-attention as one differentiable op: softmax(QKᵀ/√d)·V with
//! the future masked, forward and backward fused per head (see
//! `kernels::cpu::attention`). It saves Q, K, V and the attention weights
//! P; the unfused composition (matmul, masked_fill, softmax, matmul) would
//! save the same P plus the scores, and run four passes instead of one.

use tensor::Tensor;

use crate::var::{BackwardOp, Var};

struct CausalAttention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    probs: Tensor,
}

impl BackwardOp for CausalAttention {
    fn name(&self) -> &'static str {
        "causal_attention"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let grads = Tensor::causal_attention_backward(&self.q, &self.k, &self.v, &self.probs, g);
        vec![Some(grads.dq), Some(grads.dk), Some(grads.dv)]
    }
}

/// The fused kernel that never stores P (CUDA; see
/// `tensor::cuda::set_flash_attention`): it saves the output and one
/// logsumexp per query row instead, and recomputes P in the backward.
struct FlashAttention {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
}

impl BackwardOp for FlashAttention {
    fn name(&self) -> &'static str {
        "flash_attention"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let grads = Tensor::flash_attention_backward(&self.q, &self.k, &self.v, &self.out, &self.lse, g);
        vec![Some(grads.dq), Some(grads.dk), Some(grads.dv)]
    }
}

/// Causal attention over `[B, H, T, D]` queries, keys and values.
pub fn causal_attention(q: &Var, k: &Var, v: &Var) -> Var {
    if q.device().is_cuda() && tensor::cuda::flash_attention_applies(q.dim(-1)) {
        let (qd, kd, vd) = (q.data(), k.data(), v.data());
        let f = Tensor::flash_attention(&qd, &kd, &vd);
        let out = f.out.clone();
        return Var::from_op(out, &[q, k, v], || FlashAttention { q: qd, k: kd, v: vd, out: f.out, lse: f.lse });
    }
    let (qd, kd, vd) = (q.data().contiguous(), k.data().contiguous(), v.data().contiguous());
    let out = Tensor::causal_attention(&qd, &kd, &vd);
    Var::from_op(out.out, &[q, k, v], || CausalAttention { q: qd, k: kd, v: vd, probs: out.probs })
}

struct PackedAttention {
    qkv: Tensor,
    probs: Tensor,
    n_heads: usize,
}

impl BackwardOp for PackedAttention {
    fn name(&self) -> &'static str {
        "causal_self_attention"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        vec![Some(Tensor::causal_attention_packed_backward(&self.qkv, &self.probs, g, self.n_heads))]
    }
}

/// A GPT block's attention straight from its qkv projection: `qkv`
/// `[B, T, 3C]` (Q, K, V side by side) → `[B, T, C]`, the heads read and
/// written in place (`Tensor::causal_attention_packed`), so neither pass
/// copies Q, K, V or their gradients into `[B, H, T, D]` and back. On a GPU
/// it is the composition of views and [`causal_attention`] (flash or not).
pub fn causal_self_attention(qkv: &Var, n_heads: usize) -> Var {
    if qkv.device().is_cuda() {
        let (b, t, c) = (qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3);
        let dims = [b as isize, t as isize, n_heads as isize, (c / n_heads) as isize];
        let heads = |i: usize| qkv.narrow(-1, i * c, c).reshape(&dims).transpose(1, 2);
        let y = causal_attention(&heads(0), &heads(1), &heads(2));
        return y.transpose(1, 2).reshape(&[b as isize, t as isize, c as isize]);
    }
    let data = qkv.data().contiguous();
    let out = Tensor::causal_attention_packed(&data, n_heads);
    Var::from_op(out.out, &[qkv], || PackedAttention { qkv: data, probs: out.probs, n_heads })
}
