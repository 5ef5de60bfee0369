//! Pretraining: options, the loop, checkpoints and metrics.

pub mod checkpoint;
pub mod metrics;
pub mod options;
pub mod trainer;

pub use checkpoint::{Checkpoint, TrainerState};
pub use options::TrainOptions;
pub use trainer::{checkpoint_dir, StopReason, TrainError, TrainEvent, TrainSummary, Trainer};
