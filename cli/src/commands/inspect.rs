//! `scratchgpt inspect …`: pictures of what a trained model learned.

/// What `inspect` can show.
#[derive(clap::Subcommand)]
pub enum InspectCommand {
    /// The token embeddings on a 2-D map (PCA), with nearest neighbours.
    Embeddings(super::inspect_embeddings::Args),
}

/// Runs one `inspect` subcommand.
pub fn run(command: InspectCommand) -> anyhow::Result<i32> {
    match command {
        InspectCommand::Embeddings(args) => super::inspect_embeddings::run(args),
    }
}
