//! Quantization: storing weights in fewer bits, and what it costs.
//!
//! 1. absmax int8: one scale per row maps the largest weight to ±127; every
//!    weight rounds to the nearest step, so the error is at most half a step.
//! 2. int4 in groups: only 15 levels, so one large weight would flatten a
//!    whole row; a scale per 32 weights keeps the small ones alive.
//! 3. The sizes that buys for GPT-2 small, exactly and by the rule of thumb.
//! 4. A model quantized in memory: the packed matmul computes what the
//!    decoded weights compute in f32, and the logits barely move.
//!
//! Run: `cargo run --release --example quantization`

use scratchgpt::gpt::model::{GPTConfig, GPTModel};
use scratchgpt::gpt::quant::memory::{rule_of_thumb_bytes, weight_bytes};
use scratchgpt::gpt::quant::{quantize_model, QuantMatrix, Scheme};
use scratchgpt::prelude::*;

fn rms(a: &[f32], b: &[f32]) -> f32 {
    (a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>() / a.len() as f32).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. One row, int8: scale = max|w| / 127.
    let row = [0.42f32, -1.27, 0.031, 0.9, -0.005];
    let q = QuantMatrix::quantize(&row, 1, row.len(), Scheme::Int8)?;
    let back = q.dequantize().to_vec::<f32>();
    let step = 1.27 / 127.0;
    println!("int8, one scale for the row: step {step:.4}");
    for (w, b) in row.iter().zip(&back) {
        println!("  {w:>7.4} → {b:>7.4}  (error {:+.5}, at most {:.5})", b - w, step / 2.0);
        assert!((b - w).abs() <= step / 2.0 + 1e-7);
    }

    // 2. int4 needs groups: 64 small weights and one outlier.
    let mut gen = Generator::seed(7);
    let mut w: Vec<f32> = Tensor::normal([64], 0.0, 0.02, DType::F32, &mut gen).to_vec();
    w[40] = 1.0;
    let grouped = QuantMatrix::quantize(&w, 1, 64, Scheme::Int4)?.dequantize().to_vec::<f32>();
    // One scale for the whole row, as int4 without groups would have it.
    let scale = 1.0 / 7.0;
    let whole_row: Vec<f32> = w.iter().map(|v| (v / scale).round().clamp(-7.0, 7.0) * scale).collect();
    let zeros = |v: &[f32]| v.iter().filter(|x| **x == 0.0).count();
    println!("\nint4, 64 weights of size ~0.02 and one of 1.0 (at 40, in the second group of 32):");
    println!(
        "  one scale per row:       {} of 64 weights became 0; RMS error of the first 32: {:.4}",
        zeros(&whole_row),
        rms(&w[..32], &whole_row[..32])
    );
    println!(
        "  one scale per 32 (ours): {} of 64 weights became 0; RMS error of the first 32: {:.4}",
        zeros(&grouped),
        rms(&w[..32], &grouped[..32])
    );
    // The outlier still coarsens its own group, but only that one.
    assert!(rms(&w[..32], &grouped[..32]) < rms(&w[..32], &whole_row[..32]) / 4.0);

    // 3. What each format needs for GPT-2 small's weights.
    let gpt2 = GPTConfig::preset("gpt2-small").unwrap();
    let f32_bytes = weight_bytes(&gpt2, None).unwrap() as f64;
    println!("\nGPT-2 small, {} parameters:", gpt2.num_parameters());
    println!("  format  exact (MiB)  share of f32  rule of thumb ×1.2 (MiB)");
    for scheme in [None, Some(Scheme::F16), Some(Scheme::BF16), Some(Scheme::Int8), Some(Scheme::Int4)] {
        let exact = weight_bytes(&gpt2, scheme).unwrap() as f64;
        let name = scheme.map_or("f32", Scheme::name);
        let thumb = rule_of_thumb_bytes(&gpt2, scheme) as f64;
        println!(
            "  {name:<6} {:>10.1}  {:>11.1}%  {:>10.1}",
            exact / 1048576.0,
            100.0 * exact / f32_bytes,
            thumb / 1048576.0
        );
    }

    // 4. A small model, quantized in memory.
    let model = GPTModel::new(GPTConfig { vocab_size: 512, ..GPTConfig::preset("tiny").unwrap() }, &mut gen);
    let ids = Tensor::from_vec((0..32).map(|i| (i * 37 % 512) as i64).collect::<Vec<_>>(), [1, 32])?;
    let reference = no_grad(|| model.forward(&ids)).data().to_vec::<f32>();
    println!(
        "\na tiny model's logits after quantization (largest change, of logits up to {:.2}):",
        reference.iter().fold(0.0f32, |m, v| m.max(v.abs()))
    );
    for scheme in Scheme::ALL {
        let q = quantize_model(&model, scheme)?;
        let logits = no_grad(|| q.forward(&ids)).data().to_vec::<f32>();
        let worst = logits.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("  {scheme:<5} {worst:.5}");
    }

    // The packed matmul is the decoded weights' matmul.
    let w = Tensor::normal([96, 64], 0.0, 0.05, DType::F32, &mut gen);
    let x = Tensor::normal([3, 64], 0.0, 1.0, DType::F32, &mut gen);
    let packed = QuantMatrix::quantize(&w.to_vec::<f32>(), 96, 64, Scheme::Int4)?;
    let direct = packed.matmul(&x, None).to_vec::<f32>();
    let decoded = x.matmul(&packed.dequantize().t()).to_vec::<f32>();
    let gap = direct.iter().zip(&decoded).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("\nint4 matmul on packed weights vs f32 matmul on the decoded ones: max difference {gap:.2e}");
    assert!(gap < 1e-5);
    Ok(())
}
