//! GPT-2: configuration, attention, blocks, the full model and its KV cache.

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
