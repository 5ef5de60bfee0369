//! GPT-2: configuration, attention, blocks, the full model and its KV cache.
//!
//! This is the book's chapter-4 model, and it stands alone: it knows
//! nothing of fine-tuning or quantization. Those later chapters change it
//! from their own modules, by wrapping or replacing its projections and
//! its token embedding, which the model holds behind two small traits
//! ([`Projection`], [`TokenEmbedding`]).

pub mod attention;
pub mod block;
pub mod build;
pub mod config;
pub mod gemma;
pub mod gpt;
pub mod hf_config;
mod init;
pub mod kv_cache;
pub mod moe;
pub mod norm;
pub mod presets;
pub mod products;
pub mod projection;
pub mod token_embedding;
pub mod trace;

pub use config::{GPTConfig, LayerType, ModelType, Rotary};
pub use gpt::GPTModel;
pub use kv_cache::KvCache;
pub use moe::MoeConfig;
pub use norm::Norm;
pub use presets::PRESETS;
pub use products::Product;
pub use projection::Projection;
pub use token_embedding::TokenEmbedding;
pub use trace::Trace;
