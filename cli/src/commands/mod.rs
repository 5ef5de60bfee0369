//! One module per subcommand.

pub mod bench;
pub mod bench_gemm;
pub mod bench_generate;
pub mod bench_quant;
pub mod chat;
pub mod classify;
pub mod eval;
pub mod export;
pub mod finetune;
pub mod generate;
pub mod gradcheck;
pub mod info;
pub mod inspect;
pub mod inspect_embeddings;
pub mod quantize;
pub mod tokenize;
pub mod train;
