//! Model files: safetensors I/O and Hugging Face GPT-2 folders.

mod error;
pub mod hf;
pub mod safetensors_io;

pub use error::WeightsError;
pub use hf::{load_config, load_model, load_tokenizer, save_model};
pub use safetensors_io::{save_raw_safetensors, save_safetensors, RawTensor, RawView, SafetensorsFile};
