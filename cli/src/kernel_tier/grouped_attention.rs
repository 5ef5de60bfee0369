//! Kernel-tier cases for attention with grouped key/value heads, a
//! sliding window and soft-capped scores (Gemma 2's cap · tanh(S / cap)): the f32 fused kernel at a Llama-like size (8 query heads
//! over 2 key/value heads of 64, T in the hundreds, a window of 64) against
//! the plain f64 references of `kernels::cpu::attention`.
//!
//! The reference treats each query head on its own with the key/value head
//! it reads (h / (H / Hkv)), as repeating K and V per query head would, and
//! adds the group's dK and dV; the window is applied by the reference's
//! own definition of the mask. Layouts: q `[B, H, T, D]` with k, v `[B,
//! Hkv, T, D]`, or packed `[B, T, (H + 2·Hkv)·D]` (Q, then K, then V).

use autograd::ops::attention::attention;
use kernels::cpu::attention::{capped_attention_backward_reference, capped_attention_forward_reference};
use tensor::{AttentionOptions, Qkv};

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

#[derive(Clone, Copy)]
struct GroupedLayout {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    t: usize,
    d: usize,
    window: Option<usize>,
    softcap: Option<f64>,
    packed: bool,
}

impl GroupedLayout {
    /// Which input holds Q, K or V (`which` = 0, 1, 2) and the flat index of
    /// element (b, head, t, c) of it; `head` counts that operand's heads.
    fn input(&self, which: usize, b: usize, head: usize, t: usize, c: usize) -> (usize, usize) {
        let (h, hkv, d) = (self.heads, self.kv_heads, self.d);
        if self.packed {
            let first_head = [0, h, h + hkv][which];
            (0, (b * self.t + t) * (h + 2 * hkv) * d + (first_head + head) * d + c)
        } else {
            let n_heads = if which == 0 { h } else { hkv };
            (which, ((b * n_heads + head) * self.t + t) * d + c)
        }
    }

    /// Flat index of the output's element: `[B, H, T, D]`, or `[B, T, H·D]`.
    fn output(&self, b: usize, head: usize, t: usize, c: usize) -> usize {
        let (h, d) = (self.heads, self.d);
        if self.packed {
            (b * self.t + t) * h * d + head * d + c
        } else {
            ((b * h + head) * self.t + t) * d + c
        }
    }
}

fn grouped_attention_reference(l: GroupedLayout) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (t, d, group) = (l.t, l.d, l.heads / l.kv_heads);
        let mut out = vec![0.0; l.batch * l.heads * t * d];
        let mut grads: Vec<Vec<f64>> = r.xs.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut spread: f64 = 0.0;
        for bi in 0..l.batch {
            for h in 0..l.heads {
                let kv = h / group;
                let gather = |which: usize, head: usize| -> Vec<f64> {
                    (0..t * d)
                        .map(|i| {
                            let (input, at) = l.input(which, bi, head, i / d, i % d);
                            r.xs[input][at]
                        })
                        .collect()
                };
                let (q, k, v) = (gather(0, h), gather(1, kv), gather(2, kv));
                let d_out: Vec<f64> = (0..t * d).map(|i| r.v[l.output(bi, h, i / d, i % d)]).collect();
                let (o, p) = capped_attention_forward_reference(&q, &k, &v, t, t, d, l.window, l.softcap);
                let (dq, dk, dv) = capped_attention_backward_reference(&q, &k, &v, &p, &d_out, t, t, d, l.softcap);
                for i in 0..t * d {
                    out[l.output(bi, h, i / d, i % d)] = o[i];
                    let (input, at) = l.input(0, bi, h, i / d, i % d);
                    grads[input][at] = dq[i];
                    // K and V are shared by the group: their gradients add.
                    for (which, g) in [(1, &dk), (2, &dv)] {
                        let (input, at) = l.input(which, bi, kv, i / d, i % d);
                        grads[input][at] += g[i];
                    }
                }
                // The widest spread of a row of scores over the keys it sees.
                let scale = 1.0 / (d as f64).sqrt();
                for i in 0..t {
                    let s: Vec<f64> = (0..=i)
                        .filter(|&j| l.window.is_none_or(|w| i - j < w))
                        .map(|j| scale * (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>())
                        .collect();
                    let hi = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                    let lo = s.iter().fold(f64::INFINITY, |m, &x| m.min(x));
                    spread = spread.max(hi - lo);
                }
            }
        }
        let factor = 1.0 + spread;
        Expected {
            out: Checked::normwise(out, factor),
            grads: grads.into_iter().map(|g| Checked::normwise(g, factor)).collect(),
        }
    }
}

pub(super) fn grouped_attention_cases(b: &mut Builder, s: KernelSizes) {
    let (batch, heads, d) = (1, 8, s.head_dim);
    // The cap 0.3 is below the scores' spread here (uniform q, k of D 64), so
    // it changes every row.
    for (t, kv_heads, window, softcap, packed) in [
        (s.t, 2, Some(64), None, false),
        (s.ragged_t, 2, Some(64), None, true),
        (s.ragged_t, 1, None, None, false),
        (s.ragged_t, 1, Some(64), Some(0.3), true),
    ] {
        let layout = GroupedLayout { batch, heads, kv_heads, t, d, window, softcap, packed };
        let opts = AttentionOptions { window, softcap, ..AttentionOptions::new(heads).with_kv_heads(kv_heads) };
        let group = heads / kv_heads;
        // As the plain attention cases (4·√T·u·(1 + R) normwise), with dK
        // and dV summing a group's worth of query heads: √(T·group).
        let formula = format!(
            "normwise: 4·√(T·group)·u·(1 + R)·max|ref| per tensor, T={t}, group={group}, R the widest row of scores"
        );
        let tol = bound(4.0 * ((t.max(d) * group) as f64).sqrt(), formula);
        let mut what = match window {
            Some(w) => format!("H={heads} over Hkv={kv_heads}, window {w}, T={t}"),
            None => format!("H={heads} over Hkv={kv_heads}, causal, T={t}"),
        };
        if let Some(cap) = softcap {
            what += &format!(", scores soft-capped at {cap}");
        }
        if packed {
            let qkv = b.uniform(&[batch, t, (heads + 2 * kv_heads) * d], -1.0, 1.0);
            let f = move |v: &[autograd::Var]| attention(Qkv::Packed(&v[0]), &opts);
            b.add("attention", format!("packed qkv, {what}"), vec![qkv], f, grouped_attention_reference(layout), tol);
        } else {
            let q = b.uniform(&[batch, heads, t, d], -1.0, 1.0);
            let (k, v) =
                (b.uniform(&[batch, kv_heads, t, d], -1.0, 1.0), b.uniform(&[batch, kv_heads, t, d], -1.0, 1.0));
            let f = move |v: &[autograd::Var]| attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &opts);
            b.add(
                "attention",
                format!("heads first, {what}"),
                vec![q, k, v],
                f,
                grouped_attention_reference(layout),
                tol,
            );
        }
    }
}
