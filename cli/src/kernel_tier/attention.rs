//! Kernel-tier cases for fused causal attention, q, k, v `[B, H, T, D]`
//! apart or packed `[B, T, 3·C]`, at T a multiple of the 64-query block
//! and a ragged one, against the plain f64 references of
//! `kernels::cpu::attention`.

use autograd::ops::attention::attention;
use kernels::cpu::attention::{attention_backward_reference, attention_forward_reference};
use tensor::{AttentionOptions, Qkv};

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// Where Q, K, V and the output of head (b, h) lie, per time step t and
/// channel c, for one input form.
#[derive(Clone, Copy)]
struct AttentionLayout {
    batch: usize,
    heads: usize,
    t: usize,
    d: usize,
    packed: bool,
}

impl AttentionLayout {
    /// Flat index of element (t, c) of operand `which` (0 = Q, 1 = K, 2 = V)
    /// of head (b, h), in input `which` (heads first) or the packed input.
    fn input(&self, which: usize, b: usize, h: usize, t: usize, c: usize) -> (usize, usize) {
        let (hs, d) = (self.heads, self.d);
        if self.packed {
            let width = 3 * hs * d;
            (0, (b * self.t + t) * width + which * hs * d + h * d + c)
        } else {
            (which, ((b * hs + h) * self.t + t) * d + c)
        }
    }
    /// Flat index of the output's element: `[B, H, T, D]`, or `[B, T, C]`.
    fn output(&self, b: usize, h: usize, t: usize, c: usize) -> usize {
        let (hs, d) = (self.heads, self.d);
        if self.packed {
            (b * self.t + t) * hs * d + h * d + c
        } else {
            ((b * hs + h) * self.t + t) * d + c
        }
    }
}

fn attention_reference(l: AttentionLayout) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (t, d) = (l.t, l.d);
        let out_len = l.batch * l.heads * t * d;
        let mut out = vec![0.0; out_len];
        let mut grads: Vec<Vec<f64>> = r.xs.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut spread: f64 = 0.0;
        for bi in 0..l.batch {
            for h in 0..l.heads {
                let gather = |which: usize| -> Vec<f64> {
                    (0..t * d)
                        .map(|i| {
                            let (input, at) = l.input(which, bi, h, i / d, i % d);
                            r.xs[input][at]
                        })
                        .collect()
                };
                let (q, k, v) = (gather(0), gather(1), gather(2));
                let d_out: Vec<f64> = (0..t * d).map(|i| r.v[l.output(bi, h, i / d, i % d)]).collect();
                let (o, p) = attention_forward_reference(&q, &k, &v, t, t, d);
                let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &p, &d_out, t, d);
                for i in 0..t * d {
                    out[l.output(bi, h, i / d, i % d)] = o[i];
                    for (which, g) in [(0, &dq), (1, &dk), (2, &dv)] {
                        let (input, at) = l.input(which, bi, h, i / d, i % d);
                        grads[input][at] = g[i];
                    }
                }
                // The widest spread of a row of scores, over visible keys.
                let scale = 1.0 / (d as f64).sqrt();
                for i in 0..t {
                    let s: Vec<f64> =
                        (0..=i).map(|j| scale * (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>()).collect();
                    let hi = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                    let lo = s.iter().fold(f64::INFINITY, |m, &x| m.min(x));
                    spread = spread.max(hi - lo);
                }
            }
        }
        // Normwise: each output is a chain of products and a softmax whose
        // error is relative (1 + R)·u per probability.
        let factor = 1.0 + spread;
        Expected {
            out: Checked::normwise(out, factor),
            grads: grads.into_iter().map(|g| Checked::normwise(g, factor)).collect(),
        }
    }
}

pub(super) fn attention_cases(b: &mut Builder, s: KernelSizes) {
    let (batch, heads, d) = (2, 2, s.head_dim);
    for (t, packed) in [(s.t, false), (s.ragged_t, false), (s.ragged_t, true)] {
        let layout = AttentionLayout { batch, heads, t, d, packed };
        let opts = AttentionOptions::new(heads);
        // Dot products of length d and t (P·V, dSᵀ·Q) in f32 after a
        // softmax whose probabilities are off by (1 + R)·u relative: each
        // output within 4·√T·u·(1 + R) of its tensor's largest.
        let formula = format!("normwise: 4·√T·u·(1 + R)·max|ref| per tensor, T={t}, R the widest row of scores");
        let tol = bound(4.0 * (t.max(d) as f64).sqrt(), formula);
        if packed {
            let qkv = b.uniform(&[batch, t, 3 * heads * d], -1.0, 1.0);
            b.add(
                "attention",
                format!("packed qkv, causal, T={t}"),
                vec![qkv],
                move |v| attention(Qkv::Packed(&v[0]), &opts),
                attention_reference(layout),
                tol,
            );
        } else {
            let dims = [batch, heads, t, d];
            let (q, k, v) = (b.uniform(&dims, -1.0, 1.0), b.uniform(&dims, -1.0, 1.0), b.uniform(&dims, -1.0, 1.0));
            b.add(
                "attention",
                format!("heads first, causal, T={t}"),
                vec![q, k, v],
                move |v| attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &opts),
                attention_reference(layout),
                tol,
            );
        }
    }
}
