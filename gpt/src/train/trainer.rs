//! The pretraining loop.
//!
//! Each optimizer step draws `grad_accum` micro-batches of inputs `[B, T]`
//! and targets (the same tokens shifted by one), takes the learning rate
//! from the warmup + cosine schedule, and hands them to [`train_step`]
//! (`step.rs`): zero the gradients, cross-entropy of the model's logits
//! against the targets, backward, clip the global gradient norm to
//! `grad_clip`, AdamW update.
//!
//! Around it: validation loss every `eval_every` steps, a sample every
//! `sample_every`, a checkpoint every `checkpoint_every`, at the end and
//! when asked to stop (Ctrl-C); metrics to `metrics.jsonl` and a loss plot.
//! A loss that is NaN or infinite stops the run before the step is taken, so
//! the last checkpoint is the last good state.
//!
//! Data-parallel ([`Trainer::new_parallel`], `crate::distributed`): the
//! loader batches `N × batch_size` windows and this rank reads its part of
//! each; [`DataParallel::train_step`] replaces [`train_step`]; rank 0 alone
//! reports, evaluates, samples and writes files, and the others take part
//! in the exchanges.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use autograd::nn::Module;
use autograd::optim::{AdamW, LrSchedule};
use tensor::Tensor;

use super::checkpoint::{save_checkpoint, Checkpoint, TrainerState, STATE_FILE};
use super::metrics::{plot_metrics, Metric, MetricsLog, LOSS_PLOT_FILE, METRICS_FILE};
use super::options::TrainOptions;
use super::step::{next_token_loss, train_step, NonFiniteLoss, StepOutcome};
use crate::atomic::{readable_dir, replace_dir, settle_dir, staging_dir};
use crate::data::{train_val_split, DataError, DataLoader, LoaderConfig, SlidingWindow};
use crate::distributed::DataParallel;
use crate::eval::{evaluate, EvalResult};
use crate::generate::{generate, GenerateOptions};
use crate::model::GPTModel;
use crate::tokenizer::{AnyTokenizer, SpecialTokens};
use crate::weights::{self, WeightsError};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{0}")]
    Config(String),
    #[error("loss became {loss} at step {step}; stopped before updating the weights ({checkpoint})")]
    Diverged { step: usize, loss: f64, checkpoint: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What the loop reports as it goes.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    Step { step: usize, total: usize, loss: f64, lr: f64, grad_norm: f64, tokens_per_s: f64 },
    Eval { step: usize, result: EvalResult },
    Sample { step: usize, text: String },
    Checkpoint { step: usize, dir: PathBuf },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    Finished,
    Interrupted,
}

#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub steps: usize,
    pub last_loss: f64,
    pub val: Option<EvalResult>,
    pub stop: StopReason,
}

pub struct Trainer {
    pub model: GPTModel,
    opt: AdamW,
    loader: DataLoader,
    val_tokens: Vec<u32>,
    tokenizer: AnyTokenizer,
    state: TrainerState,
    out_dir: PathBuf,
    metrics: MetricsLog,
    /// The other ranks of a data-parallel run; `None` for one process.
    parallel: Option<DataParallel>,
    /// The largest weights shard the run folder and its checkpoints get.
    max_shard_bytes: usize,
}

/// The name of the checkpoint folder inside a run's output folder.
pub const CHECKPOINT_DIR: &str = "checkpoint";

/// The checkpoint folder inside a run's output folder.
pub fn checkpoint_dir(out_dir: &Path) -> PathBuf {
    out_dir.join(CHECKPOINT_DIR)
}

/// The run folder and the checkpoint to resume from, for `path` naming
/// either a run folder or its checkpoint folder. A checkpoint that a crash
/// left beside its folder mid-swap is found too (`crate::atomic`).
pub fn locate_run(path: &Path) -> Result<(PathBuf, PathBuf), TrainError> {
    let inside = readable_dir(&checkpoint_dir(path), STATE_FILE);
    if inside.join(STATE_FILE).is_file() {
        return Ok((path.to_path_buf(), inside));
    }
    let here = readable_dir(path, STATE_FILE);
    if here.join(STATE_FILE).is_file() {
        // A checkpoint folder: the run is its parent when it sits in one.
        let parent = path.parent().filter(|_| path.file_name().is_some_and(|n| n == CHECKPOINT_DIR));
        let run = parent.map_or_else(|| path.to_path_buf(), Path::to_path_buf);
        return Ok((run, here));
    }
    Err(TrainError::Config(format!(
        "{}: no checkpoint to resume (neither {CHECKPOINT_DIR}/{STATE_FILE} nor {STATE_FILE} is there)",
        path.display()
    )))
}

impl Trainer {
    /// A fresh run of `model` on `tokens` (the whole tokenized corpus).
    pub fn new(
        model: GPTModel,
        tokenizer: AnyTokenizer,
        tokens: Vec<u32>,
        data_name: String,
        options: TrainOptions,
        out_dir: PathBuf,
    ) -> Result<Trainer, TrainError> {
        Trainer::new_parallel(model, tokenizer, tokens, data_name, options, out_dir, None)
    }

    /// [`Trainer::new`] as one rank of a data-parallel run (every rank calls
    /// it with the same arguments; only rank 0 writes into `out_dir`).
    pub fn new_parallel(
        model: GPTModel,
        tokenizer: AnyTokenizer,
        tokens: Vec<u32>,
        data_name: String,
        options: TrainOptions,
        out_dir: PathBuf,
        parallel: Option<DataParallel>,
    ) -> Result<Trainer, TrainError> {
        let state = TrainerState {
            step: 0,
            total_steps: 0,
            epoch: 0,
            batch_in_epoch: 0,
            dropout_rng: model.dropout_state(),
            adam_steps: Vec::new(),
            tokenizer: tokenizer.describe(),
            data: data_name,
            options,
            ranks: 1,
        };
        let mut trainer = Trainer::assemble(model, tokenizer, tokens, state, out_dir, parallel)?;
        if trainer.is_root() {
            trainer.metrics = MetricsLog::fresh(&trainer.out_dir);
        }
        Ok(trainer)
    }

    /// Continues the run saved in `checkpoint`, on the same `tokens`.
    pub fn resume(
        checkpoint: Checkpoint,
        tokens: Vec<u32>,
        data_name: &str,
        out_dir: PathBuf,
    ) -> Result<Trainer, TrainError> {
        Trainer::resume_parallel(checkpoint, tokens, data_name, out_dir, None)
    }

    /// [`Trainer::resume`] as one rank of a data-parallel run, which must
    /// have as many ranks as the run had: the data order is that of global
    /// batches of `ranks × batch_size` windows.
    pub fn resume_parallel(
        checkpoint: Checkpoint,
        tokens: Vec<u32>,
        data_name: &str,
        out_dir: PathBuf,
        parallel: Option<DataParallel>,
    ) -> Result<Trainer, TrainError> {
        let Checkpoint { model, state, tokenizer, optimizer } = checkpoint;
        let tokenizer = tokenizer.ok_or_else(|| TrainError::Config("the checkpoint has no tokenizer files".into()))?;
        if state.data != data_name {
            return Err(TrainError::Config(format!(
                "the checkpoint was trained on {}, not {data_name}; pass the same --data to resume",
                state.data
            )));
        }
        let ranks = parallel.as_ref().map_or(1, |dp| dp.comm().world_size());
        if state.ranks != ranks {
            return Err(TrainError::Config(format!(
                "the run was trained on {} process(es) and this is {ranks}; resume it on {} (mpirun -np {}): \
                 the order of the data depends on the number of processes",
                state.ranks, state.ranks, state.ranks
            )));
        }
        let mut trainer = Trainer::assemble(model, tokenizer, tokens, state, out_dir, parallel)?;
        let (at, per_epoch) = (trainer.state.batch_in_epoch, trainer.loader.batches_per_epoch());
        if at >= per_epoch {
            return Err(TrainError::Config(format!(
                "{}: batch_in_epoch is {at}, but the data has {per_epoch} batches per epoch; was --data changed?",
                super::checkpoint::STATE_FILE
            )));
        }
        Checkpoint::restore_optimizer(&optimizer, &trainer.state, &trainer.model, &mut trainer.opt)?;
        if trainer.is_root() {
            trainer
                .metrics
                .truncate_after(trainer.state.step)
                .map_err(|e| TrainError::Io { path: trainer.out_dir.join(METRICS_FILE), source: e })?;
        }
        Ok(trainer)
    }

    fn assemble(
        model: GPTModel,
        tokenizer: AnyTokenizer,
        tokens: Vec<u32>,
        mut state: TrainerState,
        out_dir: PathBuf,
        parallel: Option<DataParallel>,
    ) -> Result<Trainer, TrainError> {
        state.ranks = parallel.as_ref().map_or(1, |dp| dp.comm().world_size());
        let o = &state.options;
        o.validate().map_err(TrainError::Config)?;
        if tokenizer.vocab_size() > model.config.vocab_size {
            return Err(TrainError::Config(format!(
                "the tokenizer has {} tokens but the model's vocabulary holds {}",
                tokenizer.vocab_size(),
                model.config.vocab_size
            )));
        }
        if o.context > model.config.context_length {
            return Err(TrainError::Config(format!(
                "--context {} exceeds the model's context length {}",
                o.context, model.config.context_length
            )));
        }
        let (train, val) = train_val_split(&tokens, 1.0 - o.val_fraction)?;
        let (train, val) = (train.to_vec(), val.to_vec());
        let windows = SlidingWindow::new(train, o.context, o.context)?;
        // With N ranks the loader makes the global batches of N·B windows.
        let global_batch = o.batch_size * state.ranks;
        let loader = DataLoader::new(
            windows,
            LoaderConfig { batch_size: global_batch, shuffle: true, drop_last: true, seed: o.seed },
        )?;
        let micro_batches = match (o.steps, o.epochs) {
            (Some(steps), _) => steps.checked_mul(o.grad_accum).ok_or("--steps × --grad-accum is too large"),
            (None, epochs) => {
                epochs.unwrap_or(1).checked_mul(loader.batches_per_epoch()).ok_or("--epochs is too large")
            }
        }
        .map_err(|e| TrainError::Config(e.into()))?;
        state.total_steps = (micro_batches / o.grad_accum).max(1);
        if parallel.as_ref().is_none_or(|dp| dp.comm().is_root()) {
            std::fs::create_dir_all(&out_dir).map_err(|e| TrainError::Io { path: out_dir.clone(), source: e })?;
        }
        let opt = AdamW::with_options(model.parameters(), o.lr, (0.9, 0.95), 1e-8, o.weight_decay);
        let metrics = MetricsLog::new(&out_dir);
        Ok(Trainer {
            model,
            opt,
            loader,
            val_tokens: val,
            tokenizer,
            state,
            out_dir,
            metrics,
            parallel,
            max_shard_bytes: weights::DEFAULT_MAX_SHARD_BYTES,
        })
    }

    /// Whether this process reports and writes: the only one, or rank 0.
    pub fn is_root(&self) -> bool {
        self.parallel.as_ref().is_none_or(|dp| dp.comm().is_root())
    }

    /// The data-parallel side of the run, if it has one.
    pub fn parallel(&self) -> Option<&DataParallel> {
        self.parallel.as_ref()
    }

    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// Splits the weights the run saves (the final model and every
    /// checkpoint) into shards of at most `bytes`, as `transformers`'
    /// `max_shard_size` does; 5 GB unless set.
    pub fn set_max_shard_bytes(&mut self, bytes: usize) {
        self.max_shard_bytes = bytes;
    }

    pub fn tokenizer(&self) -> &AnyTokenizer {
        &self.tokenizer
    }

    fn schedule(&self) -> LrSchedule {
        let o = &self.state.options;
        LrSchedule::WarmupCosine { max_lr: o.lr, min_lr: o.min_lr, warmup: o.warmup, total: self.state.total_steps }
    }

    /// The next micro-batch (this rank's part of it), advancing the data position.
    fn next_batch(&mut self) -> (Tensor, Tensor) {
        let (epoch, index) = (self.state.epoch, self.state.batch_in_epoch);
        let batch = match &self.parallel {
            None => self.loader.batch(epoch, index),
            Some(dp) => self.loader.batch_part(epoch, index, dp.comm().rank(), dp.comm().world_size()),
        };
        self.state.batch_in_epoch += 1;
        if self.state.batch_in_epoch == self.loader.batches_per_epoch() {
            self.state.batch_in_epoch = 0;
            self.state.epoch += 1;
        }
        batch
    }

    /// Runs until the last step or until `stop` is set, reporting through
    /// `on_event`. Always leaves a checkpoint of the last completed step.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_event: impl FnMut(&TrainEvent),
    ) -> Result<TrainSummary, TrainError> {
        let root = self.is_root();
        let mut on_event = |event: &TrainEvent| {
            if root {
                on_event(event)
            }
        };
        // The first exchange: rank 0's weights (and ZeRO's shards). Building
        // a trainer exchanges nothing, so a rank that failed to build one
        // cannot leave the others waiting.
        if let Some(dp) = &mut self.parallel {
            dp.start(&mut self.opt);
        }
        let schedule = self.schedule();
        let clip = self.state.options.grad_clip;
        let max_norm = if clip > 0.0 { clip } else { f64::INFINITY };
        let mut last_loss = f64::NAN;
        let mut last_val = None;
        while self.state.step < self.state.total_steps {
            if self.any_rank(stop.load(Ordering::Relaxed)) {
                self.checkpoint(&mut on_event)?;
                return Ok(TrainSummary {
                    steps: self.state.step,
                    last_loss,
                    val: last_val,
                    stop: StopReason::Interrupted,
                });
            }
            let started = Instant::now();
            let step = self.state.step;
            let lr = schedule.lr_at(step);
            let batches: Vec<_> = (0..self.state.options.grad_accum).map(|_| self.next_batch()).collect();
            let tokens: usize = batches.iter().map(|(x, _)| x.numel()).sum::<usize>() * self.state.ranks;
            let outcome = match &mut self.parallel {
                None => train_step(&mut self.model, &mut self.opt, lr, &batches, next_token_loss, max_norm),
                Some(dp) => dp.train_step(&mut self.model, &mut self.opt, lr, &batches, next_token_loss, max_norm),
            };
            let StepOutcome { loss, grad_norm } = match outcome {
                Ok(outcome) => outcome,
                Err(NonFiniteLoss(loss)) => return Err(self.diverged(step, loss)),
            };
            self.state.step += 1;
            last_loss = loss;
            let tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64();
            let step = self.state.step;
            self.log(&Metric::Train { step, loss, lr, grad_norm, tokens_per_s });
            on_event(&TrainEvent::Step { step, total: self.state.total_steps, loss, lr, grad_norm, tokens_per_s });

            let o = self.state.options.clone();
            let last = step == self.state.total_steps;
            if root && o.eval_every > 0 && (step % o.eval_every == 0 || last) {
                if let Some(result) = self.validate() {
                    self.log(&Metric::Val { step, loss: result.loss, perplexity: result.perplexity });
                    on_event(&TrainEvent::Eval { step, result });
                    last_val = Some(result);
                }
            }
            if root && o.sample_every > 0 && (step % o.sample_every == 0 || last) {
                let text = self.sample();
                on_event(&TrainEvent::Sample { step, text });
            }
            if o.checkpoint_every > 0 && step % o.checkpoint_every == 0 && !last {
                self.checkpoint(&mut on_event)?;
            }
        }
        self.finish(&mut on_event)?;
        Ok(TrainSummary { steps: self.state.step, last_loss, val: last_val, stop: StopReason::Finished })
    }

    /// Whether `flag` is set here or, in a data-parallel run, on any rank.
    fn any_rank(&self, flag: bool) -> bool {
        self.parallel.as_ref().map_or(flag, |dp| dp.any(flag))
    }

    /// The error for a loss that became `loss` at (0-based) `step`, naming
    /// the checkpoint to go back to.
    fn diverged(&self, step: usize, loss: f64) -> TrainError {
        let checkpoint = checkpoint_dir(&self.out_dir);
        let checkpoint = if checkpoint.join(STATE_FILE).is_file() {
            format!("the last checkpoint is in {}", checkpoint.display())
        } else {
            "no checkpoint was saved yet".to_string()
        };
        TrainError::Diverged { step: step + 1, loss, checkpoint }
    }

    /// The end of a run: the final model, its checkpoint, the metrics and the
    /// loss plot are written into a staging folder beside the run and
    /// swapped in whole, so a crash leaves either the run as it was (with
    /// its last periodic checkpoint, resumable) or the finished one.
    fn finish(&mut self, on_event: &mut impl FnMut(&TrainEvent)) -> Result<(), TrainError> {
        let gathered = self.gathered_optimizer();
        if !self.is_root() {
            return Ok(());
        }
        let out = self.out_dir.clone();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrainError::Io { path, source }
        };
        settle_dir(&out).map_err(io(&out))?;
        let stage = staging_dir(&out).map_err(io(&out))?;
        let written = (|| {
            weights::save_model_sharded(&self.model, &stage, Some(&self.tokenizer), self.max_shard_bytes)?;
            self.save_checkpoint_in(&checkpoint_dir(&stage), gathered.as_ref())?;
            if self.metrics.path().is_file() {
                std::fs::copy(self.metrics.path(), stage.join(METRICS_FILE)).map_err(io(self.metrics.path()))?;
            }
            let _ = plot_metrics(&self.metrics.read(), &stage.join(LOSS_PLOT_FILE));
            replace_dir(&stage, &out).map_err(|(path, source)| TrainError::Io { path, source })
        })();
        if written.is_err() {
            // The run folder is as it was, with its last checkpoint.
            let _ = std::fs::remove_dir_all(&stage);
        }
        written?;
        on_event(&TrainEvent::Checkpoint { step: self.state.step, dir: checkpoint_dir(&out) });
        Ok(())
    }

    fn log(&self, m: &Metric) {
        // Metrics are a convenience; a full disk must not kill the run.
        if self.is_root() {
            let _ = self.metrics.append(m);
        }
    }

    /// Validation loss on (at most `eval_windows` windows of) held-out data.
    pub fn validate(&mut self) -> Option<EvalResult> {
        let o = &self.state.options;
        let limit = (o.eval_windows * o.context + 1).min(self.val_tokens.len());
        self.model.set_training(false);
        evaluate(&self.model, &self.val_tokens[..limit], o.context, o.batch_size)
    }

    /// A short greedy-ish sample from the configured prompt.
    pub fn sample(&mut self) -> String {
        self.model.set_training(false);
        let o = &self.state.options;
        let mut prompt = self.tokenizer.encode(&o.sample_prompt, SpecialTokens::Allow).unwrap_or_default();
        if prompt.is_empty() {
            prompt = self.val_tokens.first().copied().into_iter().collect();
        }
        if prompt.is_empty() {
            return String::new();
        }
        let opts = GenerateOptions {
            max_new_tokens: o.sample_tokens,
            temperature: 0.8,
            top_k: Some(40),
            seed: o.seed,
            stop_token: self.tokenizer.eot_id(),
            ..Default::default()
        };
        let new = generate(&self.model, &prompt, &opts, |_| {});
        let all: Vec<u32> = prompt.into_iter().chain(new).collect();
        self.tokenizer.decode(&all).unwrap_or_default()
    }

    fn checkpoint(&mut self, on_event: &mut impl FnMut(&TrainEvent)) -> Result<(), TrainError> {
        let gathered = self.gathered_optimizer();
        if !self.is_root() {
            return Ok(());
        }
        let dir = checkpoint_dir(&self.out_dir);
        self.save_checkpoint_in(&dir, gathered.as_ref())?;
        on_event(&TrainEvent::Checkpoint { step: self.state.step, dir });
        Ok(())
    }

    /// With ZeRO, AdamW's moments gathered from every rank's shard (every
    /// rank must call this before rank 0 saves a checkpoint).
    fn gathered_optimizer(&self) -> Option<AdamW> {
        self.parallel.as_ref().and_then(|dp| dp.gathered_optimizer(&self.opt))
    }

    /// Saves the model, optimizer (`gathered`, or this process's own) and
    /// trainer state of the last completed step into the checkpoint folder `dir`.
    fn save_checkpoint_in(&mut self, dir: &Path, gathered: Option<&AdamW>) -> Result<(), TrainError> {
        let opt = gathered.unwrap_or(&self.opt);
        self.state.dropout_rng = self.model.dropout_state();
        self.state.adam_steps = (0..self.model.parameters().len()).map(|i| opt.state(i).map_or(0, |s| s.2)).collect();
        save_checkpoint(dir, &self.model, opt, &self.state, &self.tokenizer, self.max_shard_bytes)?;
        Ok(())
    }
}
