//! `scratchgpt train`: pretrain a GPT on a text file, or, with no arguments,
//! a tiny GPT on the built-in generated stories.
//!
//! Started by `mpirun -np N` (a build with the `mpi` feature), it is one
//! of N data-parallel ranks (docs/DISTRIBUTED.md): every rank reads the data
//! and builds the same trainer; rank 0 alone claims the output folder and
//! prints.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use gpt::data::builtin_corpus;
use gpt::distributed::{Communicator, DataParallel, NcclCommunicator};
use gpt::model::{GPTConfig, GPTModel, PRESETS};
use gpt::output::{resolved, FolderKind};
use gpt::tokenizer::{train_bpe, AnyTokenizer, CharTokenizer, SpecialTokens};
use gpt::train::{locate_run, Checkpoint, StopReason, TrainError, TrainEvent, TrainOptions, Trainer, CHECKPOINT_DIR};
use indicatif::{ProgressBar, ProgressStyle};
use tensor::Generator;

use crate::common::{claim_output, data_name, interrupt_flag, outln, print_json, read_text, Output, INTERRUPTED};

/// Where a new run goes when `--out` is not given.
const DEFAULT_OUT: &str = "runs/tiny";

/// Bytes of built-in stories generated when no --data is given.
const BUILTIN_BYTES: usize = 2_000_000;

#[derive(clap::Args)]
pub struct Args {
    /// Text file to train on (default: the built-in generated stories).
    #[arg(long)]
    data: Option<PathBuf>,
    /// gpt2, char, bpe:N (learn N tokens from the data first), or a folder
    /// with a saved tokenizer.
    #[arg(long, default_value = "bpe:1024", conflicts_with = "resume")]
    tokenizer: String,
    /// Model size; its vocabulary is fitted to the tokenizer.
    #[arg(long, default_value = "tiny", conflicts_with_all = ["config", "resume"])]
    preset: String,
    /// A Hugging Face GPT-2 config.json instead of a preset.
    #[arg(long, conflicts_with = "resume")]
    config: Option<PathBuf>,
    /// Optimizer steps (default 300); with --resume, the run's new total
    /// (the learning-rate schedule stretches to it).
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<usize>,
    #[arg(long, conflicts_with = "resume")]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 8, conflicts_with = "resume")]
    batch_size: usize,
    /// Tokens per window (default: the model's context length).
    #[arg(long, conflicts_with = "resume")]
    context: Option<usize>,
    #[arg(long, default_value_t = 1e-3, conflicts_with = "resume")]
    lr: f64,
    #[arg(long, conflicts_with = "resume")]
    min_lr: Option<f64>,
    #[arg(long, default_value_t = 20, conflicts_with = "resume")]
    warmup: usize,
    #[arg(long, default_value_t = 0.1, conflicts_with = "resume")]
    weight_decay: f64,
    /// Global gradient-norm clip (0 disables).
    #[arg(long, default_value_t = 1.0, conflicts_with = "resume")]
    grad_clip: f64,
    #[arg(long, default_value_t = 1, conflicts_with = "resume")]
    grad_accum: usize,
    #[arg(long, default_value_t = 1337, conflicts_with = "resume")]
    seed: u64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, or bf16: mixed precision on a GPU (bf16 matrix products, f32
    /// weights, gradients and optimizer state).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// The run folder to create (default runs/tiny). An existing folder is
    /// used only if it is empty; --force replaces any once the run is saved.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace an existing --out folder that holds something else (a
    /// training run, other files), once the new run is saved.
    #[arg(long)]
    force: bool,
    /// The largest weights file the run folder and its checkpoints get, as
    /// transformers' max_shard_size (5GB, 500MB, 2GiB, or bytes); larger
    /// models are split into model-0000K-of-0000N.safetensors with an index.
    /// A setting of how files are written, not of the run: --resume does not
    /// remember it, so give it again there.
    #[arg(long, default_value = "5GB", value_parser = gpt::weights::shards::parse_size)]
    max_shard_size: usize,
    #[arg(long, default_value_t = 50, conflicts_with = "resume")]
    eval_every: usize,
    #[arg(long, default_value_t = 100, conflicts_with = "resume")]
    sample_every: usize,
    #[arg(long, default_value_t = 100, conflicts_with = "resume")]
    checkpoint_every: usize,
    #[arg(long, default_value = "Once upon a time", conflicts_with = "resume")]
    prompt: String,
    /// Continue the run saved in this run (or checkpoint) folder; it goes on
    /// in that folder with the options it was started with (only --steps
    /// may change them).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// One JSON summary on stdout at the end; no progress bar.
    #[arg(long)]
    json: bool,
    /// Under mpirun, 1 shards AdamW's moments across the processes (ZeRO
    /// stage 1: optimizer memory per process ÷ N); 0 keeps a full copy on each.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    zero: u8,
    /// Under mpirun: all-reduce the gradients after backward instead of
    /// during it (the same numbers: bit for bit on 2 ranks, to rounding on
    /// more; for comparing the two).
    #[arg(long)]
    no_overlap: bool,
    /// Under mpirun: the size of a gradient bucket in MiB (PyTorch's
    /// bucket_cap_mb); a model smaller than one bucket sends its gradients
    /// only when backward ends.
    #[arg(long, default_value_t = 25.0)]
    bucket_mb: f64,
}

/// The data-parallel side of the run (none for a single process).
fn parallel(comm: &Rc<dyn Communicator>, args: &Args) -> Option<DataParallel> {
    (comm.world_size() > 1).then(|| {
        DataParallel::new(comm.clone(), args.zero == 1)
            .overlapping(!args.no_overlap)
            .with_bucket_bytes((args.bucket_mb * (1 << 20) as f64) as usize)
    })
}

/// GPU ranks of a data-parallel run sum their gradients with NCCL, in GPU
/// memory (the rest stays on MPI); every other run keeps `comm`. A failure
/// is agreed by all ranks: rank 0 gets the error to report, the others
/// `None` (exit quietly).
pub(crate) fn with_nccl_on_gpus(
    comm: Box<dyn Communicator>,
    device: &str,
) -> Result<Rc<dyn Communicator>, Option<anyhow::Error>> {
    let ordinal = match tensor::Device::parse(device) {
        Some(tensor::Device::Cuda(ordinal)) if comm.world_size() > 1 => ordinal,
        _ => return Ok(comm.into()),
    };
    let root = comm.is_root();
    match NcclCommunicator::new(comm, ordinal) {
        Ok(nccl) => Ok(Rc::new(nccl)),
        Err(e) if root => Err(Some(anyhow::anyhow!(e))),
        Err(_) => Err(None),
    }
}

/// The device a rank runs on: rank r of a data-parallel run given `cuda`
/// takes the GPU of its index on its machine; anything else as given.
pub(crate) fn rank_device(comm: &dyn Communicator, device: &str) -> String {
    match device {
        "cuda" if comm.world_size() > 1 => format!("cuda:{}", comm.local_rank()),
        other => other.to_string(),
    }
}

/// The output folder: claimed by `claim` on rank 0; the other ranks of a
/// data-parallel run only name it (rank 0 alone writes there).
fn claim_on_root(comm: &dyn Communicator, dir: &Path, claim: impl FnOnce() -> Result<Output>) -> Result<Output> {
    if comm.is_root() {
        claim()
    } else {
        Ok(Output::unclaimed(dir))
    }
}

/// Every rank goes on only if every rank's setup succeeded: `Some` to go
/// on, `None` when another rank failed (and says why), the error when this
/// one failed and should say so (rank 0's is said, else each failed rank's).
fn all_succeeded<T>(comm: &dyn Communicator, result: Result<T>) -> Result<Option<T>> {
    if comm.world_size() == 1 {
        return result.map(Some);
    }
    let failed = result.is_err();
    let mut counts = [f32::from(u8::from(failed)), f32::from(u8::from(failed && comm.is_root()))];
    comm.all_reduce_sum(&mut counts);
    let (any_failed, root_failed) = (counts[0] > 0.0, counts[1] > 0.0);
    match result {
        Ok(value) if !any_failed => Ok(Some(value)),
        Err(e) if comm.is_root() || !root_failed => Err(e),
        _ => Ok(None),
    }
}

fn read_data(args: &Args) -> Result<String> {
    match &args.data {
        Some(path) => read_text(path),
        None => Ok(builtin_corpus(BUILTIN_BYTES)),
    }
}

fn make_tokenizer(spec: &str, text: &str) -> Result<AnyTokenizer> {
    if spec == "char" {
        return Ok(AnyTokenizer::Char(CharTokenizer::from_text(text)));
    }
    if let Some(n) = spec.strip_prefix("bpe:") {
        let n: usize = n.parse().map_err(|_| anyhow::anyhow!("--tokenizer bpe:N needs a number, got {n:?}"))?;
        return Ok(AnyTokenizer::Bpe(train_bpe(text, n)?));
    }
    crate::common::tokenizer_by_name(spec)
}

fn model_config(args: &Args, tokenizer: &AnyTokenizer) -> Result<GPTConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = gpt::input::read_capped_string(path, gpt::input::JSON_LIMIT)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            GPTConfig::from_hf_json(&value).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => GPTConfig::preset(&args.preset)
            .ok_or_else(|| anyhow::anyhow!("unknown preset {:?}; choose one of {}", args.preset, PRESETS.join(", ")))?,
    };
    // GPT-2's own vocabulary keeps its 50,257 rows; a learned one sizes the model.
    if !matches!(args.tokenizer.as_str(), "gpt2") || args.config.is_none() {
        config.vocab_size = tokenizer.vocab_size().max(if args.tokenizer == "gpt2" { 50257 } else { 0 });
    }
    Ok(config)
}

/// Files a new run reads, which its output must not hold or replace.
fn run_inputs(args: &Args) -> Vec<&Path> {
    let tokenizer = Path::new(&args.tokenizer);
    let mut inputs: Vec<&Path> = args.data.iter().chain(&args.config).map(PathBuf::as_path).collect();
    if tokenizer.exists() {
        inputs.push(tokenizer);
    }
    inputs
}

/// A run that continues: its folder is claimed first (it exists, so a
/// refusal costs nothing; claiming also puts back a folder a crash left
/// mid-swap), then the checkpoint is found and read.
fn resume_run(args: &Args, path: &Path, comm: &Rc<dyn Communicator>) -> Result<(Output, Trainer)> {
    // The run folder, by name: a checkpoint folder's parent, or the folder.
    let run_dir = match (path.file_name(), path.parent()) {
        (Some(name), Some(parent)) if name == CHECKPOINT_DIR => parent.to_path_buf(),
        _ => path.to_path_buf(),
    };
    if let Some(out) = &args.out {
        if resolved(out)? != resolved(&run_dir)? {
            bail!("--resume continues the run in {}; drop --out {}", run_dir.display(), out.display());
        }
    }
    crate::common::refuse_quantized(path)?;
    let inputs: Vec<&Path> = args.data.iter().map(PathBuf::as_path).collect();
    let claimed =
        claim_on_root(&**comm, &run_dir, || claim_output(&run_dir, &inputs, &[FolderKind::Run], args.force, ""));
    let out = match claimed {
        Ok(out) => out,
        // No run there at all says more than what the folder holds instead.
        Err(refused) => return Err(locate_run(path).err().map_or(refused, anyhow::Error::from)),
    };
    let (_, ckpt_dir) = locate_run(path)?;
    let text = read_data(args)?;
    crate::common::refuse_quantized(&ckpt_dir)?;
    let mut checkpoint = Checkpoint::load(&ckpt_dir)?;
    if let Some(steps) = args.steps {
        let done = checkpoint.state.step;
        if steps < done {
            bail!("--steps {steps}: the run in {} has already taken {done} steps", out.dir.display());
        }
        checkpoint.state.options.steps = Some(steps);
        checkpoint.state.options.epochs = None;
    }
    let tokenizer = checkpoint.tokenizer.clone().context("the checkpoint has no tokenizer")?;
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?;
    let data = data_name(args.data.as_ref());
    let trainer = Trainer::resume_parallel(checkpoint, tokens, &data, out.dir.clone(), parallel(comm, args))?;
    Ok((out, trainer))
}

/// A new run: data, tokenizer and options are read and checked first, so
/// that bad input stops before anything is created; then the output
/// folder is claimed.
fn start_run(args: &Args, comm: &Rc<dyn Communicator>) -> Result<(Output, Trainer)> {
    let text = read_data(args)?;
    let tokenizer = make_tokenizer(&args.tokenizer, &text)?;
    let config = model_config(args, &tokenizer)?;
    let options = TrainOptions {
        steps: args.steps.or(if args.epochs.is_none() { Some(300) } else { None }),
        epochs: args.epochs,
        batch_size: args.batch_size,
        context: args.context.unwrap_or(config.context_length),
        lr: args.lr,
        min_lr: args.min_lr.unwrap_or(args.lr / 10.0),
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        grad_clip: args.grad_clip,
        grad_accum: args.grad_accum,
        seed: args.seed,
        eval_every: args.eval_every,
        sample_every: args.sample_every,
        sample_prompt: args.prompt.clone(),
        checkpoint_every: args.checkpoint_every,
        ..TrainOptions::default()
    };
    options.validate().map_err(anyhow::Error::msg)?;
    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_OUT));
    let hint = format!("continue it with --resume {0}, or pass --force to start a new run in it", out_dir.display());
    // Not even a model folder of ours: a run writes its checkpoints there
    // as it goes, and one stopped early would leave them beside the old
    // model.
    let allow = [FolderKind::Missing, FolderKind::Empty];
    let out =
        claim_on_root(&**comm, &out_dir, || claim_output(&out_dir, &run_inputs(args), &allow, args.force, &hint))?;
    let tokens = tokenizer.encode(&text, SpecialTokens::AsText)?;
    let model = GPTModel::new(config, &mut Generator::seed(args.seed));
    let data = data_name(args.data.as_ref());
    let trainer =
        Trainer::new_parallel(model, tokenizer, tokens, data, options, out.dir.clone(), parallel(comm, args))?;
    Ok((out, trainer))
}

pub fn run(args: Args) -> Result<i32> {
    let comm = gpt::distributed::launch().map_err(anyhow::Error::msg)?;
    let device = rank_device(&*comm, &args.device);
    let comm = match with_nccl_on_gpus(comm, &device) {
        Ok(comm) => comm,
        Err(None) => return Ok(2),
        Err(Some(e)) => return Err(e),
    };
    let setup = (|| {
        let device = crate::common::device(&device)?;
        crate::common::set_precision(&args.precision, device)?;
        if args.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(args.bucket_mb.is_finite() && args.bucket_mb > 0.0) {
            bail!("--bucket-mb must be a positive number of MiB, got {}", args.bucket_mb);
        }
        let (out, trainer) = match &args.resume {
            Some(path) => resume_run(&args, path, &comm)?,
            None => start_run(&args, &comm)?,
        };
        Ok((device, out, trainer))
    })();
    let Some((device, out, mut trainer)) = all_succeeded(&*comm, setup)? else {
        return Ok(2);
    };
    let root = comm.is_root();
    let out_dir = out.dir.clone();
    trainer.set_max_shard_bytes(args.max_shard_size);

    // The model, and with it the optimizer's parameters, move to the GPU;
    // batches are made on the host and copied over as the model reads them.
    autograd::nn::Module::to_device(&trainer.model, device)?;

    let stop = interrupt_flag();

    let state = trainer.state().clone();
    let quiet = args.json || !root;
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(state.total_steps as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(state.step as u64);
    if !quiet {
        let c = &trainer.model.config;
        // Lines printed while training ignore a closed stdout: the run goes
        // on and saves (a pipe's reader may stop early, as `| head` does).
        let _ = outln!("{}", format_args!(
            "training {} parameters ({} layers, width {}, vocab {}) on {} with the {} tokenizer, {} steps of {}×{} tokens{} → {}",
            autograd::nn::Module::num_parameters(&trainer.model),
            c.n_layers,
            c.emb_dim,
            c.vocab_size,
            state.data,
            state.tokenizer,
            state.total_steps,
            state.options.batch_size * state.options.grad_accum * comm.world_size(),
            state.options.context,
            match comm.world_size() {
                1 => String::new(),
                n => format!(" on {n} processes{}", if args.zero == 1 { " (ZeRO-1)" } else { "" }),
            },
            out_dir.display()
        ));
    }
    // A hidden bar (no terminal) swallows println; say things plainly then.
    let say = |line: String| {
        if bar.is_hidden() && !quiet {
            let _ = outln!("{line}");
        } else {
            bar.println(line)
        }
    };
    let summary = trainer.run(&stop, |event| match event {
        TrainEvent::Step { step, loss, tokens_per_s, .. } => {
            bar.set_position(*step as u64);
            bar.set_message(format!("loss {loss:.3}  {tokens_per_s:.0} tok/s"));
        }
        TrainEvent::Eval { step, result } => {
            say(format!("step {step}: validation loss {:.3}, perplexity {:.1}", result.loss, result.perplexity))
        }
        TrainEvent::Sample { step, text } => say(format!("step {step} sample: {}", text.replace('\n', " "))),
        TrainEvent::Checkpoint { .. } => {}
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) if comm.world_size() == 1 => return Err(e.into()),
        // Every rank stopped at the same step; rank 0 says why.
        Err(TrainError::Diverged { .. }) if !root => return Ok(2),
        Err(e @ TrainError::Diverged { .. }) => return Err(e.into()),
        // This rank alone failed (rank 0 writing a file): the others wait
        // in the next exchange, so the whole run is ended.
        Err(e) => {
            eprintln!("error: {e}");
            comm.abort(2)
        }
    };
    bar.finish_and_clear();
    // A signal that came during the last step still ends in 130.
    let interrupted = summary.stop == StopReason::Interrupted || stop.load(std::sync::atomic::Ordering::SeqCst);
    if !root {
        // Rank 0 reports.
    } else if args.json {
        let report = serde_json::json!({
            "steps": summary.steps,
            "train_loss": summary.last_loss,
            "val_loss": summary.val.map(|v| v.loss),
            "val_perplexity": summary.val.map(|v| v.perplexity),
            "interrupted": interrupted,
            "out": out_dir,
        });
        // After an interrupt the exit code says so, whatever stdout does.
        if interrupted {
            let _ = print_json(&report);
        } else {
            print_json(&report)?;
        }
    } else if interrupted {
        let _ = outln!("interrupted at step {}; resume with --resume {}", summary.steps, out_dir.display());
    } else {
        outln!(
            "done: {} steps, final train loss {:.3}; model saved in {}",
            summary.steps,
            summary.last_loss,
            out_dir.display()
        )?;
    }
    drop(out);
    Ok(if interrupted { INTERRUPTED } else { 0 })
}
