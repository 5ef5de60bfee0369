//! Row-wise fused kernels: softmax, log-softmax and layer norm.
//!
//! Each works on a dense `[rows, n]` buffer and treats every row on its own,
//! so rows are shared out to rayon tasks. Fusing means one pass computes what
//! a chain of elementwise ops would (max, subtract, exp, sum, divide) without
//! materialising the intermediates.
//!
//! Softmax subtracts the row maximum before exponentiating so `exp` never
//! overflows: softmax(x) = exp(x - max) / Σ exp(x - max).
//!
//! Layer norm over the last dim: y = (x - mean) / sqrt(var + eps) · γ + β with
//! the biased variance. Its backward, with x̂ the normalised input,
//! g = dy·γ and rstd = 1/sqrt(var + eps), is
//! dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)),
//! dγ = Σ_rows dy · x̂, dβ = Σ_rows dy.

use num_traits::Float;
use rayon::prelude::*;

use super::cross_entropy::sum_exp_shifted;
use super::lanes;
use super::math::FastExp;
use super::rows_per_task;

/// `out[r] = softmax(x[r])` for each row of length `n`.
pub fn softmax<T: FastExp + Send + Sync>(x: &[T], out: &mut [T], n: usize) {
    assert_eq!(x.len(), out.len(), "softmax: input {} vs output {}", x.len(), out.len());
    if n == 0 {
        return;
    }
    let task = rows_per_task(n) * n;
    out.par_chunks_mut(task).zip(x.par_chunks(task)).for_each(|(o, x)| {
        for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
            let max = lanes::max(x);
            // Exponentials in one vectorised pass, then their sum in lanes.
            for (o, &v) in o.iter_mut().zip(x) {
                *o = (v - max).fast_exp();
            }
            let sum = lanes::sum(o);
            let inv = T::one() / sum;
            o.iter_mut().for_each(|o| *o = *o * inv);
        }
    });
}

/// `out[r] = log_softmax(x[r]) = (x - max) - ln Σ exp(x - max)`.
pub fn log_softmax<T: FastExp + Send + Sync>(x: &[T], out: &mut [T], n: usize) {
    assert_eq!(x.len(), out.len(), "log_softmax: input {} vs output {}", x.len(), out.len());
    if n == 0 {
        return;
    }
    let task = rows_per_task(n) * n;
    out.par_chunks_mut(task).zip(x.par_chunks(task)).for_each(|(o, x)| {
        for (o, x) in o.chunks_mut(n).zip(x.chunks(n)) {
            let max = lanes::max(x);
            let sum = sum_exp_shifted(x, max);
            // (x − max) − ln Σ, in that order: adding ln Σ to max first would
            // round the shift to the spacing of floats near |x| and lose the
            // small results' digits.
            let log_sum = sum.ln();
            for (o, &v) in o.iter_mut().zip(x) {
                *o = (v - max) - log_sum;
            }
        }
    });
}

/// Backward of softmax given its output y: dx = y · (dy - Σ dy·y).
pub fn softmax_backward<T: Float + Send + Sync>(y: &[T], dy: &[T], dx: &mut [T], n: usize) {
    if n == 0 {
        return;
    }
    let task = rows_per_task(n) * n;
    dx.par_chunks_mut(task).zip(y.par_chunks(task).zip(dy.par_chunks(task))).for_each(|(dx, (y, dy))| {
        for (dx, (y, dy)) in dx.chunks_mut(n).zip(y.chunks(n).zip(dy.chunks(n))) {
            let dot = lanes::dot(y, dy);
            for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = y * (dy - dot);
            }
        }
    });
}

/// Backward of log-softmax given its output y: dx = dy - exp(y) · Σ dy.
pub fn log_softmax_backward<T: Float + Send + Sync>(y: &[T], dy: &[T], dx: &mut [T], n: usize) {
    if n == 0 {
        return;
    }
    let task = rows_per_task(n) * n;
    dx.par_chunks_mut(task).zip(y.par_chunks(task).zip(dy.par_chunks(task))).for_each(|(dx, (y, dy))| {
        for (dx, (y, dy)) in dx.chunks_mut(n).zip(y.chunks(n).zip(dy.chunks(n))) {
            let sum = lanes::sum(dy);
            for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = dy - y.exp() * sum;
            }
        }
    });
}

/// Layer norm forward. Writes y and, per row, the mean and reciprocal
/// standard deviation that the backward needs. `gamma`/`beta` may be absent.
pub fn layer_norm<T: Float + Send + Sync>(
    x: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: f64,
    n: usize,
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
) {
    assert_eq!(x.len(), y.len(), "layer_norm: input {} vs output {}", x.len(), y.len());
    if n == 0 {
        return;
    }
    let eps = T::from(eps).unwrap();
    let inv_n = T::one() / T::from(n).unwrap();
    let rows = rows_per_task(n);
    y.par_chunks_mut(rows * n)
        .zip(x.par_chunks(rows * n))
        .zip(mean.par_chunks_mut(rows).zip(rstd.par_chunks_mut(rows)))
        .for_each(|((y, x), (mean, rstd))| {
            for (((y, x), mean), rstd) in y.chunks_mut(n).zip(x.chunks(n)).zip(mean).zip(rstd) {
                let mu = lanes::sum(x) * inv_n;
                let var = lanes::sum_map(x, |v| (v - mu) * (v - mu)) * inv_n;
                let r = T::one() / (var + eps).sqrt();
                *mean = mu;
                *rstd = r;
                for (j, (y, &v)) in y.iter_mut().zip(x).enumerate() {
                    let g = gamma.map_or(T::one(), |g| g[j]);
                    let b = beta.map_or(T::zero(), |b| b[j]);
                    *y = (v - mu) * r * g + b;
                }
            }
        });
}

/// Layer norm backward: writes dx for every row and returns (dγ, dβ) summed
/// over rows. The per-row partial sums for dγ/dβ are combined in row order,
/// so the result is deterministic.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<T: Float + Send + Sync>(
    x: &[T],
    gamma: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
    dy: &[T],
    n: usize,
    dx: &mut [T],
) -> (Vec<T>, Vec<T>) {
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let inv_n = T::one() / T::from(n).unwrap();
    let rows = rows_per_task(n);
    let partials: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(rows * n)
        .zip(x.par_chunks(rows * n).zip(dy.par_chunks(rows * n)))
        .zip(mean.par_chunks(rows).zip(rstd.par_chunks(rows)))
        .map(|((dx, (x, dy)), (mean, rstd))| {
            let mut dgamma = vec![T::zero(); n];
            let mut dbeta = vec![T::zero(); n];
            // Per row: x̂ and g = dy·γ as whole rows first, so that every
            // loop below is either elementwise or a lane reduction, all of
            // which vectorise.
            let (mut xhat, mut g) = (vec![T::zero(); n], vec![T::zero(); n]);
            for ((dx, (x, dy)), (&mu, &r)) in
                dx.chunks_mut(n).zip(x.chunks(n).zip(dy.chunks(n))).zip(mean.iter().zip(rstd))
            {
                for (xhat, &x) in xhat.iter_mut().zip(x) {
                    *xhat = (x - mu) * r;
                }
                match gamma {
                    Some(gamma) => g.iter_mut().zip(dy).zip(gamma).for_each(|((g, &dy), &gamma)| *g = dy * gamma),
                    None => g.copy_from_slice(dy),
                }
                let mean_g = lanes::sum(&g) * inv_n;
                let mean_gx = lanes::dot(&g, &xhat) * inv_n;
                for j in 0..n {
                    dgamma[j] = dgamma[j] + dy[j] * xhat[j];
                    dbeta[j] = dbeta[j] + dy[j];
                    dx[j] = r * (g[j] - mean_g - xhat[j] * mean_gx);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![T::zero(); n];
    let mut dbeta = vec![T::zero(); n];
    for (pg, pb) in partials {
        for j in 0..n {
            dgamma[j] = dgamma[j] + pg[j];
            dbeta[j] = dbeta[j] + pb[j];
        }
    }
    (dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_inputs() {
        let x = [1000.0f64, 1001.0, 1002.0, -5.0, 0.0, 5.0];
        let mut y = [0.0; 6];
        softmax(&x, &mut y, 3);
        assert!((y[..3].iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((y[2] - 0.665_240_955_774_821_5).abs() < 1e-12);
        let mut l = [0.0; 6];
        log_softmax(&x, &mut l, 3);
        for (a, b) in l.iter().zip(&y) {
            assert!((a.exp() - b).abs() < 1e-12);
        }
    }

    #[test]
    fn layer_norm_normalises_each_row() {
        let x = [1.0f64, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 2.0];
        let (mut y, mut mean, mut rstd) = ([0.0; 8], [0.0; 2], [0.0; 2]);
        layer_norm(&x, None, None, 0.0, 4, &mut y, &mut mean, &mut rstd);
        assert_eq!(mean, [2.5, 0.5]);
        let var: f64 = y[..4].iter().map(|v| v * v).sum::<f64>() / 4.0;
        assert!((var - 1.0).abs() < 1e-12);
    }
}
