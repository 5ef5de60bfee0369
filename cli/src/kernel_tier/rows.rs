//! Kernel-tier cases for the fused row kernels: softmax, log_softmax and
//! layer norm over the last dim of `[rows, width]` (and softmax over dim 0),
//! against the plain f64 references of `kernels::cpu::rows`. Their bounds
//! grow with the widest spread of a row, which exp amplifies.

use autograd::ops::layer_norm::layer_norm;
use kernels::cpu::rows::{
    layer_norm_backward_reference, layer_norm_reference, log_softmax_backward_reference, log_softmax_reference,
    softmax_backward_reference, softmax_reference,
};

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

/// The widest spread max − min of any row of `n`: exp(x − max) of an f32
/// x − max rounded by u·|x − max| is off by that much relative, so the
/// softmax bounds grow with it.
pub(super) fn widest_row_range(x: &[f64], n: usize) -> f64 {
    x.chunks(n)
        .map(|r| r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)) - r.iter().fold(f64::INFINITY, |m, &v| m.min(v)))
        .fold(0.0, f64::max)
}

/// `x` `[rows, n]` with dim 0 moved last: `[n, rows]`, and back.
pub(super) fn transpose(x: &[f64], rows: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..n {
            t[j * rows + i] = x[i * n + j];
        }
    }
    t
}

/// softmax or log_softmax over the last dim of `[rows, n]` (or over dim 0
/// when `along_rows`, by transposing around the reference).
fn softmax_family_reference(
    rows: usize,
    n: usize,
    log: bool,
    along_rows: bool,
) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (x, v) = if along_rows {
            (transpose(&r.xs[0], rows, n), transpose(r.v, rows, n))
        } else {
            (r.xs[0].clone(), r.v.to_vec())
        };
        let (len, count) = if along_rows { (rows, n) } else { (n, rows) };
        let spread = 1.0 + widest_row_range(&x, len);
        let (y, dx, y_scale, dx_scale) = if log {
            let y = log_softmax_reference(&x, len);
            let dx = log_softmax_backward_reference(&y, &v, len);
            // y = (x − max) − ln Σ: a few u·(|y| + spread); dx = v − p·Σv.
            let ys: Vec<f64> = y.iter().map(|y| y.abs() + spread).collect();
            let mut dxs = vec![0.0; x.len()];
            for k in 0..count {
                let total: f64 = v[k * len..(k + 1) * len].iter().map(|v| v.abs()).sum();
                for j in k * len..(k + 1) * len {
                    dxs[j] = v[j].abs() + y[j].exp() * total * spread;
                }
            }
            (y, dx, ys, dxs)
        } else {
            let y = softmax_reference(&x, len);
            let dx = softmax_backward_reference(&y, &v, len);
            // y relative: a few u·spread·y; dx = y·(v − Σ v·y).
            let ys: Vec<f64> = y.iter().map(|y| y * spread).collect();
            let mut dxs = vec![0.0; x.len()];
            for k in 0..count {
                let range = k * len..(k + 1) * len;
                let dot: f64 = range.clone().map(|j| (v[j] * y[j]).abs()).sum();
                for j in range {
                    dxs[j] = y[j] * (v[j].abs() + dot) * spread;
                }
            }
            (y, dx, ys, dxs)
        };
        let back = |t: Vec<f64>| if along_rows { transpose(&t, n, rows) } else { t };
        Expected { out: Checked::new(back(y), back(y_scale)), grads: vec![Checked::new(back(dx), back(dx_scale))] }
    }
}

fn layer_norm_case_reference(n: usize, affine: bool) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let (gamma, beta) = if affine { (Some(&r.xs[1][..]), Some(&r.xs[2][..])) } else { (None, None) };
        let (y, mean, rstd) = layer_norm_reference(x, gamma, beta, 1e-5, n);
        let (dx, dgamma, dbeta) = layer_norm_backward_reference(x, gamma, &mean, &rstd, r.v, n);
        // Forward: x̂ = (x − mean)·rstd is off by a few u·(|x̂| + |mean|·rstd)
        // (the mean's rounding, carried), then γ and β act once each.
        let g = |j: usize| gamma.map_or(1.0, |g| g[j].abs());
        let ys: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &xi)| {
                let (row, j) = (i / n, i % n);
                let x_hat = ((xi - mean[row]) * rstd[row]).abs();
                (x_hat + 1.0 + mean[row].abs() * rstd[row]) * g(j) + beta.map_or(0.0, |b| b[j].abs())
            })
            .collect();
        // Backward: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) cancels, so its
        // bound is normwise per row: rstd·(|g| + mean|g| + |x̂|·mean|g·x̂|)
        // at the row's largest.
        let mut dxs = vec![0.0; x.len()];
        for (row, chunk) in dxs.chunks_mut(n).enumerate() {
            let xh = |j: usize| ((x[row * n + j] - mean[row]) * rstd[row]).abs();
            let gj = |j: usize| (r.v[row * n + j] * g(j)).abs();
            let mean_g = (0..n).map(gj).sum::<f64>() / n as f64;
            let mean_gx = (0..n).map(|j| gj(j) * xh(j)).sum::<f64>() / n as f64;
            let largest = (0..n).map(|j| rstd[row] * (gj(j) + mean_g + xh(j) * mean_gx)).fold(0.0, f64::max);
            chunk.fill(largest * (1.0 + mean[row].abs() * rstd[row]));
        }
        let mut grads = vec![Checked::new(dx, dxs)];
        if affine {
            // dγ = Σ_rows v·x̂, dβ = Σ_rows v: sums of products.
            let mut gs = vec![0.0; n];
            let mut bs = vec![0.0; n];
            for (i, &xi) in x.iter().enumerate() {
                let (row, j) = (i / n, i % n);
                gs[j] += (r.v[i] * (xi - mean[row]) * rstd[row]).abs() * (1.0 + mean[row].abs() * rstd[row]);
                bs[j] += r.v[i].abs();
            }
            grads.push(Checked::new(dgamma, gs));
            grads.push(Checked::new(dbeta, bs));
        }
        Expected { out: Checked::new(y, ys), grads }
    }
}

pub(super) fn row_cases(b: &mut Builder, s: KernelSizes) {
    let (m, n) = (s.rows, s.width);
    let x = b.uniform(&[m, n], -4.0, 4.0);
    // 16-lane sums of n terms in f32: √n rounding growth (realistic, not
    // the worst case n), times the spread of the row (see widest_row_range).
    let growth = (n as f64).sqrt();
    let sm = format!("2·√n·u·(1 + R)·y, R the widest row's max − min, n={n}; backward 2·√n·u·(1 + R)·y·(|v| + Σ|v·y|)");
    let lsm = format!("2·√n·u·(|y| + 1 + R), n={n}; backward 2·√n·u·(|v| + (1 + R)·p·Σ|v|)");
    b.add(
        "softmax",
        "dim=-1",
        vec![x.clone()],
        |v| v[0].softmax(-1),
        softmax_family_reference(m, n, false, false),
        bound(2.0 * growth, sm.clone()),
    );
    b.add(
        "softmax",
        "dim=0",
        vec![x.clone()],
        |v| v[0].softmax(0),
        softmax_family_reference(m, n, false, true),
        bound(2.0 * (m as f64).sqrt(), sm.replace("n=", "n=rows=").replace(&format!("n={n}"), &format!("n={m}"))),
    );
    b.add(
        "log_softmax",
        "dim=-1",
        vec![x.clone()],
        |v| v[0].log_softmax(-1),
        softmax_family_reference(m, n, true, false),
        bound(2.0 * growth, lsm.clone()),
    );
    b.add(
        "log_softmax",
        "dim=0",
        vec![x.clone()],
        |v| v[0].log_softmax(0),
        softmax_family_reference(m, n, true, true),
        bound(2.0 * (m as f64).sqrt(), lsm.replace(&format!("n={n}"), &format!("n={m}"))),
    );

    let xo = x.add_scalar(1.5); // a mean away from zero, as activations have
    let (gamma, beta) = (b.uniform(&[n], 0.5, 1.5), b.uniform(&[n], -0.5, 0.5));
    let ln = format!(
        "2·√n·u·((|x̂| + 1 + |mean|·rstd)·|γ| + |β|), n={n}; backward dx normwise per row 2·√n·u·(1 + |mean|·rstd)·max rstd·(|g| + mean|g| + |x̂|·mean|g·x̂|), dγ, dβ 2·√n·u·Σ|terms|"
    );
    b.add(
        "layer_norm",
        "affine",
        vec![xo.clone(), gamma, beta],
        |v| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5),
        layer_norm_case_reference(n, true),
        bound(2.0 * growth, ln.clone()),
    );
    b.add(
        "layer_norm",
        "no affine",
        vec![xo],
        |v| layer_norm(&v[0], None, 1e-5),
        layer_norm_case_reference(n, false),
        bound(2.0 * growth, ln),
    );
}
