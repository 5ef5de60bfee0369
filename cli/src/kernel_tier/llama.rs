//! The kernel tier's cases for the Llama block's ops: RMSNorm (over the
//! channels and per head), rotary embedding with llama3 scaling at a
//! KV-cache offset, SiLU and the fused SwiGLU, in f32 at realistic sizes
//! against the f64 references of `kernels::cpu::{rms_norm, rope, swiglu}`.

use autograd::ops::rms_norm::rms_norm;
use autograd::ops::swiglu::swiglu;
use kernels::cpu::rms_norm::{rms_norm_backward_reference, rms_norm_reference};
use kernels::cpu::rope::{rope_reference, RopeShape};
use kernels::cpu::swiglu::{silu_derivative_reference, silu_reference, swiglu_reference};
use tensor::{RopeConfig, RopeScaling};

use super::elementwise::unary_reference;
use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// RMSNorm over rows of `n`. Forward: rstd comes from a sum of n squares
/// (√n roundings, realistically), then two products: a few √n·u·|y|.
/// Backward: dx = rstd·(g − x̂·mean(g·x̂)) cancels, so it is bounded per row
/// at the row's largest rstd·(|g| + |x̂|·mean|g·x̂|); dw sums |dy·x̂|.
fn rms_norm_case_reference(n: usize, weighted: bool) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let w = weighted.then(|| &r.xs[1][..]);
        let (y, rstd) = rms_norm_reference(x, w, 1e-6, n);
        let (dx, dw) = rms_norm_backward_reference(x, w, &rstd, r.v, n);
        let wj = |j: usize| w.map_or(1.0, |w| w[j].abs());
        let ys = y.iter().map(|y| y.abs()).collect();
        let mut dxs = vec![0.0; x.len()];
        for (row, chunk) in dxs.chunks_mut(n).enumerate() {
            let x_hat = |j: usize| (x[row * n + j] * rstd[row]).abs();
            let g = |j: usize| (r.v[row * n + j] * wj(j)).abs();
            let mean_gx = (0..n).map(|j| g(j) * x_hat(j)).sum::<f64>() / n as f64;
            chunk.fill((0..n).map(|j| rstd[row] * (g(j) + x_hat(j) * mean_gx)).fold(0.0, f64::max));
        }
        let mut grads = vec![Checked::new(dx, dxs)];
        if weighted {
            let mut dws = vec![0.0; n];
            for (i, &xi) in x.iter().enumerate() {
                dws[i % n] += (r.v[i] * xi * rstd[i / n]).abs();
            }
            grads.push(Checked::new(dw, dws));
        }
        Expected { out: Checked::new(y, ys), grads }
    }
}

/// RoPE against transformers' `x·cos + rotate_half(x)·sin` with the angles
/// in f64 (the tables under test are rounded to f32): each output is two
/// products and a sum, |x₁·cos| + |x₂·sin| at most |x₁| + |x₂| of its
/// pair, and the backward is the same rotation of v.
fn rope_case_reference(config: RopeConfig, offset: usize, s: RopeShape) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let inv_freq = config.inv_freq(offset + s.t);
        let angle = |k: usize| (offset + k / inv_freq.len()) as f64 * inv_freq[k % inv_freq.len()];
        let cos: Vec<f64> = (0..s.t * inv_freq.len()).map(|k| angle(k).cos()).collect();
        let sin: Vec<f64> = (0..s.t * inv_freq.len()).map(|k| angle(k).sin()).collect();
        let pair_scale = |x: &[f64]| -> Vec<f64> {
            let half = s.d / 2;
            (0..x.len())
                .map(|i| {
                    let (base, j) = (i - i % s.d, i % half);
                    x[base + j].abs() + x[base + j + half].abs()
                })
                .collect()
        };
        let y = rope_reference(&r.xs[0], &cos, &sin, s, false);
        let dx = rope_reference(r.v, &cos, &sin, s, true);
        Expected { out: Checked::new(y, pair_scale(&r.xs[0])), grads: vec![Checked::new(dx, pair_scale(r.v))] }
    }
}

/// The backward forms silu' = s·(1 + x·(1 − s)) from the rounded
/// s = σ(x): an error of a few u·s in s moves it by that times
/// ∂silu'/∂s = 1 + x − 2x·s, which for large x is about |x| (1 − s cancels).
fn silu_slope_from_sigmoid(x: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x - 2.0 * x * s)
}

fn silu_second_derivative(x: f64) -> f64 {
    // Only for the bounds' scales, so a central difference is plenty.
    let h = 1e-4 * x.abs().max(1.0);
    (silu_derivative_reference(x + h) - silu_derivative_reference(x - h)) / (2.0 * h)
}

/// swiglu(g, u) = silu(g)·u: silu's error (as the unary cases bound it,
/// u·(|silu(g)| + |g·silu'(g)|) per rounding) times |u|, and one product
/// more; likewise dg = v·u·silu'(g) and du = v·silu(g).
fn swiglu_case_reference(r: &ReferenceInput) -> Expected {
    let (g, u) = (&r.xs[0], &r.xs[1]);
    let n = g.len();
    let (mut y, mut dg, mut du) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut ys, mut dgs, mut dus) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        (y[i], dg[i], du[i]) = swiglu_reference(g[i], u[i], r.v[i]);
        let silu_scale = silu_reference(g[i]).abs() + (g[i] * silu_derivative_reference(g[i])).abs();
        let slope_scale = silu_derivative_reference(g[i]).abs()
            + (g[i] * silu_second_derivative(g[i])).abs()
            + silu_slope_from_sigmoid(g[i]).abs();
        ys[i] = silu_scale * u[i].abs();
        dgs[i] = (r.v[i] * u[i]).abs() * slope_scale;
        dus[i] = r.v[i].abs() * silu_scale;
    }
    Expected { out: Checked::new(y, ys), grads: vec![Checked::new(dg, dgs), Checked::new(du, dus)] }
}

pub(super) fn llama_cases(b: &mut Builder, s: KernelSizes) {
    let (m, n) = (s.rows, s.width);
    let growth = (n as f64).sqrt();
    let formula = |n: usize| {
        format!(
            "2·√n·u·|y|, n={n}; backward dx normwise per row 2·√n·u·max rstd·(|g| + |x̂|·mean|g·x̂|), dw 2·√n·u·Σ|dy·x̂|"
        )
    };
    let x = b.uniform(&[m, n], -4.0, 4.0).add_scalar(1.5);
    let w = b.uniform(&[n], 0.5, 1.5);
    b.add(
        "rms_norm",
        "weight",
        vec![x.clone(), w],
        |v| rms_norm(&v[0], Some(&v[1]), 1e-6),
        rms_norm_case_reference(n, true),
        bound(2.0 * growth, formula(n)),
    );
    b.add(
        "rms_norm",
        "no weight",
        vec![x],
        |v| rms_norm(&v[0], None, 1e-6),
        rms_norm_case_reference(n, false),
        bound(2.0 * growth, formula(n)),
    );
    // Qwen3's per-head q/k norm: rows of head_dim.
    let d = s.head_dim;
    let heads = b.uniform(&[m, 4, d], -3.0, 3.0);
    let wd = b.uniform(&[d], 0.5, 1.5);
    b.add(
        "rms_norm",
        "per head",
        vec![heads, wd],
        |v| rms_norm(&v[0], Some(&v[1]), 1e-6),
        rms_norm_case_reference(d, true),
        bound(2.0 * (d as f64).sqrt(), formula(d)),
    );

    // Llama 3.1's rotary embedding (theta 500,000, llama3 scaling) on
    // [B, T, H, D], T ragged, at a cache offset large enough that the
    // angles wrap many times.
    let shape = RopeShape::full(2, s.ragged_t, 4, d);
    let config = RopeConfig {
        theta: 500000.0,
        head_dim: d,
        scaling: RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max: 8192 },
    };
    let offset = 1000;
    let tables = config.tables(offset, shape.t);
    let x = b.uniform(&[shape.outer, shape.t, shape.heads, d], -2.0, 2.0);
    b.add(
        "rope",
        "llama3 scaling, offset 1000",
        vec![x],
        move |v| v[0].rope(&tables),
        rope_case_reference(config, offset, shape),
        bound(4.0, "4·u·(|x₁| + |x₂|) of each pair; backward 4·u·(|v₁| + |v₂|)"),
    );

    let wide = b.uniform(&[m, n], -6.0, 6.0);
    b.add(
        "silu",
        "elementwise",
        vec![wide.clone()],
        |v| v[0].silu(),
        unary_reference(silu_reference, silu_derivative_reference, silu_second_derivative, silu_slope_from_sigmoid),
        bound(8.0, "8·u·(|f(x)| + |x·f'(x)|); backward 8·u·|v|·(|f'(x)| + |x·f''(x)| + |s·∂f'/∂s|), s = σ(x)"),
    );
    let up = b.uniform(&[m, n], -2.0, 2.0);
    b.add(
        "swiglu",
        "fused",
        vec![wide, up],
        |v| swiglu(&v[0], &v[1]),
        swiglu_case_reference,
        bound(
            8.0,
            "8·u·|u|·(|silu(g)| + |g·silu'(g)|); backward dg 8·u·|v·u|·(|silu'| + |g·silu''| + |s·∂silu'/∂s|), du 8·u·|v|·(|silu| + |g·silu'|)",
        ),
    );
}
