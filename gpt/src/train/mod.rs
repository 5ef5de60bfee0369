//! Pretraining: options, the loop, checkpoints and metrics.

pub mod checkpoint;
pub mod metrics;
pub mod options;
pub mod trainer;

pub use checkpoint::{Checkpoint, TrainerState, OPTIMIZER_FILE, STATE_FILE};
pub use metrics::{LOSS_PLOT_FILE, METRICS_FILE};
pub use options::TrainOptions;
pub use trainer::{
    checkpoint_dir, locate_run, StopReason, TrainError, TrainEvent, TrainSummary, Trainer, CHECKPOINT_DIR,
};
