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
//!
//! A model folder with a chat template ([`ChatTemplate`]) is fine-tuned in
//! its own format instead ([`PromptStyle::Chat`]): the record is a user
//! message (the instruction, then the input after a blank line) and the
//! assistant's reply (the output). The prompt is the user turn rendered
//! with the opening of the assistant's, the response the rest of the
//! two-message rendering (`foxes<|im_end|>\n` in ChatML), so the model
//! learns to end its turn as the template does.

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
use crate::chat_template::{ChatTemplate, Message};
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

/// How an instruction record is written out as text.
#[derive(Clone, Debug)]
pub enum PromptStyle {
    /// [`format_prompt`], then the output: for models without a template.
    Alpaca,
    /// The model's chat template: a user turn, then the assistant's.
    Chat(ChatTemplate),
}

/// The user's message for a record in a chat: the instruction, and the
/// input after a blank line when there is one.
pub fn user_message(instruction: &str, input: &str) -> Message {
    let content = if input.is_empty() { instruction.to_string() } else { format!("{instruction}\n\n{input}") };
    Message::new("user", content)
}

impl PromptStyle {
    /// The text the model continues to answer.
    pub fn prompt(&self, instruction: &str, input: &str) -> Result<String, FinetuneError> {
        match self {
            PromptStyle::Alpaca => Ok(format_prompt(instruction, input)),
            PromptStyle::Chat(template) => Ok(template.render(&[user_message(instruction, input)], true)?),
        }
    }

    /// A record's text as (prompt, response), the response being what
    /// follows the prompt.
    pub fn prompt_and_response(&self, r: &Instruction) -> Result<(String, String), FinetuneError> {
        let prompt = self.prompt(&r.instruction, &r.input)?;
        let PromptStyle::Chat(template) = self else {
            return Ok((prompt, r.output.clone()));
        };
        let turns = [user_message(&r.instruction, &r.input), Message::new("assistant", r.output.clone())];
        let full = template.render(&turns, false)?;
        match full.strip_prefix(&prompt) {
            Some(response) => Ok((prompt.clone(), response.to_string())),
            None => Err(FinetuneError::Config(
                "the chat template does not write a user turn and its reply as the prompt followed by the reply, \
                 so the reply's tokens cannot be told apart"
                    .into(),
            )),
        }
    }

    /// How special-token text in the records is read: as text in the
    /// Alpaca layout (a record cannot end a document early); in a chat,
    /// matched, as `transformers` tokenizes a rendered conversation (the
    /// template's own turn markers are special tokens).
    fn special_tokens(&self) -> SpecialTokens {
        match self {
            PromptStyle::Alpaca => SpecialTokens::AsText,
            PromptStyle::Chat(_) => SpecialTokens::Allow,
        }
    }
}

/// A record tokenized: prompt ids then response ids.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedRecord {
    pub ids: Vec<u32>,
    pub prompt_len: usize,
}

pub fn encode_record(
    tokenizer: &AnyTokenizer,
    style: &PromptStyle,
    r: &Instruction,
) -> Result<EncodedRecord, FinetuneError> {
    let (prompt, response) = style.prompt_and_response(r)?;
    let prompt = tokenizer.encode(&prompt, style.special_tokens())?;
    let response = tokenizer.encode(&response, style.special_tokens())?;
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
            let StepOutcome { loss, grad_norm } =
                train_step(model, &mut opt, f.lr, &[(x, y)], next_token_loss, MAX_GRAD_NORM)
                    .map_err(|e| diverged(step, e))?;
            step += 1;
            loss_sum += loss;
            let tokens_per_s = tokens as f64 / started.elapsed().as_secs_f64();
            on_event(&FinetuneEvent::Step { step, total, loss, lr: f.lr, grad_norm, tokens_per_s });
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
/// stopping at any of `stop_tokens` (GPT-2's `<|endoftext|>`, a chat
/// model's end of turn); `on_token` sees each id as it comes.
#[allow(clippy::too_many_arguments)]
pub fn respond(
    model: &GPTModel,
    tokenizer: &AnyTokenizer,
    style: &PromptStyle,
    instruction: &str,
    input: &str,
    max_new_tokens: usize,
    stop_tokens: &[u32],
    on_token: impl FnMut(u32),
) -> Result<String, FinetuneError> {
    let mut prompt = tokenizer.encode(&style.prompt(instruction, input)?, style.special_tokens())?;
    let context = model.config.context_length;
    if prompt.len() >= context {
        // Keep the end: the response header is what cues the answer.
        prompt.drain(..prompt.len() + 1 - context);
    }
    let opts = GenerateOptions {
        max_new_tokens,
        stop_tokens: stop_tokens.to_vec(),
        vocab_limit: Some(tokenizer.vocab_size()),
        ..Default::default()
    };
    let mut new = generate(model, &prompt, &opts, on_token);
    if new.last().is_some_and(|&id| opts.is_stop(id)) {
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
    style: &PromptStyle,
    records: &[Instruction],
    max_new_tokens: usize,
    stop_tokens: &[u32],
    mut on_done: impl FnMut(usize),
) -> Result<(Vec<Scored>, usize), FinetuneError> {
    model.set_training(false);
    let mut out = Vec::with_capacity(records.len());
    let mut exact = 0;
    for (i, r) in records.iter().enumerate() {
        let response = respond(model, tokenizer, style, &r.instruction, &r.input, max_new_tokens, stop_tokens, |_| {})?;
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

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
                          {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn a_chat_template_writes_the_record_as_a_user_turn_and_its_reply() {
        let json = include_str!("../../tests/fixtures/hf_json/qwen.tokenizer.json");
        let tokenizer = crate::tokenizer::HfTokenizer::from_json(json).unwrap().into_any();
        let record = Instruction { instruction: "Pluralize.".into(), input: "fox".into(), output: "foxes".into() };
        let chat = PromptStyle::Chat(ChatTemplate::new(CHATML));
        let (prompt, response) = chat.prompt_and_response(&record).unwrap();
        assert_eq!(prompt, "<|im_start|>user\nPluralize.\n\nfox<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(response, "foxes<|im_end|>\n");
        let encoded = encode_record(&tokenizer, &chat, &record).unwrap();
        let (im_start, im_end) = (tokenizer.special_id("<|im_start|>"), tokenizer.special_id("<|im_end|>"));
        assert_eq!(encoded.ids.iter().filter(|&&id| Some(id) == im_start).count(), 2);
        assert_eq!(tokenizer.decode(&encoded.ids[encoded.prompt_len..]).unwrap(), response);
        assert_eq!(encoded.ids[encoded.ids.len() - 2], im_end.unwrap());
        // Alpaca keeps special-token text as text and adds no turn markers.
        let alpaca = encode_record(&tokenizer, &PromptStyle::Alpaca, &record).unwrap();
        assert_eq!(tokenizer.decode(&alpaca.ids[alpaca.prompt_len..]).unwrap(), "foxes");
        // A template that does not put the reply after the prompt is refused.
        let reordered = ChatTemplate::new("{% for m in messages|reverse %}{{ m.content }};{% endfor %}");
        let e = PromptStyle::Chat(reordered).prompt_and_response(&record).unwrap_err().to_string();
        assert!(e.contains("cannot be told apart"), "{e}");
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
