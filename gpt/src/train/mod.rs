//! Pretraining: options, the one training step every loop shares
//! ([`step`]), the loop around it, checkpoints and metrics.

pub mod checkpoint;
pub mod metrics;
pub mod options;
pub mod step;
pub mod trainer;

pub use checkpoint::{Checkpoint, TrainerState, OPTIMIZER_FILE, STATE_FILE};
pub use metrics::{LOSS_PLOT_FILE, METRICS_FILE};
pub use options::TrainOptions;
pub use step::{
    backward_micro_batches, backward_micro_batches_then, next_token_loss, train_step, NonFiniteLoss, StepOutcome,
};
pub use trainer::{
    checkpoint_dir, locate_run, StopReason, TrainError, TrainEvent, TrainSummary, Trainer, CHECKPOINT_DIR,
};
