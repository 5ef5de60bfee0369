//! Training hyper-parameters, with defaults that suit a tiny model on a
//! laptop CPU.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Optimizer steps to take; when `None`, `epochs` decides.
    pub steps: Option<usize>,
    pub epochs: Option<usize>,
    pub batch_size: usize,
    /// Tokens per training window (≤ the model's context length).
    pub context: usize,
    /// Peak learning rate, reached after `warmup` steps; cosine decay to
    /// `min_lr` at the last step.
    pub lr: f64,
    pub min_lr: f64,
    pub warmup: usize,
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 disables).
    pub grad_clip: f64,
    /// Micro-batches whose gradients add up to one step.
    pub grad_accum: usize,
    pub seed: u64,
    /// Fraction of the tokens held out for validation.
    pub val_fraction: f64,
    /// Steps between validation runs (0 disables).
    pub eval_every: usize,
    /// Validation windows per evaluation (caps its cost).
    pub eval_windows: usize,
    /// Steps between printed samples (0 disables).
    pub sample_every: usize,
    pub sample_prompt: String,
    pub sample_tokens: usize,
    /// Steps between checkpoints (0: only at the end and on interrupt).
    pub checkpoint_every: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: None,
            epochs: None,
            batch_size: 8,
            context: 128,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup: 30,
            weight_decay: 0.1,
            grad_clip: 1.0,
            grad_accum: 1,
            seed: 1337,
            val_fraction: 0.1,
            eval_every: 50,
            eval_windows: 16,
            sample_every: 0,
            sample_prompt: "Once upon a time".into(),
            sample_tokens: 60,
            checkpoint_every: 100,
        }
    }
}

/// The largest `--batch-size` and `--grad-accum`: well past what fits in
/// memory, low enough that products of them with other counts stay in
/// range.
pub const MAX_BATCH: usize = 1 << 16;

impl TrainOptions {
    /// One-line reason when the options cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("--batch-size must be at least 1".into());
        }
        if self.batch_size > MAX_BATCH || self.grad_accum > MAX_BATCH {
            return Err(format!("--batch-size and --grad-accum must be at most {MAX_BATCH}"));
        }
        if self.context < 2 {
            return Err("--context must be at least 2".into());
        }
        if self.grad_accum == 0 {
            return Err("--grad-accum must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {}", self.lr));
        }
        // The schedule decays from lr to min_lr: a floor above the peak, or
        // below zero, would make the rate climb or turn the step around.
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(format!("--min-lr must be between 0 and --lr ({}), got {}", self.lr, self.min_lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!("--weight-decay must be a number ≥ 0, got {}", self.weight_decay));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(format!("--grad-clip must be a number ≥ 0 (0 turns clipping off), got {}", self.grad_clip));
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(format!("--val-fraction must be in [0, 1), got {}", self.val_fraction));
        }
        if self.steps == Some(0) || self.epochs == Some(0) {
            return Err("--steps and --epochs must be at least 1".into());
        }
        Ok(())
    }
}
