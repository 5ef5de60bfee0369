//! Instruction fine-tuning: teaching a GPT to answer, Alpaca style.
//!
//! Each record becomes one text, the prompt followed by the answer:
//!
//! ```text
//! Below is an instruction that describes a task. Write a response that appropriately completes the request.
//!
//! ### Instruction:
//! Write the plural of the noun.
//!
//! ### Input:            (only when the record has an input)
//! fox
//!
//! ### Response:
//! foxes<|endoftext|>
//! ```
//!
//! and the model is trained on it as in pretraining: predict every next
//! token. The collate function builds a batch from texts of different
//! lengths: each gets `<|endoftext|>` appended and is padded with more of
//! it to the longest; the targets are the inputs shifted by one, with every
//! padding token after the first end token replaced by −100, which
//! cross-entropy ignores. So the model learns to *stop* (the first end
//! token is a target) but not to predict padding. Optionally the prompt's
//! targets are masked too, so only the response is learned.
//!
//! At inference the prompt (through "### Response:\n") is fed and the
//! model continues until it emits `<|endoftext|>`.

use std::path::Path;
use std::time::Instant;

use autograd::loss::{cross_entropy, IGNORE_INDEX};
use autograd::nn::Module;
use autograd::no_grad;
use autograd::optim::AdamW;
use serde::Serialize;
use tensor::{Generator, Tensor};

use super::instruct_data::Instruction;
use super::{diverged, FinetuneError, FinetuneEvent, FitOptions, MAX_GRAD_NORM};
use crate::atomic::write_atomic;
use crate::generate::{generate, GenerateOptions};
use crate::model::GPTModel;
use crate::tokenizer::{AnyTokenizer, SpecialTokens};
use crate::train::{next_token_loss, train_step, StepOutcome};

pub const PREAMBLE: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
pub const RESPONSES_FILE: &str = "instruction-data-with-response.json";

/// The prompt for `instruction` (and `input`, when not empty), ending with
/// the response header so the model's continuation is the answer.
pub fn format_prompt(instruction: &str, input: &str) -> String {
    let input = if input.is_empty() { String::new() } else { format!("\n\n### Input:\n{input}") };
    format!("{PREAMBLE}\n\n### Instruction:\n{instruction}{input}\n\n### Response:\n")
}

/// A record tokenized: prompt ids then response ids.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRecord {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

pub fn encode_record(tokenizer: &AnyTokenizer, r: &Instruction) -> Result<EncodedRecord, FinetuneError> {
    let prompt = tokenizer.encode(&format_prompt(&r.instruction, &r.input), SpecialTokens::AsText)?;
    let response = tokenizer.encode(&r.output, SpecialTokens::AsText)?;
    let prompt_len = prompt.len();
    Ok(EncodedRecord { ids: prompt.into_iter().chain(response).collect(), prompt_len })
}

/// The book's collate: inputs and targets `[B, T]`, padded with `end`,
/// targets −100 after each row's first end token (and over the prompt
/// when `mask_prompt`), every row cut to `max_length` tokens.
pub fn collate(records: &[&EncodedRecord], end: u32, mask_prompt: bool, max_length: usize) -> (Tensor, Tensor) {
    let longest = records.iter().map(|r| r.ids.len() + 1).max().unwrap_or(1);
    let t = (longest - 1).clamp(1, max_length);
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for r in records {
        // ids + end, padded with end to `longest`; inputs drop the last
        // token, targets the first.
        let mut padded: Vec<i64> = r.ids.iter().map(|&i| i as i64).collect();
        padded.resize(longest, end as i64);
        let mut target: Vec<i64> = padded[1..].to_vec();
        for (i, tok) in target.iter_mut().enumerate() {
            // Position i predicts token i + 1; the first end token sits at
            // index ids.len() of `padded`, so targets past it are padding.
            if i + 1 > r.ids.len() || (mask_prompt && i + 1 < r.prompt_len) {
                *tok = IGNORE_INDEX;
            }
        }
        inputs.extend_from_slice(&padded[..t]);
        targets.extend_from_slice(&target[..t]);
    }
    let b = records.len();
    (Tensor::from_vec(inputs, [b, t]).unwrap(), Tensor::from_vec(targets, [b, t]).unwrap())
}

fn has_targets(y: &Tensor) -> bool {
    y.to_vec::<i64>().iter().any(|&t| t != IGNORE_INDEX)
}

/// Per-record options of an instruction run.
#[derive(Clone, Debug)]
pub struct InstructOptions {
    pub fit: FitOptions,
    pub mask_prompt: bool,
}

/// Mean loss over `records` (in batches), evaluation mode.
pub fn eval_loss(model: &mut GPTModel, records: &[EncodedRecord], end: u32, opts: &InstructOptions) -> f64 {
    model.set_training(false);
    let max_len = model.config.context_length;
    let (mut total, mut n) = (0.0, 0);
    for chunk in records.chunks(opts.fit.batch_size) {
        let refs: Vec<&EncodedRecord> = chunk.iter().collect();
        let (x, y) = collate(&refs, end, opts.mask_prompt, max_len);
        if !has_targets(&y) {
            continue;
        }
        total += no_grad(|| cross_entropy(&model.forward(&x), &y)).item();
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        total / n as f64
    }
}

/// Trains on `train`, reporting validation loss after every epoch.
/// Returns the last epoch's (train loss, validation loss).
pub fn fit_instructions(
    model: &mut GPTModel,
    train: &[EncodedRecord],
    val: &[EncodedRecord],
    end: u32,
    opts: &InstructOptions,
    mut on_event: impl FnMut(&FinetuneEvent),
) -> Result<(f64, f64), FinetuneError> {
    opts.fit.validate()?;
    if train.is_empty() {
        return Err(FinetuneError::Config("no training records after the split".into()));
    }
    let max_len = model.config.context_length;
    // A record whose prompt fills the context teaches only the fixed prompt
    // text: the loss falls to ~0 while the model never sees a response.
    let cut = train.iter().filter(|r| r.prompt_len >= max_len).count();
    if cut * 2 > train.len() {
        return Err(FinetuneError::Config(format!(
            "{cut} of {} training prompts are at least the model's context of {max_len} tokens, so their responses \
             would be cut off; use a model with a longer context",
            train.len()
        )));
    }
    let f = &opts.fit;
    let params: Vec<_> = model.parameters().into_iter().filter(|p| p.requires_grad()).collect();
    let mut opt = AdamW::with_options(params, f.lr, (0.9, 0.999), 1e-8, f.weight_decay);
    let mut gen = Generator::seed(f.seed);
    let per_epoch = train.len().div_ceil(f.batch_size);
    let total = per_epoch * f.epochs;
    let (mut step, mut last) = (0, (f64::NAN, f64::NAN));
    'epochs: for epoch in 1..=f.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        gen.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(f.batch_size) {
            if f.interrupted() {
                break 'epochs;
            }
            let started = Instant::now();
            let refs: Vec<&EncodedRecord> = chunk.iter().map(|&i| &train[i]).collect();
            let (x, y) = collate(&refs, end, opts.mask_prompt, max_len);
            if !has_targets(&y) {
                // Every target masked (prompts longer than the context):
                // nothing to learn, and the mean would be 0/0.
                continue;
            }
            let tokens = x.numel();
            let StepOutcome { loss, .. } = train_step(model, &mut opt, f.lr, &[(x, y)], next_token_loss, MAX_GRAD_NORM)
                .map_err(|e| diverged(step, e))?;
            step += 1;
            loss_sum += loss;
            let tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64();
            on_event(&FinetuneEvent::Step { step, total, loss, tokens_per_s });
        }
        let val_loss = eval_loss(model, val, end, opts);
        last = (loss_sum / per_epoch as f64, val_loss);
        on_event(&FinetuneEvent::Epoch {
            epoch,
            train_loss: last.0,
            val_loss,
            train_accuracy: None,
            val_accuracy: None,
        });
    }
    Ok(last)
}

/// The model's answer to one prompt: greedy, up to `max_new_tokens`,
/// stopping at `<|endoftext|>`; `on_token` sees each id as it comes.
pub fn respond(
    model: &GPTModel,
    tokenizer: &AnyTokenizer,
    instruction: &str,
    input: &str,
    max_new_tokens: usize,
    on_token: impl FnMut(u32),
) -> Result<String, FinetuneError> {
    let mut prompt = tokenizer.encode(&format_prompt(instruction, input), SpecialTokens::AsText)?;
    let context = model.config.context_length;
    if prompt.len() >= context {
        // Keep the end: the response header is what cues the answer.
        prompt.drain(..prompt.len() + 1 - context);
    }
    let opts = GenerateOptions {
        max_new_tokens,
        stop_token: tokenizer.eot_id(),
        vocab_limit: Some(tokenizer.vocab_size()),
        ..Default::default()
    };
    let mut new = generate(model, &prompt, &opts, on_token);
    if new.last().copied() == tokenizer.eot_id() {
        new.pop();
    }
    Ok(tokenizer.decode(&new)?.trim().to_string())
}

/// A test record with the model's response beside it.
#[derive(Clone, Debug, Serialize)]
pub struct Scored {
    pub instruction: String,
    pub input: String,
    pub output: String,
    pub model_response: String,
}

/// Generates a response for every record and counts exact matches
/// (after trimming whitespace).
pub fn respond_all(
    model: &mut GPTModel,
    tokenizer: &AnyTokenizer,
    records: &[Instruction],
    max_new_tokens: usize,
    mut on_done: impl FnMut(usize),
) -> Result<(Vec<Scored>, usize), FinetuneError> {
    model.set_training(false);
    let mut out = Vec::with_capacity(records.len());
    let mut exact = 0;
    for (i, r) in records.iter().enumerate() {
        let response = respond(model, tokenizer, &r.instruction, &r.input, max_new_tokens, |_| {})?;
        exact += usize::from(response == r.output.trim());
        out.push(Scored {
            instruction: r.instruction.clone(),
            input: r.input.clone(),
            output: r.output.clone(),
            model_response: response,
        });
        on_done(i + 1);
    }
    Ok((out, exact))
}

/// Writes the scored records as the book's `instruction-data-with-response.json`.
pub fn write_responses(path: &Path, scored: &[Scored]) -> Result<(), FinetuneError> {
    let text = serde_json::to_string_pretty(scored).expect("JSON of records");
    write_atomic(path, text.as_bytes()).map_err(|e| FinetuneError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_has_the_alpaca_layout() {
        assert_eq!(
            format_prompt("Add.", "1 + 2"),
            format!("{PREAMBLE}\n\n### Instruction:\nAdd.\n\n### Input:\n1 + 2\n\n### Response:\n")
        );
        assert!(!format_prompt("Say hi.", "").contains("### Input"));
    }

    #[test]
    fn collate_pads_with_end_and_masks_after_the_first() {
        let a = EncodedRecord { ids: vec![1, 2, 3, 4, 5], prompt_len: 3 };
        let b = EncodedRecord { ids: vec![6, 7], prompt_len: 1 };
        let (x, y) = collate(&[&a, &b], 9, false, 100);
        assert_eq!(x.to_vec::<i64>(), [1, 2, 3, 4, 5, 6, 7, 9, 9, 9]);
        assert_eq!(y.to_vec::<i64>(), [2, 3, 4, 5, 9, 7, 9, -100, -100, -100]);
        // Prompt masking hides the targets inside the prompt.
        let (_, y) = collate(&[&a, &b], 9, true, 100);
        assert_eq!(y.to_vec::<i64>(), [-100, -100, 4, 5, 9, 7, 9, -100, -100, -100]);
        // And a length cap cuts every row.
        let (x, y) = collate(&[&a, &b], 9, false, 3);
        assert_eq!((x.dims().to_vec(), y.to_vec::<i64>()), (vec![2, 3], vec![2, 3, 4, 7, 9, -100]));
    }
}
