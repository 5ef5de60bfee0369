//! Loss functions.
//!
//! Cross-entropy is fused: for logits z (one row per example) and target
//! class t, loss = −log softmax(z)[t] = logsumexp(z) − z[t], averaged over
//! the rows whose target is not `ignore_index` (−100, as PyTorch; padding
//! in instruction tuning uses it). Its gradient is simply
//! (softmax(z) − onehot(t)) / n_counted, so the backward never forms the
//! log-softmax graph.

use tensor::{DType, Tensor};

use crate::var::{BackwardOp, Var};

/// PyTorch's default `ignore_index`.
pub const IGNORE_INDEX: i64 = -100;

struct CrossEntropy {
    log_probs: Tensor,
    targets: Vec<i64>,
    counted: usize,
    logits_shape: tensor::Shape,
}

impl BackwardOp for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let scale = g.item_f64() / self.counted.max(1) as f64;
        let classes = self.log_probs.dim(-1);
        let mut probs = self.log_probs.exp().to_f64_vec();
        for (row, &t) in self.targets.iter().enumerate() {
            let r = &mut probs[row * classes..(row + 1) * classes];
            if t == IGNORE_INDEX {
                r.iter_mut().for_each(|v| *v = 0.0);
                continue;
            }
            r[t as usize] -= 1.0;
            r.iter_mut().for_each(|v| *v *= scale);
        }
        let grad = Tensor::from_vec(probs, self.logits_shape.clone()).expect("same size").to_dtype(g.dtype());
        vec![Some(grad), None]
    }
}

/// Mean cross-entropy of `logits` `[..., C]` against int64 class `targets`
/// `[...]`, skipping targets equal to [`IGNORE_INDEX`].
pub fn cross_entropy(logits: &Var, targets: &Tensor) -> Var {
    let z = logits.data();
    let classes = z.dim(-1);
    assert_eq!(targets.dtype(), DType::I64, "cross_entropy: targets must be int64, got {}", targets.dtype());
    assert_eq!(
        &z.dims()[..z.rank() - 1],
        targets.dims(),
        "cross_entropy: logits {} and targets {} disagree (targets must be logits' shape without the class dim)",
        z.shape(),
        targets.shape()
    );
    let log_probs = z.reshape(&[-1, classes as isize]).log_softmax(-1);
    let t = targets.to_vec::<i64>();
    let lp = log_probs.to_f64_vec();
    let mut total = 0.0;
    let mut counted = 0;
    for (row, &target) in t.iter().enumerate() {
        if target == IGNORE_INDEX {
            continue;
        }
        assert!(target >= 0 && (target as usize) < classes, "cross_entropy: target {target} is outside 0..{classes}");
        total -= lp[row * classes + target as usize];
        counted += 1;
    }
    // All targets ignored gives NaN, as in PyTorch (0/0).
    let loss = Tensor::full((), total / counted as f64, z.dtype());
    let targets_var = Var::constant(targets.clone());
    Var::from_op(loss, &[logits, &targets_var], || CrossEntropy {
        log_probs,
        targets: t,
        counted,
        logits_shape: z.shape().clone(),
    })
}

struct BinaryCrossEntropy {
    p: Tensor,
    t: Tensor,
}

impl BackwardOp for BinaryCrossEntropy {
    fn name(&self) -> &'static str {
        "binary_cross_entropy"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        // d/dp = (p − t) / (p(1 − p)), with PyTorch's 1e-12 floor on the
        // denominator, averaged over the elements.
        let n = self.p.numel() as f64;
        let denom = self.p.mul(&self.p.neg().add_scalar(1.0)).clamp_min(1e-12);
        let grad = self.p.sub(&self.t).div(&denom).mul_scalar(g.item_f64() / n);
        vec![Some(grad), None]
    }
}

/// Mean binary cross-entropy of probabilities `pred` against `target` in
/// [0, 1]: −mean(t·log p + (1 − t)·log(1 − p)). Logs are clamped at −100 as
/// PyTorch does, so p = 0 or 1 gives a large finite loss.
pub fn binary_cross_entropy(pred: &Var, target: &Var) -> Var {
    let (p, t) = (pred.data(), target.data());
    assert_eq!(p.shape(), t.shape(), "binary_cross_entropy: prediction {} and target {} differ", p.shape(), t.shape());
    let log_p = p.log().clamp_min(-100.0);
    let log_1mp = p.neg().add_scalar(1.0).log().clamp_min(-100.0);
    let per_elem = t.mul(&log_p).add(&t.neg().add_scalar(1.0).mul(&log_1mp)).neg();
    Var::from_op(per_elem.mean_all(), &[pred, target], || BinaryCrossEntropy { p, t })
}

/// Mean squared error, mean((pred − target)²).
pub fn mse_loss(pred: &Var, target: &Var) -> Var {
    pred.sub(target).square().mean_all()
}
