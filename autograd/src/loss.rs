//! Loss functions.
//!
//! Cross-entropy is fused: for logits z (one row per example) and target
//! class t, loss = −log softmax(z)[t] = logsumexp(z) − z[t], averaged over
//! the rows whose target is not `ignore_index` (−100, as PyTorch; padding
//! in instruction tuning uses it). Its gradient is simply
//! (softmax(z) − onehot(t)) / n_counted, so the backward never forms the
//! log-softmax graph. Its `backward_graph` (for second derivatives) writes
//! the same formula with a differentiable softmax.

use tensor::{DType, Device, Shape, Tensor};

use crate::var::{BackwardOp, Var};

/// PyTorch's default `ignore_index`.
pub const IGNORE_INDEX: i64 = -100;

struct CrossEntropy {
    /// The logits as `[rows, classes]`, and their shape as given.
    logits: Tensor,
    shape: Shape,
    targets: Tensor,
    lse: Tensor,
    counted: usize,
}

impl BackwardOp for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
        let scale = g.item_f64() / self.counted.max(1) as f64;
        let grad = self.logits.cross_entropy_backward(&self.targets, &self.lse, IGNORE_INDEX, scale);
        vec![Some(grad.reshape_to(self.shape.clone())), None]
    }
    /// (softmax(z) − onehot(t)) · dL / n_counted on `Var`s: the softmax is
    /// recomputed from the logits `Var`, so it is differentiated again; the
    /// one-hot targets and the mask of counted rows are constants.
    fn backward_graph(&self, g: &Var, inputs: &[Var], _: &Var, _: &[bool]) -> Option<Vec<Option<Var>>> {
        let z = &inputs[0];
        let rows = z.reshape(&[-1, z.dim(-1) as isize]);
        let (onehot, counted_rows) = self.onehot_targets(rows.dims()[1], z.dtype(), z.device());
        let probs = rows.softmax(-1).mul(&Var::constant(counted_rows));
        let scale = g.mul_scalar(1.0 / self.counted.max(1) as f64);
        Some(vec![Some(probs.sub(&Var::constant(onehot)).mul(&scale).reshape_to(&self.shape)), None])
    }
}

impl CrossEntropy {
    /// The targets as one-hot rows `[rows, classes]`, and a `[rows, 1]` mask
    /// that is 1 for counted rows and 0 for ignored ones (whose one-hot row
    /// is all zeros).
    fn onehot_targets(&self, classes: usize, dtype: DType, device: Device) -> (Tensor, Tensor) {
        let targets = self.targets.to_vec::<i64>();
        let mut onehot = vec![0.0; targets.len() * classes];
        let mut counted = vec![0.0; targets.len()];
        for (row, &t) in targets.iter().enumerate() {
            if t != IGNORE_INDEX {
                onehot[row * classes + t as usize] = 1.0;
                counted[row] = 1.0;
            }
        }
        let place = |v: Vec<f64>, dims: [usize; 2]| {
            let t = Tensor::from_vec(v, dims).expect("length matches").to_dtype(dtype);
            t.to_device(device).expect("the logits' device")
        };
        (place(onehot, [targets.len(), classes]), place(counted, [targets.len(), 1]))
    }
}

/// Mean cross-entropy of `logits` `[..., C]` against int64 class `targets`
/// `[...]`, skipping targets equal to [`IGNORE_INDEX`]. All targets ignored
/// gives NaN, as in PyTorch (0/0).
pub fn cross_entropy(logits: &Var, targets: &Tensor) -> Var {
    let z = logits.data();
    let classes = z.dim(-1);
    assert_eq!(
        &z.dims()[..z.rank() - 1],
        targets.dims(),
        "cross_entropy: logits {} and targets {} disagree (targets must be logits' shape without the class dim)",
        z.shape(),
        targets.shape()
    );
    let rows = z.reshape(&[-1, classes as isize]);
    let flat_targets = targets.flatten_all();
    let out = rows.cross_entropy(&flat_targets, IGNORE_INDEX);
    let loss = Tensor::full((), out.loss, z.dtype());
    let targets_var = Var::constant(targets.clone());
    Var::from_op(loss, &[logits, &targets_var], || CrossEntropy {
        logits: rows,
        shape: z.shape().clone(),
        targets: flat_targets,
        lse: out.lse,
        counted: out.counted,
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
