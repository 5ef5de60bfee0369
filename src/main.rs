//! The `scratchgpt` command line; all the work lives in the `cli` crate.

fn main() {
    std::process::exit(cli::main());
}
