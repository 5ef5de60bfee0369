//! Classification fine-tuning: a GPT that reads a text and names its class.
//!
//! The vocabulary head (hidden `[C]` → `[V]` scores of the next token) is
//! replaced by a small one, `score`: Linear `[C]` → `[classes]`. Because
//! attention is causal, only the *last* token has seen the whole text, so
//! its hidden state is the one classified:
//!
//! ```text
//!   ids [B, T] → GPT blocks → hidden [B, T, C] → row (b, last_b) → [B, C] → score → [B, classes]
//! ```
//!
//! Texts are truncated to `max_length` tokens and padded on the right to
//! the longest in the batch; `last_b` is each text's own last real token,
//! so (thanks again to the causal mask) padding never changes a result.
//!
//! What trains: everything (`Full`), only the last K blocks plus the final
//! norm and the head (`LastBlocks`, the book's choice with K = 1), or LoRA
//! adapters plus the head (`Lora`). The head is new, so it always trains.
//! Loss is cross-entropy over the classes; AdamW updates whatever is
//! trainable.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use autograd::loss::cross_entropy;
use autograd::nn::{Linear, Module};
use autograd::optim::AdamW;
use autograd::{no_grad, Var};
use serde::{Deserialize, Serialize};
use tensor::{DType, Generator, Tensor};

use super::class_data::LabelledData;
use super::lora::{apply_lora, merge_lora, LoraConfig, ParamReport};
use super::split::split3;
use super::{diverged, FinetuneError, FinetuneEvent, FitOptions, MAX_GRAD_NORM};
use crate::atomic::write_atomic;
use crate::model::GPTModel;
use crate::tokenizer::{AnyTokenizer, SpecialTokens};
use crate::train::{train_step, StepOutcome};
use crate::weights::{self, save_safetensors, SafetensorsFile};

pub const CLASSIFIER_CONFIG_FILE: &str = "classifier.json";
pub const CLASSIFIER_WEIGHTS_FILE: &str = "classifier.safetensors";

/// Which parameters a classification run trains.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainMode {
    Full,
    LastBlocks(usize),
    Lora(LoraConfig),
}

/// What a saved classifier needs besides the GPT: its classes and inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub classes: Vec<String>,
    pub max_length: usize,
    pub pad_id: u32,
}

pub struct GptClassifier {
    pub gpt: GPTModel,
    /// `[classes, C]` weight plus bias.
    pub score: Linear,
    pub config: ClassifierConfig,
}

impl GptClassifier {
    /// Puts a fresh `[C] → [classes]` head on `gpt`.
    pub fn new(gpt: GPTModel, config: ClassifierConfig, gen: &mut Generator) -> Self {
        let score = Linear::new(gpt.config.emb_dim, config.classes.len(), true, gen);
        GptClassifier { gpt, score, config }
    }

    /// Class logits `[B, classes]` for padded ids `[B, T]` whose real
    /// tokens end at `lengths[b]`.
    pub fn forward(&self, ids: &Tensor, lengths: &[usize]) -> Var {
        let (b, t) = (ids.dim(0), ids.dim(1));
        let hidden = self.gpt.hidden(ids, None);
        let c = hidden.dim(2);
        // Row b·T + (len_b − 1) of the flattened [B·T, C] hidden states.
        let rows: Vec<i64> = lengths.iter().enumerate().map(|(i, &n)| (i * t + n.max(1) - 1) as i64).collect();
        let last =
            hidden.reshape(&[(b * t) as isize, c as isize]).index_select(0, &Tensor::from_vec(rows, [b]).unwrap());
        self.score.forward(&last)
    }

    /// Token ids of `text`, truncated to `max_length`.
    pub fn encode(&self, tokenizer: &AnyTokenizer, text: &str) -> Result<Vec<u32>, FinetuneError> {
        let mut ids = tokenizer.encode(text, SpecialTokens::AsText)?;
        ids.truncate(self.config.max_length);
        if ids.is_empty() {
            ids.push(self.config.pad_id);
        }
        Ok(ids)
    }

    /// Class probabilities of one text.
    pub fn predict(&self, tokenizer: &AnyTokenizer, text: &str) -> Result<Vec<f64>, FinetuneError> {
        let ids = self.encode(tokenizer, text)?;
        let (x, lengths) = pad_batch(&[ids], self.config.pad_id);
        let logits = no_grad(|| self.forward(&x, &lengths)).data();
        Ok(logits.softmax(-1).to_f64_vec())
    }

    /// Saves the GPT (adapters merged) as a Hugging Face folder, plus
    /// `classifier.safetensors` (`score.weight`, `score.bias`) and
    /// `classifier.json`.
    pub fn save(&self, dir: &Path, tokenizer: &AnyTokenizer) -> Result<(), FinetuneError> {
        self.save_sharded(dir, tokenizer, weights::DEFAULT_MAX_SHARD_BYTES)
    }

    /// [`GptClassifier::save`] with the GPT's weights in shards of at most
    /// `max_shard_bytes`.
    pub fn save_sharded(
        &self,
        dir: &Path,
        tokenizer: &AnyTokenizer,
        max_shard_bytes: usize,
    ) -> Result<(), FinetuneError> {
        weights::save_model_sharded(&self.gpt, dir, Some(tokenizer), max_shard_bytes)?;
        let mut tensors = vec![("score.weight".to_string(), self.score.weight.data())];
        if let Some(b) = &self.score.bias {
            tensors.push(("score.bias".to_string(), b.data()));
        }
        save_safetensors(dir.join(CLASSIFIER_WEIGHTS_FILE), &tensors, None)?;
        let path = dir.join(CLASSIFIER_CONFIG_FILE);
        let text = serde_json::to_string_pretty(&self.config).expect("JSON of a config");
        write_atomic(&path, text.as_bytes()).map_err(|e| FinetuneError::io(&path, e))
    }

    /// Loads what [`GptClassifier::save`] wrote.
    pub fn load(dir: &Path) -> Result<Self, FinetuneError> {
        let path = dir.join(CLASSIFIER_CONFIG_FILE);
        let text = crate::input::read_capped_string(&path, crate::input::JSON_LIMIT).map_err(|e| {
            FinetuneError::io(&path, std::io::Error::new(e.kind(), format!("{e} (is this a classifier folder?)")))
        })?;
        let config: ClassifierConfig =
            serde_json::from_str(&text).map_err(|e| FinetuneError::data(&path, e.to_string()))?;
        let gpt = weights::load_model(dir)?;
        let file = SafetensorsFile::open(dir.join(CLASSIFIER_WEIGHTS_FILE))?;
        let (n, c) = (config.classes.len(), gpt.config.emb_dim);
        let w = file.tensor_shaped("score.weight", &[n, c])?.to_dtype(DType::F32);
        let b = file.tensor_shaped("score.bias", &[n])?.to_dtype(DType::F32);
        let score = Linear::from_weights(Var::parameter(w), Some(Var::parameter(b)));
        Ok(GptClassifier { gpt, score, config })
    }

    /// Freezes what `mode` leaves alone (LoRA wraps the blocks here).
    pub fn prepare(&mut self, mode: &TrainMode, gen: &mut Generator) -> Result<ParamReport, FinetuneError> {
        match mode {
            TrainMode::Full => {}
            TrainMode::LastBlocks(k) => {
                let n = self.gpt.h.len();
                if *k > n {
                    return Err(FinetuneError::Config(format!("--train-last-blocks {k}: the model has {n} blocks")));
                }
                super::lora::freeze(&self.gpt);
                for block in &self.gpt.h[n - k..] {
                    let mut unfreeze = |_: String, p: &Var| p.set_requires_grad(true);
                    block.visit_parameters("", &mut unfreeze);
                }
                self.gpt.ln_f.parameters().iter().for_each(|p| p.set_requires_grad(true));
            }
            TrainMode::Lora(config) => {
                apply_lora(&mut self.gpt, config, gen)?;
            }
        }
        Ok(ParamReport::of(self))
    }

    /// Folds LoRA adapters, if any, into the GPT's weights.
    pub fn merge(&mut self) {
        merge_lora(&mut self.gpt);
    }
}

impl Module for GptClassifier {
    fn forward(&self, _: &Var) -> Var {
        panic!("GptClassifier::forward needs lengths; call the inherent forward(ids, lengths)")
    }
    fn visit_parameters(&self, prefix: &str, f: &mut dyn FnMut(String, &Var)) {
        self.gpt.visit_parameters(prefix, f);
        self.score.visit_parameters(&autograd::nn::join_name(prefix, "score"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.gpt.set_training(training);
    }
}

/// Pads `seqs` on the right with `pad` to the longest: ids `[B, T]` and
/// each sequence's length.
pub fn pad_batch(seqs: &[Vec<u32>], pad: u32) -> (Tensor, Vec<usize>) {
    let t = seqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        ids.extend(s.iter().map(|&i| i as i64));
        ids.extend(std::iter::repeat_n(pad as i64, t - s.len()));
    }
    (Tensor::from_vec(ids, [seqs.len(), t]).unwrap(), seqs.iter().map(Vec::len).collect())
}

/// One split, tokenized.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    pub ids: Vec<Vec<u32>>,
    pub labels: Vec<usize>,
}

/// Padded ids `[B, T]`, each text's length, and the labels `[B]`.
type Batch = (Tensor, Vec<usize>, Tensor);

impl Encoded {
    fn batches(&self, batch_size: usize, order: &[usize]) -> Vec<Batch> {
        order
            .chunks(batch_size)
            .map(|chunk| {
                let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| self.ids[i].clone()).collect();
                let labels: Vec<i64> = chunk.iter().map(|&i| self.labels[i] as i64).collect();
                let (x, lengths) = pad_batch(&seqs, 0);
                (x, lengths, Tensor::from_vec(labels, [chunk.len()]).unwrap())
            })
            .collect()
    }
}

/// Mean loss and accuracy of `model` on `data`.
pub fn evaluate(model: &mut GptClassifier, data: &Encoded, batch_size: usize) -> (f64, f64) {
    if data.ids.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    model.set_training(false);
    let order: Vec<usize> = (0..data.ids.len()).collect();
    let (mut loss, mut correct) = (0.0, 0usize);
    for (x, lengths, y) in data.batches(batch_size, &order) {
        let logits = no_grad(|| model.forward(&x, &lengths));
        loss += cross_entropy(&logits, &y).item() * y.numel() as f64;
        let predicted = logits.data().argmax(-1, false).to_vec::<i64>();
        correct += predicted.iter().zip(y.to_vec::<i64>()).filter(|(p, t)| **p == *t).count();
    }
    let n = data.ids.len() as f64;
    (loss / n, correct as f64 / n)
}

/// The three splits of a classification run.
pub struct ClassSplits {
    pub train: Encoded,
    pub val: Encoded,
    pub test: Encoded,
}

/// Tokenizes `data` (truncating to `max_length`) and splits it 70/10/20
/// with `seed`.
pub fn encode_and_split(
    data: &LabelledData,
    tokenizer: &AnyTokenizer,
    max_length: usize,
    seed: u64,
) -> Result<ClassSplits, FinetuneError> {
    let pairs: Vec<(String, usize)> = data.texts.iter().cloned().zip(data.labels.iter().copied()).collect();
    let (train, val, test) = split3(pairs, 0.7, 0.1, seed);
    let encode = |pairs: Vec<(String, usize)>| -> Result<Encoded, FinetuneError> {
        let mut e = Encoded::default();
        for (text, label) in pairs {
            let mut ids = tokenizer.encode(&text, SpecialTokens::AsText)?;
            ids.truncate(max_length);
            if ids.is_empty() {
                continue;
            }
            e.ids.push(ids);
            e.labels.push(label);
        }
        Ok(e)
    };
    Ok(ClassSplits { train: encode(train)?, val: encode(val)?, test: encode(test)? })
}

/// Accuracies after training.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ClassifyReport {
    pub train_accuracy: f64,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub test_loss: f64,
}

/// Trains `model` on `splits.train`, reporting per-epoch validation, and
/// returns the final accuracies on all three splits.
pub fn fit_classifier(
    model: &mut GptClassifier,
    splits: &ClassSplits,
    opts: &FitOptions,
    mut on_event: impl FnMut(&FinetuneEvent),
) -> Result<ClassifyReport, FinetuneError> {
    opts.validate()?;
    if splits.train.ids.is_empty() {
        return Err(FinetuneError::Config("no training examples after the split".into()));
    }
    let params: Vec<Var> = model.parameters().into_iter().filter(|p| p.requires_grad()).collect();
    let mut opt = AdamW::with_options(params, opts.lr, (0.9, 0.999), 1e-8, opts.weight_decay);
    let class_loss = |model: &GptClassifier, (x, lengths, y): &Batch| cross_entropy(&model.forward(x, lengths), y);
    let mut gen = Generator::seed(opts.seed);
    let per_epoch = splits.train.ids.len().div_ceil(opts.batch_size);
    let total = per_epoch * opts.epochs;
    let mut step = 0;
    'epochs: for epoch in 1..=opts.epochs {
        let mut order: Vec<usize> = (0..splits.train.ids.len()).collect();
        gen.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for batch in splits.train.batches(opts.batch_size, &order) {
            if opts.interrupted() {
                break 'epochs;
            }
            let started = Instant::now();
            let tokens: usize = batch.1.iter().sum();
            let StepOutcome { loss, grad_norm } =
                train_step(model, &mut opt, opts.lr, &[batch], class_loss, MAX_GRAD_NORM)
                    .map_err(|e| diverged(step, e))?;
            step += 1;
            loss_sum += loss;
            let tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64();
            on_event(&FinetuneEvent::Step { step, total, loss, lr: opts.lr, grad_norm, tokens_per_s });
        }
        let (_, train_acc) = evaluate(model, &splits.train, opts.batch_size);
        let (val_loss, val_acc) = evaluate(model, &splits.val, opts.batch_size);
        on_event(&FinetuneEvent::Epoch {
            epoch,
            train_loss: loss_sum / per_epoch as f64,
            val_loss,
            train_accuracy: Some(train_acc),
            val_accuracy: Some(val_acc),
        });
    }
    if opts.interrupted() {
        let nan = f64::NAN;
        return Ok(ClassifyReport { train_accuracy: nan, val_accuracy: nan, test_accuracy: nan, test_loss: nan });
    }
    let (_, train_accuracy) = evaluate(model, &splits.train, opts.batch_size);
    let (_, val_accuracy) = evaluate(model, &splits.val, opts.batch_size);
    let (test_loss, test_accuracy) = evaluate(model, &splits.test, opts.batch_size);
    Ok(ClassifyReport { train_accuracy, val_accuracy, test_accuracy, test_loss })
}

/// Class name → probability, for printing.
pub fn probabilities(config: &ClassifierConfig, probs: &[f64]) -> HashMap<String, f64> {
    config.classes.iter().cloned().zip(probs.iter().copied()).collect()
}
