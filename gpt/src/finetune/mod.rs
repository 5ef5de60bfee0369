//! Fine-tuning a pretrained GPT: LoRA adapters, classification and
//! instruction following.
//!
//! - [`lora`]: wrap the blocks' projections with low-rank adapters, freeze
//!   the rest, save adapters in Hugging Face PEFT's layout, load and merge.
//! - [`classify`]: replace the vocabulary head by a `[C, classes]` Linear
//!   and train on labelled texts, reading the class off the last real token.
//! - [`instruct`]: train on Alpaca-formatted (instruction, input, output)
//!   records so the model answers, then score and chat.
//!
//! Both trainers take their optimizer steps through pretraining's
//! [`crate::train::train_step`] (one batch per step, the gradient norm
//! clipped to 1), report progress through [`FinetuneEvent`] and share the
//! seeded splits of [`split`]; [`class_data`] and [`instruct_data`] make
//! the built-in data sets that let everything run offline.

pub mod class_data;
pub mod classify;
mod error;
pub mod instruct;
pub mod instruct_data;
pub mod lora;
pub mod split;

pub use error::FinetuneError;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::train::NonFiniteLoss;

/// What a fine-tuning loop reports as it goes.
#[derive(Clone, Debug)]
pub enum FinetuneEvent {
    /// One optimizer step; `step` counts from 1 up to `total`. `lr` is the
    /// step's learning rate, `grad_norm` the global gradient norm before
    /// clipping.
    Step { step: usize, total: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64 },
    /// The end of an epoch, with whatever the task measures.
    Epoch { epoch: usize, train_loss: f64, val_loss: f64, train_accuracy: Option<f64>, val_accuracy: Option<f64> },
}

/// The most epochs a fine-tuning run may ask for.
pub const MAX_EPOCHS: usize = 1 << 20;

/// The knobs both fine-tuning loops share.
#[derive(Clone, Debug)]
pub struct FitOptions {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub weight_decay: f64,
    pub seed: u64,
    /// When set (Ctrl-C), the loop stops before its next step and returns
    /// what it has, skipping the final evaluations.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { epochs: 3, lr: 5e-4, batch_size: 8, weight_decay: 0.1, seed: 123, stop: None }
    }
}

impl FitOptions {
    /// Whether the loop was asked to stop.
    pub fn interrupted(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }

    pub fn validate(&self) -> Result<(), FinetuneError> {
        if self.batch_size == 0 {
            return Err(FinetuneError::Config("--batch-size must be at least 1".into()));
        }
        if self.epochs == 0 {
            return Err(FinetuneError::Config("--epochs must be at least 1".into()));
        }
        // Bounds that keep steps = batches per epoch × epochs in range.
        let max_batch = crate::train::options::MAX_BATCH;
        if self.batch_size > max_batch {
            return Err(FinetuneError::Config(format!("--batch-size must be at most {max_batch}")));
        }
        if self.epochs > MAX_EPOCHS {
            return Err(FinetuneError::Config(format!("--epochs must be at most {MAX_EPOCHS}")));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(FinetuneError::Config(format!("--lr must be a positive number, got {}", self.lr)));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            let wd = self.weight_decay;
            return Err(FinetuneError::Config(format!("--weight-decay must be a number ≥ 0, got {wd}")));
        }
        Ok(())
    }
}

/// Fine-tuning clips the global gradient norm to 1 in every step.
pub(crate) const MAX_GRAD_NORM: f64 = 1.0;

/// The error for a loss that was not finite at (0-based) `step`: the step
/// was refused before it corrupted the weights.
pub(crate) fn diverged(step: usize, NonFiniteLoss(loss): NonFiniteLoss) -> FinetuneError {
    FinetuneError::Config(format!("loss became {loss} at step {}; try a lower --lr", step + 1))
}
