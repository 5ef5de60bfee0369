//! Model files: safetensors I/O and Hugging Face GPT-2 folders.

mod error;
pub mod hf;
pub mod safetensors_io;
pub mod shards;

pub use error::WeightsError;
pub use hf::{load_config, load_model, load_tokenizer, save_model, save_model_sharded, DEFAULT_MAX_SHARD_BYTES};
pub use safetensors_io::{save_raw_safetensors, save_safetensors, RawTensor, RawView, SafetensorsFile};
pub use shards::{WeightFiles, WEIGHTS_INDEX_FILE};
