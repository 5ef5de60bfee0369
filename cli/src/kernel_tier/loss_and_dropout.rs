//! Kernel-tier cases for cross-entropy (mean over the rows, some targets
//! ignored) against `kernels::cpu::cross_entropy`'s f64 reference, and for
//! dropout, whose reference reads the f32 output to learn the mask.

use autograd::loss::{cross_entropy, IGNORE_INDEX};
use autograd::ops::dropout::dropout;
use kernels::cpu::cross_entropy::{cross_entropy_backward_reference, cross_entropy_reference};
use tensor::{Generator, Tensor};

use super::rows::widest_row_range;
use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

fn cross_entropy_case_reference(classes: usize, targets: Vec<i64>) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let z = &r.xs[0];
        let (total, count) = cross_entropy_reference(z, &targets, classes, IGNORE_INDEX);
        let scale = r.v[0] / count as f64;
        let grad = cross_entropy_backward_reference(z, &targets, classes, IGNORE_INDEX, scale);
        // Each row's loss logsumexp − z_t is off by a few u·(|lse| + |z_t|
        // + 1); the mean adds them in f64. The gradient (p − onehot)·v/N is
        // off by a few u·|v/N|·(p·(1 + R) + onehot).
        let spread = 1.0 + widest_row_range(z, classes);
        let mut loss_scale = 0.0;
        let mut gs = vec![0.0; z.len()];
        for (row, &t) in targets.iter().enumerate() {
            if t == IGNORE_INDEX {
                continue;
            }
            let zr = &z[row * classes..(row + 1) * classes];
            let max = zr.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + zr.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            loss_scale += lse.abs() + zr[t as usize].abs() + 1.0;
            for (j, &x) in zr.iter().enumerate() {
                let onehot = if j == t as usize { 1.0 } else { 0.0 };
                gs[row * classes + j] = scale.abs() * ((x - lse).exp() * spread + onehot);
            }
        }
        let loss = Checked::new(vec![total / count as f64], vec![loss_scale / count as f64]);
        Expected { out: loss, grads: vec![Checked::new(grad, gs)] }
    }
}

fn dropout_reference(p: f64) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        // The mask is random: which elements survived is read from the f32
        // output (x is never zero here); what is checked is that a kept
        // element is x/(1 − p) and its gradient v/(1 − p).
        let keep: Vec<bool> = r.out32.iter().map(|&y| y != 0.0).collect();
        let x = &r.xs[0];
        let out = x.iter().zip(&keep).map(|(&x, &k)| if k { x / (1.0 - p) } else { 0.0 }).collect();
        let grad = r.v.iter().zip(&keep).map(|(&v, &k)| if k { v / (1.0 - p) } else { 0.0 }).collect();
        Expected { out: Checked::relative(out), grads: vec![Checked::relative(grad)] }
    }
}

pub(super) fn loss_and_dropout_cases(b: &mut Builder, s: KernelSizes) {
    let (rows, classes) = (s.rows, s.inner);
    let logits = b.uniform(&[rows, classes], -4.0, 4.0);
    let targets: Vec<i64> =
        (0..rows).map(|i| if i % 5 == 1 { IGNORE_INDEX } else { ((i * 37) % classes) as i64 }).collect();
    let tt = Tensor::from_vec(targets.clone(), [rows]).unwrap();
    let formula = format!("4·√V·u·mean(|lse| + |z_t| + 1); backward 4·√V·u·|v/N|·(p·(1 + R) + onehot), V={classes}");
    b.add(
        "cross_entropy",
        "ignore_index every 5th row",
        vec![logits],
        move |v| cross_entropy(&v[0], &tt),
        cross_entropy_case_reference(classes, targets),
        bound(4.0 * (classes as f64).sqrt(), formula),
    );

    let x = b.away_from_zero(&[s.rows, s.width]);
    b.add(
        "dropout",
        "p=0.3, training",
        vec![x],
        |v| dropout(&v[0], 0.3, true, &mut Generator::seed(3)),
        dropout_reference(0.3),
        bound(2.0, "2·u·|y| (x·1/(1 − p), rounded twice); backward 2·u·|v/(1 − p)|"),
    );
}
