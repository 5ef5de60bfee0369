//! From a text file to training batches.
//!
//! The pipeline, in order:
//!
//! 1. **Corpus**: a text file, or the built-in generated stories
//!    ([`builtin_corpus`]) when there is nothing to download.
//! 2. **Token ids**: the tokenizer turns the text into one long stream of ids,
//!    cached on disk next to the source ([`load_tokens`]).
//! 3. **Split**: the tail is held out for validation ([`train_val_split`]).
//! 4. **Windows**: the stream is cut into `(input, target)` pairs of length
//!    `T`, the target shifted one token ahead ([`SlidingWindow`]).
//! 5. **Batches**: `B` windows at a time become two I64 tensors of shape
//!    `[B, T]`, in a seeded shuffled order ([`DataLoader`]).

mod error;
mod loader;
mod split;
mod stories;
mod story_words;
mod token_cache;
mod window;

pub use error::DataError;
pub use loader::{Batches, DataLoader, LoaderConfig};
pub use split::train_val_split;
pub use stories::{builtin_corpus, generate_stories, DEFAULT_SEED};
pub use token_cache::{cache_paths, load_tokens, tokenize_file, CacheStatus, Corpus};
pub use window::SlidingWindow;
