//! Softmax cross-entropy over rows of logits: the reference, then the
//! fused kernel.
//!
//! For logits z (one row of V classes) and target t, the loss is the
//! negative log-probability of the target:
//!   loss = −log_softmax(z)_t = logsumexp(z) − z_t,
//!   logsumexp(z) = max + ln Σ exp(z − max)
//!   dloss/dz = softmax(z) − onehot(t) = exp(z − logsumexp) − onehot(t)
//! Rows whose target is `ignore` count for nothing and get a zero gradient.
//!
//! Read [`cross_entropy_reference`] and [`cross_entropy_backward_reference`]
//! first: the book's composition, log-softmax (or softmax) of each row from
//! `rows.rs`'s references, then the target picked out, in f64. The fused
//! kernels after them compute the same; what they change, and why:
//! - The forward keeps only one number per row (the logsumexp), not a
//!   `[rows, V]` log-softmax: with GPT-2's 50,257 classes that saves a
//!   buffer as large as the logits themselves, and the backward rebuilds
//!   softmax(z) from z and that one number.
//! - Rows are shared out to rayon tasks; each task's losses are summed in
//!   f64 and the tasks' sums added in order, so the loss does not depend on
//!   scheduling.
//! - The maximum and Σ exp take SIMD lanes and the vectorisable `fast_exp`
//!   (`lanes::sum_exp_shifted`).

use rayon::prelude::*;

use super::lanes;
use super::math::FastExp;
use super::rows::{log_softmax_reference, softmax_reference};
use super::rows_per_task;

/// Cross-entropy by the definition, in f64: the reference for
/// [`cross_entropy_forward`]. logits `[rows, classes]`, one target per row.
/// Returns the loss summed over counted rows (target ≠ `ignore`) and their
/// number.
pub fn cross_entropy_reference(logits: &[f64], targets: &[i64], classes: usize, ignore: i64) -> (f64, usize) {
    let (mut total, mut count) = (0.0, 0);
    for (row, &target) in logits.chunks(classes).zip(targets) {
        if target == ignore {
            continue;
        }
        let log_p = log_softmax_reference(row, classes);
        total += -log_p[target as usize];
        count += 1;
    }
    (total, count)
}

/// The gradient of `scale` × the summed loss, by the definition, in f64:
/// the reference for [`cross_entropy_backward`]. dlogits `[rows, classes]`
/// = (softmax(z) − onehot(t)) · scale for counted rows, 0 for ignored ones.
pub fn cross_entropy_backward_reference(
    logits: &[f64],
    targets: &[i64],
    classes: usize,
    ignore: i64,
    scale: f64,
) -> Vec<f64> {
    let mut grad = vec![0.0; logits.len()];
    for ((row, &target), grad) in logits.chunks(classes).zip(targets).zip(grad.chunks_mut(classes)) {
        if target == ignore {
            continue;
        }
        let p = softmax_reference(row, classes);
        for (j, g) in grad.iter_mut().enumerate() {
            let onehot = if j == target as usize { 1.0 } else { 0.0 };
            *g = (p[j] - onehot) * scale;
        }
    }
    grad
}

// The fused kernels (see the module notes for what they change and why).

/// Per-row logsumexp and the summed loss over counted rows, with the count.
pub fn cross_entropy_forward<T: FastExp + Send + Sync>(
    logits: &[T],
    targets: &[i64],
    classes: usize,
    ignore: i64,
    lse: &mut [T],
) -> (f64, usize) {
    assert_eq!(
        logits.len(),
        targets.len() * classes,
        "cross_entropy: {} logits for {} rows",
        logits.len(),
        targets.len()
    );
    let rows = rows_per_task(classes);
    let partial: Vec<(f64, usize)> = logits
        .par_chunks(rows * classes)
        .zip(targets.par_chunks(rows).zip(lse.par_chunks_mut(rows)))
        .map(|(z, (t, lse))| {
            let (mut total, mut count) = (0.0f64, 0usize);
            for ((row, &target), lse) in z.chunks(classes).zip(t).zip(lse) {
                let max = lanes::max(row);
                let sum = lanes::sum_exp_shifted(row, max);
                *lse = max + sum.ln();
                if target != ignore {
                    assert!(
                        target >= 0 && (target as usize) < classes,
                        "cross_entropy: target {target} is outside 0..{classes}"
                    );
                    total += (*lse - row[target as usize]).to_f64().unwrap();
                    count += 1;
                }
            }
            (total, count)
        })
        .collect();
    // Summed in chunk order, so the loss does not depend on scheduling.
    partial.iter().fold((0.0, 0), |(s, c), &(ps, pc)| (s + ps, c + pc))
}

/// dlogits = (softmax − onehot) · scale for counted rows, 0 for ignored.
pub fn cross_entropy_backward<T: FastExp + Send + Sync>(
    logits: &[T],
    targets: &[i64],
    lse: &[T],
    classes: usize,
    ignore: i64,
    scale: T,
    grad: &mut [T],
) {
    let rows = rows_per_task(classes);
    grad.par_chunks_mut(rows * classes)
        .zip(logits.par_chunks(rows * classes))
        .zip(targets.par_chunks(rows).zip(lse.par_chunks(rows)))
        .for_each(|((g, z), (t, lse))| {
            for (((g, z), &target), &lse) in g.chunks_mut(classes).zip(z.chunks(classes)).zip(t).zip(lse) {
                if target == ignore {
                    g.iter_mut().for_each(|v| *v = T::zero());
                    continue;
                }
                for (g, &z) in g.iter_mut().zip(z) {
                    *g = (z - lse).fast_exp() * scale;
                }
                g[target as usize] = g[target as usize] - scale;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::{logit_rows, widen, within, worst_relative};
    use super::*;

    /// Widths 1 to GPT-2's 50,257 classes on a 4-thread pool, every fifth
    /// row ignored, against the f64 references: the summed loss within 1e-6
    /// of itself (worst seen 4e-8), every gradient entry within 3e-5 of
    /// itself (worst seen 4e-6: logits at a level of 60 keep ~2^-18 of
    /// their value through z − logsumexp in f32).
    #[test]
    fn f32_kernels_match_the_references() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            let ignore = -100;
            for n in [1, 15, 17, 768, 50257] {
                let (z, rows) = logit_rows(n);
                let targets: Vec<i64> =
                    (0..rows).map(|r| if r % 5 == 4 { ignore } else { ((r * 7919) % n) as i64 }).collect();
                let mut lse = vec![0.0f32; rows];
                let (loss, count) = cross_entropy_forward(&z, &targets, n, ignore, &mut lse);
                let z64 = widen(&z);
                let (want_loss, want_count) = cross_entropy_reference(&z64, &targets, n, ignore);
                assert_eq!(count, want_count);
                within("cross_entropy", n, (loss - want_loss).abs() / (1.0 + want_loss.abs()), 1e-6);
                let scale = 1.0 / count as f32;
                let mut grad = vec![0.0f32; z.len()];
                cross_entropy_backward(&z, &targets, &lse, n, ignore, scale, &mut grad);
                let want = cross_entropy_backward_reference(&z64, &targets, n, ignore, scale as f64);
                within("cross_entropy backward", n, worst_relative(&grad, &want), 3e-5);
            }
        });
    }

    #[test]
    fn loss_and_gradient_of_one_row() {
        let z = [1.0f64, 2.0, 3.0];
        let mut lse = [0.0];
        let (loss, count) = cross_entropy_forward(&z, &[2], 3, -100, &mut lse);
        let expected_lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert_eq!(count, 1);
        assert!((loss - (expected_lse - 3.0)).abs() < 1e-12);
        let mut g = [0.0; 3];
        cross_entropy_backward(&z, &[2], &lse, 3, -100, 1.0, &mut g);
        assert!((g.iter().sum::<f64>()).abs() < 1e-12);
        assert!((g[0] - (1.0 - expected_lse).exp()).abs() < 1e-12);
        let (_, none) = cross_entropy_forward(&z, &[-100], 3, -100, &mut lse);
        assert_eq!(none, 0);
    }
}
