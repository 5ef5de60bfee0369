//! GGUF, llama.cpp's model file: export a small GPT-2 and look inside.
//!
//! 1. A random GPT-2-vocabulary model is written as GGUF with its weight
//!    matrices in Q8_0 (32 weights per f16 scale).
//! 2. The file read back: its metadata and its tensor table.
//! 3. What Q8_0 did to the token table: every weight within half a step.
//! 4. The file loaded as a model: its logits beside the original's.
//!
//! Run: `cargo run --release --example gguf`

use scratchgpt::gpt::gguf::{self, GgmlType, GgufFile, Value};
use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::gpt::tokenizer::AnyTokenizer;
use scratchgpt::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Export.
    let config = GPTConfig { vocab_size: 50257, ..GPTConfig::preset("nano").unwrap() };
    let model = GPTModel::new(config, &mut Generator::seed(0));
    let tokenizer = AnyTokenizer::gpt2();
    let dir = std::env::temp_dir().join(format!("scratchgpt-gguf-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("nano-q8_0.gguf");
    let report = gguf::export(&model, &tokenizer, GgmlType::Q8_0, "nano", &path)?;
    println!("wrote {} ({} bytes, {} tensors)", path.display(), report.bytes, report.tensors);

    // 2. Metadata (long arrays by length) and the tensor table.
    let file = GgufFile::open(&path)?;
    for (key, value) in file.metadata() {
        match value {
            Value::Array(_, items) => println!("  {key}: [{} items]", items.len()),
            other => println!("  {key}: {other:?}"),
        }
    }
    for t in file.tensors().iter().take(6) {
        println!("  {:<28} {:>5} {:?}", t.name, t.ty.name(), t.shape());
    }
    println!("  ... {} tensors in all", file.tensors().len());

    // 3. Q8_0's rounding: each block of 32 has its own step d = max|w| / 127.
    let table = file.tensor("token_embd.weight").unwrap();
    let stored = file.dequantize(table);
    let original = model.wte.lookup(&Tensor::arange(0, 50257)).data().to_vec::<f32>();
    let mut worst = 0.0f32;
    for (block, back) in original.chunks(32).zip(stored.chunks(32)) {
        let step = block.iter().fold(0.0f32, |m, w| m.max(w.abs())) / 127.0;
        for (w, b) in block.iter().zip(back) {
            worst = worst.max((w - b).abs() / step);
        }
    }
    // Half a step from rounding q, plus up to 127 × 2⁻¹¹ steps because the
    // file keeps d as f16 while q was computed with the f32 d.
    let bound = 0.5 + 127.0 / 2048.0;
    println!("token table: worst error {worst:.3} steps (bound {bound:.3})");
    assert!(worst <= bound);

    // 4. Loaded back: logits close to the f32 model's.
    let (loaded, _) = gguf::load(&path)?;
    let ids = Tensor::from_vec(vec![464i64, 3290, 318, 257], [1, 4])?;
    let (a, b) = (model.forward(&ids).data().to_vec::<f32>(), loaded.forward(&ids).data().to_vec::<f32>());
    let max_diff = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    println!("logits: largest difference from the f32 model {max_diff:.2e}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
