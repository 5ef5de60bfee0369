//! RMSNorm over the last dimension (Llama's norm), forward and backward.
//!
//! For a row x of n values (one token's channels, or one head's `head_dim`
//! for the per-head norm of Qwen3's q and k):
//!   rstd = 1 / sqrt(mean(x²) + eps),   x̂ = x · rstd,   y = x̂ · w
//! It is layer norm without the mean and without the shift: nothing is
//! subtracted, so the row keeps its direction and only its length is set.
//! The product is formed as transformers' `LlamaRMSNorm` does: normalise
//! first, then multiply by the weight.
//!
//! Backward, with g = dy · w:
//!   dx = rstd · (g − x̂ · mean(g · x̂)),   dw = Σ_rows dy · x̂
//! (layer norm's formula without its mean(g) term, since the mean was never
//! subtracted).
//!
//! [`rms_norm_reference`] and [`rms_norm_backward_reference`] are those
//! formulas as loops in f64. The fused kernels after them compute the same
//! numbers the way `rows.rs`'s layer norm does: rows shared out to rayon
//! tasks of about 16k elements, sums in 16 lanes, one division per row,
//! and dw gathered per task and added in task order (deterministic).

use num_traits::Float;
use rayon::prelude::*;

use super::lanes;
use super::rows_per_task;

/// RMSNorm of each row of `n`, in f64: the reference for [`rms_norm`].
/// x `[rows, n]`, w `[n]` (absent: ones). Returns y `[rows, n]` and the
/// per-row rstd.
pub fn rms_norm_reference(x: &[f64], weight: Option<&[f64]>, eps: f64, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut rstds) = (vec![0.0; x.len()], Vec::new());
    for (x, y) in x.chunks(n).zip(y.chunks_mut(n)) {
        let mean_square = x.iter().map(|v| v * v).sum::<f64>() / n as f64;
        let rstd = 1.0 / (mean_square + eps).sqrt();
        for (j, (y, &v)) in y.iter_mut().zip(x).enumerate() {
            *y = v * rstd * weight.map_or(1.0, |w| w[j]);
        }
        rstds.push(rstd);
    }
    (y, rstds)
}

/// The backward of RMSNorm by the formulas above, in f64: the reference
/// for [`rms_norm_backward`]. Returns dx `[rows, n]` and dw `[n]`.
pub fn rms_norm_backward_reference(
    x: &[f64],
    weight: Option<&[f64]>,
    rstd: &[f64],
    dy: &[f64],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; n]);
    for (r, ((x, dy), dx)) in x.chunks(n).zip(dy.chunks(n)).zip(dx.chunks_mut(n)).enumerate() {
        let x_hat: Vec<f64> = x.iter().map(|&v| v * rstd[r]).collect();
        let g: Vec<f64> = dy.iter().enumerate().map(|(j, &d)| d * weight.map_or(1.0, |w| w[j])).collect();
        let mean_g_x_hat = g.iter().zip(&x_hat).map(|(g, h)| g * h).sum::<f64>() / n as f64;
        for j in 0..n {
            dx[j] = rstd[r] * (g[j] - x_hat[j] * mean_g_x_hat);
            dw[j] += dy[j] * x_hat[j];
        }
    }
    (dx, dw)
}

/// RMSNorm forward: writes y and, per row, the rstd the backward needs.
pub fn rms_norm<T: Float + Send + Sync>(
    x: &[T],
    weight: Option<&[T]>,
    eps: f64,
    n: usize,
    y: &mut [T],
    rstd: &mut [T],
) {
    assert_eq!(x.len(), y.len(), "rms_norm: input {} vs output {}", x.len(), y.len());
    if n == 0 {
        return;
    }
    let eps = T::from(eps).unwrap();
    let inv_n = T::one() / T::from(n).unwrap();
    let rows = rows_per_task(n);
    y.par_chunks_mut(rows * n).zip(x.par_chunks(rows * n)).zip(rstd.par_chunks_mut(rows)).for_each(|((y, x), rstd)| {
        for ((y, x), rstd) in y.chunks_mut(n).zip(x.chunks(n)).zip(rstd) {
            let r = T::one() / (lanes::sum_map(x, |v| v * v) * inv_n + eps).sqrt();
            *rstd = r;
            match weight {
                // (x · rstd) · w, in that order, as transformers rounds it.
                Some(w) => y.iter_mut().zip(x).zip(w).for_each(|((y, &v), &w)| *y = v * r * w),
                None => y.iter_mut().zip(x).for_each(|(y, &v)| *y = v * r),
            }
        }
    });
}

/// RMSNorm backward: writes dx for every row and returns dw summed over
/// rows (per-task partial sums added in task order: deterministic).
pub fn rms_norm_backward<T: Float + Send + Sync>(
    x: &[T],
    weight: Option<&[T]>,
    rstd: &[T],
    dy: &[T],
    n: usize,
    dx: &mut [T],
) -> Vec<T> {
    if n == 0 {
        return Vec::new();
    }
    let inv_n = T::one() / T::from(n).unwrap();
    let rows = rows_per_task(n);
    let partials: Vec<Vec<T>> = dx
        .par_chunks_mut(rows * n)
        .zip(x.par_chunks(rows * n).zip(dy.par_chunks(rows * n)))
        .zip(rstd.par_chunks(rows))
        .map(|((dx, (x, dy)), rstd)| {
            let mut dw = vec![T::zero(); n];
            // x̂ and g as whole rows first, so each loop below vectorises.
            let (mut x_hat, mut g) = (vec![T::zero(); n], vec![T::zero(); n]);
            for ((dx, (x, dy)), &r) in dx.chunks_mut(n).zip(x.chunks(n).zip(dy.chunks(n))).zip(rstd) {
                x_hat.iter_mut().zip(x).for_each(|(h, &v)| *h = v * r);
                match weight {
                    Some(w) => g.iter_mut().zip(dy).zip(w).for_each(|((g, &d), &w)| *g = d * w),
                    None => g.copy_from_slice(dy),
                }
                let mean_gx = lanes::dot(&g, &x_hat) * inv_n;
                for j in 0..n {
                    dw[j] = dw[j] + dy[j] * x_hat[j];
                    dx[j] = r * (g[j] - x_hat[j] * mean_gx);
                }
            }
            dw
        })
        .collect();
    let mut dw = vec![T::zero(); n];
    for partial in partials {
        dw.iter_mut().zip(partial).for_each(|(d, p)| *d = *d + p);
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::rows::tests::{logit_rows, widen, within, worst_by_row};

    /// At the widths RMSNorm meets (a head's 64 and 128, ragged 17, Llama's
    /// 2048 and 4096 channels) on a 4-thread pool, f32 within a few ulp of
    /// each row's largest value. (Not width 1: there x̂ = ±1 up to eps and
    /// dx = rstd·g·(1 − x̂²) is all cancellation, in any precision.)
    #[test]
    fn f32_kernels_match_their_references() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            for n in [17, 64, 128, 2048, 4096] {
                let (x, rows) = logit_rows(n);
                let x64 = widen(&x);
                let dy: Vec<f32> = (0..rows * n).map(|i| (i as f32 * 0.271).cos()).collect();
                let w: Vec<f32> = (0..n).map(|j| 1.0 + 0.5 * (j as f32 * 0.37).sin()).collect();
                for weight in [None, Some(&w[..])] {
                    let w64 = weight.map(widen);
                    let (mut y, mut rstd, mut dx) = (vec![0.0f32; x.len()], vec![0.0f32; rows], vec![0.0f32; x.len()]);
                    rms_norm(&x, weight, 1e-6, n, &mut y, &mut rstd);
                    let (want_y, want_rstd) = rms_norm_reference(&x64, w64.as_deref(), 1e-6, n);
                    within("rms_norm", n, worst_by_row(&y, &want_y, n), 1e-6);
                    within("rms_norm rstd", n, worst_by_row(&rstd, &want_rstd, 1), 1e-6);
                    let dw = rms_norm_backward(&x, weight, &rstd, &dy, n, &mut dx);
                    let (want_dx, want_dw) =
                        rms_norm_backward_reference(&x64, w64.as_deref(), &want_rstd, &widen(&dy), n);
                    within("rms_norm backward dx", n, worst_by_row(&dx, &want_dx, n), 1e-5);
                    within("rms_norm backward dw", n, worst_by_row(&dw, &want_dw, n), 1e-5);
                }
            }
        });
    }

    #[test]
    fn rows_come_out_with_unit_root_mean_square() {
        let x = [3.0f64, 4.0, 0.0, -2.0];
        let (mut y, mut rstd) = ([0.0; 4], [0.0; 2]);
        rms_norm(&x, None, 0.0, 2, &mut y, &mut rstd);
        // Row [3, 4]: rms = sqrt(12.5); row [0, -2]: rms = sqrt(2).
        assert!((rstd[0] - 1.0 / 12.5f64.sqrt()).abs() < 1e-15);
        for row in y.chunks(2) {
            assert!(((row[0] * row[0] + row[1] * row[1]) / 2.0 - 1.0).abs() < 1e-12);
        }
    }
}
