//! `scratchgpt finetune classify | instruct`: fine-tune a saved model.
//!
//! Both take the usual training flags and show `train`'s progress bar;
//! with no `--data` they use the built-in generated data sets. Like
//! `train`, they save `metrics.jsonl` and its plot `loss.svg` beside the
//! model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gpt::chat_template::ChatTemplate;
use gpt::finetune::class_data::{builtin_classification, read_labelled};
use gpt::finetune::classify::{encode_and_split, fit_classifier, ClassifierConfig, GptClassifier, TrainMode};
use gpt::finetune::instruct::{
    encode_record, fit_instructions, respond_all, write_responses, InstructOptions, PromptStyle, RESPONSES_FILE,
};
use gpt::finetune::instruct_data::{builtin_instructions, read_instructions};
use gpt::finetune::lora::{apply_lora, merge_lora, save_adapter, LoraConfig, ParamReport};
use gpt::finetune::split::split3;
use gpt::finetune::{FinetuneEvent, FitOptions};
use gpt::output::FolderKind;
use gpt::train::metrics::{plot_metrics, Metric, MetricsLog};
use gpt::train::LOSS_PLOT_FILE;
use indicatif::{ProgressBar, ProgressStyle};
use tensor::Generator;

use crate::common::{
    claim_output, interrupt_flag, load_trainable_model_and_tokenizer, outln, print_json, write_folder, Output,
    INTERRUPTED,
};

/// The flags every fine-tuning command shares.
#[derive(clap::Args)]
pub struct TrainFlags {
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f64,
    #[arg(long, default_value_t = 123)]
    seed: u64,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Train LoRA adapters of this rank (the rest of the model frozen).
    #[arg(long)]
    lora_rank: Option<usize>,
    /// LoRA's α (default 2 × rank).
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// One JSON summary on stdout at the end; no progress bar.
    #[arg(long)]
    json: bool,
    /// Replace --out even if it holds something other than a model.
    #[arg(long)]
    force: bool,
    /// The largest weights file of the saved model, as transformers'
    /// max_shard_size (5GB, 500MB, 2GiB, or bytes); larger models are split
    /// into model-0000K-of-0000N.safetensors with an index.
    #[arg(long, default_value = "5GB", value_parser = gpt::weights::shards::parse_size)]
    max_shard_size: usize,
}

impl TrainFlags {
    fn fit(&self) -> FitOptions {
        FitOptions {
            epochs: self.epochs,
            lr: self.lr,
            batch_size: self.batch_size,
            weight_decay: self.weight_decay,
            seed: self.seed,
            stop: None,
        }
    }

    /// Claims `out` (new, empty, or a model folder, unless --force), which
    /// must not be or hold the base model or the data.
    fn claim(&self, out: &Path, model: &Path, data: Option<&PathBuf>) -> Result<Output> {
        let mut inputs = vec![model];
        inputs.extend(data.map(PathBuf::as_path));
        let allow = [FolderKind::Missing, FolderKind::Empty, FolderKind::Model];
        claim_output(out, &inputs, &allow, self.force, "")
    }

    fn check(&self) -> Result<()> {
        if crate::common::device(&self.device)?.is_cuda() {
            bail!("fine-tuning runs on the CPU for now (--device cpu)");
        }
        self.fit().validate()?;
        Ok(())
    }
}

/// The most built-in examples `--builtin-size` may ask for: they are all
/// generated and held at once.
const MAX_BUILTIN: usize = 1_000_000;

fn check_builtin_size(n: usize) -> Result<()> {
    if n > MAX_BUILTIN {
        bail!("--builtin-size must be at most {MAX_BUILTIN}, got {n}");
    }
    Ok(())
}

impl TrainFlags {
    fn lora(&self) -> Option<LoraConfig> {
        self.lora_rank.map(|r| {
            let mut c = LoraConfig::new(r);
            if let Some(a) = self.lora_alpha {
                c.alpha = a;
            }
            c
        })
    }
}

/// `train`'s bar, hidden under `--json`; the returned closure prints lines
/// without breaking it.
fn progress(total: usize, json: bool) -> ProgressBar {
    let bar = if json { ProgressBar::hidden() } else { ProgressBar::new(total as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn on_event(bar: &ProgressBar, json: bool) -> impl FnMut(&FinetuneEvent) + '_ {
    move |event| match event {
        FinetuneEvent::Step { step, loss, tokens_per_s, .. } => {
            bar.set_position(*step as u64);
            bar.set_message(format!("loss {loss:.3}  {tokens_per_s:.0} tok/s"));
        }
        FinetuneEvent::Epoch { epoch, train_loss, val_loss, train_accuracy, val_accuracy } => {
            let acc = match (train_accuracy, val_accuracy) {
                (Some(t), Some(v)) => {
                    format!(", train accuracy {:.1}%, validation accuracy {:.1}%", 100.0 * t, 100.0 * v)
                }
                _ => String::new(),
            };
            let line = format!("epoch {epoch}: train loss {train_loss:.3}, validation loss {val_loss:.3}{acc}");
            if json {
            } else if bar.is_hidden() {
                // A closed stdout does not stop the run.
                let _ = outln!("{line}");
            } else {
                bar.println(line)
            }
        }
    }
}

/// A fine-tuning run's metrics, saved beside the model as `train` saves
/// its own: `metrics.jsonl` (a train line per step, a validation line per
/// epoch) and the plot of them.
#[derive(Default)]
struct RunMetrics {
    lines: Vec<Metric>,
    steps: usize,
}

impl RunMetrics {
    fn record(&mut self, event: &FinetuneEvent) {
        match *event {
            FinetuneEvent::Step { step, loss, lr, grad_norm, tokens_per_s, .. } => {
                self.steps = step;
                self.lines.push(Metric::Train { step, loss, lr, grad_norm, tokens_per_s });
            }
            FinetuneEvent::Epoch { val_loss, .. } if val_loss.is_finite() => {
                let step = self.steps;
                self.lines.push(Metric::Val { step, loss: val_loss, perplexity: val_loss.exp() });
            }
            FinetuneEvent::Epoch { .. } => {}
        }
    }

    /// Writes `metrics.jsonl` and the plot into the folder being filled.
    fn save(&self, stage: &Path) -> Result<()> {
        let log = MetricsLog::fresh(stage);
        for line in &self.lines {
            log.append(line).with_context(|| format!("{}: cannot write", log.path().display()))?;
        }
        plot_metrics(&self.lines, &stage.join(LOSS_PLOT_FILE)).map_err(anyhow::Error::msg)
    }
}

#[derive(clap::Args)]
pub struct ClassifyArgs {
    /// The pretrained model folder (Hugging Face GPT-2 layout), or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// `label<TAB>text` lines, or a TSV/CSV table with --text-column and
    /// --label-column (default: built-in generated sentences in 3 classes).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long)]
    text_column: Option<String>,
    #[arg(long)]
    label_column: Option<String>,
    /// Train only the last K blocks, the final norm and the head (default 1).
    #[arg(long, conflicts_with_all = ["full", "lora_rank"])]
    train_last_blocks: Option<usize>,
    /// Train every parameter.
    #[arg(long, conflicts_with = "lora_rank")]
    full: bool,
    /// Tokens per text (default: the longest training text, up to the context).
    #[arg(long)]
    max_length: Option<usize>,
    /// Undersample every class to the smallest one's size.
    #[arg(long)]
    balance: bool,
    /// Built-in sentences to generate when there is no --data.
    #[arg(long, default_value_t = 900)]
    builtin_size: usize,
    #[arg(long, default_value = "runs/classifier")]
    out: PathBuf,
    #[command(flatten)]
    train: TrainFlags,
}

fn report_params(report: &ParamReport, json: bool) {
    if !json {
        let _ = outln!("{report}");
    }
}

pub fn classify(mut args: ClassifyArgs) -> Result<i32> {
    args.train.check()?;
    check_builtin_size(args.builtin_size)?;
    args.model = crate::hub::model_folder(&args.model)?;
    let (gpt, tokenizer) = load_trainable_model_and_tokenizer(&args.model)?;
    let out = args.train.claim(&args.out, &args.model, args.data.as_ref())?;
    let mut data = match &args.data {
        Some(p) => read_labelled(p, args.text_column.as_deref(), args.label_column.as_deref())?,
        None => builtin_classification(args.builtin_size, args.train.seed),
    };
    if args.balance {
        data = data.balanced(args.train.seed);
    }
    let context = gpt.config.context_length;
    if args.max_length == Some(0) {
        bail!("--max-length must be at least 1");
    }
    let limit = args.max_length.unwrap_or(context).min(context);
    let mut splits = encode_and_split(&data, &tokenizer, limit, args.train.seed)?;
    let max_length = splits.train.ids.iter().map(Vec::len).max().unwrap_or(1);
    // The longest training text sets the length, as the book's dataset does.
    for ids in splits.val.ids.iter_mut().chain(splits.test.ids.iter_mut()) {
        ids.truncate(max_length);
    }
    let mode = match (args.train.lora(), args.full, args.train_last_blocks) {
        (Some(c), _, _) => TrainMode::Lora(c),
        (None, true, _) => TrainMode::Full,
        (None, false, k) => TrainMode::LastBlocks(k.unwrap_or(1)),
    };
    let pad_id = tokenizer.eot_id().unwrap_or(0);
    let config = ClassifierConfig { classes: data.classes.clone(), max_length, pad_id };
    let mut gen = Generator::seed(args.train.seed);
    let mut model = GptClassifier::new(gpt, config, &mut gen);
    let params = model.prepare(&mode, &mut gen)?;
    let fit = FitOptions { stop: Some(interrupt_flag()), ..args.train.fit() };
    if !args.train.json {
        let counts = data.counts();
        let classes: Vec<String> = data.classes.iter().zip(&counts).map(|(c, n)| format!("{c} {n}")).collect();
        outln!(
            "classifying {} texts ({}) split {}/{}/{}, up to {max_length} tokens each",
            data.len(),
            classes.join(", "),
            splits.train.ids.len(),
            splits.val.ids.len(),
            splits.test.ids.len()
        )?;
    }
    report_params(&params, args.train.json);
    let bar = progress(splits.train.ids.len().div_ceil(fit.batch_size) * fit.epochs, args.train.json);
    let (mut metrics, mut show) = (RunMetrics::default(), on_event(&bar, args.train.json));
    let report = fit_classifier(&mut model, &splits, &fit, |e| {
        metrics.record(e);
        show(e)
    })?;
    let steps = metrics.steps;
    bar.finish_and_clear();
    if fit.interrupted() && steps == 0 {
        // Nothing learned: the folder keeps what it held.
        return interrupted(0, None, args.train.json);
    }
    write_folder(&out, |stage| {
        if let TrainMode::Lora(_) = mode {
            save_adapter(&model.gpt, &stage.join("adapter"), &args.model.display().to_string())?;
        }
        model.merge();
        model.save_sharded(stage, &tokenizer, args.train.max_shard_size)?;
        metrics.save(stage)
    })?;
    if fit.interrupted() {
        return interrupted(steps, Some(&args.out), args.train.json);
    }
    if args.train.json {
        print_json(&serde_json::json!({
            "train_accuracy": report.train_accuracy,
            "val_accuracy": report.val_accuracy,
            "test_accuracy": report.test_accuracy,
            "test_loss": report.test_loss,
            "trainable_parameters": params.trainable,
            "total_parameters": params.total,
            "out": args.out,
        }))?;
    } else {
        outln!(
            "accuracy: train {:.1}%, validation {:.1}%, test {:.1}%; classifier saved in {}",
            100.0 * report.train_accuracy,
            100.0 * report.val_accuracy,
            100.0 * report.test_accuracy,
            args.out.display()
        )?;
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct InstructArgs {
    /// The pretrained model folder (its tokenizer needs <|endoftext|>),
    /// or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// A JSON array of {instruction, input, output} records (default:
    /// built-in generated tasks).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Mask the prompt's tokens from the loss (learn only the responses).
    #[arg(long)]
    mask_prompt: bool,
    /// Built-in records to generate when there is no --data.
    #[arg(long, default_value_t = 1000)]
    builtin_size: usize,
    /// Longest generated response for the test set.
    #[arg(long, default_value_t = 32)]
    max_new_tokens: usize,
    #[arg(long, default_value = "runs/instruct")]
    out: PathBuf,
    #[command(flatten)]
    train: TrainFlags,
}

pub fn instruct(mut args: InstructArgs) -> Result<i32> {
    args.train.check()?;
    check_builtin_size(args.builtin_size)?;
    args.model = crate::hub::model_folder(&args.model)?;
    let (mut gpt, tokenizer) = load_trainable_model_and_tokenizer(&args.model)?;
    let out = args.train.claim(&args.out, &args.model, args.data.as_ref())?;
    let Some(end) = tokenizer.eot_id() else {
        bail!("{}: the tokenizer has no <|endoftext|> token to end responses with", args.model.display());
    };
    // The folder's chat template when it has one, so the model is tuned
    // in the format it will be talked to in; else Alpaca's.
    let template = ChatTemplate::from_folder(&args.model)?;
    let stop_tokens = match &template {
        Some(t) => gpt::end_tokens::chat_end_token_ids(&args.model, &tokenizer, t)?,
        None => vec![end],
    };
    let style = template.map_or(PromptStyle::Alpaca, PromptStyle::Chat);
    let records = match &args.data {
        Some(p) => read_instructions(p)?,
        None => builtin_instructions(args.builtin_size, args.train.seed),
    };
    let (train, val, test) = split3(records, 0.85, 0.05, args.train.seed);
    let encode = |rs: &[gpt::finetune::instruct_data::Instruction]| -> Result<Vec<_>> {
        rs.iter().map(|r| Ok(encode_record(&tokenizer, &style, r)?)).collect()
    };
    let (train_ids, val_ids) = (encode(&train)?, encode(&val)?);
    let lora = args.train.lora();
    let params = match &lora {
        Some(c) => apply_lora(&mut gpt, c, &mut Generator::seed(args.train.seed))?,
        None => ParamReport::of(&gpt),
    };
    if !args.train.json {
        outln!(
            "instruction tuning on {} records (split {}/{}/{})",
            train.len() + val.len() + test.len(),
            train.len(),
            val.len(),
            test.len()
        )?;
    }
    report_params(&params, args.train.json);
    let fit = FitOptions { stop: Some(interrupt_flag()), ..args.train.fit() };
    let opts = InstructOptions { fit, mask_prompt: args.mask_prompt };
    let bar = progress(train_ids.len().div_ceil(opts.fit.batch_size) * opts.fit.epochs, args.train.json);
    let (mut metrics, mut show) = (RunMetrics::default(), on_event(&bar, args.train.json));
    let (train_loss, val_loss) = fit_instructions(&mut gpt, &train_ids, &val_ids, end, &opts, |e| {
        metrics.record(e);
        show(e)
    })?;
    let steps = metrics.steps;
    bar.finish_and_clear();
    if opts.fit.interrupted() && steps == 0 {
        // Nothing learned: the folder keeps what it held.
        return interrupted(0, None, args.train.json);
    }
    // The model goes in first: answering the test set takes a while, and a
    // second Ctrl-C during it must not lose the fine-tuned weights.
    write_folder(&out, |stage| {
        if lora.is_some() {
            save_adapter(&gpt, &stage.join("adapter"), &args.model.display().to_string())?;
            merge_lora(&mut gpt);
        }
        save_with_tokenizer_files(&gpt, &tokenizer, &args.model, stage, args.train.max_shard_size)?;
        metrics.save(stage)
    })?;
    if opts.fit.interrupted() {
        return interrupted(steps, Some(&args.out), args.train.json);
    }
    let bar = progress(test.len(), args.train.json);
    bar.set_message("answering the test set");
    let (scored, exact) = respond_all(&mut gpt, &tokenizer, &style, &test, args.max_new_tokens, &stop_tokens, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    write_responses(&out.dir.join(RESPONSES_FILE), &scored)?;
    let responses = args.out.join(RESPONSES_FILE);
    let score = exact as f64 / test.len().max(1) as f64;
    if args.train.json {
        print_json(&serde_json::json!({
            "train_loss": train_loss,
            "val_loss": val_loss,
            "test_exact_match": score,
            "test_correct": exact,
            "test_total": test.len(),
            "trainable_parameters": params.trainable,
            "total_parameters": params.total,
            "responses": responses,
            "out": args.out,
        }))?;
    } else {
        for s in scored.iter().take(3) {
            outln!("{} {:?} → {:?} (expected {:?})", s.instruction, s.input, s.model_response, s.output)?;
        }
        outln!(
            "exact match on the test set: {exact}/{} ({:.1}%); responses in {}; model saved in {}",
            test.len(),
            100.0 * score,
            responses.display(),
            args.out.display()
        )?;
    }
    // A signal while the test set was answered: the model and answers are
    // saved, and the exit code still says the run was interrupted.
    Ok(if opts.fit.interrupted() { INTERRUPTED } else { 0 })
}

/// The files beside a model's weights that say how to talk to it, copied
/// from the source folder when present.
const TOKENIZER_SIDE_FILES: [&str; 3] = [
    gpt::chat_template::TOKENIZER_CONFIG_FILE,
    gpt::chat_template::CHAT_TEMPLATE_FILE,
    gpt::end_tokens::GENERATION_CONFIG_FILE,
];

/// Saves the model into `stage` with its tokenizer: one of ours is saved in
/// its own format; a `tokenizer.json` (which is only read, not written) is
/// copied, and with any tokenizer the chat template and generation settings
/// come along.
fn save_with_tokenizer_files(
    gpt: &gpt::model::GPTModel,
    tokenizer: &gpt::tokenizer::AnyTokenizer,
    source: &Path,
    stage: &Path,
    max_shard_bytes: usize,
) -> Result<()> {
    let is_json = matches!(tokenizer, gpt::tokenizer::AnyTokenizer::Hf(_))
        || source.join(gpt::tokenizer::TOKENIZER_JSON_FILE).is_file();
    gpt::weights::save_model_sharded(gpt, stage, (!is_json).then_some(tokenizer), max_shard_bytes)?;
    let copied = if is_json { &[gpt::tokenizer::TOKENIZER_JSON_FILE][..] } else { &[] };
    for name in copied.iter().chain(&TOKENIZER_SIDE_FILES) {
        let from = source.join(name);
        if from.is_file() {
            std::fs::copy(&from, stage.join(name)).with_context(|| format!("{}: cannot copy", from.display()))?;
        }
    }
    Ok(())
}

/// The end of a fine-tuning run stopped by Ctrl-C or SIGTERM: the model as
/// it was after `steps` steps has been saved in `saved`, or (stopped before
/// its first step) nothing was written.
fn interrupted(steps: usize, saved: Option<&Path>, json: bool) -> Result<i32> {
    // The exit code says what happened, whatever stdout does.
    if json {
        let _ = print_json(&serde_json::json!({ "interrupted": true, "steps": steps, "out": saved }));
    } else if let Some(out) = saved {
        let _ = outln!("interrupted after {steps} steps; the model so far is saved in {}", out.display());
    } else {
        let _ = outln!("interrupted before the first step; nothing was written");
    }
    Ok(INTERRUPTED)
}
