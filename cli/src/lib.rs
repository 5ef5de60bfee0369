//! The `scratchgpt` command line.
//!
//! Thin by design: each subcommand parses its flags, calls the library,
//! and prints. Numbers can always be had as one JSON object (`--json`).
//! Bad arguments or input files give a one-line error on stderr and exit
//! code 2; a failed check (such as `gradcheck`) exits 1.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "scratchgpt", version, about = "A GPT built from nothing but Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check every op's gradient against finite differences (f64).
    Gradcheck(commands::gradcheck::Args),
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

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Gradcheck(args) => commands::gradcheck::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}
