//! Row-wise kernels: softmax, log-softmax and layer norm, each written
//! twice: a plain reference, then the fused kernel.
//!
//! Each works on a dense `[rows, n]` buffer and treats every row on its own.
//!
//! Softmax subtracts the row maximum before exponentiating so `exp` never
//! overflows (the factor e^−max cancels between numerator and sum):
//!   softmax(x) = exp(x − max) / Σ exp(x − max)
//!   log_softmax(x) = (x − max) − ln Σ exp(x − max)
//! Their backwards, given the output y and its gradient dy:
//!   softmax: dx = y · (dy − Σ dy·y),  log-softmax: dx = dy − exp(y) · Σ dy.
//!
//! Layer norm over the last dim: y = (x − mean) / sqrt(var + eps) · γ + β
//! with the biased variance. Its backward, with x̂ the normalised input,
//! g = dy·γ and rstd = 1/sqrt(var + eps), is
//!   dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)),
//!   dγ = Σ_rows dy · x̂,  dβ = Σ_rows dy.
//!
//! Read the `*_reference` functions first: one row at a time, the formulas
//! above as loops, in f64. The fused kernels after them compute the same
//! numbers; what they change, and why:
//! - Rows are shared out to rayon tasks of about 16k elements
//!   (`rows_per_task`), enough work per task to hide the scheduling.
//! - Fusing: each step is one pass over a row that stays in cache, and the
//!   intermediates of a chain of elementwise ops (x − max, its exp, ...)
//!   are never stored as tensors.
//! - Sums, maxima and dot products run in 16 SIMD lanes (`lanes.rs`)
//!   rather than one chain of dependent adds; f32 exponentials come from
//!   the vectorisable `fast_exp` (`math.rs`, within 2 ulp); a row divides
//!   once (a reciprocal, multiplied in).
//! - Layer norm's backward gathers dγ and dβ per task and adds the tasks'
//!   partial sums in order, so the result does not depend on scheduling.
//!
//! So a fused kernel differs from its reference only by rounding (the
//! tests hold f32 to ~1e-6 at widths from 1 to 50,257).

use num_traits::Float;
use rayon::prelude::*;

use super::lanes;
use super::math::FastExp;
use super::rows_per_task;

/// softmax of each row of `n`, by the definition, in f64: the reference
/// for [`softmax`]. x `[rows, n]` → `[rows, n]`.
pub fn softmax_reference(x: &[f64], n: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (x, y) in x.chunks(n).zip(y.chunks_mut(n)) {
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let total: f64 = x.iter().map(|&v| (v - max).exp()).sum();
        for (y, &v) in y.iter_mut().zip(x) {
            *y = (v - max).exp() / total;
        }
    }
    y
}

/// log_softmax of each row of `n`, by the definition, in f64: the
/// reference for [`log_softmax`]. x `[rows, n]` → `[rows, n]`.
pub fn log_softmax_reference(x: &[f64], n: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (x, y) in x.chunks(n).zip(y.chunks_mut(n)) {
        let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let log_total = x.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
        for (y, &v) in y.iter_mut().zip(x) {
            *y = (v - max) - log_total;
        }
    }
    y
}

/// The backward of softmax given its output y `[rows, n]` and dy: the
/// reference for [`softmax_backward`]: `dx[j] = y[j] · (dy[j] − Σ_i dy[i]·y[i])`.
pub fn softmax_backward_reference(y: &[f64], dy: &[f64], n: usize) -> Vec<f64> {
    let mut dx = vec![0.0; y.len()];
    for ((y, dy), dx) in y.chunks(n).zip(dy.chunks(n)).zip(dx.chunks_mut(n)) {
        let dot: f64 = y.iter().zip(dy).map(|(y, dy)| y * dy).sum();
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = y * (dy - dot);
        }
    }
    dx
}

/// The backward of log-softmax given its output y `[rows, n]` and dy: the
/// reference for [`log_softmax_backward`]: `dx[j] = dy[j] − exp(y[j]) · Σ_i dy[i]`.
pub fn log_softmax_backward_reference(y: &[f64], dy: &[f64], n: usize) -> Vec<f64> {
    let mut dx = vec![0.0; y.len()];
    for ((y, dy), dx) in y.chunks(n).zip(dy.chunks(n)).zip(dx.chunks_mut(n)) {
        let total: f64 = dy.iter().sum();
        for ((dx, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            *dx = dy - y.exp() * total;
        }
    }
    dx
}

/// Layer norm of each row of `n`, by the definition, in f64: the reference
/// for [`layer_norm`]. x `[rows, n]`, γ and β `[n]` (absent: 1 and 0).
/// Returns y `[rows, n]` and, per row, the mean and 1/sqrt(var + eps).
pub fn layer_norm_reference(
    x: &[f64],
    gamma: Option<&[f64]>,
    beta: Option<&[f64]>,
    eps: f64,
    n: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut y, mut means, mut rstds) = (vec![0.0; x.len()], Vec::new(), Vec::new());
    for (x, y) in x.chunks(n).zip(y.chunks_mut(n)) {
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for (j, (y, &v)) in y.iter_mut().zip(x).enumerate() {
            let x_hat = (v - mean) * rstd;
            *y = x_hat * gamma.map_or(1.0, |g| g[j]) + beta.map_or(0.0, |b| b[j]);
        }
        means.push(mean);
        rstds.push(rstd);
    }
    (y, means, rstds)
}

/// The backward of layer norm, by the formulas above, in f64: the
/// reference for [`layer_norm_backward`]. x and dy `[rows, n]`, γ `[n]`,
/// and the per-row mean and rstd the forward returned. Returns dx
/// `[rows, n]`, dγ and dβ `[n]`.
pub fn layer_norm_backward_reference(
    x: &[f64],
    gamma: Option<&[f64]>,
    mean: &[f64],
    rstd: &[f64],
    dy: &[f64],
    n: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut dx, mut dgamma, mut dbeta) = (vec![0.0; x.len()], vec![0.0; n], vec![0.0; n]);
    for (r, ((x, dy), dx)) in x.chunks(n).zip(dy.chunks(n)).zip(dx.chunks_mut(n)).enumerate() {
        let x_hat: Vec<f64> = x.iter().map(|&v| (v - mean[r]) * rstd[r]).collect();
        let g: Vec<f64> = dy.iter().enumerate().map(|(j, &d)| d * gamma.map_or(1.0, |g| g[j])).collect();
        let mean_g = g.iter().sum::<f64>() / n as f64;
        let mean_g_x_hat = g.iter().zip(&x_hat).map(|(g, h)| g * h).sum::<f64>() / n as f64;
        for j in 0..n {
            dx[j] = rstd[r] * (g[j] - mean_g - x_hat[j] * mean_g_x_hat);
            dgamma[j] += dy[j] * x_hat[j];
            dbeta[j] += dy[j];
        }
    }
    (dx, dgamma, dbeta)
}

// The fused kernels (see the module notes for what they change and why).

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
            let sum = lanes::sum_exp_shifted(x, max);
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
pub(crate) mod tests {
    use super::*;

    /// Rows whose values span ±4 around a level that changes row to row
    /// (0, 30, 60), so the shift by the maximum matters: enough rows of `n`
    /// for several rayon tasks.
    pub(crate) fn logit_rows(n: usize) -> (Vec<f32>, usize) {
        let rows = 2 * rows_per_task(n) + 3;
        let x = (0..rows * n).map(|i| 4.0 * (i as f32 * 0.618).sin() + (i / n % 3) as f32 * 30.0).collect();
        (x, rows)
    }

    pub(crate) fn widen(x: &[f32]) -> Vec<f64> {
        x.iter().map(|&v| v as f64).collect()
    }

    /// Largest |got − want| over a row, as a fraction of the row's largest
    /// |want| (rounding scales with the row's magnitudes).
    pub(crate) fn worst_by_row(got: &[f32], want: &[f64], n: usize) -> f64 {
        assert_eq!(got.len(), want.len());
        let rows = got.chunks(n).zip(want.chunks(n));
        rows.map(|(g, w)| {
            let size = w.iter().fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
            g.iter().zip(w).map(|(&g, w)| (g as f64 - w).abs() / size).fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
    }

    /// Largest |got − want| / |want|, for outputs with no zero to compare
    /// against (probabilities), where even the smallest must be right.
    pub(crate) fn worst_relative(got: &[f32], want: &[f64]) -> f64 {
        assert_eq!(got.len(), want.len());
        let error = |(&g, &w): (&f32, &f64)| if g as f64 == w { 0.0 } else { (g as f64 - w).abs() / w.abs() };
        got.iter().zip(want).map(error).fold(0.0, f64::max)
    }

    /// Panics naming the kernel when `error` exceeds its tolerance.
    pub(crate) fn within(what: &str, n: usize, error: f64, tolerance: f64) {
        assert!(error <= tolerance, "{what} at width {n}: off by {error:e} (tolerance {tolerance:e})");
    }

    /// The widths a GPT meets (1, one head's 15 or 17 that fit no vector,
    /// GPT-2's 768 channels, its 50,257 classes) on a 4-thread pool.
    /// Tolerances, about 5–20× the worst error seen, are fractions of each
    /// row's largest value, or for softmax of each probability itself. Layer norm's are the loosest: rows at a level
    /// of 60 with a spread of ±4 lose digits to x − mean in f32, as they
    /// would in any f32 layer norm.
    #[test]
    fn f32_kernels_match_their_references() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            for n in [1, 15, 17, 768, 50257] {
                let (x, rows) = logit_rows(n);
                let x64 = widen(&x);
                let dy: Vec<f32> = (0..rows * n).map(|i| (i as f32 * 0.271).cos()).collect();
                let dy64 = widen(&dy);
                let (mut y, mut dx) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);

                softmax(&x, &mut y, n);
                within("softmax", n, worst_relative(&y, &softmax_reference(&x64, n)), 1e-5);
                softmax_backward(&y, &dy, &mut dx, n);
                let want = softmax_backward_reference(&widen(&y), &dy64, n);
                within("softmax backward", n, worst_by_row(&dx, &want, n), 2e-5);

                log_softmax(&x, &mut y, n);
                within("log_softmax", n, worst_by_row(&y, &log_softmax_reference(&x64, n), n), 1e-6);
                log_softmax_backward(&y, &dy, &mut dx, n);
                let want = log_softmax_backward_reference(&widen(&y), &dy64, n);
                within("log_softmax backward", n, worst_by_row(&dx, &want, n), 5e-6);

                let gamma: Vec<f32> = (0..n).map(|j| 1.0 + 0.5 * (j as f32 * 0.37).sin()).collect();
                let beta: Vec<f32> = (0..n).map(|j| 0.1 * (j as f32 * 0.11).cos()).collect();
                for affine in [false, true] {
                    let (g, b) = if affine { (Some(&gamma[..]), Some(&beta[..])) } else { (None, None) };
                    let (g64, b64) = (g.map(widen), b.map(widen));
                    let (mut mean, mut rstd) = (vec![0.0f32; rows], vec![0.0f32; rows]);
                    layer_norm(&x, g, b, 1e-5, n, &mut y, &mut mean, &mut rstd);
                    let (want_y, want_mean, want_rstd) =
                        layer_norm_reference(&x64, g64.as_deref(), b64.as_deref(), 1e-5, n);
                    within("layer_norm", n, worst_by_row(&y, &want_y, n), 5e-5);
                    // The mean as a fraction of its row's level (60 at most).
                    let mean_error = mean.iter().zip(&want_mean).map(|(&m, w)| (m as f64 - w).abs() / 60.0);
                    within("layer_norm mean", n, mean_error.fold(0.0, f64::max), 5e-6);
                    within("layer_norm rstd", n, worst_by_row(&rstd, &want_rstd, 1), 1e-6);
                    let (dgamma, dbeta) = layer_norm_backward(&x, g, &mean, &rstd, &dy, n, &mut dx);
                    let (want_dx, want_dgamma, want_dbeta) =
                        layer_norm_backward_reference(&x64, g64.as_deref(), &want_mean, &want_rstd, &dy64, n);
                    within("layer_norm backward dx", n, worst_by_row(&dx, &want_dx, n), 5e-5);
                    within("layer_norm backward dγ", n, worst_by_row(&dgamma, &want_dgamma, n), 2e-4);
                    within("layer_norm backward dβ", n, worst_by_row(&dbeta, &want_dbeta, n), 2e-4);
                }
            }
        });
    }

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
