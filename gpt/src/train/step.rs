//! One training step: the few lines every training loop here shares.
//!
//! The inner loop of the book's `train_model_simple` (chapter 5), with
//! gradient accumulation and clipping added:
//!
//! ```text
//! set the learning rate, switch dropout on, zero the gradients
//! for each of the step's n micro-batches (inputs [B, T], targets):
//!     loss = loss_of_batch(model, batch)       forward + loss (next_token_loss below)
//!     (loss / n).backward()                    gradients add up (+=) across micro-batches
//! a mean loss that is NaN or infinite: stop    before it reaches the weights
//! clip the global gradient norm to max_norm    one bad batch cannot throw the weights far
//! optimizer.step()                             AdamW updates every trainable weight
//! ```
//!
//! Scaling each micro-batch's loss by 1/n makes the summed gradients the
//! gradient of the mean loss, so n micro-batches of B rows step like one
//! batch of n·B rows that would not fit in memory. Pretraining
//! ([`super::trainer`]) calls this with n = `grad_accum` and a rate from
//! the warmup + cosine schedule; fine-tuning ([`crate::finetune`]) with one
//! batch, a constant rate and `max_norm` 1. What a loop does around the
//! step (evaluation, checkpoints, stopping on Ctrl-C) stays in the loop.

use autograd::loss::cross_entropy;
use autograd::nn::Module;
use autograd::optim::{clip_grad_norm, AdamW, Optimizer};
use autograd::Var;
use tensor::Tensor;

use crate::model::GPTModel;

/// What one step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// The mean loss over the step's micro-batches, before the update.
    pub loss: f64,
    /// The global gradient norm before clipping (spikes announce trouble).
    pub grad_norm: f64,
}

/// The step's mean loss was NaN or infinite; the weights were left as they
/// were (the gradients were not).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NonFiniteLoss(pub f64);

/// The loss of one language-modelling batch, the book's `calc_loss_batch`:
/// cross-entropy of the logits `[B, T, V]` for inputs `[B, T]` against the
/// targets `[B, T]` (the inputs shifted by one token). A mixture of experts
/// whose config asks for it (`output_router_logits`) adds its weighted
/// load-balancing loss, as `transformers` does.
pub fn next_token_loss(model: &GPTModel, (inputs, targets): &(Tensor, Tensor)) -> Var {
    let (logits, aux) = model.forward_with_aux(inputs);
    let loss = cross_entropy(&logits, targets);
    match aux {
        Some(aux) => loss.add(&aux),
        None => loss,
    }
}

/// One optimizer step of `model` on `micro_batches` (at least one), whose
/// gradients add up to one update. `loss_of_batch` runs the forward pass
/// and returns the scalar loss; `max_norm` is `f64::INFINITY` to measure
/// the gradient norm without clipping.
pub fn train_step<M: Module, B>(
    model: &mut M,
    opt: &mut AdamW,
    lr: f64,
    micro_batches: &[B],
    loss_of_batch: impl Fn(&M, &B) -> Var,
    max_norm: f64,
) -> Result<StepOutcome, NonFiniteLoss> {
    assert!(!micro_batches.is_empty(), "a training step needs at least one batch");
    opt.set_learning_rate(lr);
    // Evaluation between steps switches dropout off; training needs it on.
    model.set_training(true);
    opt.zero_grad();
    let loss = backward_micro_batches(model, micro_batches, loss_of_batch);
    if !loss.is_finite() {
        return Err(NonFiniteLoss(loss));
    }
    let grad_norm = clip_grad_norm(opt.params(), max_norm);
    opt.step();
    Ok(StepOutcome { loss, grad_norm })
}

/// Forward and backward over `micro_batches` (at least one): the gradients
/// of their mean loss add up in the parameters' `.grad()`. Returns that
/// mean loss. (Data-parallel steps share this with [`train_step`].)
pub fn backward_micro_batches<M, B>(model: &M, micro_batches: &[B], loss_of_batch: impl Fn(&M, &B) -> Var) -> f64 {
    backward_micro_batches_then(model, micro_batches, loss_of_batch, |loss| loss.backward())
}

/// [`backward_micro_batches`], leaving the last micro-batch's backward to
/// `last_backward` (given the scaled loss): the data-parallel step runs it
/// with the gradient exchange overlapped, once the earlier micro-batches
/// have added theirs.
pub fn backward_micro_batches_then<M, B>(
    model: &M,
    micro_batches: &[B],
    loss_of_batch: impl Fn(&M, &B) -> Var,
    last_backward: impl FnOnce(&Var),
) -> f64 {
    let n = micro_batches.len();
    let mut loss_sum = 0.0;
    let mut last_backward = Some(last_backward);
    for (i, batch) in micro_batches.iter().enumerate() {
        let loss = loss_of_batch(model, batch);
        loss_sum += loss.item();
        // With one batch the loss is its own mean: no scaling, no extra op.
        let loss = if n > 1 { loss.mul_scalar(1.0 / n as f64) } else { loss };
        match last_backward.take_if(|_| i + 1 == n) {
            Some(last) => last(&loss),
            None => loss.backward(),
        }
    }
    loss_sum / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use autograd::nn::Linear;
    use tensor::Generator;

    /// A linear classifier that remembers whether it was put in training mode.
    struct Probe {
        linear: Linear,
        training: bool,
    }

    impl Module for Probe {
        fn forward(&self, x: &Var) -> Var {
            self.linear.forward(x)
        }
        fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
            self.linear.visit_parameters(prefix, f);
        }
        fn set_training(&mut self, training: bool) {
            self.training = training;
        }
    }

    type Batch = (Tensor, Tensor);

    fn probe() -> (Probe, AdamW) {
        let linear = Linear::new(3, 2, true, &mut Generator::seed(5));
        let opt = AdamW::with_options(linear.parameters(), 0.5, (0.9, 0.999), 1e-8, 0.0);
        (Probe { linear, training: false }, opt)
    }

    fn batch(rows: &[[f32; 3]], labels: &[i64]) -> Batch {
        let x: Vec<f32> = rows.iter().flatten().copied().collect();
        (Tensor::from_vec(x, [rows.len(), 3]).unwrap(), Tensor::from_vec(labels.to_vec(), [labels.len()]).unwrap())
    }

    fn loss_of_batch(m: &Probe, (x, y): &Batch) -> Var {
        assert!(m.training, "the step runs the model in training mode");
        cross_entropy(&m.forward(&Var::constant(x.clone())), y)
    }

    fn weights(m: &Probe) -> Vec<f32> {
        m.parameters().iter().flat_map(|p| p.data().to_vec::<f32>()).collect()
    }

    const ROWS: [[f32; 3]; 4] = [[1.0, -2.0, 0.5], [0.3, 0.7, -1.1], [-0.4, 0.2, 2.0], [1.5, 1.0, -0.5]];

    #[test]
    fn micro_batches_step_like_one_batch_of_all_their_rows() {
        let (mut split, mut split_opt) = probe();
        let halves = [batch(&ROWS[..2], &[0, 1]), batch(&ROWS[2..], &[1, 0])];
        let a = train_step(&mut split, &mut split_opt, 0.01, &halves, loss_of_batch, f64::INFINITY).unwrap();
        let (mut whole, mut whole_opt) = probe();
        let all = [batch(&ROWS, &[0, 1, 1, 0])];
        let b = train_step(&mut whole, &mut whole_opt, 0.01, &all, loss_of_batch, f64::INFINITY).unwrap();
        assert_eq!(split_opt.learning_rate(), 0.01);
        assert!((a.loss - b.loss).abs() < 1e-6, "{a:?} {b:?}");
        assert!((a.grad_norm - b.grad_norm).abs() < 1e-6, "{a:?} {b:?}");
        let moved: Vec<f32> = weights(&whole).iter().zip(weights(&probe().0)).map(|(w, w0)| w - w0).collect();
        assert!(moved.iter().all(|d| d.abs() > 1e-3), "every weight moved: {moved:?}");
        for (w, v) in weights(&split).iter().zip(weights(&whole)) {
            assert!((w - v).abs() < 1e-6, "{:?} {:?}", weights(&split), weights(&whole));
        }
    }

    #[test]
    fn the_gradient_is_clipped_to_max_norm() {
        let (mut model, mut opt) = probe();
        let all = [batch(&ROWS, &[0, 1, 1, 0])];
        let outcome = train_step(&mut model, &mut opt, 0.01, &all, loss_of_batch, 1e-2).unwrap();
        let clipped: f64 = model.parameters().iter().flat_map(|p| p.grad().unwrap().to_f64_vec()).map(|g| g * g).sum();
        assert!(outcome.grad_norm > 0.1, "the norm before clipping: {outcome:?}");
        assert!((clipped.sqrt() - 1e-2).abs() < 1e-6, "{}", clipped.sqrt());
    }

    #[test]
    fn a_loss_that_is_not_finite_leaves_the_weights_alone() {
        let (mut model, mut opt) = probe();
        let before = weights(&model);
        let mut rows = ROWS;
        rows[1][2] = f32::NAN;
        let bad = [batch(&ROWS[..2], &[0, 1]), batch(&rows[..2], &[0, 1])];
        let err = train_step(&mut model, &mut opt, 0.01, &bad, loss_of_batch, 1.0).unwrap_err();
        assert!(err.0.is_nan(), "{err:?}");
        assert_eq!(weights(&model), before);
    }
}
