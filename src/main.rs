//! The `scratchgpt` command line; all the work lives in the `cli` crate.

use tensor::huge_pages::HugePageAllocator;

/// Big buffers (weights, caches, activations) on 2 MiB pages: decoding
/// streams every weight once a token, and reads them faster so.
#[global_allocator]
static ALLOCATOR: HugePageAllocator = HugePageAllocator;

fn main() {
    std::process::exit(cli::main());
}
