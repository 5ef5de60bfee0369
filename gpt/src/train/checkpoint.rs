//! Training checkpoints: everything needed to continue a run exactly.
//!
//! A checkpoint is a folder:
//! - `config.json`, `model.safetensors` (+ tokenizer files): the weights, as
//!   a Hugging Face folder, so a checkpoint is also a usable model;
//! - `optimizer.safetensors`: AdamW's two moment estimates per parameter
//!   (`<name>.exp_avg`, `<name>.exp_avg_sq`);
//! - `trainer_state.json`: step, data position (epoch and batch), the
//!   dropout generator's state, AdamW's step counts and the options.
//!
//! With all of that restored, the steps after a resume compute exactly what
//! an uninterrupted run would. The folder is written under a temporary
//! name and renamed into place, so a crash mid-save leaves the previous
//! checkpoint intact.

use std::path::Path;

use autograd::nn::Module;
use autograd::optim::AdamW;
use serde::{Deserialize, Serialize};

use super::options::TrainOptions;
use crate::atomic::{readable_dir, replace_dir, settle_dir, staging_dir, write_atomic};
use crate::model::GPTModel;
use crate::tokenizer::AnyTokenizer;
use crate::weights::{self, save_safetensors, SafetensorsFile, WeightsError};

pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: usize,
    pub total_steps: usize,
    /// Where the next micro-batch comes from.
    pub epoch: u64,
    pub batch_in_epoch: usize,
    pub dropout_rng: [u64; 4],
    /// AdamW's per-parameter step counts (bias correction).
    pub adam_steps: Vec<u64>,
    pub options: TrainOptions,
    /// Tokenizer description and data source, to refuse a mismatched resume.
    pub tokenizer: String,
    pub data: String,
    /// Processes of a data-parallel run (1 for a single process, and in
    /// checkpoints written before data-parallel runs existed).
    #[serde(default = "one")]
    pub ranks: usize,
}

fn one() -> usize {
    1
}

impl TrainerState {
    /// What a saved state must satisfy to resume `model`: the file may have
    /// been edited, or written for another model. (Whether the data
    /// position fits the data is checked once the data is loaded.)
    fn check(&self, model: &GPTModel) -> Result<(), String> {
        let params = model.parameters().len();
        // A run checkpointed before its first step has no counts yet.
        if self.adam_steps.len() != params && !(self.adam_steps.is_empty() && self.step == 0) {
            return Err(format!(
                "adam_steps has {} entries but the model has {params} parameters",
                self.adam_steps.len()
            ));
        }
        if let Some(bad) = self.adam_steps.iter().find(|&&s| s > self.step as u64) {
            return Err(format!("adam_steps holds {bad}, more than the {} steps taken", self.step));
        }
        // xoshiro's one state that never leaves zero: dropout would stop
        // being random.
        if self.dropout_rng == [0; 4] {
            return Err("dropout_rng is all zeros, which is not a generator state".into());
        }
        Ok(())
    }
}

/// Writes a checkpoint into `dir`, replacing any previous one atomically.
/// The weights go into shards of at most `max_shard_bytes`, as
/// [`weights::save_model_sharded`] writes them.
pub fn save_checkpoint(
    dir: &Path,
    model: &GPTModel,
    opt: &AdamW,
    state: &TrainerState,
    tokenizer: &AnyTokenizer,
    max_shard_bytes: usize,
) -> Result<(), WeightsError> {
    settle_dir(dir).map_err(|e| WeightsError::io(dir, e))?;
    let tmp = staging_dir(dir).map_err(|e| WeightsError::io(dir, e))?;
    weights::save_model_sharded(model, &tmp, Some(tokenizer), max_shard_bytes)?;
    let mut moments = Vec::new();
    for (i, (name, _)) in model.named_parameters().into_iter().enumerate() {
        if let Some((m, v, _)) = opt.state(i) {
            moments.push((format!("{name}.exp_avg"), m.clone()));
            moments.push((format!("{name}.exp_avg_sq"), v.clone()));
        }
    }
    save_safetensors(tmp.join(OPTIMIZER_FILE), &moments, None)?;
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    let state_path = tmp.join(STATE_FILE);
    write_atomic(&state_path, json.as_bytes()).map_err(|e| WeightsError::io(&state_path, e))?;
    // Swap the complete new folder in; only then drop the old one.
    replace_dir(&tmp, dir).map_err(|(path, e)| WeightsError::io(path, e))
}

/// A loaded checkpoint: the model with its weights, and the saved state.
pub struct Checkpoint {
    pub model: GPTModel,
    pub state: TrainerState,
    pub tokenizer: Option<AnyTokenizer>,
    /// AdamW's saved moments; see [`Checkpoint::restore_optimizer`].
    pub optimizer: SafetensorsFile,
}

impl Checkpoint {
    /// Reads `dir`, or the previous checkpoint that a save interrupted
    /// between its two renames left beside it (`crate::atomic`).
    pub fn load(dir: &Path) -> Result<Checkpoint, WeightsError> {
        let dir = readable_dir(dir, STATE_FILE);
        let state_path = dir.join(STATE_FILE);
        let text = crate::input::read_capped_string(&state_path, crate::input::JSON_LIMIT)
            .map_err(|e| WeightsError::io(&state_path, e))?;
        let state: TrainerState = serde_json::from_str(&text)
            .map_err(|e| WeightsError::Config { path: state_path.clone(), reason: e.to_string() })?;
        let model = weights::load_model(&dir)?;
        state.check(&model).map_err(|reason| WeightsError::Config { path: state_path, reason })?;
        model.set_dropout_state(state.dropout_rng);
        let tokenizer = weights::load_tokenizer(&dir)?;
        let optimizer = SafetensorsFile::open(dir.join(OPTIMIZER_FILE))?;
        Ok(Checkpoint { model, state, tokenizer, optimizer })
    }

    /// Restores AdamW's moments and step counts into `opt`, which must
    /// optimise `model`'s parameters in `named_parameters` order.
    pub fn restore_optimizer(
        optimizer: &SafetensorsFile,
        state: &TrainerState,
        model: &GPTModel,
        opt: &mut AdamW,
    ) -> Result<(), WeightsError> {
        for (i, (name, p)) in model.named_parameters().into_iter().enumerate() {
            let step = state.adam_steps.get(i).copied().unwrap_or(0);
            if step == 0 {
                continue;
            }
            let dims = p.dims();
            let m = optimizer.tensor_shaped(&format!("{name}.exp_avg"), &dims)?;
            let v = optimizer.tensor_shaped(&format!("{name}.exp_avg_sq"), &dims)?;
            opt.set_state(i, m, v, step);
        }
        Ok(())
    }
}
