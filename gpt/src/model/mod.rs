//! GPT-2: configuration, attention, blocks, the full model and its KV cache.
//!
//! This is the book's chapter-4 model, and it stands alone: it knows
//! nothing of fine-tuning or quantization. Those later chapters change it
//! from their own modules, by wrapping or replacing its projections and
//! its token embedding, which the model holds behind two small traits
//! ([`Projection`], [`TokenEmbedding`]).

pub mod attention;
pub mod block;
pub mod config;
pub mod gpt;
mod init;
pub mod kv_cache;
pub mod products;
pub mod projection;
pub mod token_embedding;

pub use config::{GPTConfig, PRESETS};
pub use gpt::GPTModel;
pub use kv_cache::KvCache;
pub use products::Product;
pub use projection::Projection;
pub use token_embedding::TokenEmbedding;
