//! Fused softmax cross-entropy over rows of logits.
//!
//! For logits z (one row of V classes) and target t:
//!   loss = logsumexp(z) − z[t],   logsumexp(z) = max + ln Σ exp(z − max)
//!   dloss/dz = softmax(z) − onehot(t) = exp(z − logsumexp) − onehot(t)
//! The forward keeps only one number per row (the logsumexp), not a
//! `[rows, V]` log-softmax: with GPT-2's 50,257 classes that saves a buffer
//! as large as the logits themselves. Rows whose target is `ignore` count
//! for nothing and get a zero gradient.

use rayon::prelude::*;

use super::lanes;
use super::math::FastExp;
use super::rows_per_task;

/// Σ exp(v − shift) over a row. The exponentials are taken a block at a
/// time into a small buffer and summed there in SIMD lanes (`lanes`), both
/// loops the compiler vectorises; the blocks' sums are added in order.
pub fn sum_exp_shifted<T: FastExp>(row: &[T], shift: T) -> T {
    const BLOCK: usize = 256;
    let mut buffer = [T::zero(); BLOCK];
    let mut sum = T::zero();
    for block in row.chunks(BLOCK) {
        let exps = &mut buffer[..block.len()];
        for (e, &v) in exps.iter_mut().zip(block) {
            *e = (v - shift).fast_exp();
        }
        sum = sum + lanes::sum(exps);
    }
    sum
}

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
                let sum = sum_exp_shifted(row, max);
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
    use super::*;

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
