//! GPT-2 built on the tensor and autograd layers: tokenizer, data pipeline,
//! model, training, generation and fine-tuning.

pub mod atomic;
pub mod chat;
pub mod chat_template;
pub mod data;
pub mod distributed;
pub mod end_tokens;
pub mod eval;
pub mod finetune;
pub mod generate;
pub mod gguf;
pub mod hub;
pub mod input;
pub mod inspect;
pub mod model;
pub mod output;
pub mod quant;
pub mod session;
pub mod tokenizer;
pub mod train;
pub mod weights;
