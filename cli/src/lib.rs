//! The `scratchgpt` command line.
//!
//! Thin by design: each subcommand parses its flags, calls the library,
//! and prints. Numbers can always be had as one JSON object (`--json`).
//! Bad arguments or input files give a one-line error on stderr and exit
//! code 2; a failed check (such as `gradcheck`) exits 1.

mod commands;
mod common;
mod hub;
pub mod kernel_tier;
mod resident;
mod train_speed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "scratchgpt", version, about = "A GPT built from nothing but Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretrain a GPT (no arguments: a tiny one on built-in stories).
    Train(commands::train::Args),
    /// Continue a prompt with a trained model.
    Generate(commands::generate::Args),
    /// Loss and perplexity of a model on a text file.
    Eval(commands::eval::Args),
    /// Parameter counts and memory of a model or preset.
    Info(commands::info::Args),
    /// Store a model's weights in fewer bits: f16, bf16, int8 or int4.
    Quantize(commands::quantize::Args),
    /// Write a model in another program's format: GGUF (llama.cpp).
    Export(commands::export::Args),
    /// Text to token ids.
    Tokenize(commands::tokenize::TokenizeArgs),
    /// Token ids to text.
    Detokenize(commands::tokenize::DetokenizeArgs),
    /// Tokenizer tools.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
    /// Check gradients: every op against finite differences (f64), and the
    /// f32 kernels at training sizes against f64 references.
    Gradcheck(commands::gradcheck::Args),
    /// Fine-tune a model: classification or instruction following.
    #[command(subcommand)]
    Finetune(FinetuneCommand),
    /// The class of a text, by a model from `finetune classify`.
    Classify(commands::classify::Args),
    /// Talk to an instruction-tuned model.
    Chat(commands::chat::Args),
    /// Speed: training steps or decoding on synthetic input.
    #[command(subcommand)]
    Bench(commands::bench::BenchCommand),
    /// See inside a model: attention maps, the logit lens, embedding maps.
    #[command(subcommand)]
    Inspect(commands::inspect::InspectCommand),
}

#[derive(Subcommand)]
enum FinetuneCommand {
    /// Replace the head by a classifier and train on labelled texts.
    Classify(commands::finetune::ClassifyArgs),
    /// Train on Alpaca-style instruction records.
    Instruct(commands::finetune::InstructArgs),
}

#[derive(Subcommand)]
enum TokenizerCommand {
    /// Learn a byte-level BPE vocabulary from a text file.
    Train(commands::tokenize::TrainTokenizerArgs),
}

/// An error that should reach the user as one line and exit code 2.
#[derive(Debug)]
pub struct UserError(pub String);

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UserError {}

/// clap's message for a command line it cannot parse, on one line: what
/// is wrong, without the usage block that follows it.
fn one_line_usage_error(rendered: &str) -> String {
    let said: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    format!("{} (see --help)", said.join(" "))
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    tensor::pool::keep_freed_memory();
    // `SCRATCHGPT_HUGE_PAGES=0`: big buffers on the system's usual pages,
    // to measure what 2 MiB pages gain (see `tensor::huge_pages`).
    if std::env::var_os("SCRATCHGPT_HUGE_PAGES").is_some_and(|v| v == "0") {
        tensor::huge_pages::set_advising(false);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return 0;
        }
        // A command with no subcommand: the help says what there is.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 2;
        }
        Err(e) => {
            eprintln!("{}", one_line_usage_error(&e.render().to_string()));
            return 2;
        }
    };
    let result = match cli.command {
        Command::Train(args) => commands::train::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Tokenize(args) => commands::tokenize::tokenize(args),
        Command::Detokenize(args) => commands::tokenize::detokenize(args),
        Command::Tokenizer(TokenizerCommand::Train(args)) => commands::tokenize::train_tokenizer(args),
        Command::Gradcheck(args) => commands::gradcheck::run(args),
        Command::Finetune(FinetuneCommand::Classify(args)) => commands::finetune::classify(args),
        Command::Finetune(FinetuneCommand::Instruct(args)) => commands::finetune::instruct(args),
        Command::Classify(args) => commands::classify::run(args),
        Command::Chat(args) => commands::chat::run(args),
        Command::Bench(cmd) => commands::bench::run(cmd),
        Command::Inspect(cmd) => commands::inspect::run(cmd),
    };
    match result {
        Ok(code) => code,
        // The reader of our output has gone (`generate … | head`): like
        // `cat`, stop quietly; nothing went wrong here.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            2
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already quotes (our errors often embed their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
    }
    line.replace('\n', " ")
}
